"""The game-server config a player may ask for, its limits per tier, and its CloudFormation mapping.

The mapping from config keys to CloudFormation parameter names is explicit: CloudFormation parameter
names are alphanumeric, and a whitelist is also what keeps a player from passing arbitrary parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

Difficulty = Literal["peaceful", "easy", "normal", "hard"]

#: config key -> CloudFormation parameter name of the game-server template.
PARAMETER_NAMES: dict[str, str] = {
    "difficulty": "Difficulty",
    "player_count": "PlayerCount",
    "seed": "Seed",
}

SEED_PATTERN = r"^[A-Za-z0-9]{1,32}$"
ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
_ID_RE = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class TierLimits:
    """What a tenant of one tier may ask for."""

    max_servers: int
    max_player_count: int


TIERS: dict[str, TierLimits] = {
    "free": TierLimits(max_servers=3, max_player_count=8),
    "standard": TierLimits(max_servers=25, max_player_count=32),
    "premium": TierLimits(max_servers=200, max_player_count=128),
}
DEFAULT_TIER = "standard"


class ConfigError(ValueError):
    """A config or identifier that cannot be accepted; the message says what is wrong and how to fix it."""

    def __init__(
        self, message: str, *, field: str | None = None, rule: str = "invalid", limit: int | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule
        self.limit = limit


class GameServerConfig(BaseModel):
    """A game server's desired config. Unknown keys are rejected, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    difficulty: Difficulty = "normal"
    player_count: int = Field(default=4, ge=1, le=max(t.max_player_count for t in TIERS.values()))
    seed: str = Field(default="default", pattern=SEED_PATTERN)

    @field_validator("player_count", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        # Lax mode would read true as 1; a count must be a number (or the CLI's digit string), never a flag.
        if isinstance(value, bool):
            raise ValueError("player_count must be a whole number, not true or false")
        return value

    def parameters(self) -> dict[str, str]:
        """The CloudFormation parameters this config renders to (all values as strings): `PARAMETER_NAMES`,
        spelled out because every pass renders every server (a loop over the mapping costs twice as much)."""
        return {"Difficulty": self.difficulty, "PlayerCount": str(self.player_count), "Seed": self.seed}


def tier_limits(tier: str) -> TierLimits:
    try:
        return TIERS[tier]
    except KeyError:
        raise ConfigError(f"unknown tier {tier!r}: use one of {', '.join(sorted(TIERS))}", field="tier") from None


def describe_validation_error(error: ValidationError, prefix: str = "config") -> str:
    """One line naming each failing field and its rule, for CLIs, logs and API bodies."""
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in (prefix, *item["loc"]))
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def validate_config(raw: Any, tier: str = DEFAULT_TIER) -> GameServerConfig:
    """Validate a raw config mapping against the schema and the tier's limits."""
    if not isinstance(raw, dict):
        raise ConfigError('config must be an object such as {"difficulty": "easy"}', field="config")
    try:
        config = GameServerConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]["loc"]
        field = "config." + ".".join(str(p) for p in first) if first else "config"
        raise ConfigError(describe_validation_error(error), field=field) from None
    return check_tier(config, tier)


def check_tier(config: GameServerConfig, tier: str) -> GameServerConfig:
    """A schema-valid config against the limits of the tenant's tier."""
    limits = tier_limits(tier)
    if config.player_count > limits.max_player_count:
        raise ConfigError(
            f"config.player_count: {config.player_count} exceeds the {tier} tier's maximum of "
            f"{limits.max_player_count}",
            field="config.player_count",
            rule="tier_max_player_count",
            limit=limits.max_player_count,
        )
    return config


#: A player's user name; the stack's `stackherd:owner` tag carries a tag-safe encoding of it (`naming.owner_tag`).
MAX_OWNER = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_owner(value: str) -> str:
    """The player a game server belongs to: 1 to 128 characters, not blank, no control characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_OWNER or _CONTROL.search(value):
        raise ConfigError(
            f"owner must be the player's user name: 1 to {MAX_OWNER} characters, not blank, no control characters",
            field="owner",
        )
    return value


def validate_id(value: str, what: str) -> str:
    """Tenant and game-server ids: lowercase letters, digits and inner hyphens, 1 to 40 characters."""
    # fullmatch: re's `$` also matches before a trailing newline, which would let "alpha\n" through.
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ConfigError(
            f"{what} {value!r} is invalid: use 1-40 lowercase letters, digits or inner hyphens (for example 'alpha-1')",
            field=what.replace(" ", "_"),
        )
    return value


#: An id an existing record may carry: one written by an older version or around stackherd (`Legacy_1`) is
#: still read, deleted and retried by it. Printable ASCII without `/` or spaces, at most 255 characters: safe in
#: a path segment, a log line and a key. Creation still requires ID_PATTERN.
STORED_ID_PATTERN = r"^[!-.0-~]{1,255}$"
_STORED_ID_RE = re.compile(STORED_ID_PATTERN)


def validate_stored_id(value: str, what: str) -> str:
    """An id that names an existing record (read, delete, retry): any STORED_ID_PATTERN id, today's or older."""
    if not isinstance(value, str) or not _STORED_ID_RE.fullmatch(value):
        raise ConfigError(
            f"{what} {value!r} is invalid: an existing record's id is 1-255 printable ASCII characters "
            "without '/' or spaces (for example 'alpha-1')",
            field=what.replace(" ", "_"),
        )
    return value


_INTEGER = re.compile(r"[0-9]+")


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """Turn CLI `key=value` pairs into a raw config mapping, each value parsed as the schema's type for its key:
    a whole number for an integer key (`player_count=abc`, `1_0` or `8.0` are refused saying so), text for
    the others. Unknown keys are kept for the schema to refuse by name."""
    result: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, for example --set difficulty=hard")
        field = GameServerConfig.model_fields.get(key)
        if field is not None and field.annotation is int:
            if not _INTEGER.fullmatch(value):
                raise ConfigError(
                    f"--set {key}={value!r}: {key} must be an integer (digits only), for example --set {key}=8",
                    field=f"config.{key}",
                    rule="int_type",
                )
            result[key] = int(value)
        else:
            result[key] = value
    return result


ACCOUNT_PATTERN = r"^[0-9]{12}$"
#: ASCII only, in every pattern that guards an identifier: `\d` (in Python's re and in pydantic-core's regex
#: engine alike) matches any Unicode digit, so a region ending in an Arabic-Indic one would poison every pass.
REGION_PATTERN = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"


class TenantSpec(BaseModel):
    """What an admin gives to register a tenant (the CLI's `tenants add`, the API's `POST /tenants`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str = Field(pattern=ID_PATTERN)
    account_id: str = Field(pattern=ACCOUNT_PATTERN, description="12-digit AWS account id")
    regions: tuple[Annotated[str, Field(pattern=REGION_PATTERN)], ...] = Field(
        default=("us-east-1",), min_length=1, max_length=8
    )
    role: str = Field(
        default="StackherdExecution",
        pattern=r"^(arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,64}|[A-Za-z0-9_+=,.@-]{1,64})$",
        description="role name in the tenant account, or a full role ARN",
    )
    external_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$")
    tier: Literal["free", "standard", "premium"] = DEFAULT_TIER  # type: ignore[assignment]
    template_version: str = Field(default="v1", pattern=VERSION_PATTERN)
    paused: bool = False

    @field_validator("regions")
    @classmethod
    def _each_region_once(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        # A region named twice would be listed and planned twice in every pass.
        repeated = sorted({r for r in regions if regions.count(r) > 1})
        if repeated:
            raise ValueError(f"regions name {', '.join(repeated)} more than once: give each region once")
        return regions

    @field_validator("role")
    @classmethod
    def _role_in_the_tenants_account(cls, role: str, info: ValidationInfo) -> str:
        # Credentials act in the account of the role they come from: a role ARN in another account would
        # put this tenant's stacks there.
        account = info.data.get("account_id")
        if account and role.startswith("arn:") and role.split(":")[4] != account:
            raise ValueError(
                f"role {role} is in account {role.split(':')[4]}, not in the tenant's account {account}: give a "
                "role of the tenant's own account"
            )
        return role


def validate_tenant(raw: dict[str, Any]) -> TenantSpec:
    try:
        return TenantSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]["loc"]
        raise ConfigError(describe_validation_error(error, prefix="tenant"), field=".".join(map(str, first))) from None
