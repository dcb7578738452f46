"""Stack names, ownership tags and idempotency tokens: deterministic functions of a record's identity."""

from __future__ import annotations

import hashlib
import re
import unicodedata

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


_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_OWNER_SLUG_MAX = 40


def owner_tag(username: str) -> str:
    """The `stackherd:owner` tag value for a player: a lowercase ASCII slug of the name and a short hash of
    it, such as `o-brien-3f2a9c1d0e`. CloudFormation copies stack tags to the game server's resources, and
    some services accept only letters, digits, spaces and `_.:/=+-@` in a tag, so the name itself (`o'brien`,
    `ana!`, a decomposed `josé`) could make every create roll back. The record keeps the real name; the hash
    keeps two names with the same slug apart, and a name typed composed or decomposed gets one tag."""
    canonical = unicodedata.normalize("NFC", username)
    ascii_only = unicodedata.normalize("NFKD", canonical).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_only.lower()).strip("-")[:_OWNER_SLUG_MAX].strip("-") or "user"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}"
