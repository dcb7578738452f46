"""Every error the API can answer with, and the one table that maps an exception to its HTTP status and code.

Routes, the gate and Powertools' validation only raise; `problem_for` turns whatever was raised into the
status, code, message and details of an `ErrorBody`, and nothing else in the API picks a status for an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from models.config import ConfigError, WeakSecretError
from reconciler.desired import etag
from reconciler.errors import StoreError
from reconciler.rollouts import RolloutConflictError
from reconciler.writes import (
    ConflictError,
    NotFoundError,
    NotOwnedError,
    PreconditionFailedError,
    QuotaExceededError,
    RateLimitedError,
)


class ApiError(Exception):
    """An error raised anywhere in a request; its class decides the status (see `STATUS`)."""

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
        self.field = field
        self.location = location
        self.rule = rule
        self.limit = limit
        self.headers = headers or {}


class BadRequestError(ApiError):
    pass


class UnauthorizedError(ApiError):
    def __init__(self, message: str, *, rule: str = "claims") -> None:
        super().__init__(
            message,
            field="token",
            location="token",
            rule=rule,
            headers={"WWW-Authenticate": 'Bearer realm="stackherd"'},
        )


class ForbiddenError(ApiError):
    pass


class ApiNotFoundError(ApiError):
    pass


class MethodNotAllowedError(ApiError):
    pass


class ApiConflictError(ApiError):
    pass


class ApiPreconditionError(ApiError):
    pass


class UnsupportedMediaTypeError(ApiError):
    pass


class UnprocessableError(ApiError):
    pass


class ServiceUnavailableError(ApiError):
    """A collaborator the request needs (the work queue, the tenant worker) cannot be reached now."""


#: The one exception -> (status, code) table. Looked up along the raised exception's class hierarchy, so
#: the most specific entry wins; anything not listed is a 500.
STATUS: dict[type[BaseException], tuple[HTTPStatus, str]] = {
    BadRequestError: (HTTPStatus.BAD_REQUEST, "BadRequest"),
    UnauthorizedError: (HTTPStatus.UNAUTHORIZED, "Unauthorized"),
    ForbiddenError: (HTTPStatus.FORBIDDEN, "Forbidden"),
    ApiNotFoundError: (HTTPStatus.NOT_FOUND, "NotFound"),
    NotFoundError: (HTTPStatus.NOT_FOUND, "NotFound"),
    RouteNotFoundError: (HTTPStatus.NOT_FOUND, "NotFound"),
    MethodNotAllowedError: (HTTPStatus.METHOD_NOT_ALLOWED, "MethodNotAllowed"),
    ApiConflictError: (HTTPStatus.CONFLICT, "Conflict"),
    ConflictError: (HTTPStatus.CONFLICT, "Conflict"),
    # Another player's server is reported exactly like a missing one (404, never 403 or 409).
    NotOwnedError: (HTTPStatus.NOT_FOUND, "NotFound"),
    QuotaExceededError: (HTTPStatus.CONFLICT, "QuotaExceeded"),
    ApiPreconditionError: (HTTPStatus.PRECONDITION_FAILED, "PreconditionFailed"),
    PreconditionFailedError: (HTTPStatus.PRECONDITION_FAILED, "PreconditionFailed"),
    UnsupportedMediaTypeError: (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType"),
    RequestUnsupportedContentType: (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType"),
    UnprocessableError: (HTTPStatus.UNPROCESSABLE_ENTITY, "ValidationFailed"),
    ConfigError: (HTTPStatus.UNPROCESSABLE_ENTITY, "ValidationFailed"),
    # A secret too weak to accept is refused outright, saying how long and of which characters it must be.
    WeakSecretError: (HTTPStatus.BAD_REQUEST, "BadRequest"),
    RolloutConflictError: (HTTPStatus.CONFLICT, "Conflict"),
    RequestValidationError: (HTTPStatus.UNPROCESSABLE_ENTITY, "ValidationFailed"),
    StoreError: (HTTPStatus.SERVICE_UNAVAILABLE, "ServiceUnavailable"),
    ServiceUnavailableError: (HTTPStatus.SERVICE_UNAVAILABLE, "ServiceUnavailable"),
    RateLimitedError: (HTTPStatus.TOO_MANY_REQUESTS, "TooManyRequests"),
}
INTERNAL = (HTTPStatus.INTERNAL_SERVER_ERROR, "InternalError")
INTERNAL_MESSAGE = "internal error; quote the request id when reporting it"


def status_of(error: BaseException) -> tuple[HTTPStatus, str]:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return INTERNAL


@dataclass(frozen=True)
class Problem:
    """What an error response says: its status and the fields of an `ErrorBody` (but the request id)."""

    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def problem_for(error: BaseException) -> Problem:
    """The response an exception becomes. Messages of unexpected errors are never shown to the caller."""
    status, code = status_of(error)
    message, details, headers = _describe(error)
    if isinstance(error, RequestValidationError):
        if any(str((e.get("loc") or ("",))[0]) == "response" for e in error.errors()):
            # Powertools reports a response that does not match its model this way: our defect, not the caller's.
            status, code = INTERNAL
            return Problem(int(status), code, INTERNAL_MESSAGE)
        if any(d["rule"] == "json_invalid" for d in details):
            status, code, message = HTTPStatus.BAD_REQUEST, "BadRequest", "the body is not valid JSON"
    if (status, code) == INTERNAL:
        message, details, headers = INTERNAL_MESSAGE, [], {}
    return Problem(int(status), code, message, details, headers)


def _describe(error: BaseException) -> tuple[str, list[dict[str, Any]], dict[str, str]]:
    """The message, details and headers of a known error."""
    if isinstance(error, ApiError):
        if error.field is None:
            return error.message, [], error.headers
        rule = error.rule or status_of(error)[1]
        return error.message, [_detail(error.field, error.location, rule, error.message, error.limit)], error.headers
    if isinstance(error, RequestValidationError):
        details = validation_details(error.errors())
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        return summary or "the request is invalid", details, {}
    if isinstance(error, RequestUnsupportedContentType):
        return "send JSON with Content-Type: application/json", [], {}
    if isinstance(error, ConfigError):
        return str(error), [_detail(error.field or "body", "body", error.rule, str(error), error.limit)], {}
    if isinstance(error, NotOwnedError):
        return f"game server {error.gameserver_id!r} not found", [], {}
    if isinstance(error, QuotaExceededError):
        return str(error), [_detail("tier", "tenant", "tier_max_servers", str(error), error.limit)], {}
    if isinstance(error, ConflictError):
        location = {"gameserver_id": "path", "tenant": "tenant"}.get(error.field, "body")
        return str(error), [_detail(error.field, location, error.rule, str(error))], {}
    if isinstance(error, PreconditionFailedError):
        headers = {"ETag": etag(error.current)} if error.current is not None else {}
        return str(error), [_detail("If-Match", "header", "etag_mismatch", str(error))], headers
    if isinstance(error, StoreError):
        return "the store is unavailable; retry shortly", [], {"Retry-After": "2"}
    if isinstance(error, RateLimitedError):
        wait = str(max(1, math.ceil(error.retry_after_s)))
        field, location = ("region", "body") if error.scope == "region_move" else (error.scope, "tenant")
        detail = _detail(field, location, f"rate_limit_{error.scope}", str(error))
        return str(error), [detail], {"Retry-After": wait}
    if isinstance(error, RouteNotFoundError):
        return "no such route: see GET /openapi.json", [], {}
    return str(error), [], {}


def _detail(field: str, location: str, rule: str, message: str, limit: int | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"field": field, "location": location, "rule": rule, "message": message}
    if limit is not None:
        detail["limit"] = limit
    return detail


_LOCATIONS = {"path", "query", "header", "body", "cookie"}
#: How to fix an id that does not match the id pattern.
FRIENDLY = {
    "tenant_id": "must be 1-40 lowercase letters, digits or inner hyphens (for example 'acme')",
    "gameserver_id": "must be 1-40 lowercase letters, digits or inner hyphens (for example 'alpha-1')",
    "rollout_id": "must be a rollout's id, as `GET /rollouts` lists them (for example 'ro-0123456789ab')",
}


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Powertools' (pydantic's) validation errors as `ErrorDetail`s: a dotted field, where it was, the rule."""
    details = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        location = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        parts = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        field = ".".join(parts) or location
        rule = str(error.get("type", "invalid"))
        message = str(error.get("msg") or rule)
        if rule == "string_pattern_mismatch" and parts and parts[-1] in FRIENDLY:
            message = FRIENDLY[parts[-1]]
        elif rule == "missing":
            message = "required"
        elif rule == "value_error":
            message = message.removeprefix("Value error, ")
        details.append({"field": field, "location": location, "rule": rule, "message": message})
    return details
