"""The rollout half of the store contract, on both stores (memory and DynamoDB on moto): a rollout reads back
whole, every save is conditional on the revision read, a start is refused once the index of active rollouts has
moved on, an ended rollout leaves the index, and rollout items are never listed as tenants."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from reconciler.ports import DesiredStore
from reconciler.rollouts import Rollout, RolloutState, new_rollout
from tests.contract.test_desired_store_contract import T0, backend, store, tenant  # noqa: F401

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def a_rollout(rollout_id: str = "ro-1", tenants: int = 3) -> Rollout:
    return new_rollout(
        rollout_id,
        "v2",
        {f"t{i}": "v1" for i in range(tenants)},
        canary=None,
        wave_sizes=("50%",),
        failure_tolerance="1",
        bake_s=60,
        auto_rollback=True,
        now=NOW,
        created_by="ops",
    )


def test_a_rollout_reads_back_whole_and_is_listed(store: DesiredStore) -> None:  # noqa: F811
    revision, active = store.active_rollouts()
    assert active == []
    created = store.create_rollout(a_rollout(), revision)
    assert created is not None and created.revision == 1
    assert store.get_rollout("ro-1") == created
    assert store.list_rollouts() == [created]
    assert [r.rollout_id for r in store.active_rollouts()[1]] == ["ro-1"]
    assert store.get_rollout("ro-2") is None
    assert [t.tenant_id for t in store.list_tenants()] == ["alpha"]  # the rollout items are no tenants


def test_a_large_rollout_is_still_one_item(store: DesiredStore) -> None:  # noqa: F811
    big = a_rollout(tenants=5000)
    created = store.create_rollout(big, store.active_rollouts()[0])
    assert created is not None
    assert store.get_rollout(big.rollout_id) == created


def test_every_save_is_conditional_on_the_revision_read(store: DesiredStore) -> None:  # noqa: F811
    created = store.create_rollout(a_rollout(), store.active_rollouts()[0])
    assert created is not None
    first = store.save_rollout(replace(created, reason="one"))
    assert first is not None and first.revision == 2
    assert store.save_rollout(replace(created, reason="two")) is None
    assert store.get_rollout("ro-1") == first


def test_a_start_against_a_stale_index_is_refused(store: DesiredStore) -> None:  # noqa: F811
    revision, _ = store.active_rollouts()
    assert store.create_rollout(a_rollout("ro-1"), revision) is not None
    assert store.create_rollout(a_rollout("ro-2"), revision) is None  # read before ro-1 was started
    assert store.create_rollout(a_rollout("ro-1"), store.active_rollouts()[0]) is None  # the id is taken
    assert store.create_rollout(a_rollout("ro-2"), store.active_rollouts()[0]) is not None


def test_an_ended_rollout_leaves_the_index(store: DesiredStore) -> None:  # noqa: F811
    created = store.create_rollout(a_rollout(), store.active_rollouts()[0])
    assert created is not None
    ended = store.save_rollout(replace(created, state=RolloutState.COMPLETED))
    assert ended is not None
    assert store.active_rollouts()[1] == []
    assert store.get_rollout("ro-1") == ended
