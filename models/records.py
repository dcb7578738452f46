"""Plain value objects shared by every layer: tenants, desired records, status and conditions.

These carry no storage concerns, so the pure planner can import them; `models.tables` maps them to
and from DynamoDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from models.config import (
    ACCOUNT_PATTERN,
    DEFAULT_TENANT_ROLE_NAME,
    DEFAULT_TIER,
    TIERS,
    ConfigError,
    GameServerConfig,
    TenantSpec,
    new_external_id,
    validate_id,
)


class Phase(StrEnum):
    PENDING = "Pending"
    CREATING = "Creating"
    UPDATING = "Updating"
    READY = "Ready"
    DELETING = "Deleting"
    FAILED = "Failed"
    HELD = "Held"
    PAUSED = "Paused"


@dataclass(frozen=True)
class Condition:
    """One observation about a server, in the Kubernetes style: a type, true/false, a reason, a message."""

    type: str
    status: bool
    reason: str
    message: str
    last_transition_time: str = ""

    def same_as(self, other: Condition) -> bool:
        return (self.type, self.status, self.reason, self.message) == (
            other.type,
            other.status,
            other.reason,
            other.message,
        )


@dataclass(frozen=True)
class SeenStack:
    """What the last full read (DescribeStacks by name) of a server's stack found, with what a listing shows of
    it then. While a listing still shows the same stack id, status and last-change time, nothing the read
    returned can have changed (parameters and tags change only through a stack operation, which moves that
    time), so the sweep reuses it instead of describing the stack again."""

    stack_id: str
    status: str
    #: LastUpdatedTime (CreationTime for a stack never updated), ISO 8601 with microseconds and offset.
    changed_at: str
    parameters: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    termination_protection: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack_id": self.stack_id,
            "status": self.status,
            "changed_at": self.changed_at,
            "parameters": dict(self.parameters),
            "tags": dict(self.tags),
            "termination_protection": self.termination_protection,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> SeenStack | None:
        """The stored form back; None for anything that is not one (the stack is then simply read again)."""
        if not isinstance(raw, dict):
            return None
        try:
            parameters, tags = raw.get("parameters") or {}, raw.get("tags") or {}
            return cls(
                stack_id=str(raw["stack_id"]),
                status=str(raw["status"]),
                changed_at=str(raw["changed_at"]),
                parameters=tuple(sorted((str(k), str(v)) for k, v in parameters.items())),
                tags=tuple(sorted((str(k), str(v)) for k, v in tags.items())),
                termination_protection=bool(raw.get("termination_protection", False)),
            )
        except (KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class ServerStatus:
    """What the reconciler last saw and did. Written only by the reconciler, never bumps generation."""

    phase: Phase = Phase.PENDING
    observed_generation: int = 0
    conditions: tuple[Condition, ...] = ()
    stack_id: str | None = None
    stack_status: str | None = None
    last_error: str | None = None
    attempts: int = 0
    last_transition_time: str | None = None
    next_retry_at: str | None = None
    drift: str | None = None
    #: The CloudFormation operation last started for `observed_generation` whose outcome is not seen yet.
    operation: str | None = None
    #: CloudFormation operations sent for this generation since it last converged (the failure budget).
    tries: int = 0
    #: Why the last attempt failed: the first failed resource event of the operation.
    cause: str | None = None
    #: The tenant's template version the pass that wrote this status worked towards (a rollout reads it: Ready
    #: at the new version, or Failed or Held at it). None on statuses written before it was kept.
    template_version: str | None = None
    #: The stack as last read in full, so a sweep that lists it unchanged need not read it again.
    seen: SeenStack | None = None

    def comparable(self) -> tuple[Any, ...]:
        """Everything but timestamps: two statuses with equal `comparable()` need no write."""
        return (
            self.phase,
            self.observed_generation,
            tuple((c.type, c.status, c.reason, c.message) for c in self.conditions),
            self.stack_id,
            self.stack_status,
            self.last_error,
            self.attempts,
            self.drift,
            self.operation,
            self.tries,
            self.cause,
            self.next_retry_at,
            self.template_version,
            self.seen,
        )

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


@dataclass(frozen=True)
class OrphanAttempts:
    """The failure budget of one orphan stack (a stack with our tags and no record), kept per tenant."""

    stack_id: str
    stack_name: str
    region: str
    tries: int = 0
    operation: str | None = None
    next_retry_at: str | None = None
    cause: str | None = None
    held: bool = False
    #: since when the stack's operation has been in progress past the stuck setting, once reported as Stuck
    stuck_since: str | None = None


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    account_id: str
    regions: tuple[str, ...]
    role_arn: str
    external_id: str
    tier: str = DEFAULT_TIER
    template_version: str = "v1"
    paused: bool = False
    quarantined: str | None = None
    quarantined_at: str | None = None

    #: Set when the stored item no longer validates (say a tier that no longer exists): the reason. The other
    #: fields then hold what is stored, as it is; writers refuse to build on it.
    unreadable: str | None = None

    @property
    def primary_region(self) -> str:
        return self.regions[0]


@dataclass(frozen=True)
class WriteTrail:
    """Who asked for a desired write, through which door (`api`, `cli`, `demo`, ...), and the request's
    correlation id: the reconciler's entries for the generation the write made carry the same id."""

    actor: str
    door: str
    correlation_id: str


@dataclass(frozen=True)
class DesiredServer:
    """A game server's desired state, as stored, plus the reconciler's status.

    `config` is None when the stored item no longer validates (`unreadable` says why, `raw_config` holds
    what is stored): such a record is never shown or rewritten with defaults.
    """

    tenant_id: str
    gameserver_id: str
    username: str
    config: GameServerConfig | None
    generation: int = 1
    created_at: str = ""
    updated_at: str = ""
    deletion_requested: bool = False
    region: str | None = None
    status: ServerStatus = field(default_factory=ServerStatus)
    #: Set when the stored item no longer validates (its id, its config): the reason. The planner then fails
    #: the record, never its stack; a merge-write is refused (only a whole config replaces it).
    unreadable: str | None = None
    #: The stored config as it is (also when it validates), for showing an unreadable record honestly.
    raw_config: dict[str, Any] | None = None
    #: Each creation of a game-server id is a new incarnation: history, ETags and stack tags never carry over
    #: from a deleted predecessor of the same id.
    incarnation: str = ""
    #: The last desired write: who, through which door, under which correlation id.
    trail: WriteTrail | None = None
    #: The owning player's immutable id (the token's `sub`); `username` is kept for display and for the stack's
    #: owner tag. None on a record written before ownership was keyed on it (matched by `username`, see
    #: `owned_by`, until its owner's next write records the sub).
    owner_sub: str | None = None

    def owned_by(self, sub: str | None, username: str) -> bool:
        """Whether the player `sub` (shown as `username`) owns this record. A record that names its owner's sub
        is theirs only by sub: a username Cognito handed to a new user after the old one was deleted does
        not match it."""
        if self.owner_sub is not None:
            return sub is not None and self.owner_sub == sub
        return self.username == username

    def valid_config(self) -> GameServerConfig:
        """The config of a readable record; raises `UnreadableRecordError` for an unreadable one."""
        if self.config is None or self.unreadable is not None:
            raise UnreadableRecordError(self)
        return self.config


class UnreadableRecordError(ValueError):
    """A readable config was needed, but the stored one no longer validates."""

    def __init__(self, server: DesiredServer) -> None:
        super().__init__(
            f"game server {server.gameserver_id!r} cannot be read ({server.unreadable}); replace its whole config "
            "(PUT, or `servers put` with every key) or delete it"
        )
        self.server = server


@dataclass(frozen=True)
class ActivityEntry:
    """One line of a game server's history (per incarnation), as stored."""

    at: str
    kind: str
    message: str
    generation: int | None = None
    actor: str | None = None
    door: str | None = None
    correlation_id: str | None = None
    incarnation: str | None = None
    #: The position to continue a listing after (opaque to callers).
    cursor: str = ""


def tenant_problem(tenant: Tenant) -> str | None:
    """Why a stored tenant cannot be used as it is, or None."""
    try:
        validate_id(tenant.tenant_id, "tenant id")
    except ConfigError as error:
        return f"stored {error}"
    if tenant.tier not in TIERS:
        return f"stored tier {tenant.tier!r} is not one of {', '.join(sorted(TIERS))}; set a tier with an update"
    if not isinstance(tenant.account_id, str) or not re.fullmatch(ACCOUNT_PATTERN, tenant.account_id):
        return f"stored account id {tenant.account_id!r} is not 12 digits"
    if not tenant.regions:
        return "stored tenant has no regions; give it one with an update"
    return None


def now_iso(moment: datetime) -> str:
    """Timestamps are stored as ISO-8601 UTC strings, the shape of the original records' `created_at`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def role_arn_for(account_id: str, role: str) -> str:
    """Accept a role name or a full ARN; a name is placed in the tenant's account."""
    if role.startswith("arn:"):
        return role
    return f"arn:aws:iam::{account_id}:role/{role}"


def tenant_from_spec(
    spec: TenantSpec, *, external_id: str | None = None, role_name: str = DEFAULT_TENANT_ROLE_NAME
) -> Tenant:
    """A tenant from an admin's validated input; a missing external id is generated (a secret per tenant), a
    missing role is `role_name` (the deployment's TenantRoleName)."""
    return Tenant(
        tenant_id=spec.tenant_id,
        account_id=spec.account_id,
        regions=tuple(spec.regions),
        role_arn=role_arn_for(spec.account_id, spec.role or role_name),
        external_id=spec.external_id or external_id or new_external_id(),
        tier=spec.tier,
        template_version=spec.template_version,
        paused=spec.paused,
    )


@dataclass(frozen=True)
class HeldDeletion:
    """One stack deletion the brake holds until an admin confirms it."""

    key: str  # "<region>/<stack name>": the stack, wherever its record went
    gameserver_id: str
    held_at: str


@dataclass(frozen=True)
class DeletionBrake:
    """The deletion brake of one tenant, as stored: what is held (and since when), and when the deletions
    of the current window were started. Stored, not recomputed, so a held deletion stays held across
    passes and triggers until an admin confirms exactly this set."""

    held: tuple[HeldDeletion, ...] = ()
    #: (ISO time, key) of each stack deletion the brake let through, oldest first; one per stack, so a delete
    #: retried after DELETE_FAILED is not counted twice. Deletions an admin confirmed are not counted.
    recent: tuple[tuple[str, str], ...] = ()
    version: int = 0  # bumped by every write: two passes cannot both spend the same allowance

    @property
    def held_keys(self) -> frozenset[str]:
        return frozenset(h.key for h in self.held)

    @property
    def held_since(self) -> str | None:
        return min((h.held_at for h in self.held), default=None)

    def in_window(self, since: str) -> tuple[tuple[str, str], ...]:
        """The recorded deletions started at or after `since` (an ISO time)."""
        return tuple(entry for entry in self.recent if entry[0] >= since)

    def to_dict(self) -> dict[str, Any]:
        return {
            "held": [{"key": h.key, "gameserver_id": h.gameserver_id, "held_at": h.held_at} for h in self.held],
            "recent": [{"at": at, "key": key} for at, key in self.recent],
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> DeletionBrake:
        if not raw:
            return cls()
        return cls(
            held=tuple(
                HeldDeletion(str(h["key"]), str(h.get("gameserver_id", "")), str(h.get("held_at", "")))
                for h in raw.get("held") or ()
            ),
            recent=tuple(sorted((str(r.get("at", "")), str(r.get("key", ""))) for r in raw.get("recent") or ())),
            version=int(raw.get("version") or 0),
        )


@dataclass(frozen=True)
class TenantState:
    """What the reconciler keeps about a tenant between passes (not what an admin sets): one item per tenant,
    a map of named sections so other per-tenant state can live beside the brake."""

    deletion_brake: DeletionBrake = field(default_factory=DeletionBrake)
    #: region -> (reason, since) for a region quarantined alone (e.g. refused by an SCP)
    region_quarantine: tuple[tuple[str, str, str], ...] = ()
    #: the failure budgets of the tenant's orphan stacks (they have no record to keep them on), by stack id
    orphan_budgets: tuple[OrphanAttempts, ...] = ()
    #: sections this version does not know, kept as they are
    other: tuple[tuple[str, Any], ...] = ()

    def quarantined_regions(self) -> dict[str, str]:
        return {region: reason for region, reason, _ in self.region_quarantine}
