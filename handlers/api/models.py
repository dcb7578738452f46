"""The player and admin API's request and response shapes (pydantic), shared by the routes and the OpenAPI
document.

Request models are strict: unknown keys and explicit nulls are refused, so a typo is an error and not a
silent no-op, and a number or a boolean must be a JSON number or a JSON boolean (no "8" for 8, no "yes" for
true). Response models document what the routes return; optional fields are left out of a body when they
are empty rather than sent as null.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from models.config import (
    REGION_PATTERN,
    SEED_PATTERN,
    TIERS,
    VERSION_PATTERN,
    Difficulty,
    GameServerConfig,
    TenantSpec,
)

MAX_PLAYER_COUNT = max(t.max_player_count for t in TIERS.values())
Region = Annotated[str, Field(pattern=REGION_PATTERN, max_length=32, examples=["us-east-1"])]
Tier = Literal["free", "standard", "premium"]


def _json_integer(value: Any) -> Any:
    """A whole number given as a JSON number: pydantic's lax mode would read "1_0" as 10, " 8 " as 8 and
    true as 1."""
    if isinstance(value, str):
        raise PydanticCustomError(
            "int_type", "must be a JSON number such as 8, not the string {given}", {"given": repr(value)[:40]}
        )
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    return value


def _json_boolean(value: Any) -> Any:
    """A flag given as a JSON boolean: lax mode would read "yes", "on", "1" and 1 as true."""
    if not isinstance(value, bool):
        given = json.dumps(value)[:40] if isinstance(value, str | int | float) else type(value).__name__
        raise PydanticCustomError("bool_type", "must be true or false, not {given}", {"given": given})
    return value


JsonInteger = Annotated[int, BeforeValidator(_json_integer)]
JsonBoolean = Annotated[bool, BeforeValidator(_json_boolean)]


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


class ConfigPut(GameServerConfig):
    """A game server's whole config as a request gives it; keys left out take their defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    player_count: JsonInteger = Field(default=4, ge=1, le=MAX_PLAYER_COUNT)

    def desired(self) -> GameServerConfig:
        """The config to store (the stored type, so equal configs compare equal)."""
        return GameServerConfig(**self.model_dump())


class ServerPut(_StrictInput):
    """The whole desired state of a game server. Config keys left out take their defaults."""

    config: ConfigPut
    region: Region | None = optional(
        description="one of the tenant's regions; left out, the server's current region, or for a new server "
        "the tenant's primary region",
    )


class ConfigPatch(_StrictInput):
    """Some config keys; the others keep their current values."""

    difficulty: Difficulty | None = optional()
    player_count: Annotated[int, Field(ge=1, le=MAX_PLAYER_COUNT), BeforeValidator(_json_integer)] | None = optional()
    seed: str | None = optional(pattern=SEED_PATTERN)


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
    paused: JsonBoolean | None = optional()

    @model_validator(mode="after")
    def _something(self) -> TenantPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give tier, template_version, regions or paused")
        return self


class TenantCreate(TenantSpec):
    """A tenant to register, as a request gives it (`paused` must be a JSON boolean)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    paused: JsonBoolean = False

    def spec(self) -> TenantSpec:
        return TenantSpec(**self.model_dump())


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
    next_retry_at: str | None = Field(
        default=None, description="present while a failed attempt's backoff runs: the next try is not before it"
    )
    drift: str | None = Field(default=None, description="present when the last pass found the stack drifted")
    tries: int | None = Field(
        default=None,
        description="CloudFormation operations this generation has cost since it last converged; after the "
        "failure budget's number of failed ones the server is Held",
    )
    cause: str | None = Field(
        default=None,
        description="why the last attempt failed: CloudFormation's first failed resource event of the operation "
        "(logical id, resource type, status and reason)",
    )


class ServerView(_Out):
    """A stored game server as it is stored: ids and values are shown as read, never re-validated, so one
    item written around the API cannot break a listing (`unreadable` then says what is wrong with it)."""

    tenant_id: str
    gameserver_id: str
    username: str
    config: GameServerConfig | None = Field(
        default=None, description="the desired config; absent when the stored one no longer validates"
    )
    stored_config: dict[str, Any] | None = Field(
        default=None, description="the stored config as it is, when it no longer validates (config_error says why)"
    )
    region: str = Field(description="the region the stack lives in")
    generation: int = Field(description="bumped by every desired-state change (the ETag names it)")
    incarnation: str = Field(description="this creation of the id; a server deleted and created again has a new one")
    created_at: str
    updated_at: str
    deletion_requested: bool
    status: StatusView
    config_error: str | None = Field(
        default=None,
        description="present when the stored config no longer validates: why (only a whole PUT replaces it)",
    )
    unreadable: str | None = Field(
        default=None,
        description="present when the stored item no longer validates (an id outside today's pattern, a config "
        "that does not validate): what is wrong with it and how to correct it",
    )


class ServerPage(_Out):
    items: list[ServerView]
    next_token: str | None = Field(default=None, description="pass as next_token for the next page; absent at the end")


class HistoryEntry(_Out):
    at: str
    kind: str
    message: str
    generation: int | None = None
    actor: str | None = None
    door: str | None = Field(default=None, description="how the change came in: api, cli, demo, or the reconciler")
    correlation_id: str | None = Field(
        default=None,
        description="the request id of the desired write; the reconciler's entries for its generation carry it too",
    )


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
    """A registered tenant as it is stored, never re-validated (`unreadable` says what is wrong with an item
    that no longer validates, such as a tier that does not exist)."""

    tenant_id: str
    account_id: str = Field(description="12-digit AWS account id")
    regions: list[str]
    role_arn: str
    external_id: str
    tier: str = Field(description="free, standard or premium (as stored)")
    limits: TierView | None = Field(
        default=None, description="the tier's limits; absent for a tier that does not exist"
    )
    template_version: str
    paused: bool
    quarantined: str | None = None
    quarantined_at: str | None = None
    unreadable: str | None = Field(
        default=None, description="present when the stored item no longer validates: what is wrong with it"
    )
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
    code: str | None = Field(
        default=None, description="why a server is held or failing, e.g. FailureBudgetExhausted or StackNameTaken"
    )
    retry_at: str | None = Field(default=None, description="a backoff: the next attempt is not before this time")
    stuck_since: str | None = Field(
        default=None, description="the stack's operation has been in progress since then, past the stuck setting"
    )


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
    unobserved_regions: dict[str, str] | None = Field(
        default=None, description="regions that could not be listed in this pass, with why (their servers fail alone)"
    )
    requeued: int | None = Field(default=None, description="servers queued for another look (reconcile only)")
    error: str | None = None
    error_code: str | None = None
    retryable: bool | None = None


class QueuedView(_Out):
    tenant_id: str
    queued: bool = Field(description="a full pass of the tenant is on the work queue")
    coalesced: bool = Field(description="the request joined a pass already pending (its flags ride along)")


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
