"""The door: what is checked on the raw request before it reaches Powertools' routing and validation.

Authentication, the audience of the path, then the body's size, media type, encoding and JSON (duplicate
keys included). Runs before validation, so an anonymous caller or a player on an admin route gets 401/403
and never a validation error, and no body reaches a parser that could fail on it in an unplanned way.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handlers.api.errors import (
    FRIENDLY,
    BadRequestError,
    ForbiddenError,
    UnauthorizedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)
from handlers.api.identity import Audience, Identity, claims_of, identity_from_claims

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

MAX_BODY_BYTES = 16 * 1024
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Shape:
    """One path of the API: where an id goes, who it is for, its methods and which of them take a body."""

    pattern: re.Pattern[str]
    field: str | None
    audience: Audience
    methods: frozenset[str]
    with_body: frozenset[str] = frozenset()


def _shape(pattern: str, field: str | None, audience: Audience, methods: str, with_body: str = "") -> Shape:
    return Shape(re.compile(pattern), field, audience, frozenset(methods.split()), frozenset(with_body.split()))


# The API's paths, with any segment where an id goes. A request that matches a shape is for its audience
# whatever the id; one that then matches no route either names a method the path does not have (405) or
# carries an id the router does not accept as a segment (422, like any other invalid id).
SHAPES: tuple[Shape, ...] = (
    _shape(r"^/openapi\.json$", None, "public", "GET"),
    _shape(r"^/docs$", None, "public", "GET"),
    _shape(r"^/dashboard$", None, "public", "GET"),
    _shape(r"^/fleet$", None, "admin", "GET"),
    _shape(r"^/servers$", None, "player", "GET"),
    _shape(r"^/servers/([^/]*)$", "gameserver_id", "player", "GET PUT PATCH DELETE", "PUT PATCH"),
    _shape(r"^/servers/([^/]*)/history$", "gameserver_id", "player", "GET"),
    _shape(r"^/tenants$", None, "admin", "GET POST", "POST"),
    _shape(r"^/tenants/([^/]*)$", "tenant_id", "admin", "GET PATCH", "PATCH"),
    _shape(r"^/tenants/([^/]*)/servers$", "tenant_id", "admin", "GET"),
    _shape(r"^/tenants/[^/]*/servers/([^/]*)/history$", "gameserver_id", "admin", "GET"),
    _shape(r"^/tenants/([^/]*)/external-id$", "tenant_id", "admin", "GET"),
    _shape(r"^/tenants/([^/]*)/plan$", "tenant_id", "admin", "GET"),
    _shape(r"^/tenants/([^/]*)/reconcile$", "tenant_id", "admin", "POST"),
    _shape(r"^/rollouts$", None, "admin", "GET POST", "POST"),
    _shape(r"^/rollouts/([^/]*)$", "rollout_id", "admin", "GET"),
    _shape(r"^/rollouts/([^/]*)/(?:pause|resume|abort|rollback)$", "rollout_id", "admin", "POST"),
)


def shape_of(path: str) -> Shape | None:
    return next((shape for shape in SHAPES if shape.pattern.match(path)), None)


def check(event: APIGatewayProxyEventV2) -> Identity | None:
    """Raise the error the request is refused with, if any; otherwise the caller (None on public routes and
    on paths and methods the API does not have, which routing then refuses)."""
    path = event.path
    shape = shape_of(path)
    if _CONTROL_RE.search(path):
        # The router's `$` would match before a trailing newline and hand the route the id without it.
        field = shape.field if shape is not None and shape.field else "path"
        message = f"{field} {FRIENDLY.get(field, 'may not contain control characters')}"
        raise UnprocessableError(message, field=field, location="path", rule="string_pattern_mismatch")
    method = event.http_method.upper()
    if shape is None or shape.audience == "public" or method not in shape.methods:
        return None
    identity = identity_from_claims(claims_of(event))
    if shape.audience == "admin" and not identity.admin:
        raise ForbiddenError("this route is for admins only")
    if shape.audience == "player" and identity.tenant_id is None:
        raise UnauthorizedError("the token carries no custom:tenant_id", rule="tenant_claim")
    if shape.audience == "player" and identity.sub is None:
        # Servers belong to the immutable sub; a username alone can be reissued to another person.
        raise UnauthorizedError("the token carries no sub: send a Cognito ID or access token", rule="sub_claim")
    if method in shape.with_body:
        check_body(event)
    return identity


def check_body(event: APIGatewayProxyEventV2) -> None:
    """A JSON object of at most MAX_BODY_BYTES in UTF-8, or no body at all (validation then says it is missing)."""
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
        return
    parsed = loads(text)
    if not isinstance(parsed, dict):
        raise UnprocessableError(
            f"the body must be a JSON object, not {type(parsed).__name__}", field="body", rule="object_type"
        )


def _decoded_body(event: APIGatewayProxyEventV2) -> str | None:
    """The body as text; raises BadRequestError for an oversized or undecodable one."""
    raw = event.get("body")
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


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise BadRequestError(
                f"the body gives the key {key!r} more than once; send each key once",
                field=key,
                rule="json_duplicate_key",
            )
        seen[key] = value
    return seen


#: No field takes a number this long; Python's own limit (4300 digits) would answer with a hint about
#: `sys.set_int_max_str_digits()`, which means nothing to a caller.
MAX_NUMBER_DIGITS = 100


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_NUMBER_DIGITS:
        raise BadRequestError(
            f"the body has a number of {digits} digits; no value takes more than {MAX_NUMBER_DIGITS}",
            field="body",
            rule="json_number_too_long",
            limit=MAX_NUMBER_DIGITS,
        )
    return int(text)


def loads(text: str | bytes) -> Any:
    """JSON as the API reads it: a key given twice in one object is refused, not silently last-one-wins.

    Also Powertools' body deserializer, so the document a route validates is the one checked here.
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_int)
    except RecursionError:
        raise BadRequestError("the body nests too deeply", field="body", rule="json_depth") from None
    except ValueError as error:
        raise BadRequestError(f"the body is not valid JSON: {error}", field="body", rule="json_invalid") from None
