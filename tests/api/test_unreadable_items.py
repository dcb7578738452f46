"""An item written around stackherd (an id outside today's pattern, a tenant with a tier that does not exist)
never turns a listing into a 500: it is listed with its values as stored and says it is unreadable and why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.api.conftest import ALICE, ROOT, ApiClient, put_config

pytestmark = pytest.mark.integration  # items written around the models, straight into DynamoDB


def _write_server_around_the_api(gameserver_id: str, username: str = "alice") -> None:
    from models.config import GameServerConfig
    from models.tables import GameServerModel, config_to_map

    GameServerModel(
        "acme",
        gameserver_id,
        username=username,
        config=config_to_map(GameServerConfig(difficulty="easy", player_count=4, seed="abc")),
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-02T00:00:00Z",
        generation=3,
        deletion_requested=False,
        region="us-east-1",
    ).save()


def _write_tenant_around_the_api(tenant_id: str, tier: str) -> None:
    from handlers.runtime import runtime
    from models.tables import tenant_to_item

    acme = runtime().store.get_tenant("acme")
    tenant_to_item(replace(acme, tenant_id=tenant_id, account_id="333333333333", tier=tier)).save()


def _unreadable(view: dict[str, object]) -> str:
    conditions = {c["type"]: c for c in view["status"]["conditions"]}  # type: ignore[index]
    assert conditions["Readable"]["status"] is False
    assert conditions["Readable"]["reason"] == "Unreadable"
    assert conditions["Readable"]["message"] == view["unreadable"]
    return str(view["unreadable"])


def test_a_server_id_outside_the_pattern_does_not_break_listing_servers(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config())
    _write_server_around_the_api("Legacy_1")

    listed = api.get("/servers", ALICE)
    assert listed.status == 200, listed.text
    items = {item["gameserver_id"]: item for item in listed.json()["items"]}
    assert set(items) == {"Legacy_1", "alpha-1"}
    legacy = items["Legacy_1"]
    assert (legacy["generation"], legacy["username"], legacy["config"]["seed"]) == (3, "alice", "abc")
    assert "gameserver_id 'Legacy_1'" in _unreadable(legacy)
    assert "unreadable" not in items["alpha-1"]
    assert "Readable" not in {c["type"] for c in items["alpha-1"]["status"]["conditions"]}


def test_a_server_id_outside_the_pattern_does_not_break_the_admin_listing_or_its_pages(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config())
    _write_server_around_the_api("Legacy_1", username="bob")

    listed = api.get("/tenants/acme/servers", ROOT)
    assert listed.status == 200, listed.text
    assert [item["gameserver_id"] for item in listed.json()["items"]] == ["Legacy_1", "alpha-1"]

    first = api.get("/tenants/acme/servers", ROOT, query={"limit": "1"})
    assert [item["gameserver_id"] for item in first.json()["items"]] == ["Legacy_1"]
    second = api.get("/tenants/acme/servers", ROOT, query={"limit": "1", "next_token": first.json()["next_token"]})
    assert second.status == 200, second.text
    assert [item["gameserver_id"] for item in second.json()["items"]] == ["alpha-1"]


def test_a_tenant_with_an_unknown_tier_does_not_break_listing_tenants(api: ApiClient) -> None:
    _write_tenant_around_the_api("initech", tier="gold")

    listed = api.get("/tenants", ROOT)
    assert listed.status == 200, listed.text
    tenants = {t["tenant_id"]: t for t in listed.json()["items"]}
    assert set(tenants) == {"acme", "globex", "initech"}
    initech = tenants["initech"]
    assert initech["tier"] == "gold"
    assert "limits" not in initech
    assert "tier 'gold'" in initech["unreadable"]
    assert "unreadable" not in tenants["acme"]
    assert tenants["acme"]["limits"] == {"max_servers": 25, "max_player_count": 32}

    single = api.get("/tenants/initech", ROOT)
    assert single.status == 200, single.text
    assert single.json() == initech


def test_a_stored_config_that_no_longer_validates_is_shown_as_unreadable(api: ApiClient) -> None:
    from models.tables import GameServerModel

    api.put("/servers/alpha-1", put_config())
    item = GameServerModel.get("acme", "alpha-1")
    item.config = {"difficulty": "easy", "player_count": 4, "seed": "a b"}  # type: ignore[assignment]
    item.updated_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    item.save()

    for response in (api.get("/servers/alpha-1"), api.get("/servers")):
        assert response.status == 200, response.text
    view = api.get("/servers/alpha-1").json()
    assert "config.seed" in _unreadable(view)
    assert api.get("/servers").json()["items"][0]["unreadable"] == view["unreadable"]


def test_a_server_item_that_cannot_be_read_at_all_is_listed_as_unreadable(api: ApiClient) -> None:
    import boto3

    from models.tables import GameServerModel

    api.put("/servers/alpha-1", put_config())
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=GameServerModel.Meta.table_name,
        Item={
            "tenant_id": {"S": "acme"},
            "gameserver_id": {"S": "bravo-1"},
            "username": {"S": "alice"},
            "created_at": {"S": "2026-01-01T00:00:00Z"},
            "generation": {"N": "2"},
            "status": {"M": {"phase": {"S": "Exploded"}}},
        },
    )

    listed = api.get("/servers")
    assert listed.status == 200, listed.text
    items = {item["gameserver_id"]: item for item in listed.json()["items"]}
    assert set(items) == {"alpha-1", "bravo-1"}
    assert "cannot be read" in _unreadable(items["bravo-1"])
    assert "unreadable" not in items["alpha-1"]
    assert api.get("/tenants/acme/servers", ROOT).status == 200


def test_a_reconciler_state_that_cannot_be_read_does_not_break_reading_the_tenant(api: ApiClient) -> None:
    from models.tables import TenantModel

    TenantModel("acme").update(actions=[TenantModel.reconciler_state.set({"deletion_brake": {"held": "garbage"}})])

    response = api.get("/tenants/acme", ROOT)

    assert response.status == 200, response.text
    tenant = response.json()
    assert (tenant["tenant_id"], tenant["tier"]) == ("acme", "standard")
    assert "reconciler state of tenant acme cannot be read" in tenant["unreadable"]
    assert "remove its reconciler_state attribute" in tenant["unreadable"]
    assert "deletion_brake" not in tenant
