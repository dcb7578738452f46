"""`DynamoStore` and the PynamoDB models, round-tripped through DynamoDB on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.config import GameServerConfig
from models.records import Condition, Phase, ServerStatus, Tenant
from reconciler.adapters.dynamo import DynamoStore
from reconciler.writes import ConflictError, NotFoundError, PreconditionFailedError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("dynamo_tables")]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store() -> DynamoStore:
    return DynamoStore()


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


# --- tenants --------------------------------------------------------------------------------------


def test_tenants_round_trip_and_quarantine(store: DynamoStore) -> None:
    tenant = Tenant(
        tenant_id="alpha",
        account_id="111111111111",
        regions=("us-east-1", "eu-west-1"),
        role_arn="arn:aws:iam::111111111111:role/StackherdExecution",
        external_id="ext-alpha",
        tier="premium",
        template_version="v2",
    )
    store.put_tenant(tenant, T0)

    assert store.get_tenant("alpha") == tenant
    assert store.get_tenant("nobody") is None
    assert store.list_tenants() == [tenant]

    store.set_quarantine("alpha", "access denied", later(1))
    quarantined = store.get_tenant("alpha")
    assert quarantined is not None
    assert (quarantined.quarantined, quarantined.quarantined_at) == ("access denied", "2026-03-01T12:00:01Z")

    store.set_quarantine("alpha", None, later(2))
    assert store.get_tenant("alpha") == tenant

    store.set_quarantine("nobody", "reason", later(3))  # a missing tenant is not created by a quarantine
    assert store.get_tenant("nobody") is None


# --- desired writes -------------------------------------------------------------------------------


def test_put_server_creates_at_generation_one_and_reads_back(store: DynamoStore) -> None:
    result = store.put_server("alpha", "gs-1", "steve", config(difficulty="hard", player_count=12, seed="abc"), T0)

    assert (result.created, result.changed, result.server.generation) == (True, True, 1)
    stored = store.get_server("alpha", "gs-1")
    assert stored is not None
    assert stored == result.server
    assert stored.config == config(difficulty="hard", player_count=12, seed="abc")
    assert stored.config_error is None
    assert (stored.created_at, stored.updated_at) == ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z")
    assert stored.status == ServerStatus()


def test_an_identical_put_changes_nothing(store: DynamoStore) -> None:
    store.put_server("alpha", "gs-1", "steve", config(seed="abc"), T0)

    again = store.put_server("alpha", "gs-1", "steve", config(seed="abc"), later(60))

    assert (again.created, again.changed, again.server.generation) == (False, False, 1)
    stored = store.get_server("alpha", "gs-1")
    assert stored is not None
    assert (stored.generation, stored.updated_at) == (1, "2026-03-01T12:00:00Z")


def test_a_real_change_bumps_generation_once(store: DynamoStore) -> None:
    store.put_server("alpha", "gs-1", "steve", config(seed="abc"), T0)

    changed = store.put_server("alpha", "gs-1", "steve", config(seed="xyz"), later(60))

    assert (changed.created, changed.changed, changed.server.generation) == (False, True, 2)
    assert changed.server.config.seed == "xyz"
    stored = store.get_server("alpha", "gs-1")
    assert stored is not None
    assert (stored.generation, stored.updated_at, stored.created_at) == (
        2,
        "2026-03-01T12:01:00Z",
        "2026-03-01T12:00:00Z",
    )
    region_change = store.put_server("alpha", "gs-1", "steve", config(seed="xyz"), later(120), region="eu-west-1")
    assert (region_change.changed, region_change.server.generation, region_change.server.region) == (
        True,
        3,
        "eu-west-1",
    )


def test_expected_generation_must_match(store: DynamoStore) -> None:
    store.put_server("alpha", "gs-1", "steve", config(seed="abc"), T0)

    with pytest.raises(PreconditionFailedError) as stale:
        store.put_server("alpha", "gs-1", "steve", config(seed="new"), later(1), expected_generation=7)
    assert stale.value.current == 1
    with pytest.raises(PreconditionFailedError):
        store.put_server("alpha", "gs-missing", "steve", config(), later(1), expected_generation=1)

    ok = store.put_server("alpha", "gs-1", "steve", config(seed="new"), later(2), expected_generation=1)
    assert ok.server.generation == 2


class _StaleFirstRead(DynamoStore):
    """Its first read returns the record as it was before another writer's change: a lost race."""

    def __init__(self, stale: Any) -> None:
        super().__init__()
        self.stale = stale

    def get_server(self, tenant_id: str, gameserver_id: str) -> Any:
        if self.stale is not None:
            stale, self.stale = self.stale, None
            return stale
        return super().get_server(tenant_id, gameserver_id)


@pytest.mark.parametrize("write", ["put", "delete"])
def test_losing_a_race_reports_the_current_generation(store: DynamoStore, write: str) -> None:
    stale = store.put_server("alpha", "gs-1", "steve", config(seed="abc"), T0).server
    store.put_server("alpha", "gs-1", "steve", config(seed="other"), later(1))  # the other writer
    racing = _StaleFirstRead(stale)
    attempt = {
        "put": lambda: racing.put_server("alpha", "gs-1", "steve", config(seed="mine"), later(2)),
        "delete": lambda: racing.request_deletion("alpha", "gs-1", later(2)),
    }[write]

    with pytest.raises(PreconditionFailedError) as lost:
        attempt()

    assert lost.value.current == 2
    assert "does not exist" not in str(lost.value)
    stored = store.get_server("alpha", "gs-1")
    assert stored is not None
    assert (stored.generation, stored.config.seed, stored.deletion_requested) == (2, "other", False)


def test_another_players_server_cannot_be_overwritten(store: DynamoStore) -> None:
    store.put_server("alpha", "gs-1", "steve", config(seed="abc"), T0)

    with pytest.raises(ConflictError):
        store.put_server("alpha", "gs-1", "alex", config(seed="abc"), later(1))


# --- status writes --------------------------------------------------------------------------------


def test_write_status_touches_neither_generation_nor_config(store: DynamoStore) -> None:
    server = store.put_server("alpha", "gs-1", "steve", config(seed="abc"), T0).server
    status = ServerStatus(
        phase=Phase.READY,
        observed_generation=1,
        conditions=(Condition("Ready", True, "Available", "stack matches", "2026-03-01T12:00:05Z"),),
        stack_id="arn:aws:cloudformation:us-east-1:111111111111:stack/x/1",
        stack_status="CREATE_COMPLETE",
    )

    assert store.write_status(server, status) is True

    stored = store.get_server("alpha", "gs-1")
    assert stored is not None
    assert stored.status == status
    assert (stored.generation, stored.config, stored.updated_at) == (1, server.config, server.updated_at)
    assert store.put_server("alpha", "gs-1", "steve", config(seed="abc"), later(5)).changed is False


def test_write_status_of_a_missing_record_returns_false_and_creates_nothing(store: DynamoStore) -> None:
    server = store.put_server("alpha", "gs-1", "steve", config(), T0).server
    gone = server.__class__(**{**server.__dict__, "gameserver_id": "gs-gone"})

    assert store.write_status(gone, ServerStatus(phase=Phase.READY)) is False
    assert store.get_server("alpha", "gs-gone") is None


@pytest.mark.parametrize("kind", ["dynamo", "memory"])
def test_write_status_about_an_older_generation_is_refused(kind: str) -> None:
    """A pass that planned generation 1 must not overwrite a record a player has since moved to generation 2:
    the check and the write are one conditional update, in both stores."""
    from reconciler.fakes.memory import MemoryStore

    store: DynamoStore | MemoryStore = DynamoStore() if kind == "dynamo" else MemoryStore()
    planned = store.put_server("alpha", "gs-1", "steve", config(seed="one"), T0).server
    newer = store.put_server("alpha", "gs-1", "steve", config(seed="two"), later(1)).server
    assert store.write_status(newer, ServerStatus(phase=Phase.UPDATING, observed_generation=2)) is True

    assert store.write_status(planned, ServerStatus(phase=Phase.READY, observed_generation=1)) is False

    stored = store.get_server("alpha", "gs-1")
    assert stored is not None
    assert (stored.generation, stored.status.phase, stored.status.observed_generation) == (2, Phase.UPDATING, 2)


# --- deletion -------------------------------------------------------------------------------------


def test_request_deletion_bumps_generation_and_finalize_is_conditional(store: DynamoStore) -> None:
    created = store.put_server("alpha", "gs-1", "steve", config(), T0).server

    assert store.finalize(created) is False, "no deletion requested yet"
    requested = store.request_deletion("alpha", "gs-1", later(1))
    assert (requested.changed, requested.server.generation, requested.server.deletion_requested) == (True, 2, True)
    assert requested.server.status.phase is Phase.DELETING
    assert store.request_deletion("alpha", "gs-1", later(2)).changed is False

    assert store.finalize(created) is False, "a stale generation never removes the record"
    assert store.get_server("alpha", "gs-1") is not None
    assert store.finalize(requested.server) is True
    assert store.get_server("alpha", "gs-1") is None
    assert store.finalize(requested.server) is False

    with pytest.raises(NotFoundError):
        store.request_deletion("alpha", "gs-1", later(3))


def test_request_deletion_honours_expected_generation(store: DynamoStore) -> None:
    store.put_server("alpha", "gs-1", "steve", config(), T0)

    with pytest.raises(PreconditionFailedError):
        store.request_deletion("alpha", "gs-1", later(1), expected_generation=5)
    assert store.request_deletion("alpha", "gs-1", later(1), expected_generation=1).changed is True


def test_a_put_after_a_deletion_request_revives_the_server(store: DynamoStore) -> None:
    store.put_server("alpha", "gs-1", "steve", config(), T0)
    requested = store.request_deletion("alpha", "gs-1", later(1)).server

    revived = store.put_server("alpha", "gs-1", "steve", config(), later(2))

    assert (revived.changed, revived.server.generation, revived.server.deletion_requested) == (True, 3, False)
    assert store.finalize(requested) is False


# --- reads ----------------------------------------------------------------------------------------


def test_read_servers_is_per_tenant_and_follows_pages(store: DynamoStore) -> None:
    big = "x" * 20_000  # ~25 items of this size fill DynamoDB's 1 MB query page; the read must follow it
    for i in range(60):
        store.put_server("alpha", f"gs-{i:02d}", big, config(seed=f"s{i}"), T0)
    store.put_server("bravo", "gs-00", "steve", config(), T0)

    read = store.read_servers("alpha")

    assert read.complete is True
    assert [s.gameserver_id for s in read.servers] == [f"gs-{i:02d}" for i in range(60)]
    assert [s.gameserver_id for s in store.read_servers("bravo").servers] == ["gs-00"]
    assert store.read_servers("nobody").servers == ()


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
def test_a_stored_invalid_config_yields_a_record_with_a_config_error(
    store: DynamoStore, stored: dict[str, Any], problem: str
) -> None:
    store.put_server("alpha", "gs-good", "steve", config(), T0)
    raw_put(raw_item("alpha", "gs-bad", stored))

    servers = {s.gameserver_id: s for s in store.read_servers("alpha").servers}

    assert set(servers) == {"gs-bad", "gs-good"}, "an unreadable config never hides its record"
    assert servers["gs-good"].config_error is None
    bad = servers["gs-bad"]
    assert bad.config_error is not None
    assert problem in bad.config_error
    assert (bad.generation, bad.username, bad.updated_at) == (3, "steve", "2026-03-01T12:00:00Z")
    assert store.get_server("alpha", "gs-bad") == bad


def test_a_stored_config_with_numbers_as_strings_is_read(store: DynamoStore) -> None:
    """A writer that stores every value as a string (player_count "8") still yields a valid config."""
    raw_put(raw_item("alpha", "gs-1", {"M": {"difficulty": {"S": "easy"}, "player_count": {"S": "8"}}}))

    server = store.get_server("alpha", "gs-1")

    assert server is not None
    assert server.config_error is None
    assert server.config == config(difficulty="easy", player_count=8)


def test_putting_a_valid_config_over_an_invalid_one_repairs_it(store: DynamoStore) -> None:
    raw_put(raw_item("alpha", "gs-1", {"M": {"difficulty": {"S": "extreme"}}}))

    repaired = store.put_server("alpha", "gs-1", "steve", GameServerConfig(), T0)

    assert (repaired.changed, repaired.server.generation, repaired.server.config_error) == (True, 4, None)
    stored = store.get_server("alpha", "gs-1")
    assert stored is not None
    assert stored.config_error is None


# --- activity -------------------------------------------------------------------------------------


def test_history_is_newest_first_and_pages(store: DynamoStore) -> None:
    for i in range(7):
        store.append_activity("alpha", "gs-1", "update", f"event {i}", i, later(i), actor="test")
    store.append_activity("alpha", "gs-2", "create", "other server", 1, later(100))

    first, cursor = store.history("alpha", "gs-1", limit=3)
    second, cursor2 = store.history("alpha", "gs-1", limit=3, cursor=cursor)
    third, cursor3 = store.history("alpha", "gs-1", limit=3, cursor=cursor2)

    assert [a.message for a in first] == ["event 6", "event 5", "event 4"]
    assert [a.message for a in second] == ["event 3", "event 2", "event 1"]
    assert [a.message for a in third] == ["event 0"]
    assert cursor is not None
    assert cursor2 is not None
    assert cursor3 is None
    assert (first[0].kind, first[0].generation, first[0].actor) == ("update", 6, "test")
    assert first[0].expires_at == later(6) + store.activity_ttl
    everything, _ = store.history("alpha", "gs-1")
    assert len(everything) == 7


# --- items written around the models ----------------------------------------------------------------


def test_an_unreadable_tenant_item_is_left_out_of_the_listing_not_fatal_to_it(store: DynamoStore) -> None:
    import boto3

    from models.tables import TenantModel
    from reconciler.errors import UnreadableItemError

    for tenant_id in ("alpha", "charlie"):
        store.put_tenant(
            Tenant(tenant_id, "111111111111", ("us-east-1",), "arn:aws:iam::111111111111:role/R", "ext"), T0
        )
    boto3.client("dynamodb").put_item(
        TableName=TenantModel.Meta.table_name,
        Item={"tenant_id": {"S": "bravo"}, "account_id": {"S": "222222222222"}, "regions": {"S": "us-east-1"}},
    )

    assert [t.tenant_id for t in store.list_tenants()] == ["alpha", "charlie"]
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
    store: DynamoStore, damage: dict[str, Any]
) -> None:
    store.put_server("alpha", "gs-1", "steve", config(), T0)
    store.put_server("alpha", "gs-3", "steve", config(), T0)
    raw_put({**raw_item("alpha", "gs-2", {"M": {"seed": {"S": "abc"}}}), **damage})

    records = store.read_servers("alpha").servers

    assert [r.gameserver_id for r in records] == ["gs-1", "gs-2", "gs-3"]
    bad = records[1]
    assert bad.config_error is not None and "cannot be read" in bad.config_error
    assert bad.generation == 0
    assert records[0].config_error is None and records[2].config_error is None
    page, after = store.page_servers("alpha", limit=2)
    assert ([r.gameserver_id for r in page], after) == (["gs-1", "gs-2"], "gs-2")
    assert store.get_server("alpha", "gs-2") == bad
    assert store.write_status(bad, ServerStatus(phase=Phase.FAILED)) is False


def test_orphan_budgets_round_trip_per_tenant_and_stay_out_of_the_servers_history(store: DynamoStore) -> None:
    from models.records import OrphanAttempts

    ghost = OrphanAttempts(
        "arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-alpha-ghost/1",
        "stackherd-alpha-ghost",
        "us-east-1",
        tries=2,
        next_retry_at="2026-03-01T12:10:00Z",
        cause="Bucket (AWS::S3::Bucket) DELETE_FAILED: not empty",
    )
    assert store.orphan_attempts("alpha") == {}

    store.save_orphan_attempts("alpha", {ghost.stack_id: ghost}, T0)

    assert store.orphan_attempts("alpha") == {ghost.stack_id: ghost}
    assert store.orphan_attempts("bravo") == {}
    assert store.history("alpha", "ghost")[0] == []
    store.save_orphan_attempts("alpha", {}, later(1))
    assert store.orphan_attempts("alpha") == {}


def test_the_failure_budget_fields_of_a_status_round_trip(store: DynamoStore) -> None:
    created = store.put_server("alpha", "arena", "ana", config(), T0).server
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
