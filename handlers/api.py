"""The player and admin HTTP API: a Lambda handler for API Gateway HTTP APIs (payload format 2.0).

Like every writer it only validates and writes DynamoDB; it never calls CloudFormation. The two admin
routes that plan or force a tenant (`/plan`, `/reconcile`) call the engine, which is the reconciler.

Who is calling comes from the JWT authorizer's claims: the player is `cognito:username` (or `sub`),
the tenant is `custom:tenant_id`, and an admin is in the `admins` group. A player's tenant always comes
from the token, never from the path or the body, and another player's server answers 404, never 403.

Requests pass a gate (authentication, the route's audience, body size, encoding and JSON) before
Powertools validates them against the route's signature, so an anonymous caller learns nothing from
validation errors. Every error becomes an HTTP response in one place: `_error_response`, called by the
exception handlers registered below.

Regenerate the checked-in OpenAPI document with `python -m handlers.api > docs/openapi.json`.

Importing this module stays cheap: boto3, PynamoDB and the runtime are imported on first use.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from handlers.api_models import (
    ErrorBody,
    HistoryPage,
    PlanView,
    ServerPage,
    ServerPatch,
    ServerPut,
    ServerView,
    TenantList,
    TenantPatch,
    TenantView,
)
from handlers.observability import logger, metrics
from models.config import (
    ID_PATTERN,
    TIERS,
    ConfigError,
    GameServerConfig,
    TenantSpec,
    check_tier,
    tier_limits,
    validate_owner,
)
from models.records import DesiredServer, Tenant, TenantState, tenant_from_spec
from reconciler.desired import (
    AccountTakenError,
    QuotaExceededError,
    RegionInUseError,
    check_account_free,
    check_region,
    check_regions_removable,
    check_regions_usable,
    check_server_quota,
)
from reconciler.writes import ConflictError, NotFoundError, PreconditionFailedError, WriteResult

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
    from aws_lambda_powertools.event_handler.types import EventHandlerInstance
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from reconciler.adapters.dynamo import DynamoStore

API_VERSION = "1.0.0"
MAX_BODY_BYTES = 16 * 1024
ADMIN_GROUP = "admins"
DEFAULT_PAGE = 25
MAX_PAGE = 100


# --- errors ----------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error with its HTTP status; raised anywhere in a request, turned into a response in one place."""

    status = HTTPStatus.BAD_REQUEST
    code = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        location: str = "body",
        rule: str | None = None,
        limit: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, Any]] = []
        if field is not None:
            detail: dict[str, Any] = {
                "field": field,
                "location": location,
                "rule": rule or self.code,
                "message": message,
            }
            if limit is not None:
                detail["limit"] = limit
            self.details.append(detail)
        self.headers = headers or {}


class BadRequestError(ApiError):
    pass


class UnauthorizedError(ApiError):
    status = HTTPStatus.UNAUTHORIZED
    code = "Unauthorized"

    def __init__(self, message: str, *, rule: str = "claims") -> None:
        super().__init__(
            message,
            field="token",
            location="token",
            rule=rule,
            headers={"WWW-Authenticate": 'Bearer realm="stackherd"'},
        )


class ForbiddenError(ApiError):
    status = HTTPStatus.FORBIDDEN
    code = "Forbidden"


class ApiNotFoundError(ApiError):
    status = HTTPStatus.NOT_FOUND
    code = "NotFound"


class ApiConflictError(ApiError):
    status = HTTPStatus.CONFLICT
    code = "Conflict"


class ApiPreconditionError(ApiError):
    status = HTTPStatus.PRECONDITION_FAILED
    code = "PreconditionFailed"


class UnsupportedMediaTypeError(ApiError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "UnsupportedMediaType"


class UnprocessableError(ApiError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "ValidationFailed"


# --- identity --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    user: str
    tenant_id: str | None
    admin: bool


_ID_RE = re.compile(ID_PATTERN)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def parse_groups(raw: object) -> frozenset[str]:
    """`cognito:groups` as a list, a JSON array string, API Gateway's "[admins players]", or "a,b" / "a b"."""
    if isinstance(raw, list | tuple):
        return frozenset(str(g).strip() for g in raw if isinstance(g, str) and g.strip())
    if not isinstance(raw, str):
        return frozenset()
    text = raw.strip()
    if text.startswith("["):
        try:
            loaded = json.loads(text)
        except ValueError:
            loaded = None
        if isinstance(loaded, list):
            return parse_groups(loaded)
        text = text[1:-1] if text.endswith("]") else text[1:]
    return frozenset(t.strip("\"'") for t in re.split(r"[\s,]+", text) if t.strip("\"'"))


def identity_from_event(event: dict[str, Any]) -> Identity:
    """The caller, from the JWT authorizer's claims. Raises UnauthorizedError when they are missing or malformed."""
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    jwt = authorizer.get("jwt") if isinstance(authorizer, dict) else None
    claims = jwt.get("claims") if isinstance(jwt, dict) else None
    if not isinstance(claims, dict) or not claims:
        raise UnauthorizedError("no token: send a bearer token from the stackherd user pool", rule="missing")
    user = claims.get("cognito:username") or claims.get("sub")
    try:
        user = validate_owner(user if isinstance(user, str) else "")
    except ConfigError:
        raise UnauthorizedError("the token names no usable user (cognito:username or sub)", rule="user_claim") from None
    tenant = claims.get("custom:tenant_id")
    if tenant is not None and (not isinstance(tenant, str) or not _ID_RE.fullmatch(tenant)):
        raise UnauthorizedError("the token's custom:tenant_id is not a valid tenant id", rule="tenant_claim")
    return Identity(user=user, tenant_id=tenant, admin=ADMIN_GROUP in parse_groups(claims.get("cognito:groups")))


# --- the app ---------------------------------------------------------------------------------------

PUBLIC_ROUTES = frozenset({"/openapi.json", "/docs"})
Audience = Literal["public", "player", "admin", "unknown"]


def audience_of(route_path: str) -> Audience:
    if route_path in PUBLIC_ROUTES:
        return "public"
    if route_path == "/servers" or route_path.startswith("/servers/<"):
        return "player"
    if route_path == "/tenants" or route_path.startswith("/tenants/<"):
        return "admin"
    return "unknown"


def _decoded_body(event: Any) -> str | None:
    """The body as text, at most MAX_BODY_BYTES; raises BadRequestError for an oversized or undecodable one."""
    raw = event.body
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise BadRequestError("the body must be JSON text", field="body", rule="encoding")
    if len(raw) > MAX_BODY_BYTES * 2:  # cheap early refusal before decoding anything
        raise _too_large()
    if event.is_base64_encoded:
        try:
            data = base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise BadRequestError(
                "the body is flagged base64 but does not decode", field="body", rule="encoding"
            ) from None
    else:
        data = raw.encode("utf-8", "surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        raise _too_large()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("the body is not UTF-8 text", field="body", rule="encoding") from None


def _too_large() -> BadRequestError:
    return BadRequestError(
        f"the body is larger than {MAX_BODY_BYTES} bytes", field="body", rule="max_bytes", limit=MAX_BODY_BYTES
    )


def gate(app: EventHandlerInstance) -> None:
    """Authenticate, check the route's audience, then the body's size, media type, encoding and JSON.

    Runs before Powertools' validation, so an anonymous caller or a player on an admin route gets 401/403
    and never a validation error, and no body reaches a parser that could fail on it in an unplanned way.
    """
    event = app.current_event
    if _CONTROL_RE.search(event.path):
        # The router's `$` would match before a trailing newline and hand the route the id without it.
        field = next((f for pattern, f, _ in _SHAPES if f and pattern.match(event.path)), None) or "path"
        message = f"{field} {_FRIENDLY.get(field, 'may not contain control characters')}"
        raise UnprocessableError(message, field=field, location="path", rule="string_pattern_mismatch")
    route = app.context.get("_route")
    audience = audience_of(route.path if route is not None else "")
    if audience == "public":
        return
    if audience != "unknown":
        identity = identity_from_event(event.raw_event)
        logger.append_keys(user=identity.user, tenant_id=identity.tenant_id, admin=identity.admin)
        if audience == "admin" and not identity.admin:
            raise ForbiddenError("this route is for admins only")
        if audience == "player" and identity.tenant_id is None:
            raise UnauthorizedError("the token carries no custom:tenant_id", rule="tenant_claim")
        app.context["identity"] = identity
    if route is None or not route.dependant.body_params:
        return
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"send JSON with Content-Type: application/json, not {content_type[:60]!r}",
            field="Content-Type",
            location="header",
            rule="media_type",
        )
    text = _decoded_body(event)
    if text is None:
        event.__dict__["json_body"] = None
        return
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise BadRequestError("the body nests too deeply", field="body", rule="json_depth") from None
    except ValueError as error:
        raise BadRequestError(f"the body is not valid JSON: {error}", field="body", rule="json_invalid") from None
    if not isinstance(parsed, dict):
        raise UnprocessableError(
            f"the body must be a JSON object, not {type(parsed).__name__}", field="body", rule="object_type"
        )
    # Powertools reads `json_body` (a cached property); hand it the document already parsed.
    event.__dict__["json_body"] = parsed


class GatedValidationMiddleware(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, with `gate` in front of it."""

    def __init__(self) -> None:
        """Nothing to set up: the parent keeps no state."""

    def handler(self, app: EventHandlerInstance, next_middleware: NextMiddleware) -> Response[Any]:
        gate(app)
        return super().handler(app, next_middleware)


app = APIGatewayHttpResolver(enable_validation=True)
# The request validation middleware always runs first in Powertools; putting the gate inside it is what
# lets authentication and the body checks run before any validation.
app._request_validation_middleware = GatedValidationMiddleware()


def _request_id() -> str | None:
    try:
        context = app.current_event.raw_event.get("requestContext") or {}
    except AttributeError:
        return None
    value = context.get("requestId") if isinstance(context, dict) else None
    return value if isinstance(value, str) else None


def _error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """The one place an error becomes an HTTP response."""
    status = int(status)
    body = {"code": code, "message": message, "details": details or [], "request_id": _request_id()}
    if status >= 500:
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="Rejections", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=f"Rejections{status}", unit=MetricUnit.Count, value=1)
    logger.info("request rejected" if status < 500 else "request failed", status=status, code=code, error=message)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers or None)


_LOCATIONS = {"path", "query", "header", "body", "cookie"}
_FRIENDLY = {
    "tenant_id": "must be 1-40 lowercase letters, digits or inner hyphens (for example 'acme')",
    "gameserver_id": "must be 1-40 lowercase letters, digits or inner hyphens (for example 'alpha-1')",
}


ErrorHandler = Callable[[Any], Response[Any]]


def _handles(*classes: type[Exception]) -> Callable[[ErrorHandler], ErrorHandler]:
    """Register an exception handler (Powertools' own decorator is untyped)."""

    def register(fn: ErrorHandler) -> ErrorHandler:
        cast(Any, app).exception_handler(list(classes))(fn)
        return fn

    return register


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    details = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        location = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        parts = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        field = ".".join(parts) or location
        rule = str(error.get("type", "invalid"))
        message = str(error.get("msg") or rule)
        if rule == "string_pattern_mismatch" and parts and parts[-1] in _FRIENDLY:
            message = _FRIENDLY[parts[-1]]
        elif rule == "missing":
            message = "required"
        elif rule == "value_error":
            message = message.removeprefix("Value error, ")
        details.append({"field": field, "location": location, "rule": rule, "message": message})
    return details


@_handles(ApiError)
def _on_api_error(error: ApiError) -> Response[Any]:
    return _error_response(error.status, error.code, error.message, error.details, error.headers)


@_handles(RequestValidationError)
def _on_invalid_request(error: RequestValidationError) -> Response[Any]:
    if any(str((e.get("loc") or ("",))[0]) == "response" for e in error.errors()):
        # Powertools reports a response that does not match its model this way: our defect, not the caller's.
        logger.error("a response did not match its schema", errors=str(error.errors())[:2000])
        return _error_response(500, "InternalError", "internal error; quote the request id when reporting it")
    details = _validation_details(error.errors())
    if any(d["rule"] == "json_invalid" for d in details):
        return _error_response(400, "BadRequest", "the body is not valid JSON", details)
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return _error_response(422, "ValidationFailed", summary or "the request is invalid", details)


@_handles(RequestUnsupportedContentType)
def _on_content_type(error: RequestUnsupportedContentType) -> Response[Any]:
    return _error_response(415, "UnsupportedMediaType", "send JSON with Content-Type: application/json")


@_handles(ConfigError)
def _on_config_error(error: ConfigError) -> Response[Any]:
    detail: dict[str, Any] = {
        "field": error.field or "body",
        "location": "body",
        "rule": error.rule,
        "message": str(error),
    }
    if error.limit is not None:
        detail["limit"] = error.limit
    return _error_response(422, "ValidationFailed", str(error), [detail])


@_handles(QuotaExceededError)
def _on_quota(error: QuotaExceededError) -> Response[Any]:
    detail = {
        "field": "tier",
        "location": "tenant",
        "rule": "tier_max_servers",
        "message": str(error),
        "limit": error.limit,
    }
    return _error_response(409, "QuotaExceeded", str(error), [detail])


@_handles(NotFoundError)
def _on_not_found(error: NotFoundError) -> Response[Any]:
    return _error_response(404, "NotFound", str(error))


@_handles(PreconditionFailedError)
def _on_precondition(error: PreconditionFailedError) -> Response[Any]:
    headers = {"ETag": etag(error.current)} if error.current is not None else None
    detail = {"field": "If-Match", "location": "header", "rule": "etag_mismatch", "message": str(error)}
    return _error_response(412, "PreconditionFailed", str(error), [detail], headers)


@_handles(ConflictError)
def _on_conflict(error: ConflictError) -> Response[Any]:
    return _error_response(409, "Conflict", str(error))


# The API's paths, with any non-empty segment where an id goes. A request that matched no route but has one of
# these shapes either names a method the path does not have (405) or carries an id that is not even a path
# segment the router accepts (422, like any other invalid id).
_SHAPES: tuple[tuple[re.Pattern[str], str | None, frozenset[str]], ...] = tuple(
    (re.compile(pattern), field, frozenset(methods))
    for pattern, field, methods in (
        (r"^/servers$", None, {"GET"}),
        (r"^/servers/([^/]*)$", "gameserver_id", {"GET", "PUT", "PATCH", "DELETE"}),
        (r"^/servers/([^/]*)/history$", "gameserver_id", {"GET"}),
        (r"^/tenants$", None, {"GET", "POST"}),
        (r"^/tenants/([^/]*)$", "tenant_id", {"GET", "PATCH"}),
        (r"^/tenants/([^/]*)/servers$", "tenant_id", {"GET"}),
        (r"^/tenants/([^/]*)/plan$", "tenant_id", {"GET"}),
        (r"^/tenants/([^/]*)/reconcile$", "tenant_id", {"POST"}),
    )
)


@_handles(RouteNotFoundError)
def _on_no_route(error: RouteNotFoundError) -> Response[Any]:
    event = app.current_event
    method = event.http_method.upper()
    for pattern, field, methods in _SHAPES:
        if not pattern.match(event.path):
            continue
        if method not in methods:
            allowed = ", ".join(sorted(methods))
            return _error_response(
                405, "MethodNotAllowed", f"{method} is not allowed here; use {allowed}", headers={"Allow": allowed}
            )
        if field is not None:
            message = f"{field} {_FRIENDLY[field]}"
            detail = {"field": field, "location": "path", "rule": "string_pattern_mismatch", "message": message}
            return _error_response(422, "ValidationFailed", message, [detail])
    return _error_response(404, "NotFound", "no such route: see GET /openapi.json")


@_handles(Exception)
def _on_unexpected(error: Exception) -> Response[Any]:
    from reconciler.errors import StoreError

    if isinstance(error, StoreError):
        logger.warning("store unavailable", error=str(error))
        return _error_response(
            503, "ServiceUnavailable", "the store is unavailable; retry shortly", headers={"Retry-After": "2"}
        )
    logger.exception("unhandled error")
    return _error_response(500, "InternalError", "internal error; quote the request id when reporting it")


# --- helpers ---------------------------------------------------------------------------------------


def _store() -> DynamoStore:
    from handlers.runtime import runtime

    return runtime().store


def _now() -> datetime:
    return datetime.now(UTC)


def _identity() -> Identity:
    identity = app.context.get("identity")
    if not isinstance(identity, Identity):  # the gate always sets it for player and admin routes
        raise UnauthorizedError("no token: send a bearer token from the stackherd user pool", rule="missing")
    return identity


def _player_tenant(identity: Identity) -> Tenant:
    assert identity.tenant_id is not None  # the gate refuses player routes without a tenant claim
    tenant = _store().get_tenant(identity.tenant_id)
    if tenant is None:
        raise ForbiddenError(
            f"tenant {identity.tenant_id!r} in your token is not registered; ask an admin",
            field="custom:tenant_id",
            location="token",
            rule="tenant_registered",
        )
    return tenant


def _own_server(tenant: Tenant, identity: Identity, gameserver_id: str) -> DesiredServer:
    """The caller's server; another player's server is reported exactly like a missing one."""
    server = _store().get_server(tenant.tenant_id, gameserver_id)
    if server is None or server.username != identity.user:
        raise ApiNotFoundError(f"game server {gameserver_id!r} not found")
    return server


def _admin_tenant(tenant_id: str) -> Tenant:
    tenant = _store().get_tenant(tenant_id)
    if tenant is None:
        raise ApiNotFoundError(f"tenant {tenant_id!r} not found")
    return tenant


def etag(generation: int) -> str:
    return f'"{generation}"'


_ETAG_RE = re.compile(r'^(?:W/)?(?:"([0-9]{1,12})"|([0-9]{1,12}))$')


def parse_if_match(value: str | None) -> set[int] | Literal["*"] | None:
    """`If-Match`: `*`, or one or more generations as ETags (`"3"`, `W/"3"`, or a bare `3`)."""
    if value is None:
        return None
    text = value.strip()
    if text == "*":
        return "*"
    found: set[int] = set()
    for part in text.split(","):
        match = _ETAG_RE.match(part.strip())
        if match is None:
            raise BadRequestError(
                'If-Match must be "*" or the ETag of a read, for example "3"',
                field="If-Match",
                location="header",
                rule="etag_format",
            )
        found.add(int(match.group(1) or match.group(2)))
    return found


def _check_if_match(
    expected: set[int] | Literal["*"] | None, current: DesiredServer | None, gameserver_id: str
) -> None:
    if expected is None:
        return
    if current is None:
        raise ApiPreconditionError(
            f"game server {gameserver_id!r} does not exist; drop If-Match to create it",
            field="If-Match",
            location="header",
            rule="etag_mismatch",
        )
    if expected != "*" and current.generation not in expected:
        raise ApiPreconditionError(
            f"game server {gameserver_id!r} is at generation {current.generation}, not the one in If-Match; "
            "read it again and retry",
            field="If-Match",
            location="header",
            rule="etag_mismatch",
            headers={"ETag": etag(current.generation)},
        )


def _refuse_if_deleting(server: DesiredServer) -> None:
    if server.deletion_requested:
        raise ApiConflictError(
            f"game server {server.gameserver_id!r} is being deleted; create it again once it is gone",
            field="gameserver_id",
            location="path",
            rule="deleting",
        )


def _log_activity(server: DesiredServer, kind: str, message: str, actor: str) -> None:
    """Best effort: the write has happened; a missing history line must not turn it into an error."""
    try:
        _store().append_activity(
            server.tenant_id, server.gameserver_id, kind, message, server.generation, _now(), actor=actor
        )
    except Exception:
        logger.exception("could not append to the activity log")


def _config_text(config: GameServerConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.model_dump().items())


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def server_view(server: DesiredServer, tenant: Tenant | None) -> dict[str, Any]:
    status = server.status
    region = server.region or (tenant.primary_region if tenant is not None else "")
    return _drop_none(
        {
            "tenant_id": server.tenant_id,
            "gameserver_id": server.gameserver_id,
            "username": server.username,
            "config": server.config.model_dump(),
            "region": region,
            "generation": server.generation,
            "created_at": server.created_at,
            "updated_at": server.updated_at or server.created_at,
            "deletion_requested": server.deletion_requested,
            "status": _drop_none(
                {
                    "phase": status.phase.value,
                    "observed_generation": status.observed_generation,
                    "conditions": [
                        _drop_none(
                            {
                                "type": c.type,
                                "status": c.status,
                                "reason": c.reason,
                                "message": c.message,
                                "last_transition_time": c.last_transition_time or None,
                            }
                        )
                        for c in status.conditions
                    ],
                    "stack_id": status.stack_id,
                    "stack_status": status.stack_status,
                    "last_error": status.last_error,
                    "next_retry_at": status.next_retry_at,
                    "drift": status.drift,
                }
            ),
            "config_error": server.config_error,
        }
    )


def tenant_view(tenant: Tenant, state: TenantState | None = None) -> dict[str, Any]:
    limits = TIERS.get(tenant.tier) or tier_limits("standard")
    reconciler: dict[str, Any] = {}
    if state is not None and state.deletion_brake.held:
        brake = state.deletion_brake
        reconciler["deletion_brake"] = {
            "held": len(brake.held),
            "held_since": brake.held_since,
            "held_servers": sorted(h.gameserver_id for h in brake.held),
        }
    if state is not None and state.region_quarantine:
        reconciler["quarantined_regions"] = state.quarantined_regions()
    return _drop_none(
        {
            **reconciler,
            "tenant_id": tenant.tenant_id,
            "account_id": tenant.account_id,
            "regions": list(tenant.regions),
            "role_arn": tenant.role_arn,
            "external_id": tenant.external_id,
            "tier": tenant.tier,
            "limits": {"max_servers": limits.max_servers, "max_player_count": limits.max_player_count},
            "template_version": tenant.template_version,
            "paused": tenant.paused,
            "quarantined": tenant.quarantined,
            "quarantined_at": tenant.quarantined_at,
        }
    )


def _server_response(server: DesiredServer, tenant: Tenant, status: int = 200) -> Response[dict[str, Any]]:
    headers = {"ETag": etag(server.generation)}
    if status == 201:
        headers["Location"] = f"/servers/{server.gameserver_id}"
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=server_view(server, tenant),
        headers=headers,
    )


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


# Pagination tokens are opaque to callers: a kind and a position, base64url-encoded. They carry no tenant or
# user: those always come from the token and the path, so a forged token can only move within the caller's
# own listing.
_HISTORY_POSITION = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,20}Z#[0-9a-f]{8}$")


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
    valid = _HISTORY_POSITION if kind == "history" else _ID_RE
    if not isinstance(position, str) or not valid.fullmatch(position):
        raise BadRequestError(
            "next_token is not one this listing returned; start again without it",
            field="next_token",
            location="query",
            rule="token_invalid",
        )
    return position


def _responses(ok: dict[int, tuple[str, Any]], errors: dict[int, str]) -> dict[int, OpenAPIResponse]:
    """The documented responses of a route: its success bodies, then its errors (all `ErrorBody`)."""
    documented: dict[int, OpenAPIResponse] = {
        code: {"description": text, "content": {"application/json": {"model": model}}}
        for code, (text, model) in ok.items()
    }
    for code, text in errors.items():
        documented[code] = {"description": text, "content": {"application/json": {"model": ErrorBody}}}
    return documented


_AUTH = {401: "missing or malformed token claims"}
_PLAYER_ERRORS = {**_AUTH, 403: "the token's tenant is not registered", 422: "invalid input"}
_ADMIN_ERRORS = {**_AUTH, 403: "not an admin", 422: "invalid input"}
_BODY_ERRORS = {
    400: "the body is not JSON, not UTF-8, or larger than 16 KiB",
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
TenantId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=40, description="a registered tenant's id", examples=["acme"])
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=200,
        description='the ETag of a read ("3"): the write happens only if the server is still at that generation',
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")]
NextToken = Annotated[str | None, Query(max_length=512, description="the next_token of the previous page")]
ConfirmDeletions = Annotated[
    bool, Query(description="let this pass delete more stacks than the per-pass deletion brake allows")
]


# --- public routes ---------------------------------------------------------------------------------


@functools.cache
def openapi_document() -> str:
    """The OpenAPI 3 document of this API (what `GET /openapi.json` serves and docs/openapi.json holds)."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Tag

    document = json.loads(
        app.get_openapi_json_schema(
            title="stackherd API",
            version=API_VERSION,
            description=(
                "Players manage their own game servers; admins manage tenants and force reconciles. "
                "Writes only change desired state in DynamoDB; the reconciler converges CloudFormation. "
                "Send the Cognito ID token as a bearer token."
            ),
            tags=[
                Tag(name="servers", description="a player's own game servers (tenant from the token)"),
                Tag(name="tenants", description="admin only: tenants, their servers, plans and reconciles"),
            ],
            security_schemes={"cognito": HTTPBearer(bearerFormat="JWT", description="Cognito ID token")},
            security=[{"cognito": []}],
        )
    )
    _prune_schemas(document)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _prune_schemas(document: dict[str, Any]) -> None:
    """Drop component schemas nothing refers to (Powertools adds its own error shapes, which we replace)."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    while True:
        text = json.dumps(document)
        unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


@app.get("/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_document())


@app.get("/docs", include_in_schema=False)
def get_docs() -> Response[str]:
    from pathlib import Path as FilePath

    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    assets = FilePath(generate_swagger_html.__code__.co_filename).parent
    html = generate_swagger_html(
        openapi_document().replace("</", "<\\/"),
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        "",
        None,
    )
    return Response(status_code=200, content_type="text/html", body=html)


# --- player routes ---------------------------------------------------------------------------------


@app.put(
    "/servers/<gameserver_id>",
    summary="Create or replace a game server",
    description=(
        "201 when created, 200 when replaced. Repeating the same PUT changes nothing (the generation stays). "
        "With If-Match, the write happens only at that generation (412 otherwise)."
    ),
    tags=["servers"],
    responses=_responses(
        {200: ("replaced (or unchanged)", ServerView), 201: ("created", ServerView)},
        {
            **_PLAYER_ERRORS,
            **_BODY_ERRORS,
            404: "the id belongs to another player's server",
            409: "the tenant's tier allows no more servers, or the server is being deleted",
            412: "If-Match does not match the current generation",
        },
    ),
)
def put_server(
    gameserver_id: GameServerId, body: Annotated[ServerPut, Body()], if_match: IfMatch = None
) -> Response[ServerView]:
    identity = _identity()
    tenant = _player_tenant(identity)
    expected = parse_if_match(if_match)
    current = _store().get_server(tenant.tenant_id, gameserver_id)
    if current is not None and current.username != identity.user:
        raise ApiNotFoundError(f"game server {gameserver_id!r} not found")
    _check_if_match(expected, current, gameserver_id)
    if current is not None:
        _refuse_if_deleting(current)
    check_region(tenant, body.region)
    check_tier(body.config, tenant.tier)
    if current is None:
        check_server_quota(_store(), tenant)
    result = _write(
        lambda: _store().put_server(
            tenant.tenant_id,
            gameserver_id,
            identity.user,
            body.config,
            _now(),
            # Left out: where the server is (a replace does not move it), or the primary region for a new one,
            # pinned so that reordering the tenant's regions never moves a running server.
            region=body.region or (current.region if current is not None else tenant.primary_region),
            expected_generation=current.generation if current is not None else None,
        ),
        gameserver_id,
        if_match,
    )
    if result.changed:
        verb = "created" if result.created else "replaced"
        _log_activity(result.server, "desired", f"{verb}: {_config_text(result.server.config)}", identity.user)
    return _server_response(result.server, tenant, 201 if result.created else 200)  # type: ignore[return-value]


def _write(fn: Callable[[], WriteResult], gameserver_id: str, if_match: str | None) -> WriteResult:
    """Run a conditional write. Losing a race to another writer is a 412 when the caller gave If-Match (their
    precondition no longer holds), otherwise a 409 asking them to read again and retry."""
    try:
        return fn()
    except PreconditionFailedError:
        if if_match is not None:
            raise
        raise ApiConflictError(
            f"game server {gameserver_id!r} was changed by another request; read it again and retry",
            field="gameserver_id",
            location="path",
            rule="concurrent_write",
        ) from None


@app.patch(
    "/servers/<gameserver_id>",
    summary="Change some config keys or the region of a game server",
    tags=["servers"],
    responses=_responses(
        {200: ("changed (or unchanged)", ServerView)},
        {
            **_PLAYER_ERRORS,
            **_BODY_ERRORS,
            404: "no such server of yours",
            409: "the server is being deleted, or changed concurrently",
            412: "If-Match does not match the current generation",
        },
    ),
)
def patch_server(
    gameserver_id: GameServerId, body: Annotated[ServerPatch, Body()], if_match: IfMatch = None
) -> Response[ServerView]:
    identity = _identity()
    tenant = _player_tenant(identity)
    expected = parse_if_match(if_match)
    current = _own_server(tenant, identity, gameserver_id)
    _check_if_match(expected, current, gameserver_id)
    _refuse_if_deleting(current)
    changes = body.config.model_dump(exclude_unset=True) if body.config is not None else {}
    config = GameServerConfig.model_validate({**current.config.model_dump(), **changes})
    region = body.region if body.region is not None else current.region
    check_region(tenant, body.region)
    check_tier(config, tenant.tier)
    result = _write(
        lambda: _store().put_server(
            tenant.tenant_id,
            gameserver_id,
            identity.user,
            config,
            _now(),
            region=region,
            expected_generation=current.generation,
        ),
        gameserver_id,
        if_match,
    )
    if result.changed:
        _log_activity(result.server, "desired", f"changed: {_config_text(result.server.config)}", identity.user)
    return _server_response(result.server, tenant)  # type: ignore[return-value]


@app.get(
    "/servers",
    summary="List your game servers",
    tags=["servers"],
    responses=_responses(
        {200: ("one page of your servers, in id order", ServerPage)},
        {**_PLAYER_ERRORS, 400: "next_token is not one this listing returned"},
    ),
)
def list_servers(limit: Limit = DEFAULT_PAGE, next_token: NextToken = None) -> Response[ServerPage]:
    identity = _identity()
    tenant = _player_tenant(identity)
    after = decode_token("servers", next_token)
    servers, last = _store().page_servers(tenant.tenant_id, username=identity.user, limit=limit, after=after)
    body: dict[str, Any] = {"items": [server_view(s, tenant) for s in servers]}
    if last is not None:
        body["next_token"] = encode_token("servers", last)
    return _json(body)  # type: ignore[return-value]


@app.get(
    "/servers/<gameserver_id>",
    summary="Read one of your game servers: desired config, generation and status",
    tags=["servers"],
    responses=_responses({200: ("the server", ServerView)}, {**_PLAYER_ERRORS, 404: "no such server of yours"}),
)
def get_server(gameserver_id: GameServerId) -> Response[ServerView]:
    identity = _identity()
    tenant = _player_tenant(identity)
    return _server_response(_own_server(tenant, identity, gameserver_id), tenant)  # type: ignore[return-value]


@app.delete(
    "/servers/<gameserver_id>",
    summary="Ask for a game server to be deleted",
    description="202: the record shows phase Deleting until the reconciler has deleted the stack and the record.",
    tags=["servers"],
    responses=_responses(
        {202: ("deletion requested; the record shows phase Deleting", ServerView)},
        {**_PLAYER_ERRORS, 404: "no such server of yours", 412: "If-Match does not match the current generation"},
    ),
)
def delete_server(gameserver_id: GameServerId, if_match: IfMatch = None) -> Response[ServerView]:
    identity = _identity()
    tenant = _player_tenant(identity)
    expected = parse_if_match(if_match)
    current = _own_server(tenant, identity, gameserver_id)
    _check_if_match(expected, current, gameserver_id)
    result = _write(
        lambda: _store().request_deletion(
            tenant.tenant_id, gameserver_id, _now(), expected_generation=current.generation
        ),
        gameserver_id,
        if_match,
    )
    if result.changed:
        _log_activity(result.server, "desired", "deletion requested", identity.user)
    return _server_response(result.server, tenant, 202)  # type: ignore[return-value]


@app.get(
    "/servers/<gameserver_id>/history",
    summary="What happened to one of your game servers, newest first",
    tags=["servers"],
    responses=_responses(
        {200: ("one page of history, newest first", HistoryPage)},
        {**_PLAYER_ERRORS, 400: "next_token is not one this listing returned", 404: "no such server of yours"},
    ),
)
def get_history(gameserver_id: GameServerId, limit: Limit = 50, next_token: NextToken = None) -> Response[HistoryPage]:
    identity = _identity()
    tenant = _player_tenant(identity)
    server = _own_server(tenant, identity, gameserver_id)
    after = decode_token("history", next_token)
    items, _ = _store().history(server.tenant_id, server.gameserver_id, limit=limit + 1, cursor=after)
    page = items[:limit]
    body: dict[str, Any] = {
        "items": [
            _drop_none(
                {
                    "at": item.at.split("#", 1)[0],
                    "kind": item.kind,
                    "message": item.message,
                    "generation": int(item.generation) if item.generation is not None else None,
                    "actor": item.actor,
                }
            )
            for item in page
        ]
    }
    if len(items) > limit:
        body["next_token"] = encode_token("history", page[-1].at)
    return _json(body)  # type: ignore[return-value]


# --- admin routes ----------------------------------------------------------------------------------


@app.get(
    "/tenants",
    summary="List tenants",
    tags=["tenants"],
    responses=_responses({200: ("every tenant", TenantList)}, _ADMIN_ERRORS),
)
def list_tenants() -> Response[TenantList]:
    return _json({"items": [tenant_view(t) for t in _store().list_tenants()]})  # type: ignore[return-value]


@app.post(
    "/tenants",
    summary="Register a tenant",
    description="201 with the tenant, including the external id its execution role must require.",
    tags=["tenants"],
    responses=_responses(
        {201: ("registered", TenantView)},
        {**_ADMIN_ERRORS, **_BODY_ERRORS, 409: "the tenant is already registered, or its account is another tenant's"},
    ),
)
def create_tenant(body: Annotated[TenantSpec, Body()]) -> Response[TenantView]:
    _identity()
    tenant = tenant_from_spec(body)
    check_regions_usable(tenant.regions, tenant.role_arn)
    try:
        check_account_free(_store(), tenant)
    except AccountTakenError as error:
        raise ApiConflictError(str(error), field="account_id", rule="account_taken") from None
    if not _store().create_tenant(tenant, _now()):
        raise ApiConflictError(
            f"tenant {tenant.tenant_id!r} is already registered; change it with PATCH /tenants/{tenant.tenant_id}",
            field="tenant_id",
            rule="unique",
        )
    return _json(tenant_view(tenant), 201, {"Location": f"/tenants/{tenant.tenant_id}"})  # type: ignore[return-value]


@app.get(
    "/tenants/<tenant_id>",
    summary="Read a tenant",
    tags=["tenants"],
    responses=_responses({200: ("the tenant", TenantView)}, {**_ADMIN_ERRORS, 404: "no such tenant"}),
)
def get_tenant(tenant_id: TenantId) -> Response[TenantView]:
    tenant = _admin_tenant(tenant_id)
    return _json(tenant_view(tenant, _store().get_tenant_state(tenant_id)))  # type: ignore[return-value]


@app.patch(
    "/tenants/<tenant_id>",
    summary="Change a tenant's tier, template version, regions or paused flag",
    tags=["tenants"],
    responses=_responses(
        {200: ("the changed tenant", TenantView)},
        {
            **_ADMIN_ERRORS,
            **_BODY_ERRORS,
            404: "no such tenant",
            409: "the new regions drop one that some of the tenant's game servers are in",
        },
    ),
)
def patch_tenant(tenant_id: TenantId, body: Annotated[TenantPatch, Body()]) -> Response[TenantView]:
    identity = _identity()
    changes = body.model_dump(exclude_unset=True)
    if changes.get("regions") is not None:
        check_regions_usable(changes["regions"], _admin_tenant(tenant_id).role_arn)
        try:
            check_regions_removable(_store(), _admin_tenant(tenant_id), changes["regions"])
        except RegionInUseError as error:
            raise ApiConflictError(str(error), field="regions", rule="region_in_use") from None
    tenant = _store().update_tenant(tenant_id, **changes)
    if tenant is None:
        raise ApiNotFoundError(f"tenant {tenant_id!r} not found")
    logger.info("tenant changed", changed_tenant=tenant_id, changes=changes, by=identity.user)
    return _json(tenant_view(tenant))  # type: ignore[return-value]


@app.get(
    "/tenants/<tenant_id>/servers",
    summary="List a tenant's game servers (every player's)",
    tags=["tenants"],
    responses=_responses(
        {200: ("one page of the tenant's servers, in id order", ServerPage)},
        {**_ADMIN_ERRORS, 400: "next_token is not one this listing returned", 404: "no such tenant"},
    ),
)
def list_tenant_servers(
    tenant_id: TenantId, limit: Limit = DEFAULT_PAGE, next_token: NextToken = None
) -> Response[ServerPage]:
    tenant = _admin_tenant(tenant_id)
    after = decode_token("servers", next_token)
    servers, last = _store().page_servers(tenant.tenant_id, limit=limit, after=after)
    body: dict[str, Any] = {"items": [server_view(s, tenant) for s in servers]}
    if last is not None:
        body["next_token"] = encode_token("servers", last)
    return _json(body)  # type: ignore[return-value]


@app.get(
    "/tenants/<tenant_id>/plan",
    summary="Dry run: what a reconcile of this tenant would do now",
    description="Observes the tenant's stacks and plans; changes nothing. An unreachable account is reported in "
    "`error`, not as an HTTP error.",
    tags=["tenants"],
    responses=_responses({200: ("the plan: actions and diffs", PlanView)}, {**_ADMIN_ERRORS, 404: "no such tenant"}),
)
def plan_tenant(tenant_id: TenantId, confirm_deletions: ConfirmDeletions = False) -> Response[PlanView]:
    from handlers.runtime import runtime

    _admin_tenant(tenant_id)
    result = runtime().engine.reconcile_tenant(tenant_id, dry_run=True, confirm_deletions=confirm_deletions)
    return _json(result.to_dict())  # type: ignore[return-value]


@app.post(
    "/tenants/<tenant_id>/reconcile",
    summary="Reconcile this tenant now and return the actions taken",
    tags=["tenants"],
    responses=_responses({200: ("the actions taken", PlanView)}, {**_ADMIN_ERRORS, 404: "no such tenant"}),
)
def reconcile_tenant(tenant_id: TenantId, confirm_deletions: ConfirmDeletions = False) -> Response[PlanView]:
    from handlers.runtime import runtime

    identity = _identity()
    _admin_tenant(tenant_id)
    rt = runtime()
    result = rt.engine.reconcile_tenant(tenant_id, confirm_deletions=confirm_deletions)
    body = result.to_dict()
    try:
        body["requeued"] = rt.requeue(tenant_id, result.requeue)
    except Exception:  # the sweep is the backstop for a lost requeue
        logger.exception("could not requeue", reconciled_tenant=tenant_id)
        body["requeued"] = 0
    logger.info("tenant reconciled by an admin", reconciled_tenant=tenant_id, by=identity.user, ok=result.ok)
    return _json(body)  # type: ignore[return-value]


# --- the Lambda entry point ------------------------------------------------------------------------


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    response = app.resolve(event, context)
    http = (event.get("requestContext") or {}).get("http") or {}
    logger.info(
        "request",
        method=http.get("method"),
        path=event.get("rawPath"),
        status=response.get("statusCode"),
    )
    return response


if __name__ == "__main__":
    import sys

    sys.stdout.write(openapi_document())
