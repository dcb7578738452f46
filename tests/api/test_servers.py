"""The player routes: create, replace, change, read, list, delete and history of one's own game servers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from reconciler.reasons import player_reason
from tests.api.conftest import ALICE, BOB, ON_BOTH_STORES, ROOT, ApiClient, Caller, put_config
from tests.api.test_concurrency import etag_for

if TYPE_CHECKING:
    from reconciler.fakes.world import FakeWorld


@ON_BOTH_STORES
def test_put_creates_with_201_etag_and_location(api: ApiClient) -> None:
    response = api.put("/servers/alpha-1", put_config(difficulty="hard", player_count=8))
    assert response.status == 201
    assert response.etag == etag_for(response.json(), 1)
    assert response.header("Location") == "/servers/alpha-1"
    body = response.json()
    assert body["config"] == {"difficulty": "hard", "player_count": 8, "seed": "abc"}
    assert body["generation"] == 1
    assert body["username"] == "alice"
    assert body["tenant_id"] == "acme"
    assert body["region"] == "us-east-1"  # the tenant's primary region
    assert body["status"]["phase"] == "Pending"
    assert "drift" not in body["status"]  # only there when the last pass found one


def test_put_fills_config_defaults(api: ApiClient) -> None:
    body = api.put("/servers/alpha-1", {"config": {}}).json()
    assert body["config"] == {"difficulty": "normal", "player_count": 4, "seed": "default"}


def test_repeated_identical_put_changes_nothing(api: ApiClient) -> None:
    first = api.put("/servers/alpha-1", put_config())
    again = api.put("/servers/alpha-1", put_config())
    assert again.status == 200
    assert again.etag == first.etag == etag_for(first.json(), 1)
    assert again.json()["updated_at"] == first.json()["updated_at"]
    history = api.get("/servers/alpha-1/history").json()["items"]
    assert len(history) == 1  # the no-op wrote nothing


def test_put_with_a_new_config_replaces_and_bumps_the_generation(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config(player_count=10, seed="one"))
    response = api.put("/servers/alpha-1", {"config": {"difficulty": "hard"}})
    assert response.status == 200
    assert response.etag == etag_for(response.json(), 2)
    # replace, not merge: keys left out go back to their defaults
    assert response.json()["config"] == {"difficulty": "hard", "player_count": 4, "seed": "default"}


def test_put_in_another_of_the_tenants_regions(api: ApiClient) -> None:
    response = api.put("/servers/alpha-1", {**put_config(), "region": "eu-west-1"})
    assert response.status == 201
    assert response.json()["region"] == "eu-west-1"
    refused = api.put("/servers/alpha-2", {**put_config(), "region": "ap-south-1"})
    assert refused.status == 422
    assert refused.json()["details"][0] == {
        "field": "region",
        "location": "body",
        "rule": "tenant_region",
        "message": "region 'ap-south-1' is not one of the tenant's regions (us-east-1, eu-west-1)",
    }


@ON_BOTH_STORES
def test_patch_changes_only_the_given_keys(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config(difficulty="hard", player_count=10, seed="keep"))
    response = api.patch("/servers/alpha-1", {"config": {"player_count": 12}})
    assert response.status == 200
    assert response.etag == etag_for(response.json(), 2)
    assert response.json()["config"] == {"difficulty": "hard", "player_count": 12, "seed": "keep"}


def test_patch_the_region_keeps_the_config(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config(seed="keep"))
    body = api.patch("/servers/alpha-1", {"region": "eu-west-1"}).json()
    assert body["region"] == "eu-west-1"
    assert body["config"]["seed"] == "keep"
    # a later config change keeps the region
    assert api.patch("/servers/alpha-1", {"config": {"seed": "new"}}).json()["region"] == "eu-west-1"


def test_a_server_stays_in_its_region_when_the_tenants_regions_are_reordered(api: ApiClient) -> None:
    """A new server is placed in the primary region of the day and recorded there: reordering the tenant's
    regions must not move (delete and recreate) it, and a replace without a region does not move it either."""
    assert api.put("/servers/alpha-1", put_config()).json()["region"] == "us-east-1"
    api.put("/servers/alpha-2", {**put_config(), "region": "eu-west-1"})
    assert api.patch("/tenants/acme", {"regions": ["eu-west-1", "us-east-1"]}, ROOT).status == 200

    assert api.get("/servers/alpha-1").json()["region"] == "us-east-1"
    assert api.put("/servers/alpha-2", put_config(seed="new")).json()["region"] == "eu-west-1"
    assert api.put("/servers/alpha-3", put_config()).json()["region"] == "eu-west-1"  # today's primary


def test_a_region_with_servers_in_it_cannot_be_dropped(api: ApiClient) -> None:
    api.put("/servers/alpha-1", {**put_config(), "region": "eu-west-1"})

    refused = api.patch("/tenants/acme", {"regions": ["us-east-1"]}, ROOT)
    assert refused.status == 409
    assert refused.json()["details"][0]["rule"] == "region_in_use"
    assert "alpha-1" in refused.json()["message"]
    assert api.get("/tenants/acme", ROOT).json()["regions"] == ["us-east-1", "eu-west-1"]

    api.patch("/servers/alpha-1", {"region": "us-east-1"})
    assert api.patch("/tenants/acme", {"regions": ["us-east-1"]}, ROOT).status == 200


def test_patch_with_the_current_values_changes_nothing(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config(difficulty="hard"))
    response = api.patch("/servers/alpha-1", {"config": {"difficulty": "hard"}})
    assert response.status == 200
    assert response.etag == etag_for(response.json(), 1)


def test_patch_of_a_missing_server_is_404(api: ApiClient) -> None:
    assert api.patch("/servers/nope-1", {"config": {"seed": "x"}}).status == 404


def test_get_shows_desired_config_generation_and_status(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config())
    response = api.get("/servers/alpha-1")
    assert response.status == 200
    assert response.etag == etag_for(response.json(), 1)
    body = response.json()
    assert set(body) >= {"config", "generation", "status", "created_at", "updated_at", "deletion_requested"}
    assert set(body["status"]) >= {"phase", "observed_generation", "conditions"}


def test_get_shows_drift_and_last_error_when_the_reconciler_recorded_them(api: ApiClient) -> None:
    from dataclasses import replace

    from handlers.runtime import runtime
    from models.records import Condition, Phase

    api.put("/servers/alpha-1", put_config())
    store = runtime().store
    server = store.get_server("acme", "alpha-1")
    assert server is not None
    status = replace(
        server.status,
        phase=Phase.UPDATING,
        stack_id="arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-acme-alpha-1/1",
        stack_status="UPDATE_IN_PROGRESS",
        drift="Seed: 'abc' -> 'changed-by-hand'",
        last_error="Throttling: Rate exceeded",
        conditions=(Condition("Synced", False, "Drifted", "the stack was changed outside stackherd"),),
    )
    store.write_status(server, status)
    # The admin: as recorded.
    body = api.get("/tenants/acme/servers", ROOT).json()["items"][0]["status"]
    assert body["phase"] == "Updating"
    assert body["drift"] == "Seed: 'abc' -> 'changed-by-hand'"
    assert body["last_error"] == "Throttling: Rate exceeded"
    assert body["stack_status"] == "UPDATE_IN_PROGRESS"
    assert body["stack_id"].endswith("stackherd-acme-alpha-1/1")
    assert body["conditions"] == [
        {"type": "Synced", "status": False, "reason": "Drifted", "message": "the stack was changed outside stackherd"}
    ]
    # The player: the drift of their own config, and the player reasons of the table.
    body = api.get("/servers/alpha-1").json()["status"]
    assert body["phase"] == "Updating"
    assert body["drift"] == "Seed: 'abc' -> 'changed-by-hand'"
    assert body["last_error"] == player_reason("Throttling").message
    assert body["stack_status"] == "UPDATE_IN_PROGRESS"
    assert "stack_id" not in body
    assert body["conditions"] == [
        {"type": "Synced", "status": False, "reason": "Drifted", "message": player_reason("Drifted").message}
    ]


@ON_BOTH_STORES
def test_delete_is_202_and_the_record_shows_deleting(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config())
    response = api.delete("/servers/alpha-1")
    assert response.status == 202
    assert response.etag == etag_for(response.json(), 2)
    assert response.json()["status"]["phase"] == "Deleting"
    assert response.json()["deletion_requested"] is True
    read = api.get("/servers/alpha-1").json()
    assert read["status"]["phase"] == "Deleting"
    # asking again is harmless
    again = api.delete("/servers/alpha-1")
    assert again.status == 202
    assert again.etag == etag_for(again.json(), 2)


def test_a_server_being_deleted_cannot_be_changed(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config())
    api.delete("/servers/alpha-1")
    for response in (
        api.put("/servers/alpha-1", put_config()),
        api.patch("/servers/alpha-1", {"config": {"seed": "x"}}),
    ):
        assert response.status == 409
        assert response.json()["details"][0]["rule"] == "deleting"


def test_delete_of_a_missing_server_is_404(api: ApiClient) -> None:
    assert api.delete("/servers/nope-1").status == 404


@ON_BOTH_STORES
def test_list_pages_through_only_my_servers(api: ApiClient) -> None:
    mine = [f"a-{i}" for i in range(7)]
    for index, server_id in enumerate(mine):
        api.put(f"/servers/{server_id}", put_config())
        api.put(f"/servers/b-{index}", put_config(), BOB)  # interleaved in the same partition
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = {"limit": "3", **({"next_token": token} if token else {})}
        body = api.get("/servers", query=query).json()
        pages += 1
        assert len(body["items"]) <= 3
        seen += [item["gameserver_id"] for item in body["items"]]
        token = body.get("next_token")
        if token is None:
            break
    assert seen == sorted(mine)
    assert pages == 3  # 3 + 3 + 1: no empty trailing page


def test_list_of_a_player_with_no_servers_is_empty(api: ApiClient) -> None:
    assert api.get("/servers").json() == {"items": []}


def test_a_next_token_cannot_be_forged_or_reused_across_listings(api: ApiClient) -> None:
    for server_id in ("a-1", "a-2", "a-3"):
        api.put(f"/servers/{server_id}", put_config())
    api.request("POST", "/tenants/acme/reconcile", ROOT)  # writes history lines
    servers_token = api.get("/servers", query={"limit": "1"}).json()["next_token"]
    for token in ("garbage", "e30", "eyJrIjoic2VydmVycyIsInAiOiIuLi8ifQ", servers_token + "x" * 3):
        response = api.get("/servers", query={"next_token": token})
        assert response.status == 400, token
        assert response.json()["details"][0]["field"] == "next_token"
    # a server-list token is not a history token
    assert api.get("/servers/a-1/history", query={"next_token": servers_token}).status == 400


@ON_BOTH_STORES
def test_history_is_newest_first_and_paginated(api: ApiClient) -> None:
    api.put("/servers/alpha-1", put_config(seed="one"))
    for seed in ("two", "three", "four", "five"):
        api.patch("/servers/alpha-1", {"config": {"seed": seed}})
    api.delete("/servers/alpha-1")
    first = api.get("/servers/alpha-1/history", query={"limit": "4"}).json()
    second = api.get("/servers/alpha-1/history", query={"limit": "4", "next_token": first["next_token"]}).json()
    assert "next_token" not in second
    items = first["items"] + second["items"]
    assert [i["generation"] for i in items] == [6, 5, 4, 3, 2, 1]
    assert items[0]["message"] == "deletion requested"
    assert items[-1]["message"].startswith("created: ")
    assert all(i["actor"] == "alice" and i["kind"] == "desired" for i in items)
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)


@ON_BOTH_STORES
def test_admin_sees_a_tenants_servers_paginated(api: ApiClient) -> None:
    for index in range(3):
        api.put(f"/servers/a-{index}", put_config())
        api.put(f"/servers/b-{index}", put_config(), BOB)
    first = api.get("/tenants/acme/servers", ROOT, query={"limit": "4"}).json()
    rest = api.get("/tenants/acme/servers", ROOT, query={"limit": "4", "next_token": first["next_token"]}).json()
    ids = [s["gameserver_id"] for s in first["items"] + rest["items"]]
    assert ids == ["a-0", "a-1", "a-2", "b-0", "b-1", "b-2"]
    assert {s["username"] for s in first["items"] + rest["items"]} == {"alice", "bob"}


def _publish(version: str) -> None:
    from handlers.runtime import runtime
    from reconciler.fakes.templates import StaticTemplateCatalog
    from tests.conftest import gameserver_template

    templates = runtime().templates
    if isinstance(templates, StaticTemplateCatalog):
        templates.add(version)
    else:
        templates.publish(gameserver_template().encode(), version)


@ON_BOTH_STORES
def test_admin_tenant_routes(api: ApiClient) -> None:
    created = api.post(
        "/tenants", {"tenant_id": "initech", "account_id": "333333333333", "regions": ["eu-west-1"], "tier": "free"}
    )
    assert created.status == 201
    body = created.json()
    assert body["role_arn"] == "arn:aws:iam::333333333333:role/StackherdExecution"
    assert len(body["external_id"]) >= 16  # generated: the secret its role's trust policy must require
    assert body["limits"] == {"max_servers": 3, "max_player_count": 8}
    assert created.header("Location") == "/tenants/initech"

    again = api.post("/tenants", {"tenant_id": "initech", "account_id": "333333333333"})
    assert again.status == 409
    sharing = api.post("/tenants", {"tenant_id": "initech-2", "account_id": "333333333333"})
    assert sharing.status == 409
    assert sharing.json()["details"][0]["rule"] == "account_taken"
    assert "already tenant 'initech''s" in sharing.json()["message"]
    assert api.get("/tenants/initech-2", ROOT).status == 404
    assert api.get("/tenants/initech", ROOT).json()["regions"] == ["eu-west-1"]  # unchanged by the refused POST

    _publish("v2")  # a tenant is only pinned to a published version
    patched = api.patch("/tenants/initech", {"tier": "premium", "paused": True, "template_version": "v2"}, ROOT)
    assert patched.status == 200
    assert {k: patched.json()[k] for k in ("tier", "paused", "template_version")} == {
        "tier": "premium",
        "paused": True,
        "template_version": "v2",
    }
    assert patched.json()["limits"]["max_servers"] == 200
    assert api.patch("/tenants/nobody", {"paused": True}, ROOT).status == 404
    assert api.get("/tenants/nobody", ROOT).status == 404
    listed = [t["tenant_id"] for t in api.get("/tenants", ROOT).json()["items"]]
    assert listed == ["acme", "globex", "initech"]


def test_plan_is_a_dry_run_and_reconcile_acts(api: ApiClient, memory_world: FakeWorld) -> None:
    api.put("/servers/alpha-1", put_config())
    plan = api.get("/tenants/acme/plan", ROOT)
    assert plan.status == 200
    body = plan.json()
    assert body["dry_run"] is True
    assert [(a["kind"], a["gameserver_id"], a["outcome"]) for a in body["actions"]] == [
        ("create", "alpha-1", "planned")
    ]
    assert body["actions"][0]["parameters"] == {"Difficulty": "easy", "PlayerCount": "4", "Seed": "abc"}
    assert api.get("/servers/alpha-1").json()["status"]["phase"] == "Pending"  # the plan changed nothing

    done = api.post("/tenants/acme/reconcile").json()
    assert done["dry_run"] is False
    assert [(a["kind"], a["outcome"]) for a in done["actions"]] == [("create", "done")]
    assert done["requeued"] == 1  # the engine asked for another look once the create is under way
    assert memory_world.requeuer.sent == [("acme", "alpha-1", 30)]
    assert api.get("/tenants/acme/servers", ROOT).json()["items"][0]["status"]["stack_id"]
    assert "stack_id" not in api.get("/servers/alpha-1").json()["status"]  # an ARN, with the account id

    memory_world.cloud.settle_all()  # CloudFormation finishes creating the stack
    in_sync = api.get("/tenants/acme/plan", ROOT).json()
    assert in_sync["in_sync"] is True


def test_plan_and_reconcile_of_an_unknown_tenant_are_404(api: ApiClient) -> None:
    assert api.get("/tenants/nobody/plan", ROOT).status == 404
    assert api.post("/tenants/nobody/reconcile").status == 404


@pytest.mark.parametrize(
    ("fixture", "status"),
    [
        ("put_server", 201),
        ("get_server", 404),
        ("list_servers", 200),
        ("delete_server", 404),
        ("server_history", 404),
        ("patch_server", 404),
        ("list_tenants", 200),
        ("create_tenant", 201),
        ("get_tenant", 200),
        ("patch_tenant", 200),
        ("tenant_servers", 200),
        ("tenant_plan", 200),
        ("tenant_reconcile", 200),
        ("openapi", 200),
        ("docs", 200),
    ],
)
def test_recorded_events(api: ApiClient, fixture: str, status: int) -> None:
    """The events under tests/events/api/, exactly as API Gateway sends them, on an empty tenant."""
    from tests.api.conftest import load_event

    response = api.send(load_event(fixture))
    assert response.status == status, response.text


def test_recorded_events_in_sequence(api: ApiClient) -> None:
    from tests.api.conftest import load_event

    statuses: list[Any] = [
        api.send(load_event(name)).status
        for name in ("put_server", "get_server", "patch_server", "server_history", "delete_server", "get_server")
    ]
    assert statuses == [201, 200, 200, 200, 202, 200]
    # The recorded events' alice: servers belong to the token's sub, not to the user name.
    recorded = Caller("alice", load_event("get_server")["requestContext"]["authorizer"]["jwt"]["claims"])
    assert api.get("/servers/alpha-1", recorded).json()["config"]["player_count"] == 12
    assert api.get("/servers/alpha-1", ALICE).status == 404
