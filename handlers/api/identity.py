"""Who is calling, from the JWT authorizer's claims, and which audience each path is for.

The player is `cognito:username` (or `sub`), the tenant is `custom:tenant_id`, and an admin is in the
`admins` group. A player's tenant always comes from the token, never from the path or the body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from handlers.api.errors import UnauthorizedError
from models.config import ID_PATTERN, ConfigError, validate_owner

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

ADMIN_GROUP = "admins"
_ID_RE = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class Identity:
    user: str
    tenant_id: str | None
    admin: bool


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


def claims_of(event: APIGatewayProxyEventV2) -> dict[str, Any]:
    """The JWT claims API Gateway's authorizer passed on; empty when there are none (or they are malformed)."""
    try:
        claims = event.request_context.authorizer.jwt_claim
    except (AttributeError, KeyError, TypeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    """The caller. Raises UnauthorizedError when the claims are missing or malformed."""
    if not claims:
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


Audience = Literal["public", "player", "admin"]
