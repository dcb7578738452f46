"""The tenant-state part of the `DesiredStore` port, one suite for both stores: the in-memory one and
`DynamoStore` on moto. The deletion brake and per-region quarantine live here between passes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from models.records import DeletionBrake, HeldDeletion, OrphanAttempts, Tenant
from reconciler.fakes.memory import MemoryStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT = Tenant("alpha", "111111111111", ("us-east-1", "eu-west-1"), "arn:aws:iam::111111111111:role/R", "ext")


@pytest.fixture(params=["memory", "dynamo"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        memory = MemoryStore()
        memory.put_tenant(TENANT)
        yield memory
        return
    request.getfixturevalue("dynamo_tables")
    from reconciler.adapters.dynamo import DynamoStore

    dynamo = DynamoStore()
    dynamo.put_tenant(TENANT, T0)
    yield dynamo


BRAKE = DeletionBrake(
    held=(HeldDeletion("us-east-1/stackherd-alpha-s1", "s1", "2026-03-01T12:00:00Z"),),
    recent=(("2026-03-01T11:59:00Z", "us-east-1/stackherd-alpha-s0"), ("2026-03-01T12:00:00Z", "eu-west-1/x")),
)


def test_an_unwritten_tenant_state_is_empty(store: Any) -> None:
    state = store.get_tenant_state("alpha")
    assert state.deletion_brake == DeletionBrake() and state.region_quarantine == ()
    assert store.get_tenant_state("nobody").deletion_brake == DeletionBrake()


def test_the_deletion_brake_round_trips_and_is_versioned(store: Any) -> None:
    assert store.put_deletion_brake("alpha", BRAKE, 0)
    stored = store.get_tenant_state("alpha").deletion_brake
    assert stored == replace(BRAKE, version=1)
    # A writer that read version 0 lost the race: its write is refused and changes nothing.
    assert not store.put_deletion_brake("alpha", DeletionBrake(), 0)
    assert store.get_tenant_state("alpha").deletion_brake == stored
    assert store.put_deletion_brake("alpha", DeletionBrake(), 1)
    assert store.get_tenant_state("alpha").deletion_brake == DeletionBrake(version=2)


def test_a_brake_is_not_written_for_an_unregistered_tenant(store: Any) -> None:
    assert not store.put_deletion_brake("nobody", BRAKE, 0)


def test_region_quarantine_is_kept_beside_the_brake(store: Any) -> None:
    store.put_deletion_brake("alpha", BRAKE, 0)
    store.set_region_quarantine("alpha", "eu-west-1", "AccessDenied: an SCP denies eu-west-1", T0)
    state = store.get_tenant_state("alpha")
    assert state.quarantined_regions() == {"eu-west-1": "AccessDenied: an SCP denies eu-west-1"}
    assert state.deletion_brake.held == BRAKE.held
    store.set_region_quarantine("alpha", "eu-west-1", None, T0)
    assert store.get_tenant_state("alpha").quarantined_regions() == {}


def test_stop_reason_reads_pause_and_quarantine(store: Any) -> None:
    assert store.tenant_stop_reason("alpha") is None
    store.set_quarantine("alpha", "access denied", T0)
    assert "quarantined" in store.tenant_stop_reason("alpha")
    store.set_quarantine("alpha", None, T0)
    assert store.tenant_stop_reason("nobody") == "the tenant is no longer registered"


def test_clearing_region_quarantine_releases_every_region(store: Any) -> None:
    store.set_region_quarantine("alpha", "eu-west-1", "denied", T0)
    store.set_region_quarantine("alpha", "us-east-1", "denied", T0)
    store.clear_region_quarantine("alpha")
    assert store.get_tenant_state("alpha").quarantined_regions() == {}


def test_stop_reason_reads_a_pause(store: Any) -> None:
    store.put_tenant(replace(TENANT, paused=True), T0)
    assert store.tenant_stop_reason("alpha") == "the tenant was paused"


GHOST = OrphanAttempts(
    "arn:aws:cloudformation:eu-west-1:111111111111:stack/stackherd-alpha-ghost/1",
    "stackherd-alpha-ghost",
    "eu-west-1",
    tries=2,
    operation="delete",
    next_retry_at="2026-03-01T12:10:00Z",
    cause="Bucket (AWS::S3::Bucket) DELETE_FAILED: not empty",
)


def test_orphan_budgets_are_a_section_of_the_tenant_state_beside_the_brake(store: Any) -> None:
    assert store.put_deletion_brake("alpha", BRAKE, 0)
    store.save_orphan_attempts("alpha", {GHOST.stack_id: GHOST}, T0)
    store.set_region_quarantine("alpha", "eu-west-1", "an SCP denies this region", T0)

    state = store.get_tenant_state("alpha")
    assert state.orphan_budgets == (GHOST,) and state.other == ()
    assert state.deletion_brake == replace(BRAKE, version=1)  # neither write touched the other's section
    assert store.orphan_attempts("alpha") == {GHOST.stack_id: GHOST}
    assert store.put_deletion_brake("alpha", DeletionBrake(), 1)
    assert store.orphan_attempts("alpha") == {GHOST.stack_id: GHOST}

    store.save_orphan_attempts("alpha", {}, T0)
    assert store.orphan_attempts("alpha") == {}
    assert store.get_tenant_state("alpha").deletion_brake == DeletionBrake(version=2)


def test_orphan_budgets_are_not_kept_for_an_unregistered_tenant(store: Any) -> None:
    store.save_orphan_attempts("nobody", {GHOST.stack_id: GHOST}, T0)
    assert store.orphan_attempts("nobody") == {}


def test_an_unreadable_orphan_budgets_section_is_forgotten_not_fatal(dynamo_tables: Any) -> None:
    from models.tables import ORPHANS_SECTION, TenantModel
    from reconciler.adapters.dynamo import DynamoStore

    dynamo = DynamoStore()
    dynamo.put_tenant(TENANT, T0)
    assert dynamo.put_deletion_brake("alpha", BRAKE, 0)
    TenantModel("alpha").update(actions=[TenantModel.reconciler_state[ORPHANS_SECTION].set("not a list")])

    assert dynamo.orphan_attempts("alpha") == {}  # at worst a budget is spent again
    assert dynamo.get_tenant_state("alpha").deletion_brake == replace(BRAKE, version=1)  # the brake still reads
    dynamo.save_orphan_attempts("alpha", {GHOST.stack_id: GHOST}, T0)
    assert dynamo.orphan_attempts("alpha") == {GHOST.stack_id: GHOST}
