"""Stack names, ownership tags and idempotency tokens: deterministic functions of a record's identity."""

from __future__ import annotations

import hashlib

TAG_INSTALLATION = "stackherd:installation"
TAG_TENANT = "stackherd:tenant"
TAG_GAMESERVER = "stackherd:gameserver"
TAG_GENERATION = "stackherd:generation"
TAG_TEMPLATE_VERSION = "stackherd:template-version"
TAG_OWNER = "stackherd:owner"
#: Which creation of the game-server id the stack is for: an id deleted and created again is a new incarnation.
TAG_INCARNATION = "stackherd:incarnation"

#: Tags that identify a stack. The generation tag is informative only: a new generation that renders the
#: same parameters does not need a CloudFormation update.
IDENTITY_TAGS = (TAG_INSTALLATION, TAG_TENANT, TAG_GAMESERVER, TAG_TEMPLATE_VERSION, TAG_INCARNATION)

_TOKEN_MAX = 128


def stack_name(installation: str, tenant_id: str, gameserver_id: str) -> str:
    """`<installation>-<tenant>-<server>`: ids are validated to stack-name-safe characters."""
    return f"{installation}-{tenant_id}-{gameserver_id}"


def is_owned(tags: dict[str, str], installation: str, tenant_id: str) -> bool:
    """Only a stack carrying this installation's tag and this tenant's tag is ever updated or deleted."""
    return tags.get(TAG_INSTALLATION) == installation and tags.get(TAG_TENANT) == tenant_id


def request_token(operation: str, name: str, generation: int | str, extra: str = "") -> str:
    """A ClientRequestToken that is the same on every retry of the same intent, so retries are idempotent."""
    base = f"{operation}-{name}-g{generation}"
    if extra:
        base += "-" + hashlib.sha256(extra.encode()).hexdigest()[:10]
    if len(base) <= _TOKEN_MAX:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:16]
    return f"{base[: _TOKEN_MAX - 17]}-{digest}"


def session_name(tenant_id: str) -> str:
    """STS RoleSessionName: named after the tenant so CloudTrail in the tenant account says who called."""
    return f"stackherd-{tenant_id}"[:64]
