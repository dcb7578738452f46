"""The DynamoDB tables, as PynamoDB models, and their mapping to the plain records in `models.records`.

Table names and the region come from `models.settings.Settings` (see `configure`); the endpoint comes from
botocore's own `AWS_ENDPOINT_URL` handling, so the same code runs against AWS and a local moto server.

Besides one item per tenant, the tenants table holds one item per AWS account (`account#<account id>`, the
account's tenant): written in the same transaction as the tenant, it is what keeps an account to one tenant.
A tenant's item also carries the count of its live game servers, changed in the same transaction as the
record that is created or whose deletion is requested: the tier's quota is a condition on it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import ValidationError
from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    VersionAttribute,
)
from pynamodb.constants import MAP, PAY_PER_REQUEST_BILLING_MODE, STREAM_NEW_AND_OLD_IMAGE, STRING
from pynamodb.models import Model

from models.config import ID_PATTERN, ConfigError, GameServerConfig, describe_validation_error
from models.records import (
    ActivityEntry,
    Condition,
    DeletionBrake,
    DesiredServer,
    OrphanAttempts,
    Phase,
    SeenStack,
    ServerStatus,
    Tenant,
    TenantState,
    WriteTrail,
    tenant_problem,
)
from models.settings import Settings

_DEFAULTS = {name: info.default for name, info in Settings.model_fields.items()}
DEFAULT_TENANTS_TABLE: str = _DEFAULTS["tenants_table"]
DEFAULT_GAMESERVERS_TABLE: str = _DEFAULTS["gameservers_table"]
DEFAULT_ACTIVITY_TABLE: str = _DEFAULTS["activity_table"]
DEFAULT_REGION: str = _DEFAULTS["region"]

#: Key prefix of the account items in the tenants table; `#` is outside every tenant id, so they never collide.
ACCOUNT_PREFIX = "account#"
#: Key prefix of the per-tenant work items (the work queue's coalescing state) in the tenants table.
WORK_PREFIX = "work#"
#: Key prefix of rollouts (`rollout#<id>`) and of their index of active ones (`rollout#!active`).
ROLLOUT_PREFIX = "rollout#"
ROLLOUT_INDEX_KEY = "rollout#!active"


_ID_RE = re.compile(ID_PATTERN)

#: Key under which `ConfigMap` reports a stored config that is not a map at all.
NOT_A_MAP = "__not_a_map__"


class ConfigMap(MapAttribute[str, Any]):
    """The desired config as a schemaless map: pydantic, not PynamoDB, decides what is valid.

    Typed attributes here would make PynamoDB refuse to read an item whose config has the wrong shape
    (say `player_count` stored as a string), failing the read of the tenant's every record, and would
    silently drop unknown keys. Read raw, such a record comes back with a config error instead.
    """

    @classmethod
    def is_raw(cls) -> bool:
        return True  # every key is stored and read as it is, like a plain MapAttribute

    def get_value(self, value: dict[str, Any]) -> Any:
        if MAP in value:
            return value[MAP]
        return {NOT_A_MAP: {STRING: next(iter(value), "?")}}  # the DynamoDB type it was stored as


class ConditionMap(MapAttribute[str, Any]):
    type = UnicodeAttribute()
    status = BooleanAttribute()
    reason = UnicodeAttribute()
    message = UnicodeAttribute()
    last_transition_time = UnicodeAttribute(null=True)


class StatusMap(MapAttribute[str, Any]):
    phase = UnicodeAttribute(default=Phase.PENDING.value)
    observed_generation = NumberAttribute(default=0)
    conditions = ListAttribute(of=ConditionMap, default=list)
    stack_id = UnicodeAttribute(null=True)
    stack_status = UnicodeAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    last_transition_time = UnicodeAttribute(null=True)
    next_retry_at = UnicodeAttribute(null=True)
    drift = UnicodeAttribute(null=True)
    operation = UnicodeAttribute(null=True)
    tries = NumberAttribute(null=True)
    cause = UnicodeAttribute(null=True)
    template_version = UnicodeAttribute(null=True)
    #: `SeenStack.to_dict()`: a plain map, read leniently (a malformed one only costs a describe)
    seen = MapAttribute[str, Any](null=True)


class TenantModel(Model):
    class Meta:
        table_name = DEFAULT_TENANTS_TABLE
        region = DEFAULT_REGION

    tenant_id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    regions = ListAttribute(of=UnicodeAttribute)
    role_arn = UnicodeAttribute()
    external_id = UnicodeAttribute()
    tier = UnicodeAttribute(default="standard")
    template_version = UnicodeAttribute()
    paused = BooleanAttribute(default=False)
    quarantined = UnicodeAttribute(null=True)
    quarantined_at = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute(null=True)
    #: Live game servers (deletion not requested); absent on tenants registered before it was kept.
    server_count = NumberAttribute(null=True)
    #: What the reconciler keeps between passes, one named section per concern (`deletion_brake`,
    #: `region_quarantine`, ...): written only by the reconciler, section by section, never by admin writes.
    reconciler_state = MapAttribute[str, Any](null=True)


class AccountModel(Model):
    """`account#<account id>` -> the tenant that has the account (in the tenants table)."""

    class Meta:
        table_name = DEFAULT_TENANTS_TABLE
        region = DEFAULT_REGION

    tenant_id = UnicodeAttribute(hash_key=True)  # the key attribute of the tenants table: "account#<id>"
    owner = UnicodeAttribute()


class RateModel(Model):
    """`rate#<scope>` -> a token bucket (in the tenants table): the tokens left at `at` (epoch seconds)."""

    class Meta:
        table_name = DEFAULT_TENANTS_TABLE
        region = DEFAULT_REGION

    tenant_id = UnicodeAttribute(hash_key=True)  # the key attribute of the tenants table: "rate#<scope>"
    tokens = NumberAttribute()
    at = NumberAttribute()


class RolloutModel(Model):
    """`rollout#<id>`: one rollout (in the tenants table). Its plan and each tenant's progress are one
    compressed JSON body, so a rollout of thousands of tenants stays one item that one conditional write
    changes; `revision` (PynamoDB's version attribute) makes every save conditional on the revision read."""

    class Meta:
        table_name = DEFAULT_TENANTS_TABLE
        region = DEFAULT_REGION

    tenant_id = UnicodeAttribute(hash_key=True)
    revision = VersionAttribute()
    state = UnicodeAttribute()
    target_version = UnicodeAttribute()
    created_at = UnicodeAttribute()
    body = BinaryAttribute(legacy_encoding=False)


class RolloutIndexModel(Model):
    """`rollout#!active`: the ids of the active rollouts. A start adds its id in the same transaction as its
    rollout item, conditional on the revision it read, so two overlapping starts cannot both succeed."""

    class Meta:
        table_name = DEFAULT_TENANTS_TABLE
        region = DEFAULT_REGION

    tenant_id = UnicodeAttribute(hash_key=True)
    revision = VersionAttribute()
    active = UnicodeSetAttribute(null=True)


def account_key(account_id: str) -> str:
    return f"{ACCOUNT_PREFIX}{account_id}"


class WorkModel(Model):
    """`work#<tenant id>` -> the tenant's coalesced work (in the tenants table): the token of the message on the
    work queue not yet claimed by a worker, since when, the union of the scopes asked for (or a full pass), and
    the one live requeue-after (due time, token, scope)."""

    class Meta:
        table_name = DEFAULT_TENANTS_TABLE
        region = DEFAULT_REGION
        # The dispatcher keeps 16 conditional writes in flight (handlers.sweep.DISPATCH_CONCURRENCY): one pooled
        # connection each, instead of PynamoDB's default 10 and a new TLS connection for every write beyond.
        max_pool_connections = 16

    tenant_id = UnicodeAttribute(hash_key=True)  # "work#<tenant id>"
    token = UnicodeAttribute(null=True)
    since = NumberAttribute(null=True)  # epoch seconds the tenant became pending
    scope = UnicodeSetAttribute(null=True)
    full = BooleanAttribute(null=True)
    force = BooleanAttribute(null=True)  # an admin's force, carried to the pass that claims the work
    confirm_deletions = BooleanAttribute(null=True)
    requeue_due = NumberAttribute(null=True)  # epoch seconds
    requeue_token = UnicodeAttribute(null=True)
    requeue_scope = UnicodeSetAttribute(null=True)


def work_key(tenant_id: str) -> str:
    return f"{WORK_PREFIX}{tenant_id}"


#: Key prefix of the external-id claims: `external#<sha256 of the id>` -> the tenant whose role expects it.
#: The key is a digest, so the secret itself is never a key (keys show up in logs, metrics and consoles).
EXTERNAL_ID_PREFIX = "external#"
#: Every item of the tenants table that is not a tenant has a `<prefix>#` key; `#` is outside every tenant id.
ITEM_PREFIX_MARK = "#"


def external_id_key(external_id: str) -> str:
    import hashlib

    return f"{EXTERNAL_ID_PREFIX}{hashlib.sha256(external_id.encode()).hexdigest()}"


class GameServerModel(Model):
    """Desired records. The stream (NEW_AND_OLD_IMAGES) of this table drives the reconciler."""

    class Meta:
        table_name = DEFAULT_GAMESERVERS_TABLE
        stream_view_type = STREAM_NEW_AND_OLD_IMAGE
        region = DEFAULT_REGION

    tenant_id = UnicodeAttribute(hash_key=True)
    gameserver_id = UnicodeAttribute(range_key=True)
    username = UnicodeAttribute()
    owner_sub = UnicodeAttribute(null=True)  # absent on records written before ownership was keyed on the sub
    config = ConfigMap()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute(null=True)
    generation = NumberAttribute(default=1)
    deletion_requested = BooleanAttribute(default=False)
    region = UnicodeAttribute(null=True)
    status = StatusMap(null=True)
    incarnation = UnicodeAttribute(null=True)  # absent on records written before incarnations were kept
    actor = UnicodeAttribute(null=True)
    door = UnicodeAttribute(null=True)
    correlation_id = UnicodeAttribute(null=True)


class ActivityModel(Model):
    """Append-only log per server: desired changes, actions and outcomes. Items expire by TTL."""

    class Meta:
        table_name = DEFAULT_ACTIVITY_TABLE
        region = DEFAULT_REGION

    server_key = UnicodeAttribute(hash_key=True)  # "<tenant_id>/<gameserver_id>"
    at = UnicodeAttribute(range_key=True)  # ISO time + "#" + a unique suffix, so the sort is by time
    kind = UnicodeAttribute()
    message = UnicodeAttribute()
    generation = NumberAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    door = UnicodeAttribute(null=True)
    correlation_id = UnicodeAttribute(null=True)
    incarnation = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)


#: The models that own a table (`create_tables`); `AccountModel` shares the tenants table.
ALL_MODELS: tuple[type[Model], ...] = (TenantModel, GameServerModel, ActivityModel)


def configure(settings: Settings | None = None, *, region: str | None = None) -> None:
    """Point the models at the tables `settings` name (default: the environment's settings)."""
    settings = settings or Settings.from_env()
    names = {
        TenantModel: settings.tenants_table,
        AccountModel: settings.tenants_table,
        WorkModel: settings.tenants_table,
        RateModel: settings.tenants_table,
        RolloutModel: settings.tenants_table,
        RolloutIndexModel: settings.tenants_table,
        GameServerModel: settings.gameservers_table,
        ActivityModel: settings.activity_table,
    }
    for model, name in names.items():
        model.Meta.table_name = name
        model.Meta.region = region or settings.region
        # A cached connection keeps the old region/table; drop it so the next call builds a new one.
        model._connection = None


def create_tables() -> list[str]:
    """Create any missing table (idempotent). Returns the names created."""
    created = []
    for model in ALL_MODELS:
        if model.exists():
            continue
        model.create_table(billing_mode=PAY_PER_REQUEST_BILLING_MODE, wait=True)
        created.append(model.Meta.table_name)
    return created


# --- mapping between items and records -------------------------------------------------------------


def tenant_from_item(item: TenantModel) -> Tenant:
    """The tenant as stored. One that no longer validates (an unknown tier, an id or account outside today's
    patterns, no regions) is returned as it is, marked unreadable with the reason, never with defaults."""
    tenant = Tenant(
        tenant_id=item.tenant_id,
        account_id=item.account_id,
        regions=tuple(str(r) for r in (item.regions or [])),
        role_arn=item.role_arn,
        external_id=item.external_id,
        tier=item.tier,
        template_version=item.template_version,
        paused=bool(item.paused),
        quarantined=item.quarantined,
        quarantined_at=item.quarantined_at,
    )
    problem = tenant_problem(tenant)
    if problem is None:
        return tenant
    from dataclasses import replace

    return replace(tenant, unreadable=problem)


def tenant_to_item(tenant: Tenant, created_at: str | None = None) -> TenantModel:
    return TenantModel(
        tenant.tenant_id,
        account_id=tenant.account_id,
        regions=list(tenant.regions),
        role_arn=tenant.role_arn,
        external_id=tenant.external_id,
        tier=tenant.tier,
        template_version=tenant.template_version,
        paused=tenant.paused,
        quarantined=tenant.quarantined,
        quarantined_at=tenant.quarantined_at,
        created_at=created_at,
    )


#: The sections of `TenantModel.reconciler_state`.
BRAKE_SECTION = "deletion_brake"
REGIONS_SECTION = "region_quarantine"
ORPHANS_SECTION = "orphan_budgets"


def _plain(value: Any) -> Any:
    """A raw map's value as plain Python (numbers come back from DynamoDB as floats or Decimals)."""
    if isinstance(value, MapAttribute):
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def tenant_state_from_map(raw: Any) -> TenantState:
    data = _plain(raw) if raw is not None else {}
    if not isinstance(data, dict):
        data = {}
    regions = data.get(REGIONS_SECTION) or {}
    try:
        orphans = orphan_budgets_from_list(data.get(ORPHANS_SECTION))
        known: tuple[str, ...] = (BRAKE_SECTION, REGIONS_SECTION, ORPHANS_SECTION)
    except (TypeError, ValueError):  # forgetting budgets re-spends them at worst: kept as found, never fatal
        orphans, known = (), (BRAKE_SECTION, REGIONS_SECTION)
    return TenantState(
        deletion_brake=DeletionBrake.from_dict(data.get(BRAKE_SECTION)),
        region_quarantine=tuple(
            sorted((str(r), str(v.get("reason", "")), str(v.get("at", ""))) for r, v in regions.items())
        ),
        orphan_budgets=orphans,
        other=tuple(sorted((k, v) for k, v in data.items() if k not in known)),
    )


def orphan_budgets_from_list(raw: Any) -> tuple[OrphanAttempts, ...]:
    """The orphan budgets section as stored (a list of maps); ValueError/TypeError when it is not one."""
    entries = _plain(raw) if raw is not None else []
    if not isinstance(entries, list):
        raise ValueError(f"{ORPHANS_SECTION} is not a list")
    return tuple(sorted((OrphanAttempts(**entry) for entry in entries), key=lambda a: a.stack_id))


def status_from_map(raw: StatusMap | None) -> ServerStatus:
    if raw is None:
        return ServerStatus()
    return ServerStatus(
        phase=Phase(raw.phase or Phase.PENDING.value),
        observed_generation=int(raw.observed_generation or 0),
        conditions=tuple(
            Condition(
                type=c.type,
                status=bool(c.status),
                reason=c.reason,
                message=c.message,
                last_transition_time=c.last_transition_time or "",
            )
            for c in (raw.conditions or [])
        ),
        stack_id=raw.stack_id,
        stack_status=raw.stack_status,
        last_error=raw.last_error,
        attempts=int(raw.attempts or 0),
        last_transition_time=raw.last_transition_time,
        next_retry_at=raw.next_retry_at,
        drift=raw.drift,
        operation=raw.operation,
        tries=int(raw.tries or 0),
        cause=raw.cause,
        template_version=raw.template_version,
        seen=SeenStack.from_dict(_plain(raw.seen)) if raw.seen is not None else None,
    )


def status_to_map(status: ServerStatus) -> StatusMap:
    return StatusMap(
        phase=status.phase.value,
        observed_generation=status.observed_generation,
        conditions=[
            ConditionMap(
                type=c.type,
                status=c.status,
                reason=c.reason,
                message=c.message,
                last_transition_time=c.last_transition_time or None,
            )
            for c in status.conditions
        ],
        stack_id=status.stack_id,
        stack_status=status.stack_status,
        last_error=status.last_error,
        attempts=status.attempts,
        last_transition_time=status.last_transition_time,
        next_retry_at=status.next_retry_at,
        drift=status.drift,
        operation=status.operation,
        tries=status.tries,
        cause=status.cause,
        template_version=status.template_version,
        seen=status.seen.to_dict() if status.seen is not None else None,
    )


def config_to_map(config: GameServerConfig) -> ConfigMap:
    return ConfigMap(difficulty=config.difficulty, player_count=config.player_count, seed=config.seed)


def config_from_map(raw: ConfigMap | dict[str, Any] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    data: dict[str, Any] = dict(raw.as_dict() if isinstance(raw, MapAttribute) else raw)
    if isinstance(data.get("player_count"), float) and float(data["player_count"]).is_integer():
        data["player_count"] = int(data["player_count"])
    return data


def config_from_item(item: GameServerModel) -> GameServerConfig:
    """The stored config, validated. Raises `ConfigError` saying what is wrong with it."""
    raw = config_from_map(item.config)
    if NOT_A_MAP in raw:
        raise ConfigError(f"stored config is a DynamoDB {raw[NOT_A_MAP]} value, not a map", field="config")
    try:
        return GameServerConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError("stored " + describe_validation_error(error), field="config") from None


#: Names the incarnation of a record stored before incarnations were kept (derived from its creation time).
_LEGACY_INCARNATIONS = uuid.UUID("6f1c9d1e-7a52-4a43-9d0c-3b2f5e8c0a11")


def legacy_incarnation(tenant_id: str, gameserver_id: str, created_at: str) -> str:
    """A stable incarnation for a record that has none stored: the same on every read, another for an id
    created again (its creation time differs)."""
    return uuid.uuid5(_LEGACY_INCARNATIONS, f"{tenant_id}/{gameserver_id}/{created_at}").hex


def server_from_item(item: GameServerModel) -> DesiredServer:
    """Map an item to a record. One that no longer validates (an id outside today's pattern, a config the
    schema refuses) comes back marked unreadable, with the reason and the stored config as it is."""
    problems: list[str] = []
    config: GameServerConfig | None = None
    raw = config_from_map(item.config)
    if not _ID_RE.fullmatch(item.gameserver_id or ""):
        problems.append(
            f"the stored gameserver_id {item.gameserver_id!r} is not 1-40 lowercase letters, digits or inner hyphens"
        )
    try:
        config = config_from_item(item)
    except ConfigError as error:
        problems.append(str(error))
    trail = (
        WriteTrail(actor=item.actor, door=item.door or "", correlation_id=item.correlation_id or "")
        if item.actor
        else None
    )
    return DesiredServer(
        tenant_id=item.tenant_id,
        gameserver_id=item.gameserver_id,
        username=item.username,
        owner_sub=item.owner_sub,
        config=config,
        generation=int(item.generation or 1),
        created_at=item.created_at,
        updated_at=item.updated_at or item.created_at,
        deletion_requested=bool(item.deletion_requested),
        region=item.region,
        status=status_from_map(item.status),
        unreadable="; ".join(problems) or None,
        raw_config=None if NOT_A_MAP in raw else raw,
        incarnation=item.incarnation or legacy_incarnation(item.tenant_id, item.gameserver_id, item.created_at or ""),
        trail=trail,
    )


def activity_from_item(item: ActivityModel) -> ActivityEntry:
    return ActivityEntry(
        at=item.at.split("#", 1)[0],
        kind=item.kind,
        message=item.message,
        generation=int(item.generation) if item.generation is not None else None,
        actor=item.actor,
        door=item.door,
        correlation_id=item.correlation_id,
        incarnation=item.incarnation,
        cursor=item.at,
    )
