"""The `WorkItems` contract (reconciler/ports.py), run against the in-memory items and the DynamoDB adapter on
moto: the functional tests and the benchmark run on the first, AWS on the second, so they must agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.ports import PendingWork, WorkItems

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=["memory", "dynamo"])
def items(request: pytest.FixtureRequest) -> WorkItems:
    if request.param == "memory":
        from reconciler.fakes.queue import MemoryWorkItems

        return MemoryWorkItems()
    request.getfixturevalue("dynamo_tables")
    from reconciler.adapters.work_items import DynamoWorkItems

    return DynamoWorkItems()


def test_the_first_trigger_makes_the_tenant_pending_and_later_ones_coalesce(items: WorkItems) -> None:
    assert items.mark_pending("alpha", frozenset({"a"}), "t1", at(0)) == "t1"
    assert items.mark_pending("alpha", frozenset({"b"}), "t2", at(1)) is None
    assert items.mark_pending("bravo", frozenset({"x"}), "t3", at(1)) == "t3"  # tenants never share an item

    assert items.claim("alpha") == PendingWork(scope=frozenset({"a", "b"}), token="t1")
    assert items.claim("alpha") is None  # claimed once
    assert items.mark_pending("alpha", frozenset({"c"}), "t4", at(2)) == "t4"  # pending again: sends again
    assert items.claim("alpha") == PendingWork(scope=frozenset({"c"}), token="t4")


def test_a_full_pass_absorbs_every_scope_and_an_admin_force_rides_along(items: WorkItems) -> None:
    items.mark_pending("alpha", frozenset({"a"}), "t1", at(0))
    items.mark_pending("alpha", None, "t2", at(1), force=True)
    items.mark_pending("alpha", frozenset({"b"}), "t3", at(2), confirm_deletions=True)

    assert items.claim("alpha") == PendingWork(scope=None, token="t1", force=True, confirm_deletions=True)
    items.mark_pending("alpha", frozenset({"a"}), "t5", at(3))
    assert items.claim("alpha") == PendingWork(scope=frozenset({"a"}), token="t5")  # flags do not linger


def test_a_pending_state_left_unclaimed_too_long_is_taken_over(items: WorkItems) -> None:
    items.mark_pending("alpha", frozenset({"a"}), "lost", at(0))

    assert items.mark_pending("alpha", frozenset({"b"}), "t2", at(60)) is None
    assert items.mark_pending("alpha", frozenset({"c"}), "t3", at(16 * 60)) == "t3"
    assert items.claim("alpha") == PendingWork(scope=frozenset({"a", "b", "c"}), token="t3")


def test_a_released_pending_state_lets_the_next_trigger_send(items: WorkItems) -> None:
    items.mark_pending("alpha", frozenset({"a"}), "t1", at(0))
    items.release_pending("alpha", "other")  # not its token: kept
    assert items.mark_pending("alpha", frozenset({"b"}), "t2", at(1)) is None
    items.release_pending("alpha", "t1")
    assert items.mark_pending("alpha", frozenset({"c"}), "t3", at(2)) == "t3"


def test_only_the_earliest_due_requeue_is_live(items: WorkItems) -> None:
    assert items.record_requeue("alpha", frozenset({"a"}), at(60), "r1", at(0)) is True
    assert items.record_requeue("alpha", frozenset({"b"}), at(90), "r2", at(0)) is False
    assert items.record_requeue("alpha", frozenset({"c"}), at(30), "r3", at(0)) is True

    assert items.claim_requeue("alpha", "r1") is None  # superseded
    assert items.claim_requeue("alpha", "r3") == frozenset({"a", "b", "c"})
    assert items.claim_requeue("alpha", "r3") is None  # claimed once
    assert items.record_requeue("alpha", frozenset({"d"}), at(120), "r4", at(100)) is True  # none live: live


def test_an_overdue_requeue_is_replaced(items: WorkItems) -> None:
    items.record_requeue("alpha", frozenset({"a"}), at(30), "lost", at(0))

    assert items.record_requeue("alpha", frozenset({"b"}), at(90), "r2", at(60)) is False
    assert items.record_requeue("alpha", frozenset({"c"}), at(400), "r3", at(370)) is True
    assert items.claim_requeue("alpha", "r3") == frozenset({"a", "b", "c"})


def test_a_released_requeue_lets_the_next_one_be_live(items: WorkItems) -> None:
    items.record_requeue("alpha", frozenset({"a"}), at(30), "r1", at(0))
    items.release_requeue("alpha", "r1")

    assert items.record_requeue("alpha", frozenset({"b"}), at(60), "r2", at(0)) is True


def test_work_items_are_never_listed_as_tenants(dynamo_tables: None) -> None:
    from models.records import Tenant, role_arn_for
    from reconciler.adapters.dynamo import DynamoStore
    from reconciler.adapters.work_items import DynamoWorkItems

    store = DynamoStore()
    account = "111111111111"
    store.put_tenant(Tenant("alpha", account, ("us-east-1",), role_arn_for(account, "R"), "ext", "free", "v1"), T0)
    DynamoWorkItems().mark_pending("alpha", None, "t1", T0)

    assert [t.tenant_id for t in store.list_tenants()] == ["alpha"]
    assert store.get_tenant("work#alpha") is None
