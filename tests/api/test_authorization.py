"""The authorization matrix: every route against every kind of caller, as one table.

Setup for each row: alice and bob are players of tenant acme, each owning one server (alpha-1, bravo-1);
carol is a player of tenant globex owning gamma-1; root is an admin (no tenant claim); anonymous sends no
token. Every request targets acme's data or alice's server.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ALICE, ANON, BOB, CALLERS, CAROL, ROOT, ApiClient, Caller, player, put_config

A, B, C, ADMIN, NONE = "alice", "bob", "carol", "root", "anonymous"

# route (method, path, body) -> expected status for each caller.
#   alice: the owner; bob: another player of the same tenant; carol: a player of another tenant;
#   root: an admin without a tenant claim (player routes need one: 401); anonymous: no token.
# carol's PUT creates *her own* alpha-1 in globex (201): the tenant always comes from the token.
MATRIX: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/servers", None, {A: 200, B: 200, C: 200, ADMIN: 401, NONE: 401}),
    ("PUT", "/servers/alpha-1", put_config(difficulty="hard"), {A: 200, B: 404, C: 201, ADMIN: 401, NONE: 401}),
    ("PATCH", "/servers/alpha-1", {"config": {"seed": "xyz"}}, {A: 200, B: 404, C: 404, ADMIN: 401, NONE: 401}),
    ("GET", "/servers/alpha-1", None, {A: 200, B: 404, C: 404, ADMIN: 401, NONE: 401}),
    ("DELETE", "/servers/alpha-1", None, {A: 202, B: 404, C: 404, ADMIN: 401, NONE: 401}),
    ("GET", "/servers/alpha-1/history", None, {A: 200, B: 404, C: 404, ADMIN: 401, NONE: 401}),
    ("GET", "/tenants", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    (
        "POST",
        "/tenants",
        {"tenant_id": "initech", "account_id": "333333333333"},
        {A: 403, B: 403, C: 403, ADMIN: 201, NONE: 401},
    ),
    ("GET", "/tenants/acme", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    ("PATCH", "/tenants/acme", {"paused": True}, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    ("GET", "/tenants/acme/servers", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    ("GET", "/tenants/acme/external-id", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    ("GET", "/tenants/acme/plan", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    ("POST", "/tenants/acme/reconcile", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    ("GET", "/rollouts", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    ("POST", "/rollouts", {"version": "v1", "tenants": ["acme"]}, {A: 403, B: 403, C: 403, ADMIN: 201, NONE: 401}),
    # No rollout of that id: an admin learns so (404); nobody else learns anything.
    ("GET", "/rollouts/ro-missing", None, {A: 403, B: 403, C: 403, ADMIN: 404, NONE: 401}),
    ("POST", "/rollouts/ro-missing/pause", None, {A: 403, B: 403, C: 403, ADMIN: 404, NONE: 401}),
    ("POST", "/rollouts/ro-missing/resume", None, {A: 403, B: 403, C: 403, ADMIN: 404, NONE: 401}),
    ("POST", "/rollouts/ro-missing/abort", None, {A: 403, B: 403, C: 403, ADMIN: 404, NONE: 401}),
    ("POST", "/rollouts/ro-missing/rollback", None, {A: 403, B: 403, C: 403, ADMIN: 404, NONE: 401}),
    ("GET", "/openapi.json", None, {A: 200, B: 200, C: 200, ADMIN: 200, NONE: 200}),
    ("GET", "/docs", None, {A: 200, B: 200, C: 200, ADMIN: 200, NONE: 200}),
    ("GET", "/dashboard", None, {A: 200, B: 200, C: 200, ADMIN: 200, NONE: 200}),
    ("GET", "/fleet", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
    ("GET", "/tenants/acme/servers/alpha-1/history", None, {A: 403, B: 403, C: 403, ADMIN: 200, NONE: 401}),
]

CASES = [
    pytest.param(method, path, body, caller, status, id=f"{method} {path} as {caller} -> {status}")
    for method, path, body, expected in MATRIX
    for caller, status in expected.items()
]


def seed(api: ApiClient) -> None:
    assert api.put("/servers/alpha-1", put_config(), ALICE).status == 201
    assert api.put("/servers/bravo-1", put_config(), BOB).status == 201
    assert api.put("/servers/gamma-1", put_config(), CAROL).status == 201


def alice_server(api: ApiClient) -> dict[str, Any]:
    response = api.get("/servers/alpha-1", ALICE)
    assert response.status == 200
    body: dict[str, Any] = response.json()
    return body


def test_matrix_covers_every_route_in_the_openapi_document() -> None:
    import json

    from handlers.api.app import openapi_document

    documented = {
        (method.upper(), path) for path, ops in json.loads(openapi_document())["paths"].items() for method in ops
    }
    covered = {
        (
            m,
            p.replace("alpha-1", "{gameserver_id}")
            .replace("acme", "{tenant_id}")
            .replace("ro-missing", "{rollout_id}"),
        )
        for m, p, _, _ in MATRIX
    }
    assert documented <= covered


@pytest.mark.parametrize(("method", "path", "body", "caller", "status"), CASES)
def test_authorization_matrix(api: ApiClient, method: str, path: str, body: Any, caller: str, status: int) -> None:
    seed(api)
    before = alice_server(api)
    kwargs: dict[str, Any] = {} if body is None else {"body": body}
    response = api.request(method, path, CALLERS[caller], **kwargs)
    assert response.status == status, response.text
    if path not in ("/docs", "/dashboard"):
        assert response.header("Content-Type") == "application/json"
    if status >= 400:
        error = response.json()
        assert error["code"] and error["message"]
        assert error["request_id"] == response.event["requestContext"]["requestId"]
    if status == 401:
        assert (
            response.header(
                "WWW-Authenticate",
            )
            is not None
        )
    if caller != A and path.startswith("/servers/alpha-1"):
        # Nobody but alice changes or learns anything about alice's server.
        assert alice_server(api) == before
        assert "alice" not in response.text
        if status == 404:
            assert response.text.count("alpha-1") <= 1


@pytest.mark.parametrize("caller", [BOB, CAROL], ids=["same-tenant player", "other-tenant player"])
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"config": {"seed": "xyz"}}),
        ("DELETE", "", None),
        ("GET", "/history", None),
    ],
)
def test_someone_elses_server_looks_exactly_like_a_missing_one(
    api: ApiClient, caller: Caller, method: str, suffix: str, body: Any
) -> None:
    seed(api)
    kwargs: dict[str, Any] = {} if body is None else {"body": body}
    theirs = api.request(method, f"/servers/alpha-1{suffix}", caller, **kwargs)
    missing = api.request(method, f"/servers/zulu-9{suffix}", caller, **kwargs)
    assert theirs.status == missing.status == 404

    def scrub(text: str) -> dict[str, Any]:
        data: dict[str, Any] = __import__("json").loads(text.replace("zulu-9", "alpha-1"))
        data.pop("request_id")
        return data

    assert scrub(theirs.text) == scrub(missing.text)


def test_listings_show_only_the_callers_own_servers(api: ApiClient) -> None:
    seed(api)
    assert [s["gameserver_id"] for s in api.get("/servers", ALICE).json()["items"]] == ["alpha-1"]
    assert [s["gameserver_id"] for s in api.get("/servers", BOB).json()["items"]] == ["bravo-1"]
    assert [s["gameserver_id"] for s in api.get("/servers", CAROL).json()["items"]] == ["gamma-1"]
    admin_view = api.get("/tenants/acme/servers", ROOT).json()["items"]
    assert sorted(s["gameserver_id"] for s in admin_view) == ["alpha-1", "bravo-1"]


def test_the_tenant_comes_from_the_token_never_from_the_body_or_path(api: ApiClient) -> None:
    seed(api)
    # a tenant in the body is an unknown key; a tenant in the query string is ignored
    sneaky = api.put("/servers/alpha-1", {**put_config(), "tenant_id": "acme"}, CAROL)
    assert sneaky.status == 422
    created = api.put("/servers/delta-1", put_config(), CAROL, query={"tenant_id": "acme"})
    assert created.status == 201
    assert created.json()["tenant_id"] == "globex"
    assert api.get("/servers/delta-1", ALICE).status == 404


def test_a_player_whose_tenant_is_not_registered_is_refused(api: ApiClient) -> None:
    stranger = player("dave", "nowhere")
    response = api.put("/servers/alpha-1", put_config(), stranger)
    assert response.status == 403
    assert response.json()["details"][0]["field"] == "custom:tenant_id"


def test_an_admin_with_a_tenant_claim_is_a_player_there(api: ApiClient) -> None:
    seed(api)
    admin_player = player("root", "acme", groups=["admins"])
    assert api.get("/servers/alpha-1", admin_player).status == 404  # alice's, not root's
    assert api.put("/servers/root-1", put_config(), admin_player).status == 201
    assert api.get("/tenants", admin_player).status == 200


GROUPS = [
    (["admins", "players"], True),
    (["players"], False),
    ("[admins players]", True),
    ("[players admins]", True),
    ("[players]", False),
    ('["admins", "players"]', True),
    # API Gateway passes an array claim as "[a b]"; any other string is one group's name, never split.
    ("admins,players", False),
    ("players, admins", False),
    ("admins players", False),
    ("[players,admins]", False),
    ('["players,admins"]', False),
    (["players,admins"], False),
    (["players", "admins"], True),
    ("admins", True),
    ("", False),
    ("[]", False),
    ("[administrators]", False),
    ("superadmins", False),
    (None, False),
    (7, False),
    ({"admins": True}, False),
]


@pytest.mark.parametrize(("groups", "is_admin"), GROUPS, ids=[repr(g) for g, _ in GROUPS])
def test_admin_group_in_every_claim_shape(api: ApiClient, groups: Any, is_admin: bool) -> None:
    claims: dict[str, Any] = {"cognito:username": "eve"}
    if groups is not None:
        claims["cognito:groups"] = groups
    response = api.get("/tenants", Caller("eve", claims))
    assert response.status == (200 if is_admin else 403)


MALFORMED: list[tuple[str, dict[str, Any]]] = [
    ("no username or sub", {"custom:tenant_id": "acme"}),
    ("empty username", {"cognito:username": "", "custom:tenant_id": "acme"}),
    ("blank username", {"cognito:username": "   ", "custom:tenant_id": "acme"}),
    ("username not a string", {"cognito:username": 42, "custom:tenant_id": "acme"}),
    ("username with a control character", {"cognito:username": "al\nice", "custom:tenant_id": "acme"}),
    ("username too long", {"cognito:username": "a" * 129, "custom:tenant_id": "acme"}),
    ("no tenant claim", {"cognito:username": "alice"}),
    ("tenant claim not an id", {"cognito:username": "alice", "custom:tenant_id": "ACME!"}),
    ("tenant claim unicode", {"cognito:username": "alice", "custom:tenant_id": "acmé"}),
    ("tenant claim not a string", {"cognito:username": "alice", "custom:tenant_id": ["acme"]}),
    ("empty claims", {}),
]


@pytest.mark.parametrize(("why", "claims"), MALFORMED, ids=[w for w, _ in MALFORMED])
def test_missing_or_malformed_claims_are_401(api: ApiClient, why: str, claims: dict[str, Any]) -> None:
    response = api.get("/servers", Caller("x", claims))
    assert response.status == 401, why
    assert response.json()["details"][0]["location"] == "token"


def test_sub_is_the_player_when_there_is_no_username(api: ApiClient) -> None:
    caller = Caller("sub-only", {"sub": "5f0c-uuid", "custom:tenant_id": "acme"})
    assert api.put("/servers/sub-1", put_config(), caller).json()["username"] == "5f0c-uuid"


@pytest.mark.parametrize(
    "authorizer",
    [None, "a string", {"jwt": None}, {"jwt": {"claims": "cognito:username=alice"}}, {"lambda": {"user": "alice"}}],
)
def test_odd_authorizer_shapes_are_401(api: ApiClient, authorizer: Any) -> None:
    from tests.api.conftest import build_event

    event = build_event("GET", "/servers", caller=ALICE)
    event["requestContext"]["authorizer"] = authorizer
    assert api.send(event).status == 401


def test_anonymous_callers_get_401_before_any_validation(api: ApiClient) -> None:
    response = api.request("PUT", "/servers/NOT VALID", ANON, raw_body="{not json")
    assert response.status == 401
    response = api.request("POST", "/tenants", BOB, raw_body="[]")
    assert response.status == 403
