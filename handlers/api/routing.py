"""What the player and admin routes share: the caller and the store of the current request, If-Match,
pagination tokens, the documented parameters and responses, and JSON responses."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from handlers.api.errors import ApiNotFoundError, BadRequestError, ForbiddenError, UnauthorizedError
from handlers.api.identity import Identity
from handlers.api.models import ErrorBody
from models.config import ID_PATTERN, STORED_ID_PATTERN, ConfigError
from reconciler import desired
from reconciler.desired import DesiredWrites, Expected

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import Router
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

    from models.records import DesiredServer, Tenant, WriteTrail
    from reconciler.ports import DesiredStore

DEFAULT_PAGE = 25
MAX_PAGE = 100
Body = TypeVar("Body")


def store() -> DesiredStore:
    from handlers.runtime import runtime

    return runtime().store


def writes() -> DesiredWrites:
    """The one writer of desired state: every rule of a write is there, none here."""
    from handlers.runtime import runtime

    return runtime().writes


def request_trail(router: Router, identity: Identity) -> WriteTrail:
    """Who writes (the token's user), through the API, under the request's id (the id error bodies and logs
    carry, and the reconciler's history entries for the write)."""
    context = router.current_event.raw_event.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return desired.trail(identity.user, "api", request_id if isinstance(request_id, str) and request_id else None)


def now() -> datetime:
    return datetime.now(UTC)


def caller(router: Router) -> Identity:
    """Who sent the request (the handler puts it in the routing context after the gate let it through)."""
    identity = router.context.get("identity")
    if not isinstance(identity, Identity):
        raise UnauthorizedError("no token: send a bearer token from the stackherd user pool", rule="missing")
    return identity


def player_tenant(identity: Identity) -> Tenant:
    if identity.tenant_id is None:  # the gate refuses player routes without a tenant claim
        raise UnauthorizedError("the token carries no custom:tenant_id", rule="tenant_claim")
    tenant = store().get_tenant(identity.tenant_id)
    if tenant is None:
        raise ForbiddenError(
            f"tenant {identity.tenant_id!r} in your token is not registered; ask an admin",
            field="custom:tenant_id",
            location="token",
            rule="tenant_registered",
        )
    return tenant


def own_server(tenant: Tenant, identity: Identity, gameserver_id: str) -> DesiredServer:
    """The caller's server; another player's server is reported exactly like a missing one."""
    server = store().get_server(tenant.tenant_id, gameserver_id)
    if server is None or not server.owned_by(identity.sub, identity.user):
        raise ApiNotFoundError(f"game server {gameserver_id!r} not found")
    return server


def admin_tenant(tenant_id: str) -> Tenant:
    tenant = store().get_tenant(tenant_id)
    if tenant is None:
        raise ApiNotFoundError(f"tenant {tenant_id!r} not found")
    return tenant


def parse_if_match(value: str | None) -> Expected:
    """`If-Match`: `*`, or one or more ETags of reads; a malformed one is a 400 saying what an ETag looks like."""
    try:
        return desired.parse_if_match(value)
    except ConfigError as error:
        raise BadRequestError(str(error), field="If-Match", location="header", rule="etag_format") from None


def json_response(body: Body, status: int = 200, headers: dict[str, str] | None = None) -> Response[Body]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


# Pagination tokens are opaque to callers: a kind and a position, base64url-encoded. They carry no tenant or
# user: those always come from the token and the path, so a forged token can only move within the caller's
# own listing.
_HISTORY_POSITION = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,20}Z#[0-9a-f]{8}$")
# An id a listing can end a page on: any id an existing record may carry (today's, or one stored outside
# today's pattern), so listing past such an item works like listing past any other.
_SERVER_POSITION = re.compile(STORED_ID_PATTERN)


def encode_token(kind: str, position: str) -> str:
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(kind: str, token: str | None) -> str | None:
    if token is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        data = None
    position = data.get("p") if isinstance(data, dict) and data.get("k") == kind else None
    valid = _HISTORY_POSITION if kind == "history" else _SERVER_POSITION
    if not isinstance(position, str) or not valid.fullmatch(position):
        raise BadRequestError(
            "next_token is not one this listing returned; start again without it",
            field="next_token",
            location="query",
            rule="token_invalid",
        )
    return position


def responses(ok: dict[int, tuple[str, Any]], errors: dict[int, str]) -> dict[int, OpenAPIResponse]:
    """The documented responses of a route: its success bodies, then its errors (all `ErrorBody`)."""
    documented: dict[int, OpenAPIResponse] = {
        code: {"description": text, "content": {"application/json": {"model": model}}}
        for code, (text, model) in ok.items()
    }
    for code, text in errors.items():
        documented[code] = {"description": text, "content": {"application/json": {"model": ErrorBody}}}
    return documented


AUTH_ERRORS = {401: "missing or malformed token claims"}
PLAYER_ERRORS = {**AUTH_ERRORS, 403: "the token's tenant is not registered", 422: "invalid input"}
ADMIN_ERRORS = {**AUTH_ERRORS, 403: "not an admin", 422: "invalid input"}
BODY_ERRORS = {
    400: "the body is not JSON, not UTF-8, larger than 16 KiB, or gives a key twice",
    415: "the body is not application/json",
}

GameServerId = Annotated[
    str,
    Path(
        pattern=ID_PATTERN,
        max_length=40,
        description="1-40 lowercase letters, digits or inner hyphens",
        examples=["alpha-1"],
    ),
]
#: The id of an existing server (read, delete, history): today's ids and ids stored by older versions or
#: written around stackherd (`Legacy_1`), so such a record can still be read and deleted. Creation (PUT)
#: takes GameServerId.
StoredGameServerId = Annotated[
    str,
    Path(
        pattern=STORED_ID_PATTERN,
        max_length=255,
        description="the id of an existing server: 1-255 printable ASCII characters without '/' or spaces "
        "(today's ids, and ids stored by older versions)",
        examples=["alpha-1"],
    ),
]
TenantId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=40, description="a registered tenant's id", examples=["acme"])
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=200,
        description='the ETag of a read ("3-1a2b3c4d5e6f"): the write happens only if the server is still at '
        "that generation of that creation of its id",
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]
NextToken = Annotated[str | None, Query(max_length=512, description="the next_token of the previous page")]
ConfirmDeletions = Annotated[
    bool, Query(description="let this pass delete more stacks than the per-pass deletion brake allows")
]
Force = Annotated[
    bool,
    Query(
        description="act now on servers waiting out a failed attempt's backoff (a spent failure budget still "
        "holds; `stackherd servers retry` or a new generation gives a fresh one)"
    ),
]
