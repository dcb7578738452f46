"""The local gateway: its JWT authorizer refuses what API Gateway's would (401, before any handler runs) and
passes claims on in API Gateway's shapes, which the API's identity code reads as it does on AWS."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from handlers.local.gateway import AUDIENCE, ISSUER, Gateway, LocalAuthorizer, http_api_event, signing_key
from tests.api.conftest import put_config

KEY = "k" * 64


@pytest.fixture
def gateway(memory_world: Any) -> Iterator[Gateway]:
    from handlers.api.app import handler

    calls: list[dict[str, Any]] = []

    def counted(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        return handler(event, context)

    server = Gateway(("127.0.0.1", 0), counted, LocalAuthorizer(KEY))
    server.calls = calls  # type: ignore[attr-defined]
    yield server
    server.server_close()


def call(gateway: Gateway, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    raw = json.dumps(body).encode() if body is not None else b""
    response = gateway.answer(method, path, headers, raw)
    text = response.get("body") or ""
    try:
        return response["statusCode"], json.loads(text)
    except ValueError:
        return response["statusCode"], text


def forged(**claims: Any) -> str:
    now = int(time.time())
    base = {"cognito:username": "ana", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    return str(jwt.encode({**base, **claims}, KEY, algorithm="HS256"))


def swapped_payload() -> str:
    """globex's claims under the signature of a token for acme."""
    header, _, signature = forged(**{"custom:tenant_id": "acme"}).split(".")
    payload = forged(**{"custom:tenant_id": "globex"}).split(".")[1]
    return f"{header}.{payload}.{signature}"


def test_claims_reach_the_handler_in_api_gateways_shapes(gateway: Gateway) -> None:
    token = LocalAuthorizer(KEY).issue("root", admin=True)
    status, body = call(gateway, "GET", "/tenants", token)
    assert status == 200, body
    claims = gateway.calls[-1]["requestContext"]["authorizer"]["jwt"]["claims"]  # type: ignore[attr-defined]
    assert claims["cognito:groups"] == "[admins]"
    assert claims["cognito:username"] == "root"
    assert isinstance(claims["exp"], str) and claims["exp"].isdigit()
    assert {t["tenant_id"] for t in body["items"]} == {"acme", "globex"}


def test_a_player_token_creates_and_reads_a_server_of_its_tenant(gateway: Gateway) -> None:
    token = LocalAuthorizer(KEY).issue("alice", "acme")
    assert call(gateway, "PUT", "/servers/arena", token, put_config())[0] == 201
    status, body = call(gateway, "GET", "/servers/arena?x=1", token)
    assert status == 200 and body["tenant_id"] == "acme"


#: Each bad token made when its test runs (one made at collection could expire before a long suite reaches it).
BAD_TOKENS: dict[str, tuple[Callable[[], str | None], str]] = {
    "missing": (lambda: None, "no token"),
    "malformed": (lambda: "not-a-jwt", "not a valid JWT"),
    "expired": (lambda: forged(exp=int(time.time()) - 10), "expired"),
    "other issuer": (lambda: forged(iss="https://elsewhere.example/"), "not issued by"),
    "other audience": (lambda: forged(aud="someone-else"), "audience"),
    "other key": (
        lambda: jwt.encode({"cognito:username": "ana", "iss": ISSUER, "aud": AUDIENCE, "exp": 9e9}, "x" * 64),
        "signature",
    ),
    "tampered": (lambda: swapped_payload(), "signature"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_bad_tokens_are_401_before_any_handler_runs(gateway: Gateway, case: str) -> None:
    make, reason = BAD_TOKENS[case]
    status, body = call(gateway, "GET", "/servers", make())
    assert status == 401
    assert reason in body["reason"]
    assert gateway.calls == []  # type: ignore[attr-defined]


def test_another_tenants_server_is_404_as_on_aws(gateway: Gateway) -> None:
    authorizer = LocalAuthorizer(KEY)
    assert call(gateway, "PUT", "/servers/arena", authorizer.issue("alice", "acme"), put_config())[0] == 201
    status, _ = call(gateway, "GET", "/servers/arena", authorizer.issue("carol", "globex"))
    assert status == 404
    status, _ = call(gateway, "GET", "/tenants", authorizer.issue("alice", "acme"))
    assert status == 403, "a player's token on an admin route"


def test_the_dashboard_page_needs_no_token_and_loads_nothing_from_elsewhere(gateway: Gateway) -> None:
    response = gateway.answer("GET", "/dashboard", {}, b"")
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in response["headers"]["Content-Security-Policy"]
    page = response["body"]
    assert "<script src" not in page and "http://" not in page and "https://" not in page


def test_events_carry_query_headers_and_binary_bodies_as_api_gateway_does() -> None:
    event = http_api_event("POST", "/x?a=1&a=2&b=", {"host": "h"}, b"\xff\x00", None)
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["isBase64Encoded"] is True
    assert "authorizer" not in event["requestContext"]


def test_stackherd_token_prints_only_a_token_the_authorizer_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.local.cli import main

    monkeypatch.setenv("STACKHERD_LOCAL_DIR", str(tmp_path))
    out = io.StringIO()
    assert main(["token", "--tenant", "alpha", "--user", "ana"], out=out) == 0
    token = out.getvalue()
    assert token.count("\n") == 1 and " " not in token.strip()
    claims = LocalAuthorizer(signing_key(tmp_path)).verify(f"Bearer {token.strip()}")
    assert claims["custom:tenant_id"] == "alpha" and "cognito:groups" not in claims
    assert (tmp_path / "jwt-key").stat().st_mode & 0o077 == 0, "the key is readable by its owner only"


@pytest.mark.parametrize(
    "argv",
    [
        ["token", "--user", "ana"],
        ["token", "--tenant", "Not Valid", "--user", "ana"],
        ["token", "--user", "ana", "--admin", "--ttl", "5"],
    ],
    ids=["neither tenant nor admin", "invalid tenant", "ttl too short"],
)
def test_stackherd_token_refuses_bad_arguments_with_one_line(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from handlers.local.cli import main

    monkeypatch.setenv("STACKHERD_LOCAL_DIR", str(tmp_path))
    out = io.StringIO()
    assert main(argv, out=out) == 1
    assert out.getvalue() == ""
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    ("header", "status"),
    [("Content-Length: many", 400), ("Content-Length: -5", 400), ("Transfer-Encoding: chunked", 411)],
    ids=["not a number", "negative", "chunked"],
)
def test_a_body_the_gateway_cannot_frame_is_refused_over_the_wire(gateway: Gateway, header: str, status: int) -> None:
    import socket
    import threading

    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(gateway.server_address[:2], timeout=10) as sock:
            sock.sendall(f"PUT /servers/x HTTP/1.1\r\nHost: local\r\n{header}\r\n\r\n".encode())
            first = sock.makefile("rb").readline().decode()
    finally:
        gateway.shutdown()
    assert first.split()[1] == str(status), first
    assert gateway.calls == []  # type: ignore[attr-defined]


def test_a_package_without_the_dashboard_page_answers_404_saying_so(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.api import dashboard

    monkeypatch.setattr(dashboard.resources, "files", lambda package: tmp_path)
    dashboard.page.cache_clear()
    try:
        response = gateway.answer("GET", "/dashboard", {}, b"")
    finally:
        dashboard.page.cache_clear()
    assert response["statusCode"] == 404
    assert "dashboard.html" in json.loads(response["body"])["message"]
