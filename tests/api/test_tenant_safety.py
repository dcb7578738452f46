"""What the admin API shows of a tenant's fail-safe state: held deletions and regions quarantined alone."""

from __future__ import annotations

from datetime import UTC, datetime

from models.records import DeletionBrake, HeldDeletion
from reconciler.fakes.world import FakeWorld
from tests.api.conftest import ACME_ACCOUNT, ROOT, ApiClient


def test_a_tenant_shows_its_held_deletions_and_quarantined_regions(api: ApiClient) -> None:
    from handlers.runtime import runtime

    assert "deletion_brake" not in api.get("/tenants/acme", ROOT).json()
    store = runtime().store
    held = (HeldDeletion("us-east-1/stackherd-acme-a-1", "a-1", "2026-11-30T10:00:00Z"),)
    assert store.put_deletion_brake("acme", DeletionBrake(held=held), 0)
    store.set_region_quarantine("acme", "eu-west-1", "AccessDenied: an SCP", datetime.now(UTC))

    tenant = api.get("/tenants/acme", ROOT).json()

    assert tenant["deletion_brake"] == {"held": 1, "held_since": "2026-11-30T10:00:00Z", "held_servers": ["a-1"]}
    assert tenant["quarantined_regions"] == {"eu-west-1": "AccessDenied: an SCP"}


def test_a_plan_names_the_regions_it_could_not_list(api: ApiClient, memory_world: FakeWorld) -> None:
    memory_world.put("acme", "west-1", "alice", region="eu-west-1")
    memory_world.cloud.deny_region(ACME_ACCOUNT, "eu-west-1")

    plan = api.get("/tenants/acme/plan", ROOT).json()

    assert set(plan["unobserved_regions"]) == {"eu-west-1"}
    assert "denies access" in plan["unobserved_regions"]["eu-west-1"]
