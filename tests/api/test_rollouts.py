"""The admin `/rollouts` routes, on the in-memory store and on DynamoDB (moto): start, read, list, pause, resume,
abort and rollback, the stored rollout read back whole, and every refusal a 4xx that says what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ALICE, ON_BOTH_STORES, ApiClient
from tests.conftest import gameserver_template


def publish_v2() -> None:
    from handlers.runtime import runtime

    templates = runtime().templates
    if hasattr(templates, "publish"):
        templates.publish(gameserver_template().encode(), "v2")
    else:
        templates.add("v2")


def version_of(tenant_id: str) -> str:
    from handlers.runtime import runtime

    tenant = runtime().store.get_tenant(tenant_id)
    assert tenant is not None
    return tenant.template_version


def start(api: ApiClient, **body: Any) -> dict[str, Any]:
    response = api.post("/rollouts", {"version": "v2", **body})
    assert response.status == 201, response.text
    assert response.header("Location") == f"/rollouts/{response.json()['rollout_id']}"
    return response.json()  # type: ignore[no-any-return]


@ON_BOTH_STORES
def test_start_read_list_pause_resume_abort_and_rollback(api: ApiClient) -> None:
    publish_v2()
    rollout = start(api, canary=["globex"], wave_size=["1"], failure_tolerance="0", bake_seconds=60)
    rollout_id = rollout["rollout_id"]
    assert rollout["state"] == "InProgress" and rollout["wave"] == 1
    assert rollout["waves"] == [
        {"wave": 1, "canary": True, "tenants": [{"tenant_id": "globex", "outcome": "in-flight"}]},
        {"wave": 2, "canary": False, "tenants": [{"tenant_id": "acme", "outcome": "waiting"}]},
    ]
    assert version_of("globex") == "v2" and version_of("acme") == "v1"

    read = api.get(f"/rollouts/{rollout_id}", caller=api_admin())
    assert read.status == 200 and read.json() == {**rollout, "revision": read.json()["revision"]}
    listed = api.get("/rollouts", caller=api_admin()).json()["items"]
    assert [(r["rollout_id"], r["state"], r["tenants"]) for r in listed] == [(rollout_id, "InProgress", 2)]

    assert api.post(f"/rollouts/{rollout_id}/pause").json()["state"] == "Paused"
    # Resuming advances at once: the canary (no servers, so nothing to wait for) succeeded; the bake begins.
    resumed = api.post(f"/rollouts/{rollout_id}/resume").json()
    assert resumed["state"] == "Baking" and resumed["counts"]["succeeded"] == 1
    assert api.post(f"/rollouts/{rollout_id}/abort").json()["state"] == "Aborted"
    refused = api.post(f"/rollouts/{rollout_id}/resume")
    assert refused.status == 409 and "only a paused rollout can be resumed" in refused.json()["message"]
    back = api.post(f"/rollouts/{rollout_id}/rollback")
    assert back.status == 200 and back.json()["state"] == "RolledBack"
    assert version_of("globex") == "v1"
    # A second rollout of the same tenants may start once the first has ended.
    start(api, tenants=["acme"])


def api_admin() -> Any:
    from tests.api.conftest import ROOT

    return ROOT


@ON_BOTH_STORES
def test_an_overlapping_start_is_a_409_naming_the_active_rollout(api: ApiClient) -> None:
    publish_v2()
    first = start(api, tenants=["acme", "globex"], wave_size=["1"])
    response = api.post("/rollouts", {"version": "v2", "tenants": ["globex"]})
    assert response.status == 409
    assert f"rollout {first['rollout_id']} is still active on globex" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"version": "v9"}, 422, "template version 'v9' is not published"),
        ({"version": "v2", "tenants": ["ghost"]}, 404, "tenant 'ghost' not found"),
        ({"version": "v2", "tenants": []}, 422, "tenants"),
        ({"version": "v2", "wave_size": ["lots"]}, 422, "wave_size"),
        ({"version": "v2", "failure_tolerance": "150%"}, 422, "--failure-tolerance must be at most 100%"),
        ({"version": "v2", "bake_seconds": -1}, 422, "bake_seconds"),
        ({"version": "v2", "bake_seconds": "10"}, 422, "bake_seconds"),
        ({"version": "v2", "auto_rollback": "yes"}, 422, "auto_rollback"),
        ({"version": "v2", "canary": ["acme"], "tenants": ["globex"]}, 422, "canary tenant(s) acme"),
        ({"version": "v2", "surprise": 1}, 422, "surprise"),
        ({"version": "v2", "tenants": None}, 422, "may not be null"),
        ({}, 422, "version"),
    ],
)
def test_bad_starts_are_refused_with_what_is_wrong(
    api: ApiClient, body: dict[str, Any], status: int, text: str
) -> None:
    publish_v2()
    response = api.post("/rollouts", body)
    assert response.status == status, response.text
    assert text in response.text


def test_rollouts_are_for_admins_only(api: ApiClient) -> None:
    assert api.get("/rollouts", caller=ALICE).status == 403
    assert api.post("/rollouts", {"version": "v2"}, caller=ALICE).status == 403


@pytest.mark.parametrize("path", ["/rollouts/ro-missing", "/rollouts/ro-missing/pause"])
def test_an_unknown_rollout_is_a_404(api: ApiClient, path: str) -> None:
    response = api.post(path) if path.endswith("pause") else api.get(path, caller=api_admin())
    assert response.status == 404 and "rollout 'ro-missing' not found" in response.json()["message"]


def test_a_bad_rollout_id_is_a_422_and_an_unknown_action_a_405_or_404(api: ApiClient) -> None:
    assert api.get("/rollouts/NOT_AN_ID", caller=api_admin()).status == 422
    assert api.request("DELETE", "/rollouts/ro-1", api_admin()).status == 405
    assert api.post("/rollouts/ro-1/explode").status == 404


@ON_BOTH_STORES
def test_rollout_items_are_not_tenants_and_saves_are_conditional_on_the_revision(api: ApiClient) -> None:
    from dataclasses import replace

    from handlers.runtime import runtime

    publish_v2()
    started = start(api, wave_size=["1"])
    assert [t["tenant_id"] for t in api.get("/tenants", caller=api_admin()).json()["items"]] == ["acme", "globex"]
    store = runtime().store
    current = store.get_rollout(started["rollout_id"])
    assert current is not None and current.revision == started["revision"]
    first = store.save_rollout(replace(current, reason="first"))
    assert first is not None and first.revision == current.revision + 1
    assert store.save_rollout(replace(current, reason="second")) is None  # the same revision, already moved on
    assert store.get_rollout(current.rollout_id) == first
    # A start that read the index before another start wrote it is refused by the store, not only by the check.
    revision, active = store.active_rollouts()
    assert [r.rollout_id for r in active] == [current.rollout_id]
    other = replace(current, rollout_id="ro-other", revision=0)
    assert store.create_rollout(other, revision - 1) is None
    assert store.create_rollout(other, revision) is not None
    # An ended rollout leaves the index.
    ended = store.save_rollout(replace(first, state=first.state.__class__("Aborted")))
    assert ended is not None
    assert [r.rollout_id for r in store.active_rollouts()[1]] == ["ro-other"]
