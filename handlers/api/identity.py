"""Who is calling, from the JWT authorizer's claims, and which audience each path is for.

A player is their `sub` (immutable: Cognito never hands it to another user), shown as `cognito:username`;
the tenant is `custom:tenant_id`, and an admin is in the `admins` group. A player's tenant always comes from
the token, never from the path or the body.
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
    #: The name shown for the player (`cognito:username`, or the `sub` when the token has no username).
    user: str
    tenant_id: str | None
    admin: bool
    #: The immutable `sub`: what a game server's ownership is keyed on (None only in an admin-only token).
    sub: str | None = None


def parse_groups(raw: object) -> frozenset[str]:
    """`cognito:groups` exactly as it arrives: a list (a JSON array in the claims), a JSON array string, or the
    form API Gateway's HTTP API JWT authorizer passes an array claim in, `[admins players]` (the names
    between brackets, separated by single spaces: a Cognito group name contains no whitespace). Any other
    string is one group's name. A name is never split on commas: `players,admins` is one (legal) group
    name, not the admins group."""
    if isinstance(raw, list | tuple):
        return frozenset(g for g in raw if isinstance(g, str) and g)
    if not isinstance(raw, str) or not raw:
        return frozenset()
    if raw.startswith("[") and raw.endswith("]"):
        try:
            loaded = json.loads(raw)
        except ValueError:
            loaded = None
        if isinstance(loaded, list):
            return parse_groups(loaded)
        return frozenset(name for name in raw[1:-1].split(" ") if name)
    return frozenset({raw})


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
    sub = claims.get("sub")
    if sub is not None:
        try:
            sub = validate_owner(sub if isinstance(sub, str) else "")
        except ConfigError:
            raise UnauthorizedError("the token's sub is not a usable user id", rule="sub_claim") from None
    tenant = claims.get("custom:tenant_id")
    if tenant is not None and (not isinstance(tenant, str) or not _ID_RE.fullmatch(tenant)):
        raise UnauthorizedError("the token's custom:tenant_id is not a valid tenant id", rule="tenant_claim")
    return Identity(
        user=user, tenant_id=tenant, admin=ADMIN_GROUP in parse_groups(claims.get("cognito:groups")), sub=sub
    )


Audience = Literal["public", "player", "admin"]
