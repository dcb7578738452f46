"""What players see is theirs: every failure class, driven through the API as a player with the fake cloud's
faults, shows a stable reason code and message, and nothing of the platform's accounts, roles or bucket
(no 12-digit account id, no ARN, no bucket name) in the server, the listing or the history. Admins still
read what was recorded."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from reconciler import errors
from reconciler.errors import ReconcileError
from reconciler.planner import ActionKind
from reconciler.reasons import HISTORY_MESSAGES, PLAYER_REASONS, player_reason, redact
from tests.api.conftest import ACME_ACCOUNT, ALICE, ROOT, TEMPLATE_BUCKET, ApiClient, put_config

if TYPE_CHECKING:
    from reconciler.fakes.world import FakeWorld

PLATFORM_ACCOUNT = "999988887777"
NAME = "stackherd-acme-alpha-1"
#: What AWS says on a refused AssumeRole, with a template URL thrown in: everything a player must not read.
LEAK = (
    f"User: arn:aws:sts::{PLATFORM_ACCOUNT}:assumed-role/stackherd-api-role/stackherd-session is not authorized "
    f"to perform: sts:AssumeRole on resource: arn:aws:iam::{ACME_ACCOUNT}:role/StackherdExecution "
    f"(template https://{TEMPLATE_BUCKET}.s3.us-east-1.amazonaws.com/gameserver/v1.yaml)"
)
#: Twelve digits standing alone (an incarnation's hex may hold twelve digits in a row by chance).
ACCOUNT_ID = re.compile(r"(?<![0-9A-Za-z])[0-9]{12}(?![0-9A-Za-z])")

#: Every error class the reconciler records on a failed server (the others are outcomes it plans for).
NOT_FAILURES = {"ReconcileError", "StackNotFoundError", "AlreadyExistsError", "NoUpdatesError"}
FAILURE_CLASSES: list[type[ReconcileError]] = [
    errors.TransientError,
    errors.ThrottledError,
    errors.CredentialsExpiredError,
    errors.StoreError,
    errors.PermanentError,
    errors.AccessDeniedError,
    errors.TemplateNotFoundError,
    errors.TemplateUnpinnedError,
    errors.TemplateIntegrityError,
    errors.TemplateVersionExistsError,
    errors.UnreadableItemError,
    errors.UnknownRegionError,
    errors.RegionUnavailableError,
]


def test_every_error_class_is_driven_through_the_api() -> None:
    defined = {
        name
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, ReconcileError) and cls.__module__ == errors.__name__
    }
    assert defined - NOT_FAILURES == {cls.__name__ for cls in FAILURE_CLASSES}


def _converged(api: ApiClient, world: FakeWorld) -> None:
    assert api.put("/servers/alpha-1", put_config()).status == 201
    api.post("/tenants/acme/reconcile")
    world.cloud.settle_all()
    api.post("/tenants/acme/reconcile")


def _reconcile(api: ApiClient, world: FakeWorld, passes: int = 2) -> None:
    for _ in range(passes):
        api.post("/tenants/acme/reconcile", query={"force": "true"})
        world.cloud.settle_all()


def _fault(cls: type[ReconcileError]) -> Callable[[], ReconcileError]:
    return lambda: cls(f"{cls.code}: {LEAK}", code=cls.code)


def _create_fails(cls: type[ReconcileError]) -> Callable[[ApiClient, FakeWorld], None]:
    def scenario(api: ApiClient, world: FakeWorld) -> None:
        world.cloud.fail_next(ACME_ACCOUNT, "create", _fault(cls), times=5)
        assert api.put("/servers/alpha-1", put_config()).status == 201
        _reconcile(api, world)

    return scenario


def _update_fails(cls: type[ReconcileError]) -> Callable[[ApiClient, FakeWorld], None]:
    def scenario(api: ApiClient, world: FakeWorld) -> None:
        _converged(api, world)
        world.cloud.fail_next(ACME_ACCOUNT, "update", _fault(cls), times=5)
        assert api.patch("/servers/alpha-1", {"config": {"seed": "new"}}).status == 200
        _reconcile(api, world)

    return scenario


def _tenant_denied(api: ApiClient, world: FakeWorld) -> None:
    _converged(api, world)
    world.cloud.deny(ACME_ACCOUNT, f"AccessDenied: {LEAK}")
    assert api.patch("/servers/alpha-1", {"config": {"seed": "new"}}).status == 200
    _reconcile(api, world)


def _region_denied(api: ApiClient, world: FakeWorld) -> None:
    world.cloud.deny_region(ACME_ACCOUNT, "us-east-1", LEAK)
    assert api.put("/servers/alpha-1", put_config()).status == 201
    _reconcile(api, world)


def _region_broken(api: ApiClient, world: FakeWorld) -> None:
    world.cloud.break_region(ACME_ACCOUNT, "us-east-1", _fault(errors.UnknownRegionError))
    assert api.put("/servers/alpha-1", put_config()).status == 201
    _reconcile(api, world)


def _rolled_back(api: ApiClient, world: FakeWorld) -> None:
    from reconciler.fakes.cloud import FailureCause

    _converged(api, world)
    world.cloud.set_outcome(
        ACME_ACCOUNT, NAME, "update", "UPDATE_ROLLBACK_COMPLETE", always=True, cause=FailureCause("Server", "X", LEAK)
    )
    assert api.patch("/servers/alpha-1", {"config": {"seed": "new"}}).status == 200
    _reconcile(api, world, passes=6)  # tries, backoffs, and a spent failure budget


def _create_rolled_back(api: ApiClient, world: FakeWorld) -> None:
    from reconciler.fakes.cloud import FailureCause

    world.cloud.set_outcome(ACME_ACCOUNT, NAME, "create", "ROLLBACK_COMPLETE", cause=FailureCause("Server", "X", LEAK))
    assert api.put("/servers/alpha-1", put_config()).status == 201
    _reconcile(api, world, passes=3)


def _delete_fails(api: ApiClient, world: FakeWorld) -> None:
    from reconciler.fakes.cloud import FailureCause

    _converged(api, world)
    world.cloud.set_outcome(ACME_ACCOUNT, NAME, "delete", "DELETE_FAILED", always=True, cause=FailureCause(reason=LEAK))
    assert api.delete("/servers/alpha-1").status == 202
    _reconcile(api, world, passes=6)


SCENARIOS: dict[str, Callable[[ApiClient, FakeWorld], Any]] = {
    **{f"create fails with {cls.__name__}": _create_fails(cls) for cls in FAILURE_CLASSES},
    **{f"update fails with {cls.__name__}": _update_fails(cls) for cls in FAILURE_CLASSES},
    "the tenant's role refuses AssumeRole": _tenant_denied,
    "an SCP denies the region": _region_denied,
    "the region's endpoint is unknown": _region_broken,
    "updates roll back until the budget is spent": _rolled_back,
    "a create rolls back": _create_rolled_back,
    "a delete fails": _delete_fails,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=list(SCENARIOS))
def test_players_see_no_account_arn_or_bucket_after_a_failure(
    api: ApiClient, memory_world: FakeWorld, scenario: str
) -> None:
    SCENARIOS[scenario](api, memory_world)

    admin = api.get("/tenants/acme/servers", ROOT)
    assert admin.status == 200
    seen = [api.get("/servers/alpha-1", ALICE), api.get("/servers", ALICE), api.get("/servers/alpha-1/history", ALICE)]
    texts = [r.text for r in seen if r.status == 200]
    assert texts, "the player could read nothing"
    for text in texts:
        assert "arn:" not in text, text
        assert not ACCOUNT_ID.search(text), text
        assert TEMPLATE_BUCKET not in text, text
        assert "stackherd-api-role" not in text and "StackherdExecution" not in text, text
    server = seen[0]
    if server.status == 200:
        for condition in server.json()["status"]["conditions"]:
            assert condition["reason"] in PLAYER_REASONS
            assert condition["message"] == PLAYER_REASONS[condition["reason"]].message


def test_admins_still_read_what_the_reconciler_recorded(api: ApiClient, memory_world: FakeWorld) -> None:
    _create_fails(errors.PermanentError)(api, memory_world)
    (server,) = api.get("/tenants/acme/servers", ROOT).json()["items"]
    assert LEAK in server["status"]["last_error"]
    player = api.get("/servers/alpha-1", ALICE).json()["status"]
    assert player["last_error"] == PLAYER_REASONS["OperationFailed"].message
    ready = next(c for c in player["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "OperationFailed"


@pytest.mark.parametrize(
    ("recorded", "code"),
    [
        ("AccessDenied", "TenantAccessDenied"),
        ("AccessDeniedException", "TenantAccessDenied"),
        ("Throttling", "Throttled"),
        ("RequestLimitExceeded", "Throttled"),
        ("ExpiredToken", "TemporarilyUnavailable"),
        ("ServiceUnavailable", "TemporarilyUnavailable"),
        ("TemplateNotFound", "TemplateUnavailable"),
        ("AttemptFailed", "StackRolledBack"),
        ("FailureBudgetExhausted", "FailureBudgetExhausted"),
        ("ValidationError", "OperationFailed"),
        ("SomethingNew", "OperationFailed"),
        ("Available", "Available"),
    ],
)
def test_player_reason_table(recorded: str, code: str) -> None:
    assert player_reason(recorded).code == code


def test_redact_removes_arns_accounts_urls_and_the_bucket() -> None:
    text = redact(LEAK, TEMPLATE_BUCKET)
    assert "arn:" not in text and not ACCOUNT_ID.search(text) and TEMPLATE_BUCKET not in text


def _no_platform_text(text: str) -> None:
    assert "arn:" not in text and not ACCOUNT_ID.search(text) and TEMPLATE_BUCKET not in text, text


def test_a_player_write_in_an_unreadable_tenant_answers_409_without_the_stored_text(
    api: ApiClient, memory_world: FakeWorld
) -> None:
    from dataclasses import replace

    store = memory_world.store
    store.tenants["acme"] = replace(store.get_tenant("acme"), unreadable=f"could not parse the item: {LEAK}")

    for response in (api.put("/servers/alpha-1", put_config()), api.patch("/servers/alpha-1", put_config())):
        assert response.status == 409, response.text
        body = response.json()
        assert body["details"][0]["rule"] == "tenant_unreadable"
        assert "an admin" in body["message"]
        _no_platform_text(response.text)
    # Admins still read why, on the tenant.
    assert "arn:" in api.get("/tenants/acme", ROOT).json()["unreadable"]


def test_a_player_patch_of_an_unreadable_server_answers_409_without_the_stored_text(
    api: ApiClient, memory_world: FakeWorld
) -> None:
    from dataclasses import replace

    assert api.put("/servers/alpha-1", put_config()).status == 201
    store = memory_world.store
    server = store.get_server("acme", "alpha-1")
    assert server is not None
    store.servers[("acme", "alpha-1")] = replace(server, config=None, unreadable=f"cannot be read ({LEAK})")

    response = api.patch("/servers/alpha-1", {"config": {"seed": "xyz"}})
    assert response.status == 409, response.text
    assert response.json()["details"][0]["rule"] == "unreadable"
    assert "whole config" in response.json()["message"]
    _no_platform_text(response.text)


#: What the reconciler writes in a server's history: every action's kind and the engine's own entries.
RECONCILER_KINDS = sorted(
    {kind.value for kind in ActionKind} | {"status", "ready", "finalized", "stuck", "brake", "orphan"}
)


@pytest.mark.parametrize("kind", RECONCILER_KINDS)
def test_every_reconciler_history_kind_shows_players_a_fixed_message(kind: str) -> None:
    from handlers.api.views import player_history_entry
    from models.records import ActivityEntry

    raw = f"{kind}: would fail: AccessDenied: User StackherdExecution/stackherd-session is not authorized"
    shown = player_history_entry(ActivityEntry(at="2026-01-01T00:00:00Z", kind=kind, message=raw), TEMPLATE_BUCKET)
    assert shown.message != raw
    assert "AccessDenied" not in shown.message and "StackherdExecution" not in shown.message


def test_a_paused_tenants_report_in_the_history_shows_players_no_raw_aws_text(
    api: ApiClient, memory_world: FakeWorld
) -> None:
    _region_denied(api, memory_world)
    assert api.patch("/tenants/acme", {"paused": True}, ROOT).status == 200
    _reconcile(api, memory_world)

    admin = api.get("/tenants/acme/servers/alpha-1/history", ROOT).json()["items"]
    assert any(e["kind"] == "report" and "AccessDenied" in e["message"] for e in admin)
    player = api.get("/servers/alpha-1/history", ALICE).json()["items"]
    reports = [e for e in player if e["kind"] == "report"]
    assert reports
    for entry in reports:
        assert entry["message"] == HISTORY_MESSAGES["report"]
    assert "AccessDenied" not in json.dumps(player) and "sts:" not in json.dumps(player)
