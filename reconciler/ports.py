"""The ports the engine talks through, with their contracts.

Every gateway call is non-blocking (it starts an operation and returns) and idempotent when retried
with the same request token; observing never mutates. Implementations: `reconciler.adapters.aws` (boto3) and
`reconciler.fakes.cloud` (in memory). The contract suite in tests/ runs against both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from models.config import GameServerConfig
from models.records import (
    ActivityEntry,
    DeletionBrake,
    DesiredServer,
    OrphanAttempts,
    ServerStatus,
    Tenant,
    TenantState,
    WriteTrail,
)
from models.work import WorkMessage
from reconciler.rollouts import Rollout
from reconciler.stacks import (
    ObservedStack,
    StackEvent,
    StackSpec,
    StackSummary,
    TemplateSummary,
    TemplateVersion,
)


class StackGateway(Protocol):
    """CloudFormation in one tenant account and region, through that tenant's assumed role."""

    account_id: str
    region: str

    def list_stacks(self) -> list[ObservedStack]:
        """Every live stack in the account and region (owned or not), with parameters and tags; one paged walk
        of DescribeStacks. Needs DescribeStacks on every stack of the account, which the narrow tenant role does
        not grant: the engine observes with `list_summaries` and `describe` instead."""

    def list_summaries(self) -> list[StackSummary]:
        """Every live stack in the account and region (owned or not) as ListStacks reports it: names, ids,
        statuses and last-change times, no parameters, tags or outputs; one paged walk. Deleted stacks
        (DELETE_COMPLETE) are left out."""

    def describe(self, name: str) -> ObservedStack | None:
        """One stack by name or id (DescribeStacks with StackName), or None when it does not exist."""

    def create(self, spec: StackSpec, token: str) -> str:
        """Start creating; returns the stack id. Raises AlreadyExistsError when the name is taken."""

    def update(self, spec: StackSpec, token: str) -> str:
        """Start updating; raises NoUpdatesError when the stack already matches."""

    def delete(self, name: str, token: str) -> None:
        """Start deleting; deleting a stack that does not exist succeeds."""

    def continue_update_rollback(self, name: str, token: str) -> None:
        """Resume a rollback that failed (UPDATE_ROLLBACK_FAILED)."""

    def failure_cause(self, name: str) -> StackEvent | None:
        """Why the stack's latest operation failed: its first failed resource event (else the stack-level
        failure), read from the stack's events back to the event that opened the operation; None when the
        operation did not fail or the stack is gone."""

    def template_summary(self, url: str) -> TemplateSummary:
        """What CloudFormation reads from the template at `url` (GetTemplateSummary): its parameters with
        their defaults and the capabilities it requires. Read-only; for a published version whose summary
        the catalog does not hold."""


class AccountConnector(Protocol):
    """Tenant -> gateway bound to credentials assumed in the tenant's account."""

    def gateway(self, tenant: Tenant, region: str) -> StackGateway:
        """A gateway for the tenant's account in `region`; credentials come from a shared cache."""

    def invalidate(self, tenant: Tenant) -> None:
        """Forget the tenant's credentials (after expired-token or access-denied)."""


class TemplateCatalog(Protocol):
    def url_for(self, version: str) -> str:
        """The template URL of a published version; raises TemplateNotFoundError otherwise."""

    def describe(self, version: str) -> TemplateVersion:
        """A published version with the parameters it declares (and their defaults) and the capabilities it
        requires, as stored with it when it was published; raises TemplateNotFoundError otherwise."""


@dataclass(frozen=True)
class DesiredRead:
    """The records of one tenant and whether the read was complete (the deletion brake needs to know)."""

    servers: tuple[DesiredServer, ...]
    complete: bool = True


@dataclass(frozen=True)
class ServerPage:
    """One page of a tenant's records in id order; `after` is the id to continue after (None at the end)."""

    servers: tuple[DesiredServer, ...]
    after: str | None = None


@dataclass(frozen=True)
class HistoryPage:
    """One page of a game server's history (one incarnation's), newest first; `cursor` continues it."""

    entries: tuple[ActivityEntry, ...]
    cursor: str | None = None


class RolloutStore(Protocol):
    """Rollouts, stored as `rollout#<id>` items in the tenants table. Every write is conditional on the revision
    read (`Rollout.revision`), so two passes advancing one rollout at once never both win. Implementations: the
    mixins `reconciler.adapters.dynamo_rollouts.DynamoRollouts` and `reconciler.fakes.rollouts.MemoryRollouts`."""

    def list_rollouts(self) -> list[Rollout]:
        """Every rollout, newest first."""

    def get_rollout(self, rollout_id: str) -> Rollout | None: ...

    def active_rollouts(self) -> tuple[int, list[Rollout]]:
        """The revision of the index of active rollouts, and those rollouts (strongly consistent)."""

    def create_rollout(self, rollout: Rollout, index_revision: int) -> Rollout | None:
        """Store a new rollout and add it to the index of active rollouts, in one transaction, only while the
        index is still at `index_revision` (no other rollout started since it was read); None otherwise."""

    def save_rollout(self, rollout: Rollout) -> Rollout | None:
        """Replace the rollout if it is still at `rollout.revision`; returns it at its new revision, None when
        another writer got there first. A rollout that is no longer active leaves the index."""


class DesiredStore(RolloutStore, Protocol):
    """The desired-state tables, as plain records (never storage items). Reads used for decisions are strongly
    consistent. Every write is atomic with the rule it must keep (generation and incarnation of the record
    read, a tenant's quota, one tenant per account): the rules themselves live in `reconciler.desired`, the
    one writer; implementations: `reconciler.adapters.dynamo.DynamoStore`, `reconciler.fakes.memory.MemoryStore`.
    """

    # --- tenants -----------------------------------------------------------------------------------

    def list_tenants(self) -> list[Tenant]:
        """Every tenant in id order; one whose item no longer validates is listed marked unreadable."""

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def create_tenant(self, tenant: Tenant, at: datetime) -> None:
        """Register a tenant and claim its account, in one transaction. Raises TenantExistsError when the id is
        taken, AccountTakenError when the account is another tenant's (and writes nothing)."""

    def update_tenant(
        self,
        tenant_id: str,
        *,
        tier: str | None = None,
        template_version: str | None = None,
        regions: tuple[str, ...] | None = None,
        paused: bool | None = None,
    ) -> Tenant | None:
        """Change only the given fields, in one conditional update; None when the tenant is not registered."""

    def set_quarantine(self, tenant_id: str, reason: str | None, at: datetime) -> None: ...

    def live_server_count(self, tenant_id: str) -> int | None:
        """The tenant's counter of live game servers (None when it was registered before counters were kept)."""

    def orphan_attempts(self, tenant_id: str) -> dict[str, OrphanAttempts]:
        """The failure budget of the tenant's orphan stacks, by stack id (orphans have no record to hold it)."""

    def save_orphan_attempts(self, tenant_id: str, attempts: Mapping[str, OrphanAttempts], at: datetime) -> None:
        """Replace the tenant's orphan budgets (an empty mapping forgets them)."""

    # --- desired records ---------------------------------------------------------------------------

    def read_servers(self, tenant_id: str) -> DesiredRead:
        """Every record of the tenant. `complete=False` when some of it could not be read (a page failed)."""

    def get_server(self, tenant_id: str, gameserver_id: str) -> DesiredServer | None: ...

    def page_servers(
        self,
        tenant_id: str,
        *,
        username: str | None = None,
        limit: int = 25,
        after: str | None = None,
        owner_sub: str | None = None,
    ) -> ServerPage:
        """One page of a tenant's records (only `username`'s when given) in id order. With `owner_sub`: the
        player's records, those that name that sub and the older ones without a sub that name `username`
        (`DesiredServer.owned_by`)."""

    def create_server(self, server: DesiredServer, *, tier: str, max_servers: int) -> DesiredServer:
        """Write a new record and count it, in one transaction, only while no record of that id exists
        (ConflictError), the tenant is still of `tier` and has fewer than `max_servers` live servers
        (QuotaExceededError)."""

    def take_token(self, key: str, *, rate_per_s: float, burst: int, at: datetime) -> float:
        """Take one token of the bucket `key` (refilled at `rate_per_s`, holding at most `burst`; full when new):
        0.0 when taken, otherwise the seconds until one will be there. Atomic across every writer."""

    def replace_server(
        self,
        current: DesiredServer,
        *,
        config: GameServerConfig,
        region: str | None,
        trail: WriteTrail,
        at: datetime,
        owner_sub: str | None = None,
    ) -> DesiredServer:
        """Write a new desired config (generation + 1) only while the record is still `current` (same
        generation and incarnation); PreconditionFailedError with the record's state otherwise."""

    def request_deletion(self, current: DesiredServer, *, trail: WriteTrail, at: datetime) -> DesiredServer:
        """Mark `current` for deletion (generation + 1, phase Deleting) and stop counting it, in one
        transaction, only while it is still `current`; PreconditionFailedError otherwise."""

    def write_status(self, server: DesiredServer, status: ServerStatus) -> bool:
        """Write only the status of a record still at `server.generation` (and incarnation), atomically; False
        when the record is gone or a desired write has moved it on (a status about an older generation must
        not overwrite what the newer generation's pass may already have written)."""

    def finalize(self, server: DesiredServer) -> bool:
        """Remove a record whose deletion was requested, if its generation and incarnation are unchanged."""

    # --- history -----------------------------------------------------------------------------------

    def append_activity(
        self,
        tenant_id: str,
        gameserver_id: str,
        kind: str,
        message: str,
        generation: int | None,
        at: datetime,
        *,
        incarnation: str | None = None,
        trail: WriteTrail | None = None,
    ) -> None: ...

    def history(
        self, tenant_id: str, gameserver_id: str, incarnation: str, *, limit: int = 50, cursor: str | None = None
    ) -> HistoryPage:
        """One incarnation's entries, newest first: a re-created id shows none of its predecessor's."""

    # What the reconciler keeps about a tenant between passes: one item (a map of sections) per tenant.

    def get_tenant_state(self, tenant_id: str) -> TenantState:
        """The tenant's reconciler state, strongly consistent; an empty state when none was written."""

    def put_deletion_brake(self, tenant_id: str, brake: DeletionBrake, expected_version: int) -> bool:
        """Replace the deletion-brake section (stored at version `expected_version + 1`) if it is still at
        `expected_version`; False when another pass wrote it meanwhile or the tenant is gone."""

    def set_region_quarantine(self, tenant_id: str, region: str, reason: str | None, at: datetime) -> None:
        """Quarantine one region of the tenant with a reason (None releases it); other regions go on."""

    def clear_region_quarantine(self, tenant_id: str) -> None:
        """Release every quarantined region of the tenant (`tenants unquarantine`)."""

    def tenant_stop_reason(self, tenant_id: str) -> str | None:
        """Why no change may be made in the tenant now (paused, quarantined, removed), else None. One cheap,
        strongly consistent read: the engine asks it before every mutating call."""


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class Requeuer(Protocol):
    """Asks for another look at some of a tenant's servers after a delay, without waiting for the sweep.

    Best effort: the sweep is the backstop, so a requeue that is lost only delays a look. Implementations:
    `reconciler.adapters.sqs` (an SQS queue with per-message delays) and `reconciler.fakes.queue`.
    """

    def requeue(self, tenant_id: str, delays: Sequence[tuple[str, int]]) -> int:
        """Ask to look at each (server id, delay in seconds) again; returns how many requests were accepted.
        May raise; the engine logs the failure and carries on."""


def stop_reason(tenant: Tenant | None) -> str | None:
    """Why a tenant must not be changed now, or None when it is active."""
    if tenant is None:
        return "the tenant is no longer registered"
    if tenant.paused:
        return "the tenant was paused"
    if tenant.quarantined:
        return f"the tenant was quarantined: {tenant.quarantined}"
    return None


# --- the work queue ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingWork:
    """A tenant's pending work as a worker claims it: the union of the triggers' scopes (None: a full pass)."""

    scope: frozenset[str] | None
    token: str
    #: an admin asked to act now on servers waiting out a backoff / to release the held deletions
    force: bool = False
    confirm_deletions: bool = False


class WorkItems(Protocol):
    """The per-tenant coalescing item (`work#<tenant id>` in the tenants table): whether a message for the tenant
    is on the work queue and not yet claimed, the union of the scopes asked for since, and the one live
    requeue-after. Every method is one conditional write, so concurrent triggers never both send.
    Implementations: `reconciler.adapters.work_items.DynamoWorkItems`, `reconciler.fakes.queue.MemoryWorkItems`.
    """

    def mark_pending(
        self,
        tenant_id: str,
        scope: frozenset[str] | None,
        token: str,
        at: datetime,
        *,
        force: bool = False,
        confirm_deletions: bool = False,
    ) -> str | None:
        """Add `scope` (None: a full pass) and an admin's flags to the tenant's pending work. Returns the token
        to send a message with when this call made the tenant pending (`token`), or took over a pending state
        left unclaimed for longer than the stale limit; None when a message already pending will carry this
        scope (coalesced)."""

    def release_pending(self, tenant_id: str, token: str) -> None:
        """Forget the pending state made with `token` (its message could not be sent), if still unclaimed."""

    def claim(self, tenant_id: str) -> PendingWork | None:
        """Take the tenant's pending work (it is no longer pending: the next trigger sends again); None when
        nothing was pending."""

    def record_requeue(self, tenant_id: str, scope: frozenset[str], due: datetime, token: str, at: datetime) -> bool:
        """Ask for a look at `scope` at `due`. True when this becomes the tenant's live requeue (its delayed
        message must be sent with `token`): none was live, the live one is due later, or it is long overdue.
        False when an earlier live requeue will carry `scope`."""

    def claim_requeue(self, tenant_id: str, token: str) -> frozenset[str] | None:
        """The live requeue's scope, removed, when `token` is still the live one; None for a superseded one."""

    def release_requeue(self, tenant_id: str, token: str) -> None:
        """Forget the live requeue made with `token` (its message could not be sent)."""


class WorkSender(Protocol):
    """Puts messages on the work queue (SQS FIFO: group = tenant, deduplication id = the pending token)."""

    def send(self, messages: Sequence[tuple[WorkMessage, str]]) -> list[str]:
        """Send each (message, token), batched; returns the tokens of the messages that were not accepted.
        Raises when the queue cannot be reached at all."""


class DelaySender(Protocol):
    """Puts a requeue on the delay queue (SQS standard, per-message delay up to 900 s), carrying its token."""

    def send_delayed(self, message: WorkMessage, token: str, delay_s: int) -> None:
        """Send `message` to arrive after `delay_s` seconds; raises when it is not accepted."""


class WorkQueue(Protocol):
    """Every trigger's way onto the work queue, coalesced per tenant; `reconciler.work.CoalescingWorkQueue`."""

    def enqueue(self, tenant_id: str, scope: frozenset[str] | None, trigger: str) -> bool:
        """Ask for a pass of the tenant (None: full). True when a message was sent, False when coalesced."""

    def requeue_after(self, tenant_id: str, scope: frozenset[str], delay_s: int) -> bool:
        """Ask for another look at `scope` after `delay_s`; True when this is the tenant's live requeue."""
