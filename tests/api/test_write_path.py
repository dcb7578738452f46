"""What the one write path means at the API: history per incarnation, one trail from a request to its stack
entries, and items that no longer validate shown as stored, never as defaults, never as a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ALICE, BOB, CAROL, ON_BOTH_STORES, ROOT, ApiClient, put_config


def _raw_put(table: str, item: dict[str, Any]) -> None:
    import boto3

    boto3.client("dynamodb").put_item(TableName=table, Item=item)


def _plant_server(gameserver_id: str, config: dict[str, Any], owner: str = "alice") -> None:
    """A record as another writer (a migration, the console) left it."""
    from models.tables import GameServerModel

    _raw_put(
        GameServerModel.Meta.table_name,
        {
            "tenant_id": {"S": "acme"},
            "gameserver_id": {"S": gameserver_id},
            "username": {"S": owner},
            "created_at": {"S": "2026-03-01T12:00:00Z"},
            "generation": {"N": "3"},
            "incarnation": {"S": "c" * 32},
            "config": {"M": {k: ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in config.items()}},
        },
    )


@ON_BOTH_STORES
def test_history_of_a_recreated_server_shows_none_of_its_predecessors_entries(api: ApiClient) -> None:
    """Alice deleted `arena`, Bob created `arena`: Bob's history showed Alice's entries (her seed too)."""
    from handlers.runtime import runtime

    api.put("/servers/arena", put_config(seed="alicesecret"), ALICE)
    api.delete("/servers/arena", ALICE)
    store = runtime().store
    record = store.get_server("acme", "arena")
    assert record is not None and store.finalize(record)

    assert api.put("/servers/arena", put_config(seed="bobs"), BOB).status == 201
    history = api.get("/servers/arena/history", BOB).json()["items"]

    assert [(e["kind"], e["actor"]) for e in history] == [("desired", "bob")]
    assert "alicesecret" not in str(history)


@ON_BOTH_STORES
def test_history_shows_the_request_id_of_each_write_and_its_door(api: ApiClient) -> None:
    created = api.put("/servers/alpha-1", put_config())
    changed = api.patch("/servers/alpha-1", {"config": {"seed": "new"}})

    history = api.get("/servers/alpha-1/history").json()["items"]

    request_ids = [r.event["requestContext"]["requestId"] for r in (changed, created)]
    assert [(e["generation"], e["door"], e["correlation_id"]) for e in history] == [
        (2, "api", request_ids[0]),
        (1, "api", request_ids[1]),
    ]


@pytest.mark.integration  # an item written around the models, straight into DynamoDB
def test_a_server_whose_config_no_longer_validates_is_shown_as_stored_and_a_patch_is_refused(api: ApiClient) -> None:
    """GET showed the defaults instead of what is stored, and `PATCH {"config": {"seed": "fixed"}}` wrote the
    defaults for the other keys: the next pass shrank the running server."""
    stored = {"difficulty": "hard", "player_count": 7, "seed": "has space"}
    _plant_server("alpha-1", stored)

    shown = api.get("/servers/alpha-1").json()
    assert "config" not in shown
    assert shown["stored_config"] == stored
    assert "config.seed" in shown["config_error"]

    refused = api.patch("/servers/alpha-1", {"config": {"seed": "fixed"}})
    assert refused.status == 409
    assert refused.json()["details"][0]["rule"] == "unreadable"
    assert "replace the whole config" in refused.json()["message"]
    assert api.get("/servers/alpha-1").json()["stored_config"] == stored

    replaced = api.put("/servers/alpha-1", {"config": {**stored, "seed": "fixed"}})
    assert replaced.status == 200
    assert replaced.json()["config"] == {**stored, "seed": "fixed"}
    assert "config_error" not in replaced.json()


@pytest.mark.integration  # items written around the models, straight into DynamoDB
def test_listings_survive_an_item_outside_todays_patterns(api: ApiClient) -> None:
    """A record with an id outside today's pattern, or a tenant with an unknown tier, made GET /servers,
    GET /tenants/{id}/servers and GET /tenants answer 500."""
    from models.tables import TenantModel

    api.put("/servers/alpha-1", put_config())
    _plant_server("Legacy_Server", {"difficulty": "easy"})
    _raw_put(
        TenantModel.Meta.table_name,
        {
            "tenant_id": {"S": "gold"},
            "account_id": {"S": "999999999999"},
            "regions": {"L": [{"S": "us-east-1"}]},
            "role_arn": {"S": "arn:aws:iam::999999999999:role/R"},
            "external_id": {"S": "ext"},
            "tier": {"S": "platinum"},
            "template_version": {"S": "v1"},
        },
    )

    mine = api.get("/servers")
    assert mine.status == 200
    assert {s["gameserver_id"]: "unreadable" in s for s in mine.json()["items"]} == {
        "Legacy_Server": True,
        "alpha-1": False,
    }
    assert api.get("/tenants/acme/servers", ROOT).status == 200
    tenants = api.get("/tenants", ROOT)
    assert tenants.status == 200
    gold = next(t for t in tenants.json()["items"] if t["tenant_id"] == "gold")
    assert gold["tier"] == "platinum" and "tier 'platinum'" in gold["unreadable"]


@pytest.mark.parametrize(
    ("stored", "why"),
    [({"regions": ()}, "has no regions"), ({"tier": "gold"}, "tier 'gold'")],
    ids=["no-regions", "unknown-tier"],
)
def test_a_write_in_a_tenant_that_cannot_be_read_is_a_409_saying_why(
    api: ApiClient, memory_world: Any, stored: dict[str, Any], why: str
) -> None:
    """A tenant item without regions made PUT /servers/{id} answer 500 (the primary region of no regions); one
    with an unknown tier answered 422 blaming a `tier` in the player's body."""
    from dataclasses import replace

    store = memory_world.store
    store.tenants["globex"] = replace(store.tenants["globex"], **stored)

    for response in (
        api.put("/servers/c-1", put_config(player_count=2), CAROL),
        api.patch("/servers/c-1", {"config": {"seed": "x"}}, CAROL),
    ):
        assert response.status == 409, response.text
        body = response.json()
        assert why in body["message"]
        assert body["details"][0]["rule"] == "tenant_unreadable"
        assert body["details"][0]["location"] == "tenant"
    assert store.get_server("globex", "c-1") is None


def test_a_region_named_twice_is_refused_at_registration_and_on_change(api: ApiClient) -> None:
    """`{"regions": ["us-east-1", "us-east-1"]}` was registered as given: every pass listed and planned the
    region twice."""
    twice = ["us-east-1", "us-east-1"]
    registered = api.post("/tenants", {"tenant_id": "initech", "account_id": "333333333333", "regions": twice})
    changed = api.patch("/tenants/acme", {"regions": ["eu-west-1", "us-east-1", "eu-west-1"]}, ROOT)

    for response in (registered, changed):
        assert response.status == 422, response.text
        assert "more than once" in response.json()["message"]
    assert api.get("/tenants/initech", ROOT).status == 404
    assert api.get("/tenants/acme", ROOT).json()["regions"] == ["us-east-1", "eu-west-1"]


def test_a_template_version_that_is_not_published_is_refused_at_registration_and_on_change(api: ApiClient) -> None:
    """`"template_version": "v9"` (never published) was accepted: every pass of the tenant then failed every
    server with TemplateNotFound."""
    registered = api.post("/tenants", {"tenant_id": "initech", "account_id": "333333333333", "template_version": "v9"})
    changed = api.patch("/tenants/acme", {"template_version": "v9"}, ROOT)

    for response in (registered, changed):
        assert response.status == 422, response.text
        detail = response.json()["details"][0]
        assert (detail["field"], detail["rule"]) == ("template_version", "template_published")
        assert "stackherd templates publish" in detail["message"]
    assert api.get("/tenants/initech", ROOT).status == 404
    assert api.get("/tenants/acme", ROOT).json()["template_version"] == "v1"
