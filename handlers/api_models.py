"""The player and admin API's request and response shapes (pydantic), shared by the handler and its OpenAPI
document.

Request models reject unknown keys and explicit nulls, so a typo is an error and not a silent no-op.
Response models document what the handler returns; optional fields are left out of a body when they are
empty rather than sent as null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from models.config import (
    ACCOUNT_PATTERN,
    ID_PATTERN,
    REGION_PATTERN,
    SEED_PATTERN,
    TIERS,
    VERSION_PATTERN,
    Difficulty,
    GameServerConfig,
)

MAX_PLAYER_COUNT = max(t.max_player_count for t in TIERS.values())
Region = Annotated[str, Field(pattern=REGION_PATTERN, max_length=32, examples=["us-east-1"])]
Tier = Literal["free", "standard", "premium"]


def _not_nullable(schema: dict[str, Any]) -> None:
    """Drop the null variant (and the null default) from an optional request key's JSON schema."""
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    if schema.get("default", 0) is None:
        del schema["default"]


def optional(**constraints: Any) -> Any:
    """An optional request key: may be left out, may not be null (see `_StrictInput`)."""
    return Field(default=None, json_schema_extra=_not_nullable, **constraints)


class _StrictInput(BaseModel):
    """Unknown keys are errors; a key given as null is an error (leave it out to keep the current value).

    Optional keys are declared with `optional()`: None only stands for "left out", so the published schema
    says the key is optional, not nullable.
    """

    # defer_build: schemas are built on first use, not at import (cold starts import this module).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(str(k) for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)} may not be null: leave a key out to keep its value")
        return data


# --- requests ----------------------------------------------------------------------------------------


class ServerPut(_StrictInput):
    """The whole desired state of a game server. Config keys left out take their defaults."""

    config: GameServerConfig
    region: Region | None = optional(
        description="one of the tenant's regions; left out, the server's current region, or for a new server "
        "the tenant's primary region",
    )


class ConfigPatch(_StrictInput):
    """Some config keys; the others keep their current values."""

    difficulty: Difficulty | None = optional()
    player_count: int | None = optional(ge=1, le=MAX_PLAYER_COUNT)
    seed: str | None = optional(pattern=SEED_PATTERN)

    @field_validator("player_count", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("player_count must be a whole number, not true or false")
        return value


class ServerPatch(_StrictInput):
    """A change to some config keys and/or the region. At least one must be given."""

    config: ConfigPatch | None = optional()
    region: Region | None = optional()

    @model_validator(mode="after")
    def _something(self) -> ServerPatch:
        if self.region is None and (self.config is None or not self.config.model_fields_set):
            raise ValueError("nothing to change: give at least one config key or a region")
        return self


class TenantPatch(_StrictInput):
    """What an admin may change on a registered tenant. At least one key must be given."""

    tier: Tier | None = optional()
    template_version: str | None = optional(pattern=VERSION_PATTERN)
    regions: tuple[Region, ...] | None = optional(min_length=1, max_length=8)
    paused: bool | None = optional()

    @model_validator(mode="after")
    def _something(self) -> TenantPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give tier, template_version, regions or paused")
        return self


# --- responses ---------------------------------------------------------------------------------------


class _Out(BaseModel):
    """A response body: optional fields that are empty are left out instead of being sent as null."""

    model_config = ConfigDict(defer_build=True)

    # Left unannotated on purpose: an annotated return type would replace the model's JSON schema with it.
    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        return {k: v for k, v in handler(self).items() if v is not None}


class ConditionView(_Out):
    type: str
    status: bool
    reason: str
    message: str
    last_transition_time: str | None = None


class StatusView(_Out):
    """What the reconciler last saw and did."""

    phase: Literal["Pending", "Creating", "Updating", "Ready", "Deleting", "Failed", "Held", "Paused"]
    observed_generation: int
    conditions: list[ConditionView]
    stack_id: str | None = None
    stack_status: str | None = None
    last_error: str | None = None
    next_retry_at: str | None = None
    drift: str | None = Field(default=None, description="present when the last pass found the stack drifted")


class ServerView(_Out):
    tenant_id: str = Field(pattern=ID_PATTERN)
    gameserver_id: str = Field(pattern=ID_PATTERN)
    username: str
    config: GameServerConfig
    region: str = Field(description="the region the stack lives in")
    generation: int = Field(description="bumped by every desired-state change; the ETag")
    created_at: str
    updated_at: str
    deletion_requested: bool
    status: StatusView
    config_error: str | None = Field(default=None, description="present when the stored config no longer validates")


class ServerPage(_Out):
    items: list[ServerView]
    next_token: str | None = Field(default=None, description="pass as next_token for the next page; absent at the end")


class HistoryEntry(_Out):
    at: str
    kind: str
    message: str
    generation: int | None = None
    actor: str | None = None


class HistoryPage(_Out):
    items: list[HistoryEntry]
    next_token: str | None = None


class TierView(_Out):
    max_servers: int
    max_player_count: int


class HeldDeletionsView(_Out):
    held: int
    held_since: str | None = None
    held_servers: list[str]


class TenantView(_Out):
    tenant_id: str = Field(pattern=ID_PATTERN)
    account_id: str = Field(pattern=ACCOUNT_PATTERN)
    regions: list[str]
    role_arn: str
    external_id: str
    tier: Tier
    limits: TierView
    template_version: str
    paused: bool
    quarantined: str | None = None
    quarantined_at: str | None = None
    deletion_brake: HeldDeletionsView | None = Field(
        default=None, description="deletions held until an admin confirms (GET /tenants/{tenant_id} only)"
    )
    quarantined_regions: dict[str, str] | None = Field(
        default=None, description="regions quarantined alone, with why (GET /tenants/{tenant_id} only)"
    )


class TenantList(_Out):
    items: list[TenantView]


class ActionView(_Out):
    model_config = ConfigDict(extra="allow", defer_build=True)

    kind: str
    gameserver_id: str
    stack_name: str
    region: str
    reason: str
    outcome: Literal["planned", "done", "skipped", "failed", "held"]
    generation: int | None = None
    would: str | None = Field(default=None, description="in a paused tenant: what would be done if it were active")
    diff: str | None = None
    parameters: dict[str, str] | None = None


class BrakeView(_Out):
    held: int = Field(description="deletions held until an admin confirms them")
    held_since: str | None = None
    held_servers: list[str]
    deletions_in_window: int
    max_deletions: int
    window_seconds: int


class PlanView(_Out):
    tenant_id: str
    dry_run: bool
    in_sync: bool
    verdict: Literal["in_sync", "pending", "failed"] = Field(
        description="in_sync: converged, nothing pending; pending: changes to make (or held back by a pause); "
        "failed: the tenant errored, an action failed, or a server is Failed or Held"
    )
    paused: bool = False
    actions: list[ActionView]
    deletion_brake: BrakeView | None = Field(
        default=None, description="held deletions; release exactly these with reconcile?confirm_deletions=true"
    )
    stopped: str | None = Field(default=None, description="why the pass stopped changing the tenant part-way")
    failing: list[str] | None = Field(default=None, description="servers Failed or Held at their generation")
    requeued: int | None = Field(default=None, description="servers queued for another look (reconcile only)")
    error: str | None = None
    error_code: str | None = None
    retryable: bool | None = None


class ErrorDetail(_Out):
    field: str = Field(description="the offending field, for example config.player_count or If-Match")
    location: Literal["path", "query", "header", "body", "token", "tenant"]
    rule: str = Field(description="the rule it broke, for example string_pattern_mismatch or tier_max_player_count")
    message: str
    limit: int | None = None


class ErrorBody(_Out):
    code: str = Field(examples=["ValidationFailed"])
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
    request_id: str | None = None
