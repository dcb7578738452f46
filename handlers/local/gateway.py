"""API Gateway on one machine: an HTTP server that verifies a JWT the way the HTTP API's JWT authorizer does
and hands the request to the API handler as an HTTP API payload 2.0 event.

The authorizer (`LocalAuthorizer`) checks the signature, expiry, issuer and audience with PyJWT and answers 401
itself, before any handler runs, for a missing, malformed, badly signed or expired token, exactly where API
Gateway would. It passes the claims on as API Gateway does: every value a string, arrays as `[a b]` (so
`cognito:groups` arrives as `"[admins]"`), numbers as their text. Routes the deployed API leaves without an
authorizer (`PUBLIC_PATHS`) reach the handler with no claims.

Tokens are HS256-signed with a key kept in the local state directory (`state_dir()`), so `stackherd token`
and a running `stackherd local` agree without talking to each other.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ISSUER = "https://stackherd.local/issuer"
AUDIENCE = "stackherd-local"
ALGORITHM = "HS256"
TOKEN_TTL_S = 12 * 3600
#: Paths routed without the JWT authorizer: the OpenAPI document, Swagger UI and the dashboard's page (static;
#: every datum it shows is read from the API with the token).
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/dashboard"})
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class TokenError(Exception):
    """A token the authorizer refuses; the message says why."""


def state_dir() -> Path:
    """Where the local runtime keeps its signing key: `$STACKHERD_LOCAL_DIR`, else `~/.stackherd/local`."""
    configured = os.environ.get("STACKHERD_LOCAL_DIR")
    return Path(configured) if configured else Path.home() / ".stackherd" / "local"


def signing_key(directory: Path | None = None) -> str:
    """The key in the state directory, created (readable by its owner only) the first time it is needed."""
    directory = directory or state_dir()
    path = directory / "jwt-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    directory.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # O_EXCL: when two processes create it at once, both use the one written first.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


class LocalAuthorizer:
    """Issues and verifies the local runtime's tokens (shaped like Cognito ID tokens)."""

    def __init__(self, key: str, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    def issue(self, user: str, tenant_id: str | None = None, *, admin: bool = False, ttl_s: int = TOKEN_TTL_S) -> str:
        import jwt

        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"stackherd-local/{user}")),
            "cognito:username": user,
            "iss": self.issuer,
            "aud": self.audience,
            "token_use": "id",
            "auth_time": now,
            "iat": now,
            "exp": now + ttl_s,
        }
        if tenant_id is not None:
            claims["custom:tenant_id"] = tenant_id
        if admin:
            claims["cognito:groups"] = ["admins"]
        return str(jwt.encode(claims, self.key, algorithm=ALGORITHM))

    def verify(self, authorization: str | None) -> dict[str, str]:
        """The claims as API Gateway passes them on; raises TokenError for a token it would refuse."""
        import jwt

        if not authorization or not authorization.strip():
            raise TokenError("no token: send Authorization: Bearer <token> (get one with `stackherd token`)")
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired; get a new one with `stackherd token`") from None
        except jwt.InvalidIssuerError:
            raise TokenError(f"the token was not issued by {self.issuer}") from None
        except jwt.InvalidAudienceError:
            raise TokenError(f"the token is not for the audience {self.audience}") from None
        except jwt.InvalidSignatureError:
            raise TokenError("the token's signature does not verify") from None
        except jwt.PyJWTError as error:
            raise TokenError(f"the token is not a valid JWT: {error}") from None
        return {name: gateway_claim(value) for name, value in claims.items()}


def gateway_claim(value: Any) -> str:
    """A claim's value the way API Gateway's JWT authorizer hands it to the integration."""
    if isinstance(value, list | tuple):
        return "[" + " ".join(gateway_claim(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def http_api_event(
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    claims: dict[str, str] | None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event for one request (headers lower-cased and repeated ones joined with
    commas, query parameters likewise, the body base64 when it is not UTF-8 text)."""
    parts = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    cookies = [c.strip() for c in headers.get("cookie", "").split(";") if c.strip()]
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    now = datetime.now(UTC)
    context: dict[str, Any] = {
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": headers.get("host", "127.0.0.1"),
        "domainPrefix": "local",
        "http": {
            "method": method,
            "path": parts.path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": "$default",
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if text is not None:
        event["body"] = text
    return event


ApiHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Gateway(ThreadingHTTPServer):
    """The HTTP server. One request at a time reaches the API handler: Powertools' resolver keeps the current
    event on the module-level app, as one Lambda execution environment does."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: ApiHandler,
        authorizer: LocalAuthorizer,
        report: Callable[[str], None] | None = None,
        *,
        report_reads: bool = True,
    ) -> None:
        super().__init__(address, _RequestHandler)
        self.api_handler = handler
        self.authorizer = authorizer
        self.report = report
        self.report_reads = report_reads
        self.lock = threading.Lock()

    def answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str = "127.0.0.1"
    ) -> dict[str, Any]:
        """The API Gateway response (payload 2.0) to one request."""
        from handlers.local.esm import InvocationContext

        path = urlsplit(target).path
        claims = None
        if path not in PUBLIC_PATHS:
            try:
                claims = self.authorizer.verify(headers.get("authorization"))
            except TokenError as error:
                # API Gateway's own answer: no integration runs; the reason helps a local user.
                return {
                    "statusCode": 401,
                    "headers": {"content-type": "application/json", "www-authenticate": "Bearer"},
                    "body": json.dumps({"message": "Unauthorized", "reason": str(error)}),
                }
        event = http_api_event(method, target, headers, body, claims, source_ip)
        with self.lock:
            return self.api_handler(event, InvocationContext("api", timeout_s=29))


class _RequestHandler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def _refuse(self, status: int, message: str) -> None:
        self._send({"statusCode": status, "body": json.dumps({"message": message})})
        self.close_connection = True

    def _handle(self) -> None:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            self._refuse(411, "send the body with a Content-Length, not chunked")
            return
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, "the Content-Length header is not a number of bytes")
            return
        if length > MAX_BODY_BYTES:
            self._refuse(413, "Request Entity Too Large")
            return
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        started = time.monotonic()
        try:
            response = self.server.answer(self.command, self.path, headers, body, self.client_address[0])
        except Exception as error:  # what API Gateway answers when the integration fails
            response = {"statusCode": 500, "body": json.dumps({"message": "Internal Server Error"})}
            if self.server.report is not None:
                self.server.report(f"api: the handler failed: {type(error).__name__}: {error}")
        self._send(response)
        status = int(response.get("statusCode", 200))
        quiet = self.command in ("GET", "HEAD") and status < 400 and not self.server.report_reads
        if self.server.report is not None and not quiet:
            elapsed = (time.monotonic() - started) * 1000
            self.server.report(
                f"api {self.command} {urlsplit(self.path).path} -> {response.get('statusCode')} ({elapsed:.0f} ms)"
            )

    def _send(self, response: dict[str, Any]) -> None:
        raw = response.get("body") or ""
        payload = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
        self.send_response(int(response.get("statusCode", 200)))
        headers = {k.lower(): str(v) for k, v in (response.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        for name, value in headers.items():
            if name not in ("content-length", "connection"):
                self.send_header(name, value)
        for name, values in (response.get("multiValueHeaders") or {}).items():
            for value in values:
                self.send_header(name, str(value))
        for cookie in response.get("cookies") or []:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    # http.server dispatches on these names.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """The gateway reports each request itself, on one line."""
