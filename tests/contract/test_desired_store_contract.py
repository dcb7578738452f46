"""The `DesiredStore` contract (reconciler/ports.py), run against both implementations: the in-memory store and
the DynamoDB store on moto. The API and engine tests run on the memory store, so what it does must be what
DynamoDB does; a behaviour only one store can show is tested beside that store instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest

from models.config import GameServerConfig
from models.records import (
    DesiredServer,
    OrphanAttempts,
    Phase,
    SeenStack,
    ServerStatus,
    Tenant,
    WriteTrail,
    role_arn_for,
)
from reconciler.ports import DesiredStore
from reconciler.writes import (
    AccountTakenError,
    ConcurrentWriteError,
    ConflictError,
    PreconditionFailedError,
    QuotaExceededError,
    TenantExistsError,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TRAIL = WriteTrail(actor="ana", door="api", correlation_id="req-1")
CONFIG = GameServerConfig(difficulty="easy", player_count=4, seed="abc")


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tenant(tenant_id: str = "alpha", account_id: str = "111111111111", **changes: Any) -> Tenant:
    base = Tenant(
        tenant_id=tenant_id,
        account_id=account_id,
        regions=("us-east-1", "eu-west-1"),
        role_arn=role_arn_for(account_id, "StackherdExecution"),
        external_id=f"ext-{tenant_id}",
        tier="free",
        template_version="v2",
    )
    return replace(base, **changes)


def server(gameserver_id: str = "gs-1", tenant_id: str = "alpha", **changes: Any) -> DesiredServer:
    base = DesiredServer(
        tenant_id=tenant_id,
        gameserver_id=gameserver_id,
        username="ana",
        config=CONFIG,
        generation=1,
        created_at="2026-03-01T12:00:00Z",
        updated_at="2026-03-01T12:00:00Z",
        region="us-east-1",
        raw_config=CONFIG.model_dump(),
        incarnation=f"{gameserver_id.replace('-', ''):0<32}"[:32],
        trail=TRAIL,
    )
    return replace(base, **changes)


class Backend(Protocol):
    store: DesiredStore

    def plant(self, tenant_id: str, gameserver_id: str, config: dict[str, Any]) -> None:
        """Store a record as another writer might have (a config and id as they are, unchecked)."""

    def plant_tenant(self, tenant_id: str, tier: str) -> None:
        """Store a tenant item as another writer might have (a tier as it is, unchecked)."""

    def vanish(self, tenant_id: str, gameserver_id: str) -> None:
        """Remove a record around the store (a script, a restore): its counter is not told."""


class MemoryBackend:
    def __init__(self) -> None:
        from reconciler.fakes.memory import MemoryStore

        self.store = MemoryStore()

    def plant(self, tenant_id: str, gameserver_id: str, config: dict[str, Any]) -> None:
        # Through the same mapping the DynamoDB store reads items with (no AWS call: the item is only built).
        from models.tables import GameServerModel, server_from_item

        item = GameServerModel(
            tenant_id,
            gameserver_id,
            username="steve",
            config=config,
            created_at="2026-03-01T12:00:00Z",
            generation=3,
            incarnation="c" * 32,
        )
        self.store.servers[(tenant_id, gameserver_id)] = server_from_item(item)

    def plant_tenant(self, tenant_id: str, tier: str) -> None:
        from models.tables import tenant_from_item, tenant_to_item

        self.store.tenants[tenant_id] = tenant_from_item(tenant_to_item(tenant(tenant_id, "999999999999", tier=tier)))

    def vanish(self, tenant_id: str, gameserver_id: str) -> None:
        del self.store.servers[(tenant_id, gameserver_id)]


class DynamoBackend:
    def __init__(self) -> None:
        from reconciler.adapters.dynamo import DynamoStore

        self.store = DynamoStore()

    def plant(self, tenant_id: str, gameserver_id: str, config: dict[str, Any]) -> None:
        import boto3

        from models.tables import GameServerModel

        boto3.client("dynamodb").put_item(
            TableName=GameServerModel.Meta.table_name,
            Item={
                "tenant_id": {"S": tenant_id},
                "gameserver_id": {"S": gameserver_id},
                "username": {"S": "steve"},
                "created_at": {"S": "2026-03-01T12:00:00Z"},
                "generation": {"N": "3"},
                "incarnation": {"S": "c" * 32},
                "config": {"M": {k: ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in config.items()}},
            },
        )

    def plant_tenant(self, tenant_id: str, tier: str) -> None:
        from models.tables import tenant_to_item

        tenant_to_item(tenant(tenant_id, "999999999999", tier=tier)).save()

    def vanish(self, tenant_id: str, gameserver_id: str) -> None:
        import boto3

        from models.tables import GameServerModel

        boto3.client("dynamodb").delete_item(
            TableName=GameServerModel.Meta.table_name,
            Key={"tenant_id": {"S": tenant_id}, "gameserver_id": {"S": gameserver_id}},
        )


@pytest.fixture(params=["memory", "dynamo"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    request.getfixturevalue("dynamo_tables")
    yield DynamoBackend()


@pytest.fixture
def store(backend: Backend) -> DesiredStore:
    backend.store.create_tenant(tenant(), T0)
    return backend.store


# --- tenants -----------------------------------------------------------------------------------------


def test_a_registered_tenant_reads_back_and_is_listed(store: DesiredStore) -> None:
    store.create_tenant(tenant("bravo", "222222222222", tier="premium"), T0)

    assert store.get_tenant("alpha") == tenant()
    assert store.get_tenant("nobody") is None
    assert [t.tenant_id for t in store.list_tenants()] == ["alpha", "bravo"]
    assert store.live_server_count("bravo") == 0


def test_a_tenant_id_and_an_account_are_registered_once(store: DesiredStore) -> None:
    with pytest.raises(TenantExistsError):
        store.create_tenant(tenant(account_id="222222222222"), T0)
    with pytest.raises(AccountTakenError, match="already tenant 'alpha'"):
        store.create_tenant(tenant("bravo"), T0)
    assert [t.tenant_id for t in store.list_tenants()] == ["alpha"]
    store.create_tenant(tenant("bravo", "222222222222"), T0)  # the refused ones left nothing behind


def test_update_tenant_changes_only_the_given_fields(store: DesiredStore) -> None:
    store.set_quarantine("alpha", "access denied", later(1))

    updated = store.update_tenant("alpha", tier="premium", regions=("eu-west-1",), paused=True)

    assert updated == replace(
        tenant(),
        tier="premium",
        regions=("eu-west-1",),
        paused=True,
        quarantined="access denied",
        quarantined_at="2026-03-01T12:00:01Z",
    )
    assert store.get_tenant("alpha") == updated
    assert store.update_tenant("nobody", paused=True) is None
    assert store.get_tenant("nobody") is None


def test_quarantine_is_set_and_cleared_and_creates_no_tenant(store: DesiredStore) -> None:
    store.set_quarantine("alpha", "denied", later(1))
    store.set_quarantine("alpha", None, later(2))
    store.set_quarantine("nobody", "denied", later(3))

    assert store.get_tenant("alpha") == tenant()
    assert store.get_tenant("nobody") is None


# --- desired records ---------------------------------------------------------------------------------


def test_a_created_record_reads_back_whole_and_is_counted(store: DesiredStore) -> None:
    created = store.create_server(server(), tier="free", max_servers=3)

    assert created == server()
    assert store.get_server("alpha", "gs-1") == server()
    assert store.read_servers("alpha").servers == (server(),)
    assert store.live_server_count("alpha") == 1


def test_a_record_is_created_once(store: DesiredStore) -> None:
    store.create_server(server(), tier="free", max_servers=3)

    with pytest.raises(ConflictError):
        store.create_server(server(incarnation="d" * 32), tier="free", max_servers=3)
    assert store.get_server("alpha", "gs-1") == server()
    assert store.live_server_count("alpha") == 1


def test_creating_beyond_the_quota_or_for_another_tier_is_refused(store: DesiredStore) -> None:
    for index in range(3):
        store.create_server(server(f"gs-{index}"), tier="free", max_servers=3)

    with pytest.raises(QuotaExceededError, match="maximum of 3") as caught:
        store.create_server(server("gs-3"), tier="free", max_servers=3)
    assert caught.value.limit == 3
    with pytest.raises(ConcurrentWriteError, match="tier"):  # the caller's limit was read for another tier
        store.create_server(server("gs-3"), tier="premium", max_servers=200)
    assert store.get_server("alpha", "gs-3") is None
    assert store.live_server_count("alpha") == 3


def test_a_full_quota_whose_records_vanished_around_the_store_is_counted_again(backend: Backend) -> None:
    """Records removed around the write path (a script, a restore) left the counter at the limit: the tenant
    could create no server ever again, told it already had as many as its tier allows."""
    store = backend.store
    store.create_tenant(tenant(), T0)
    for index in range(3):
        store.create_server(server(f"gs-{index}"), tier="free", max_servers=3)
    backend.vanish("alpha", "gs-0")
    backend.vanish("alpha", "gs-1")

    store.create_server(server("gs-3"), tier="free", max_servers=3)
    store.create_server(server("gs-4"), tier="free", max_servers=3)

    assert store.live_server_count("alpha") == 3
    with pytest.raises(QuotaExceededError, match="already has 3 game servers"):
        store.create_server(server("gs-5"), tier="free", max_servers=3)
    assert [s.gameserver_id for s in store.read_servers("alpha").servers] == ["gs-2", "gs-3", "gs-4"]


def test_replace_writes_a_new_generation_of_the_same_incarnation(store: DesiredStore) -> None:
    current = store.create_server(server(), tier="free", max_servers=3)
    changed = GameServerConfig(difficulty="hard", player_count=8, seed="new")
    trail = WriteTrail("bob", "cli", "cli-7")

    written = store.replace_server(current, config=changed, region="eu-west-1", trail=trail, at=later(5))

    assert written == replace(
        current,
        config=changed,
        raw_config=changed.model_dump(),
        region="eu-west-1",
        generation=2,
        updated_at="2026-03-01T12:00:05Z",
        trail=trail,
    )
    assert store.get_server("alpha", "gs-1") == written


@pytest.mark.parametrize("stale", ["older-generation", "other-incarnation"])
def test_a_write_on_a_record_that_moved_on_is_refused_with_the_record_as_it_is(store: DesiredStore, stale: str) -> None:
    current = store.create_server(server(), tier="free", max_servers=3)
    moved = store.replace_server(current, config=CONFIG, region=None, trail=TRAIL, at=later(1))
    read = current if stale == "older-generation" else replace(moved, incarnation="e" * 32)

    for write in (
        lambda: store.replace_server(read, config=CONFIG, region="eu-west-1", trail=TRAIL, at=later(2)),
        lambda: store.request_deletion(read, trail=TRAIL, at=later(2)),
    ):
        with pytest.raises(PreconditionFailedError) as caught:
            write()
        assert caught.value.current == moved
    assert store.write_status(read, ServerStatus(phase=Phase.READY)) is False
    assert store.get_server("alpha", "gs-1") == moved
    assert store.live_server_count("alpha") == 1


def test_a_deletion_request_bumps_the_generation_and_gives_the_slot_back(store: DesiredStore) -> None:
    current = store.create_server(server(), tier="free", max_servers=3)

    deleting = store.request_deletion(current, trail=WriteTrail("root", "cli", "c-2"), at=later(3))

    assert (deleting.deletion_requested, deleting.generation, deleting.status.phase) == (True, 2, Phase.DELETING)
    assert (deleting.incarnation, deleting.trail) == (current.incarnation, WriteTrail("root", "cli", "c-2"))
    assert store.get_server("alpha", "gs-1") == deleting
    assert store.live_server_count("alpha") == 0


def test_finalize_removes_only_a_record_still_deleting_at_the_generation_read(store: DesiredStore) -> None:
    current = store.create_server(server(), tier="free", max_servers=3)
    assert store.finalize(current) is False  # no deletion requested
    deleting = store.request_deletion(current, trail=TRAIL, at=later(1))
    assert store.finalize(current) is False  # an older generation
    assert store.finalize(replace(deleting, incarnation="f" * 32)) is False  # another incarnation

    assert store.finalize(deleting) is True
    assert store.get_server("alpha", "gs-1") is None
    assert store.finalize(deleting) is False
    assert store.live_server_count("alpha") == 0


def test_write_status_touches_nothing_else(store: DesiredStore) -> None:
    current = store.create_server(server(), tier="free", max_servers=3)
    status = ServerStatus(phase=Phase.READY, observed_generation=1, stack_id="arn:stack", attempts=2)

    assert store.write_status(current, status) is True

    assert store.get_server("alpha", "gs-1") == replace(current, status=status)
    assert store.write_status(server("gs-9"), status) is False
    assert store.get_server("alpha", "gs-9") is None


def test_the_failure_budget_fields_of_a_status_round_trip(store: DesiredStore) -> None:
    created = store.create_server(server("arena"), tier="free", max_servers=3)
    status = ServerStatus(
        phase=Phase.FAILED,
        observed_generation=1,
        operation="update",
        tries=2,
        cause="Server (AWS::EC2::Instance) UPDATE_FAILED: no",
        next_retry_at="2026-03-01T12:05:00Z",
    )
    assert store.write_status(created, status)
    read = store.get_server("alpha", "arena")
    assert read is not None and read.status == status


def test_the_stack_read_kept_on_a_status_round_trips(store: DesiredStore) -> None:
    created = store.create_server(server("arena"), tier="free", max_servers=3)
    seen = SeenStack(
        stack_id="arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-alpha-arena/1",
        status="UPDATE_COMPLETE",
        changed_at="2026-03-01T12:05:00.123000+00:00",
        parameters=(("Difficulty", "hard"), ("PlayerCount", "8"), ("Seed", "")),
        tags=(("stackherd:installation", "stackherd"), ("stackherd:tenant", "alpha")),
        termination_protection=True,
    )
    status = ServerStatus(phase=Phase.READY, observed_generation=1, stack_id=seen.stack_id, seen=seen)
    assert store.write_status(created, status)
    read = store.get_server("alpha", "arena")
    assert read is not None and read.status == status
    bare = replace(seen, parameters=(), tags=())
    assert store.write_status(read, replace(status, seen=bare))
    again = store.get_server("alpha", "arena")
    assert again is not None and again.status.seen == bare


def test_orphan_budgets_round_trip_per_tenant_and_stay_out_of_the_servers_history(store: DesiredStore) -> None:
    ghost = OrphanAttempts(
        "arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-alpha-ghost/1",
        "stackherd-alpha-ghost",
        "us-east-1",
        tries=2,
        next_retry_at="2026-03-01T12:10:00Z",
        cause="Bucket (AWS::S3::Bucket) DELETE_FAILED: not empty",
    )
    record = store.create_server(server("ghost"), tier="free", max_servers=3)
    assert store.orphan_attempts("alpha") == {}

    store.save_orphan_attempts("alpha", {ghost.stack_id: ghost}, T0)

    assert store.orphan_attempts("alpha") == {ghost.stack_id: ghost}
    assert store.orphan_attempts("bravo") == {}
    assert store.history("alpha", "ghost", record.incarnation).entries == ()
    assert [s.gameserver_id for s in store.read_servers("alpha").servers] == ["ghost"]
    store.save_orphan_attempts("alpha", {}, later(1))
    assert store.orphan_attempts("alpha") == {}


def test_reads_are_per_tenant_and_pages_follow_the_id_order(store: DesiredStore) -> None:
    store.create_tenant(tenant("bravo", "222222222222", tier="standard"), T0)
    for index in (3, 0, 4, 1, 2):
        owner = "ana" if index % 2 == 0 else "bob"
        store.create_server(server(f"gs-{index}", username=owner), tier="free", max_servers=10)
    store.create_server(server("gs-0", "bravo"), tier="standard", max_servers=25)

    read = store.read_servers("alpha")
    assert (read.complete, [s.gameserver_id for s in read.servers]) == (True, [f"gs-{i}" for i in range(5)])
    first = store.page_servers("alpha", limit=2)
    second = store.page_servers("alpha", limit=2, after=first.after)
    third = store.page_servers("alpha", limit=2, after=second.after)
    assert [[s.gameserver_id for s in p.servers] for p in (first, second, third)] == [
        ["gs-0", "gs-1"],
        ["gs-2", "gs-3"],
        ["gs-4"],
    ]
    assert (first.after, second.after, third.after) == ("gs-1", "gs-3", None)
    bobs = store.page_servers("alpha", username="bob", limit=5)
    assert ([s.gameserver_id for s in bobs.servers], bobs.after) == (["gs-1", "gs-3"], None)
    assert [s.gameserver_id for s in store.read_servers("bravo").servers] == ["gs-0"]


# --- history -----------------------------------------------------------------------------------------


def test_history_is_per_incarnation_newest_first_and_pages(store: DesiredStore) -> None:
    for index in range(5):
        store.append_activity(
            "alpha", "gs-1", "update", f"event {index}", index, later(index), incarnation="a" * 32, trail=TRAIL
        )
    store.append_activity("alpha", "gs-1", "create", "a later incarnation", 1, later(10), incarnation="b" * 32)
    store.append_activity("alpha", "gs-2", "create", "another server", 1, later(11), incarnation="a" * 32)

    first = store.history("alpha", "gs-1", "a" * 32, limit=2)
    second = store.history("alpha", "gs-1", "a" * 32, limit=2, cursor=first.cursor)
    third = store.history("alpha", "gs-1", "a" * 32, limit=2, cursor=second.cursor)

    assert [[e.message for e in p.entries] for p in (first, second, third)] == [
        ["event 4", "event 3"],
        ["event 2", "event 1"],
        ["event 0"],
    ]
    assert third.cursor is None
    newest = first.entries[0]
    assert (newest.at, newest.kind, newest.generation, newest.incarnation) == (
        "2026-03-01T12:00:04.000000Z",
        "update",
        4,
        "a" * 32,
    )
    assert (newest.actor, newest.door, newest.correlation_id) == ("ana", "api", "req-1")
    assert [e.message for e in store.history("alpha", "gs-1", "b" * 32).entries] == ["a later incarnation"]


# --- items that no longer validate -------------------------------------------------------------------


def test_a_record_whose_config_no_longer_validates_is_read_as_stored_not_as_defaults(
    backend: Backend, store: DesiredStore
) -> None:
    store.create_server(server("gs-good"), tier="free", max_servers=3)
    backend.plant("alpha", "gs-bad", {"difficulty": "hard", "player_count": 7, "seed": "has space"})

    bad = store.get_server("alpha", "gs-bad")

    assert bad is not None
    assert bad.config is None
    assert bad.raw_config == {"difficulty": "hard", "player_count": 7, "seed": "has space"}
    assert bad.unreadable is not None and "config.seed" in bad.unreadable
    assert (bad.generation, bad.username, bad.incarnation) == (3, "steve", "c" * 32)
    assert [s.gameserver_id for s in store.read_servers("alpha").servers] == ["gs-bad", "gs-good"]
    assert [s.gameserver_id for s in store.page_servers("alpha").servers] == ["gs-bad", "gs-good"]


def test_a_listing_survives_a_record_with_an_id_outside_todays_pattern(backend: Backend, store: DesiredStore) -> None:
    store.create_server(server("gs-1"), tier="free", max_servers=3)
    backend.plant("alpha", "Legacy_Server", {"difficulty": "easy"})

    listed = {s.gameserver_id: s for s in store.page_servers("alpha").servers}

    assert set(listed) == {"Legacy_Server", "gs-1"}
    legacy = listed["Legacy_Server"]
    assert legacy.unreadable is not None and "gameserver_id 'Legacy_Server' is not" in legacy.unreadable
    assert legacy.raw_config == {"difficulty": "easy"}
    assert listed["gs-1"].unreadable is None


def test_a_tenant_with_an_unknown_tier_is_listed_marked_unreadable(backend: Backend, store: DesiredStore) -> None:
    backend.plant_tenant("gold", "platinum")

    listed = {t.tenant_id: t for t in store.list_tenants()}

    assert set(listed) == {"alpha", "gold"}
    gold = listed["gold"]
    assert gold.tier == "platinum"  # as stored, never a default
    assert gold.unreadable is not None and "tier 'platinum'" in gold.unreadable
    assert store.get_tenant("gold") == gold
    fixed = store.update_tenant("gold", tier="premium")
    assert fixed is not None and (fixed.tier, fixed.unreadable) == ("premium", None)
