"""The one write service (`reconciler.desired.DesiredWrites`) on the in-memory store: every rule, in one place."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from models.config import ConfigError, TenantSpec
from models.records import DesiredServer, OrphanAttempts, Tenant, role_arn_for
from reconciler.desired import DesiredWrites, etag, parse_if_match, trail
from reconciler.fakes.memory import MemoryStore
from reconciler.writes import (
    AccountTakenError,
    ConflictError,
    DeletionPendingError,
    NotFoundError,
    NotOwnedError,
    PreconditionFailedError,
    QuotaExceededError,
    RegionInUseError,
    TenantExistsError,
    UnreadableConflictError,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TENANT = Tenant(
    tenant_id="alpha",
    account_id="111111111111",
    regions=("us-east-1", "eu-west-1"),
    role_arn=role_arn_for("111111111111", "StackherdExecution"),
    external_id="ext-alpha",
    tier="free",
)
ANA = trail("ana", "test", "req-ana")


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    store.put_tenant(TENANT)
    return store


@pytest.fixture
def writes(store: MemoryStore) -> DesiredWrites:
    return DesiredWrites(store, clock=lambda: T0)


def test_a_new_server_is_pinned_to_the_primary_region_and_stays_there(store: MemoryStore) -> None:
    writes = DesiredWrites(store, clock=lambda: T0)
    assert writes.put_server(TENANT, "s0", "ana", {}, trail=ANA).server.region == "us-east-1"

    reordered = replace(TENANT, regions=("eu-west-1", "us-east-1"))
    moved = writes.put_server(reordered, "s0", "ana", {"seed": "new"}, trail=ANA, merge=True)
    assert moved.server.region == "us-east-1"
    assert writes.put_server(reordered, "s1", "ana", {}, trail=ANA).server.region == "eu-west-1"


def test_a_region_outside_the_tenants_is_refused_naming_the_rule(writes: DesiredWrites) -> None:
    with pytest.raises(ConfigError) as caught:
        writes.put_server(TENANT, "s0", "ana", {}, trail=ANA, region="ap-south-1")
    assert (caught.value.field, caught.value.rule) == ("region", "tenant_region")


def test_the_tiers_limits_name_themselves(writes: DesiredWrites) -> None:
    with pytest.raises(ConfigError) as too_many_players:
        writes.put_server(TENANT, "s0", "ana", {"player_count": 9}, trail=ANA)
    assert (too_many_players.value.rule, too_many_players.value.limit) == ("tier_max_player_count", 8)

    for index in range(3):
        writes.put_server(TENANT, f"s{index}", "ana", {}, trail=ANA)
    with pytest.raises(QuotaExceededError, match="maximum of 3") as over_quota:
        writes.put_server(TENANT, "s3", "ana", {}, trail=ANA)
    assert over_quota.value.limit == 3


def test_a_server_being_deleted_gives_its_slot_back_and_finalizing_it_changes_no_count(
    store: MemoryStore, writes: DesiredWrites
) -> None:
    for index in range(3):
        writes.put_server(TENANT, f"s{index}", "ana", {}, trail=ANA)
    deleting = writes.delete_server(TENANT, "s0", trail=ANA).server
    assert store.live_server_count("alpha") == 2
    writes.put_server(TENANT, "s3", "ana", {}, trail=ANA)
    assert store.finalize(deleting)
    assert store.live_server_count("alpha") == 3
    with pytest.raises(QuotaExceededError):
        writes.put_server(TENANT, "s4", "ana", {}, trail=ANA)


def test_a_region_can_be_dropped_only_once_no_server_is_in_it(store: MemoryStore, writes: DesiredWrites) -> None:
    writes.put_server(TENANT, "s0", "ana", {}, trail=ANA)  # the primary region, us-east-1
    writes.put_server(TENANT, "s1", "ana", {}, trail=ANA, region="eu-west-1")

    with pytest.raises(RegionInUseError, match="s1"):
        writes.update_tenant("alpha", trail=ANA, regions=("us-east-1",))
    with pytest.raises(RegionInUseError, match="s0"):
        writes.update_tenant("alpha", trail=ANA, regions=("eu-west-1",))
    assert writes.update_tenant("alpha", trail=ANA, regions=("eu-west-1", "us-east-1")).regions == (
        "eu-west-1",
        "us-east-1",
    )


def test_writing_what_is_there_changes_nothing(writes: DesiredWrites) -> None:
    first = writes.put_server(TENANT, "s0", "ana", {"seed": "abc"}, trail=ANA)
    again = writes.put_server(TENANT, "s0", "ana", {"seed": "abc"}, trail=trail("ana", "test"))
    assert (again.changed, again.server.generation, again.server.trail) == (False, 1, first.server.trail)


def test_another_players_server_is_neither_changed_nor_deleted(writes: DesiredWrites) -> None:
    writes.put_server(TENANT, "s0", "ana", {}, trail=ANA)
    with pytest.raises(NotOwnedError):
        writes.put_server(TENANT, "s0", "bob", {"seed": "mine"}, trail=ANA)
    with pytest.raises(NotOwnedError):
        writes.delete_server(TENANT, "s0", trail=ANA, owner="bob")
    with pytest.raises(NotFoundError):
        writes.delete_server(TENANT, "nope", trail=ANA)


# --- symptom: a write to a server being deleted cancelled the deletion ---------------------------------


@pytest.mark.parametrize("merge", [False, True], ids=["put", "merge"])
def test_a_write_to_a_server_whose_deletion_was_requested_is_refused(
    store: MemoryStore, writes: DesiredWrites, merge: bool
) -> None:
    writes.put_server(TENANT, "s0", "ana", {"seed": "abc"}, trail=ANA)
    deleting = writes.delete_server(TENANT, "s0", trail=ANA).server

    with pytest.raises(DeletionPendingError, match="is being deleted"):
        writes.put_server(TENANT, "s0", "ana", {"seed": "other"}, trail=ANA, merge=merge)

    assert store.get_server("alpha", "s0") == deleting  # still deleting, nothing changed


# --- symptom: a re-created id inherited its predecessor's history and ETags ----------------------------


def test_a_recreated_server_shows_none_of_its_predecessors_history(store: MemoryStore, writes: DesiredWrites) -> None:
    alice = writes.put_server(TENANT, "arena", "alice", {"seed": "alices"}, trail=trail("alice", "api")).server
    deleting = writes.delete_server(TENANT, "arena", trail=trail("alice", "api")).server
    assert store.finalize(deleting)

    bob = writes.put_server(TENANT, "arena", "bob", {"seed": "bobs"}, trail=trail("bob", "api")).server

    assert bob.incarnation != alice.incarnation
    entries = store.history("alpha", "arena", bob.incarnation).entries
    assert [(e.actor, e.message) for e in entries] == [("bob", "created: difficulty=normal, player_count=4, seed=bobs")]
    assert len(store.history("alpha", "arena", alice.incarnation).entries) == 2


def test_an_etag_of_a_deleted_server_never_matches_its_recreation(store: MemoryStore, writes: DesiredWrites) -> None:
    old = writes.put_server(TENANT, "arena", "alice", {}, trail=ANA).server
    old_etag = etag(old)
    assert store.finalize(writes.delete_server(TENANT, "arena", trail=ANA).server)
    new = writes.put_server(TENANT, "arena", "alice", {}, trail=ANA).server
    assert new.generation == old.generation == 1

    assert etag(new) != old_etag
    with pytest.raises(PreconditionFailedError) as caught:
        writes.put_server(TENANT, "arena", "alice", {"seed": "x"}, trail=ANA, expected=parse_if_match(old_etag))
    assert caught.value.current == new
    changed = writes.put_server(TENANT, "arena", "alice", {"seed": "x"}, trail=ANA, expected=parse_if_match(etag(new)))
    assert changed.server.generation == 2


@pytest.mark.parametrize("value", ['"1"', "1", '"1-"', '"1-abc"', '"x-1a2b3c4d"', '"1-1A2B3C4D"', ""])
def test_if_match_must_be_a_star_or_an_etag_of_a_read(value: str) -> None:
    with pytest.raises(ConfigError, match="If-Match must be"):
        parse_if_match(value)


# --- symptom: a merge-write over an unreadable config wrote defaults for the other keys ----------------


def _unreadable(server: DesiredServer) -> DesiredServer:
    raw = {"difficulty": "hard", "player_count": 7, "seed": "has space"}
    return replace(server, config=None, raw_config=raw, unreadable="stored config.seed: String should match pattern")


def test_a_merge_write_on_an_unreadable_config_is_refused_and_writes_no_defaults(
    store: MemoryStore, writes: DesiredWrites
) -> None:
    created = writes.put_server(TENANT, "s0", "ana", {"difficulty": "hard", "player_count": 7}, trail=ANA).server
    store.servers[("alpha", "s0")] = _unreadable(created)

    with pytest.raises(UnreadableConflictError, match="replace the whole config"):
        writes.put_server(TENANT, "s0", "ana", {"seed": "fixed"}, trail=ANA, merge=True)
    assert store.get_server("alpha", "s0") == _unreadable(created)

    whole = writes.put_server(
        TENANT, "s0", "ana", {"difficulty": "hard", "player_count": 7, "seed": "fixed"}, trail=ANA
    )
    assert (whole.changed, whole.server.unreadable, whole.server.generation) == (True, None, 2)
    assert whole.server.config is not None and whole.server.config.player_count == 7


# --- one trail from request to record --------------------------------------------------------------


def test_every_write_records_who_through_which_door_and_the_correlation_id(
    store: MemoryStore, writes: DesiredWrites
) -> None:
    put = writes.put_server(TENANT, "s0", "ana", {}, trail=trail("ana", "api", "req-1")).server
    deleted = writes.delete_server(TENANT, "s0", trail=trail("root", "cli", "cli-2")).server

    assert (put.trail, deleted.trail) == (trail("ana", "api", "req-1"), trail("root", "cli", "cli-2"))
    entries = store.history("alpha", "s0", put.incarnation).entries
    assert [(e.kind, e.actor, e.door, e.correlation_id, e.generation) for e in entries] == [
        ("desired", "root", "cli", "cli-2", 2),
        ("desired", "ana", "api", "req-1", 1),
    ]


def test_retry_resets_the_attempts_and_says_so_in_the_history(store: MemoryStore, writes: DesiredWrites) -> None:
    server = writes.put_server(TENANT, "s0", "ana", {}, trail=ANA).server
    store.write_status(server, replace(server.status, attempts=3, next_retry_at="2026-03-01T13:00:00Z"))

    reset = writes.retry_server(TENANT, "s0", trail=ANA)

    assert (reset.status.attempts, reset.status.next_retry_at) == (0, None)
    assert store.history("alpha", "s0", server.incarnation).entries[0].kind == "retry"


def test_retry_gives_a_fresh_failure_budget(store: MemoryStore, writes: DesiredWrites) -> None:
    server = writes.put_server(TENANT, "s0", "ana", {}, trail=ANA).server
    spent = replace(server.status, tries=3, operation="update", next_retry_at="2026-03-01T13:00:00Z", cause="x")
    store.write_status(server, spent)

    reset = writes.retry_server(TENANT, "s0", trail=ANA)

    assert (reset.status.tries, reset.status.operation, reset.status.next_retry_at) == (0, None, None)
    stored = store.get_server("alpha", "s0")
    assert stored is not None and stored.status == reset.status


def test_retry_orphan_forgets_only_the_budgets_of_stacks_of_that_name(
    store: MemoryStore, writes: DesiredWrites
) -> None:
    ghost_east = OrphanAttempts("arn:east/ghost", "stackherd-alpha-ghost", "us-east-1", tries=3)
    ghost_west = OrphanAttempts("arn:west/ghost", "stackherd-alpha-ghost", "eu-west-1", tries=1)
    other = OrphanAttempts("arn:east/other", "stackherd-alpha-other", "us-east-1", tries=2)
    store.save_orphan_attempts("alpha", {o.stack_id: o for o in (ghost_east, ghost_west, other)}, T0)

    assert writes.retry_orphan(TENANT, "stackherd-alpha-ghost") is True
    assert store.orphan_attempts("alpha") == {other.stack_id: other}
    assert writes.retry_orphan(TENANT, "stackherd-alpha-ghost") is False


# --- tenants -----------------------------------------------------------------------------------------


def _spec(tenant_id: str, account: str = "222222222222", **extra: object) -> TenantSpec:
    return TenantSpec.model_validate({"tenant_id": tenant_id, "account_id": account, **extra})


def test_an_account_belongs_to_one_tenant(writes: DesiredWrites) -> None:
    writes.register_tenant(_spec("bravo"), trail=ANA)
    with pytest.raises(AccountTakenError, match="already tenant 'bravo'"):
        writes.register_tenant(_spec("charlie"), trail=ANA)
    with pytest.raises(AccountTakenError, match="already tenant 'alpha'"):  # seeded before claims were kept
        writes.register_tenant(_spec("delta", "111111111111"), trail=ANA)


def test_registering_again_is_an_error_unless_repeating_the_same_settings_is_allowed(writes: DesiredWrites) -> None:
    tenant, created = writes.register_tenant(_spec("bravo"), trail=ANA)
    assert created
    with pytest.raises(TenantExistsError):
        writes.register_tenant(_spec("bravo"), trail=ANA)
    assert writes.register_tenant(_spec("bravo"), trail=ANA, repeat_ok=True) == (tenant, False)
    with pytest.raises(TenantExistsError, match="other settings"):
        writes.register_tenant(_spec("bravo", tier="premium"), trail=ANA, repeat_ok=True)


def test_every_door_refuses_tenant_regions_outside_the_roles_partition(
    store: MemoryStore, writes: DesiredWrites
) -> None:
    with pytest.raises(ConfigError, match="aws-us-gov partition") as refused:
        writes.register_tenant(_spec("bravo", regions=["us-east-1", "us-gov-west-1"]), trail=ANA)
    assert (refused.value.field, refused.value.rule) == ("regions", "region_unknown")
    assert store.get_tenant("bravo") is None

    with pytest.raises(ConfigError, match="not a known region") as refused:
        writes.update_tenant("alpha", trail=ANA, regions=["us-east-1", "eu-west-1", "xx-fake-1"])
    assert refused.value.rule == "region_unknown"
    stored = store.get_tenant("alpha")
    assert stored is not None and stored.regions == ("us-east-1", "eu-west-1")

    govcloud = _spec(
        "charlie",
        "333333333333",
        regions=["us-gov-west-1"],
        role="arn:aws-us-gov:iam::333333333333:role/StackherdExecution",
    )
    assert writes.register_tenant(govcloud, trail=ANA)[1]


def test_pause_and_resume_change_only_the_flag(store: MemoryStore, writes: DesiredWrites) -> None:
    store.set_quarantine("alpha", "denied", T0)
    assert writes.pause_tenant("alpha", trail=ANA).paused
    resumed = writes.resume_tenant("alpha", trail=ANA)
    assert (resumed.paused, resumed.quarantined) == (False, "denied")
    with pytest.raises(NotFoundError):
        writes.pause_tenant("nobody", trail=ANA)


# --- the rules hold under concurrency (the memory store's lock; DynamoDB's transactions are tested on moto)


def _race(n: int, fn: object) -> list[BaseException | None]:
    barrier = threading.Barrier(n)
    outcomes: list[BaseException | None] = [None] * n

    def run(index: int) -> None:
        barrier.wait()
        try:
            fn(index)  # type: ignore[operator]
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_ten_concurrent_creates_on_the_free_tier_make_exactly_three(store: MemoryStore, writes: DesiredWrites) -> None:
    outcomes = _race(10, lambda i: writes.put_server(TENANT, f"s{i}", "ana", {}, trail=ANA))

    assert sum(o is None for o in outcomes) == 3
    assert all(o is None or isinstance(o, QuotaExceededError) for o in outcomes)
    assert len(store.read_servers("alpha").servers) == 3
    assert store.live_server_count("alpha") == 3


def test_concurrent_registrations_of_one_account_make_exactly_one_tenant(
    store: MemoryStore, writes: DesiredWrites
) -> None:
    outcomes = _race(8, lambda i: writes.register_tenant(_spec(f"t{i}", "333333333333"), trail=ANA))

    assert sum(o is None for o in outcomes) == 1
    assert all(o is None or isinstance(o, ConflictError) for o in outcomes)
    assert [t.tenant_id for t in store.list_tenants() if t.account_id == "333333333333"] == [f"t{outcomes.index(None)}"]
