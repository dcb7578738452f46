"""What only the DynamoDB store can show, on moto: items written around the models (wrong DynamoDB types,
records and tenants from before incarnations and counters), reads that fail part-way, the activity TTL,
pages DynamoDB cuts by size, and the quota and account rules under concurrent writers. Everything both
stores do is in tests/contract/test_desired_store_contract.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.config import GameServerConfig, TenantSpec
from models.records import Phase, ServerStatus, Tenant
from reconciler.adapters.dynamo import DynamoStore
from reconciler.desired import DesiredWrites, trail
from reconciler.writes import AccountTakenError, ConflictError, QuotaExceededError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("dynamo_tables")]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TRAIL = trail("steve", "test", "req-1")
ALPHA = Tenant("alpha", "111111111111", ("us-east-1",), "arn:aws:iam::111111111111:role/R", "ext", tier="premium")


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store() -> DynamoStore:
    store = DynamoStore()
    store.create_tenant(ALPHA, T0)
    return store


@pytest.fixture
def writes(store: DynamoStore) -> DesiredWrites:
    return DesiredWrites(store, clock=lambda: T0)


def put(writes: DesiredWrites, gameserver_id: str, owner: str = "steve", **config: Any) -> Any:
    return writes.put_server(ALPHA, gameserver_id, owner, config, trail=TRAIL).server


def config(**values: Any) -> GameServerConfig:
    return GameServerConfig.model_validate(values)


def raw_put(item: dict[str, Any]) -> None:
    """Write an item as another writer (or a person in the console) might, bypassing the models."""
    import boto3

    from models.tables import GameServerModel

    boto3.client("dynamodb").put_item(TableName=GameServerModel.Meta.table_name, Item=item)


def raw_item(tenant_id: str, gameserver_id: str, config_value: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": {"S": tenant_id},
        "gameserver_id": {"S": gameserver_id},
        "username": {"S": "steve"},
        "created_at": {"S": "2026-03-01T12:00:00Z"},
        "generation": {"N": "3"},
        "config": config_value,
    }


def test_read_servers_follows_pages_dynamodb_cuts_by_size(store: DynamoStore) -> None:
    big = "x" * 20_000  # ~25 items of this size fill DynamoDB's 1 MB query page; the read must follow it
    for i in range(60):
        raw_put({**raw_item("alpha", f"gs-{i:02d}", {"M": {"seed": {"S": f"s{i}"}}}), "username": {"S": big}})

    read = store.read_servers("alpha")

    assert read.complete is True
    assert [s.gameserver_id for s in read.servers] == [f"gs-{i:02d}" for i in range(60)]
    assert store.read_servers("nobody").servers == ()


class _FailingPages(DynamoStore):
    """A query whose page after the first `pages_ok` items fails, as a throttled or dropped page would."""

    def __init__(self, items_ok: int) -> None:
        super().__init__()
        self.items_ok = items_ok

    def _query(self, tenant_id: str, query: dict[str, Any]) -> Iterator[Any]:
        from pynamodb.exceptions import QueryError

        for index, item in enumerate(super()._query(tenant_id, query)):
            if index == self.items_ok:
                raise QueryError("the next page could not be read")
            yield item


def test_a_read_that_fails_part_way_says_it_is_incomplete(store: DynamoStore, writes: DesiredWrites) -> None:
    for index in range(4):
        put(writes, f"gs-{index}")

    read = _FailingPages(items_ok=2).read_servers("alpha")

    assert (read.complete, [s.gameserver_id for s in read.servers]) == (False, ["gs-0", "gs-1"])
    with pytest.raises(Exception, match="could not read"):
        _FailingPages(items_ok=0).read_servers("alpha")
    with pytest.raises(Exception, match="could not read a page"):
        _FailingPages(items_ok=1).page_servers("alpha", limit=3)


def test_activity_entries_expire_after_the_ttl(store: DynamoStore) -> None:
    from models.tables import ActivityModel

    store.append_activity("alpha", "gs-1", "update", "event", 1, T0, incarnation="a" * 32, trail=TRAIL)

    (item,) = ActivityModel.query("alpha/gs-1")
    assert item.expires_at == T0 + store.activity_ttl


# --- records and tenants from before incarnations and counters ---------------------------------------------


def test_a_record_stored_without_an_incarnation_gets_a_stable_one_and_stays_writable(
    store: DynamoStore, writes: DesiredWrites
) -> None:
    raw_put(raw_item("alpha", "gs-old", {"M": {"seed": {"S": "abc"}}}))
    first, again = store.get_server("alpha", "gs-old"), store.get_server("alpha", "gs-old")
    assert first is not None and again is not None
    assert first.incarnation == again.incarnation and len(first.incarnation) == 32

    changed = writes.put_server(ALPHA, "gs-old", "steve", {"seed": "new"}, trail=TRAIL, merge=True).server
    assert (changed.generation, changed.incarnation) == (4, first.incarnation)
    assert store.write_status(changed, ServerStatus(phase=Phase.READY)) is True

    raw_put({**raw_item("alpha", "gs-old", {"M": {"seed": {"S": "abc"}}}), "created_at": {"S": "2026-04-01T00:00:00Z"}})
    recreated = store.get_server("alpha", "gs-old")
    assert recreated is not None and recreated.incarnation != first.incarnation
    assert store.write_status(changed, ServerStatus(phase=Phase.FAILED)) is False


def test_a_tenant_registered_before_counters_gets_one_from_its_records(store: DynamoStore) -> None:
    legacy = Tenant("old", "222222222222", ("us-east-1",), "arn:aws:iam::222222222222:role/R", "ext", tier="free")
    store.put_tenant(legacy, T0)  # no counter, no account claim
    raw_put({**raw_item("old", "gs-1", {"M": {"seed": {"S": "abc"}}}), "incarnation": {"S": "a" * 32}})
    raw_put({**raw_item("old", "gs-2", {"M": {"seed": {"S": "abc"}}}), "deletion_requested": {"BOOL": True}})
    writes = DesiredWrites(store, clock=lambda: T0)
    assert store.live_server_count("old") is None

    writes.put_server(legacy, "gs-3", "steve", {}, trail=TRAIL)
    writes.put_server(legacy, "gs-4", "steve", {}, trail=TRAIL)

    assert store.live_server_count("old") == 3
    with pytest.raises(QuotaExceededError):
        writes.put_server(legacy, "gs-5", "steve", {}, trail=TRAIL)


# --- the rules under concurrent writers (threads; processes against a moto server are in tests/e2e) --------


def race(n: int, fn: Callable[[int], object]) -> list[BaseException | None]:
    """Run `fn(0)` ... `fn(n - 1)` in threads started together; what each raised (None: it succeeded)."""
    from tests.moto_atomic import serialized_moto_dynamodb

    with serialized_moto_dynamodb():
        return _race(n, fn)


def _race(n: int, fn: Callable[[int], object]) -> list[BaseException | None]:
    barrier = threading.Barrier(n)
    outcomes: list[BaseException | None] = [None] * n

    def run(index: int) -> None:
        barrier.wait()
        try:
            fn(index)
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_ten_concurrent_creates_on_the_free_tier_make_exactly_three_on_dynamodb(store: DynamoStore) -> None:
    free = Tenant("free", "333333333333", ("us-east-1",), "arn:aws:iam::333333333333:role/R", "ext-free", tier="free")
    store.create_tenant(free, T0)

    outcomes = race(10, lambda i: DesiredWrites(DynamoStore()).put_server(free, f"s{i}", "ana", {}, trail=TRAIL))

    assert sum(o is None for o in outcomes) == 3, outcomes
    assert all(o is None or isinstance(o, QuotaExceededError) for o in outcomes), outcomes
    assert len(store.read_servers("free").servers) == 3
    assert store.live_server_count("free") == 3


def test_concurrent_registrations_of_one_account_make_exactly_one_tenant_on_dynamodb(store: DynamoStore) -> None:
    def register(index: int) -> object:
        spec = TenantSpec(tenant_id=f"t{index}", account_id="444444444444")
        return DesiredWrites(DynamoStore()).register_tenant(spec, trail=TRAIL)

    outcomes = race(8, register)

    assert sum(o is None for o in outcomes) == 1, outcomes
    assert all(o is None or isinstance(o, AccountTakenError | ConflictError) for o in outcomes), outcomes
    assert [t.tenant_id for t in store.list_tenants() if t.account_id == "444444444444"] == [f"t{outcomes.index(None)}"]


# --- items written around the models --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        pytest.param(
            {"M": {"difficulty": {"S": "extreme"}, "player_count": {"N": "4"}, "seed": {"S": "abc"}}},
            "config.difficulty",
            id="value-out-of-schema",
        ),
        pytest.param(
            {"M": {"difficulty": {"S": "easy"}, "player_count": {"S": "lots"}, "seed": {"S": "abc"}}},
            "config.player_count",
            id="wrong-dynamodb-type",
        ),
        pytest.param(
            {"M": {"difficulty": {"S": "easy"}, "map": {"S": "island"}}},
            "config.map",
            id="unknown-key",
        ),
        pytest.param({"S": '{"difficulty": "easy"}'}, "not a map", id="not-a-map"),
    ],
)
def test_a_stored_invalid_config_yields_a_record_marked_unreadable(
    store: DynamoStore, writes: DesiredWrites, stored: dict[str, Any], problem: str
) -> None:
    put(writes, "gs-good")
    raw_put(raw_item("alpha", "gs-bad", stored))

    servers = {s.gameserver_id: s for s in store.read_servers("alpha").servers}

    assert set(servers) == {"gs-bad", "gs-good"}, "an unreadable config never hides its record"
    assert servers["gs-good"].unreadable is None
    bad = servers["gs-bad"]
    assert bad.unreadable is not None
    assert problem in bad.unreadable
    assert bad.config is None
    assert (bad.generation, bad.username, bad.updated_at) == (3, "steve", "2026-03-01T12:00:00Z")
    assert store.get_server("alpha", "gs-bad") == bad


def test_a_stored_config_with_numbers_as_strings_is_read(store: DynamoStore) -> None:
    """A writer that stores every value as a string (player_count "8") still yields a valid config."""
    raw_put(raw_item("alpha", "gs-1", {"M": {"difficulty": {"S": "easy"}, "player_count": {"S": "8"}}}))

    server = store.get_server("alpha", "gs-1")

    assert server is not None
    assert server.unreadable is None
    assert server.config == config(difficulty="easy", player_count=8)


def test_putting_a_valid_config_over_an_invalid_one_repairs_it(store: DynamoStore, writes: DesiredWrites) -> None:
    raw_put(raw_item("alpha", "gs-1", {"M": {"difficulty": {"S": "extreme"}}}))

    repaired = writes.put_server(ALPHA, "gs-1", "steve", {}, trail=TRAIL)

    assert (repaired.changed, repaired.server.generation, repaired.server.unreadable) == (True, 4, None)
    stored = store.get_server("alpha", "gs-1")
    assert stored is not None
    assert stored.unreadable is None


def test_an_undecodable_tenant_item_is_listed_marked_unreadable_not_fatal_to_the_listing(
    store: DynamoStore,
) -> None:
    import boto3

    from models.tables import TenantModel
    from reconciler.errors import UnreadableItemError

    store.put_tenant(Tenant("charlie", "555555555555", ("us-east-1",), "arn:aws:iam::555555555555:role/R", "ext"), T0)
    boto3.client("dynamodb").put_item(
        TableName=TenantModel.Meta.table_name,
        Item={"tenant_id": {"S": "bravo"}, "account_id": {"S": "222222222222"}, "regions": {"S": "us-east-1"}},
    )

    listed = {t.tenant_id: t for t in store.list_tenants()}
    assert sorted(listed) == ["alpha", "bravo", "charlie"], "account claims are no tenants; bad items are listed"
    assert listed["bravo"].unreadable is not None and "tenant bravo cannot be read" in listed["bravo"].unreadable
    assert listed["alpha"].unreadable is None and listed["charlie"].unreadable is None
    with pytest.raises(UnreadableItemError, match="tenant bravo cannot be read"):
        store.get_tenant("bravo")


@pytest.mark.parametrize(
    "damage",
    [
        {"generation": {"S": "three"}},
        {"status": {"M": {"phase": {"S": "Bogus"}}}},
        {"status": {"S": "Ready"}},
    ],
    ids=["generation-a-string", "unknown-phase", "status-not-a-map"],
)
def test_an_unreadable_record_stands_in_as_a_failed_one_beside_the_others(
    store: DynamoStore, writes: DesiredWrites, damage: dict[str, Any]
) -> None:
    put(writes, "gs-1")
    put(writes, "gs-3")
    raw_put({**raw_item("alpha", "gs-2", {"M": {"seed": {"S": "abc"}}}), **damage})

    records = store.read_servers("alpha").servers

    assert [r.gameserver_id for r in records] == ["gs-1", "gs-2", "gs-3"]
    bad = records[1]
    assert bad.unreadable is not None and "cannot be read" in bad.unreadable
    assert bad.generation == 0
    assert records[0].unreadable is None and records[2].unreadable is None
    page = store.page_servers("alpha", limit=2)
    assert ([r.gameserver_id for r in page.servers], page.after) == (["gs-1", "gs-2"], "gs-2")
    assert store.get_server("alpha", "gs-2") == bad
    assert store.write_status(bad, ServerStatus(phase=Phase.FAILED)) is False


def test_one_rate_bucket_holds_across_concurrent_writers_on_dynamodb(store: DynamoStore) -> None:
    """Ten writers (as ten API instances would) take from a bucket of five: exactly five get a token."""
    waits: list[float] = [0.0] * 10

    def take(index: int) -> None:
        waits[index] = DynamoStore().take_token("player#alpha#sub-ana", rate_per_s=0.1, burst=5, at=T0)

    outcomes = race(10, take)

    assert outcomes == [None] * 10
    assert sorted(w == 0.0 for w in waits).count(True) == 5
    assert all(9.9 <= w <= 10.0 for w in waits if w)  # one token every 10 s
    assert store.take_token("player#alpha#sub-ana", rate_per_s=0.1, burst=5, at=later(10)) == 0.0
    assert [t.tenant_id for t in store.list_tenants()] == ["alpha"]
