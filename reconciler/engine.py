"""The engine: observe, plan, apply, record. The one entry point of every trigger.

`reconcile_tenant(tenant_id, scope=...)` re-reads the desired records (consistent reads) and observes the
tenant's stacks every time; it never trusts an event's payload. A full pass lists each region once
(ListStacks) and describes by name only the tenant's own stacks that changed since their record's last full
read; a scoped pass describes its few stacks by name. It never waits for CloudFormation: in-progress stacks
come back as `wait` with a requeue-after.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from models.records import (
    DeletionBrake,
    DesiredServer,
    HeldDeletion,
    OrphanAttempts,
    Phase,
    SeenStack,
    Tenant,
    WriteTrail,
    now_iso,
)
from reconciler import naming
from reconciler.credentials import utcnow
from reconciler.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    CredentialsExpiredError,
    NoUpdatesError,
    PermanentError,
    ReconcileError,
    RegionUnavailableError,
    TemplateNotFoundError,
    TransientError,
    UnreadableItemError,
    classify_exception,
)
from reconciler.planner import (
    CLOUD_MUTATIONS,
    Action,
    ActionKind,
    BrakeView,
    HoldReason,
    Plan,
    PlanSettings,
    brake_key,
    plan,
)
from reconciler.ports import AccountConnector, DesiredStore, Requeuer, StackGateway, TemplateCatalog
from reconciler.rendering import server_region
from reconciler.stacks import (
    ObservedStack,
    StackSummary,
    TemplateVersion,
    seen_from,
    stack_region,
    still_seen,
)
from reconciler.status import STUCK, backoff_seconds, needs_write, next_orphan_attempts, next_status, still_ready

log = logging.getLogger("stackherd.engine")


class SummaryCache:
    """Template summaries read with GetTemplateSummary, per (version, URL), for versions whose catalog entry
    has none; bounded (the oldest entry goes first) and shared by the sweep's threads."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._entries: dict[tuple[str, str], TemplateVersion] = {}
        self._lock = threading.Lock()

    def get(self, template: TemplateVersion) -> TemplateVersion:
        """`template` itself when the catalog knows its parameters, else the summary read for it if any."""
        if template.parameters is not None:
            return template
        with self._lock:
            return self._entries.get((template.version, template.url), template)

    def put(self, template: TemplateVersion) -> None:
        with self._lock:
            self._entries.pop((template.version, template.url), None)
            self._entries[(template.version, template.url)] = template
            while len(self._entries) > self.limit:
                del self._entries[next(iter(self._entries))]


T = TypeVar("T")


@dataclass
class _Reading:
    """What one pass read of its stacks: the full reads its records keep (by stack id), the full reads made in
    this pass (to keep on the records' statuses), and the stacks taken from a kept read without a describe."""

    reused: dict[str, SeenStack]
    described: dict[str, SeenStack] = field(default_factory=dict)
    unread: set[str] = field(default_factory=set)

    def read_in_full(self, stacks: Iterable[ObservedStack]) -> None:
        for stack in stacks:
            seen = seen_from(stack)
            if seen is not None:
                self.described[stack.stack_id] = seen
            self.unread.discard(stack.stack_id)


def _describer(name: str) -> Callable[[StackGateway], ObservedStack | None]:
    return lambda gateway: gateway.describe(name)


def bare(summary: StackSummary) -> ObservedStack:
    """A listed stack that is not read: its name, id and status, no tags (so never taken for one of ours)."""
    return ObservedStack(
        name=summary.name,
        stack_id=summary.stack_id,
        status=summary.status,
        region=summary.region,
        status_reason=summary.status_reason,
        parent_id=summary.parent_id,
        changed_at=summary.changed_at,
    )


class UnknownTenantError(PermanentError):
    code = "UnknownTenant"


class RegionDeniedError(RegionUnavailableError):
    """CloudFormation in one region refused the tenant's credentials (an SCP, a region policy)."""

    code = "AccessDenied"


class TenantUnavailableError(ReconcileError):
    """The tenant's account could not be reached (access denied, suspended): it is quarantined."""

    code = "TenantUnavailable"


class Outcome(StrEnum):
    """What became of one planned action."""

    PLANNED = "planned"  # a dry run: nothing was done
    DONE = "done"
    SKIPPED = "skipped"  # the record changed since planning; the next pass re-plans
    FAILED = "failed"
    HELD = "held"  # not done, and not tried again until an operator acts (deletion brake, ...)


@dataclass(frozen=True)
class ActionResult:
    action: Action
    outcome: Outcome
    detail: str | None = None
    retryable: bool = False
    #: set when the tenant was found paused or quarantined right before this action: the pass stops changing it
    stopped: str | None = None

    def to_dict(self) -> dict[str, object]:
        data = self.action.to_dict()
        data["outcome"] = self.outcome.value
        if self.detail:
            data["detail"] = self.detail
        return data


def _done(action: Action) -> ActionResult:
    """`ActionResult(action, Outcome.DONE)`, built as the planner builds its no-ops: the two fields set in one
    update of the instance's dictionary, the others read from the class as `__init__` would have set them
    (a steady pass makes one per server of every tenant)."""
    done: ActionResult = object.__new__(ActionResult)
    done.__dict__.update(action=action, outcome=Outcome.DONE)
    return done


if any(f.default_factory is not MISSING for f in fields(ActionResult)):
    raise TypeError("ActionResult fields must have plain defaults: _done reads them from the class")


@dataclass
class TenantResult:
    tenant_id: str
    dry_run: bool = False
    results: list[ActionResult] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False
    requeue: list[tuple[str, int]] = field(default_factory=list)
    requeued: int = 0  # how many of the requeue requests the requeuer accepted
    #: the deletion brake after this pass: held deletions, since when, deletions in the current window
    brake: dict[str, object] | None = None
    #: why the pass stopped changing the tenant part-way (paused or quarantined meanwhile)
    stopped: str | None = None
    paused: bool = False
    #: regions not observed in this pass, and why (their servers fail alone; nothing there is deleted)
    unobserved_regions: dict[str, str] = field(default_factory=dict)
    #: servers already Failed or Held at their generation that this plan would not bring to rest (dry run)
    failing: list[str] = field(default_factory=list)
    #: why the tenant is quarantined, when a dry run finds it so (sweeps skip it until an operator acts)
    quarantined: str | None = None

    @property
    def stuck(self) -> int:
        """Stacks whose operation has run past the stuck setting (a metric; never cancelled)."""
        return sum(1 for r in self.results if r.action.stuck_since)

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.outcome is not Outcome.FAILED for r in self.results)

    @property
    def in_sync(self) -> bool:
        return self.error is None and not any(r.action.pending for r in self.results)

    @property
    def verdict(self) -> str:
        """`failed` (the tenant errored, an action failed, or a server is Failed or Held), `pending` (changes
        to make, in progress or held back by a pause) or `in_sync`: what `plan` and `reconcile` exit with."""
        if self.error is not None or self.not_converging or self.quarantined:
            return "failed"
        return "in_sync" if self.in_sync else "pending"

    @property
    def not_converging(self) -> list[str]:
        """What keeps the tenant from converging until someone acts: servers (or orphan stacks) whose action
        failed or is blocked, servers already Failed or Held at their generation, and regions not observed in
        this pass (what is there, orphans included, is unknown), as `region:<name>`."""
        blocked = {
            r.action.gameserver_id or r.action.stack_name
            for r in self.results
            if r.outcome is Outcome.FAILED or r.action.blocked
        }
        return sorted(blocked | set(self.failing)) + [f"region:{region}" for region in sorted(self.unobserved_regions)]

    def kinds(self) -> Counter[str]:
        return Counter(r.action.kind.value for r in self.results if r.outcome in (Outcome.DONE, Outcome.PLANNED))

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "tenant_id": self.tenant_id,
            "dry_run": self.dry_run,
            "in_sync": self.in_sync,
            "verdict": self.verdict,
            "paused": self.paused,
            "actions": [r.to_dict() for r in self.results],
        }
        if self.failing:
            data["failing"] = list(self.failing)
        if self.unobserved_regions:
            data["unobserved_regions"] = dict(self.unobserved_regions)
        if self.quarantined:
            data["quarantined"] = self.quarantined
        if self.error:
            data["error"] = self.error
            data["error_code"] = self.error_code
            data["retryable"] = self.retryable
        if self.brake is not None:
            data["deletion_brake"] = self.brake
        if self.stopped:
            data["stopped"] = self.stopped
        return data


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did, for its logs, metrics, the CLI and the sweep handler's answer."""

    tenants: int  # registered
    reconciled: int  # not skipped
    skipped: list[str]  # quarantined, in id order
    actions: dict[str, int]  # kind -> how many were done (or planned)
    failed_actions: int
    failures: dict[str, str]  # tenant -> why its pass failed
    stuck: int = 0  # stacks in progress past the stuck setting (CloudFormation's own work, never cancelled)
    #: tenant -> what keeps it from converging until someone acts (Failed or Held servers, unobserved regions)
    not_converging: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.failed_actions and not self.not_converging and not self.skipped

    def to_dict(self) -> dict[str, object]:
        return {
            "tenants": self.tenants,
            "reconciled": self.reconciled,
            "skipped": list(self.skipped),
            "actions": dict(self.actions),
            "failed_actions": self.failed_actions,
            "failures": dict(self.failures),
            "stuck": self.stuck,
            "not_converging": {tenant: list(ids) for tenant, ids in self.not_converging.items()},
        }


@dataclass
class SweepResult:
    tenants: int = 0
    skipped: list[str] = field(default_factory=list)
    results: list[TenantResult] = field(default_factory=list)

    def summary(self) -> SweepSummary:
        actions: Counter[str] = Counter()
        for result in self.results:
            actions.update(result.kinds())
        return SweepSummary(
            tenants=self.tenants,
            reconciled=len(self.results),
            skipped=sorted(self.skipped),
            actions=dict(sorted(actions.items())),
            failed_actions=sum(1 for r in self.results for a in r.results if a.outcome is Outcome.FAILED),
            failures={r.tenant_id: r.error for r in self.results if r.error},
            stuck=sum(r.stuck for r in self.results),
            not_converging={
                r.tenant_id: r.not_converging
                for r in sorted(self.results, key=lambda r: r.tenant_id)
                if r.error is None and r.not_converging
            },
        )


def _brake_summary(
    brake: DeletionBrake, recent: tuple[tuple[str, str], ...], settings: PlanSettings
) -> dict[str, object] | None:
    """The brake as `plan` and a tenant's status show it; None when it holds nothing and nothing was deleted."""
    if not brake.held and not recent:
        return None
    return {
        "held": len(brake.held),
        "held_since": brake.held_since,
        "held_servers": sorted(h.gameserver_id for h in brake.held),
        "deletions_in_window": len({key for _, key in recent}),
        "max_deletions": settings.max_deletions,
        "window_seconds": settings.deletion_window_s,
    }


class Engine:
    def __init__(
        self,
        store: DesiredStore,
        connector: AccountConnector,
        templates: TemplateCatalog,
        *,
        settings: PlanSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        requeuer: Requeuer | None = None,
        scoped_describe_limit: int = 5,
    ) -> None:
        self.store = store
        #: A scoped pass reads its stacks by name while that takes at most this many describes (servers x
        #: regions); a larger scope lists the regions instead (one call a page of 100 stacks), and describes
        #: only its own stacks that changed.
        self.scoped_describe_limit = scoped_describe_limit
        self.connector = connector
        self.templates = templates
        self.settings = settings or PlanSettings()
        self.clock = clock
        self.requeuer = requeuer
        self._summarized = SummaryCache()

    # --- entry points ----------------------------------------------------------------------------

    def reconcile_tenant(
        self,
        tenant_id: str,
        *,
        scope: Iterable[str] | None = None,
        dry_run: bool = False,
        confirm_deletions: bool = False,
        force: bool = False,
    ) -> TenantResult:
        """Converge one tenant (or only the servers in `scope`). Errors are returned, never raised.

        `force` is an admin's: act now on servers waiting out a failed attempt's backoff."""
        result = TenantResult(tenant_id, dry_run=dry_run)
        try:
            tenant = self.store.get_tenant(tenant_id)
            if tenant is None:
                raise UnknownTenantError(f"tenant {tenant_id!r} is not registered; add it with `stackherd tenants add`")
            if tenant.unreadable is not None:
                raise UnreadableItemError(f"tenant {tenant_id!r} cannot be read: {tenant.unreadable}")
            self._reconcile(
                tenant, result, frozenset(scope) if scope is not None else None, dry_run, confirm_deletions, force
            )
        except ReconcileError as error:
            result.error, result.error_code, result.retryable = str(error), error.code, error.retryable
            log.warning("reconcile of tenant %s failed: %s", tenant_id, error, extra={"tenant_id": tenant_id})
        except Exception as error:  # a defect must not stop a sweep: isolate it in this tenant's result
            classified = classify_exception(error, "AWS call")
            if classified is not None:  # an SDK error an adapter let through: still no "internal error"
                result.error, result.error_code, result.retryable = (
                    str(classified),
                    classified.code,
                    classified.retryable,
                )
                log.warning("reconcile of tenant %s failed: %s", tenant_id, classified, extra={"tenant_id": tenant_id})
            else:
                log.exception("reconcile of tenant %s crashed", tenant_id, extra={"tenant_id": tenant_id})
                result.error, result.error_code, result.retryable = (
                    f"internal error: {error!r}",
                    "InternalError",
                    True,
                )
        if not dry_run:
            result.requeued = self._requeue(tenant_id, result.requeue)
        return result

    def _requeue(self, tenant_id: str, delays: list[tuple[str, int]]) -> int:
        """Ask for another look at every server a pass waits on or backs off from. Best effort: the sweep is
        the backstop, so a failure to send is logged and never hides what the pass did."""
        if self.requeuer is None or not delays:
            return 0
        try:
            return self.requeuer.requeue(tenant_id, delays)
        except Exception as error:
            log.warning(
                "could not requeue tenant %s; the next sweep covers it: %s",
                tenant_id,
                error,
                extra={"tenant_id": tenant_id},
            )
            return 0

    def sweep(self, *, concurrency: int = 8, progress: Callable[[TenantResult], None] | None = None) -> SweepResult:
        """Reconcile every tenant that is not quarantined, `concurrency` tenants at a time.

        A tenant's failure is isolated in its own result; it never stops the others.
        """
        tenants = self.store.list_tenants()
        sweep = SweepResult(tenants=len(tenants))
        not_quarantined = [t for t in tenants if not t.quarantined]
        sweep.skipped = [t.tenant_id for t in tenants if t.quarantined]
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="sweep") as pool:
            for result in pool.map(lambda t: self.reconcile_tenant(t.tenant_id), not_quarantined):
                sweep.results.append(result)
                if progress is not None:
                    progress(result)
        return sweep

    # --- the loop --------------------------------------------------------------------------------

    def _reconcile(
        self,
        tenant: Tenant,
        result: TenantResult,
        scope: frozenset[str] | None,
        dry_run: bool,
        confirm: bool,
        force: bool = False,
    ) -> None:
        read = self.store.read_servers(tenant.tenant_id)
        url: str | None
        template_error: str | None = None
        template: TemplateVersion | None = None
        try:
            template = self.templates.describe(tenant.template_version)
            url = template.url
        except TemplateNotFoundError as error:
            url, template_error = None, str(error)

        # Every region a record points at or last had a stack in, not only the tenant's regions now: a
        # region dropped from the tenant (or a server moved away) may still hold our running stacks. A stack id
        # in the primary region (almost every one) names a region already counted: its id need not be parsed.
        home = f"arn:aws:cloudformation:{tenant.regions[0]}:{tenant.account_id}:" if tenant.regions else None
        regions = sorted(
            {
                *tenant.regions,
                *(server_region(tenant, s) for s in read.servers),
                *filter(
                    None,
                    (
                        stack_region(stack_id, tenant.account_id)
                        for s in read.servers
                        if (stack_id := s.status.stack_id) and not (home and stack_id.startswith(home))
                    ),
                ),
            }
        )
        # The primary region first: once it has listed, the credentials are known to be good, and a region
        # that refuses them is that region's problem (not enabled), not a reason to assume the role again.
        regions.sort(key=lambda r: r != tenant.primary_region)
        state = self.store.get_tenant_state(tenant.tenant_id)
        gateways: dict[str, StackGateway] = {}
        reading = _Reading(
            reused={s.status.seen.stack_id: s.status.seen for s in read.servers if s.status.seen is not None}
        )
        reader = self._region_reader(tenant, scope, regions, reading)
        observed, unobserved = self._observe(
            tenant, gateways, regions, state.quarantined_regions(), dry_run, reader=reader
        )
        result.unobserved_regions = dict(sorted(unobserved.items()))
        if tenant.quarantined and not dry_run:
            self.store.set_quarantine(tenant.tenant_id, None, self.clock())
        elif tenant.quarantined:
            result.quarantined = tenant.quarantined

        now = self.clock()
        stored = state.deletion_brake
        window = timedelta(seconds=self.settings.deletion_window_s)
        # The window's start is only worth formatting when there are deletions to judge against it.
        recent = stored.in_window(now_iso(now - window)) if stored.recent else ()
        counted = frozenset(key for _, key in recent)
        view = BrakeView(
            allowance=max(0, self.settings.max_deletions - len(counted)),
            held=stored.held_keys,
            # Exactly what was held when the admin confirmed: a deletion that appears later is not released.
            confirmed=stored.held_keys if confirm else frozenset(),
            counted=counted,
        )
        # Orphans have no record to keep their failure budget on: it is kept with the tenant's state, read above.
        orphans: dict[str, OrphanAttempts] = {a.stack_id: a for a in state.orphan_budgets}
        settings = (
            self.settings
            if (confirm, force) == (self.settings.confirm_deletions, self.settings.force)
            else replace(self.settings, confirm_deletions=confirm, force=force)
        )

        def planned(template: TemplateVersion | None) -> Plan:
            return plan(
                tenant,
                read.servers,
                observed,
                settings=settings,
                template_url=url,
                template_error=template_error,
                desired_complete=read.complete,
                scope=scope,
                brake=view,
                unobserved=unobserved,
                now=now,
                template=template,
                orphan_attempts=orphans,
            )

        template = self._summarized.get(template) if template is not None else None
        the_plan: Plan = planned(template)
        if template is not None and template.parameters is None:
            # The catalog holds no summary for this version: its defaults are unknown, so a parameter the
            # template defaults reads as drift. Ask CloudFormation once, only when parameters differ.
            known = self._summarize(tenant, template, the_plan.actions, observed, gateways)
            if known is not None:
                template = known
                the_plan = planned(known)
        # A stack is only changed as read in this pass: what a listing cannot show (termination protection
        # turned on by hand) must not surprise the call, and an orphan's tags are read before it goes. Each round
        # reads stacks no earlier round read (a plan made again may start another change: a freed brake slot).
        while stale := {
            a.stack_id for a in the_plan.actions if a.kind in CLOUD_MUTATIONS and a.stack_id in reading.unread
        }:
            observed = self._reread(tenant, gateways, observed, stale, reading, unobserved)
            result.unobserved_regions = dict(sorted(unobserved.items()))
            the_plan = planned(template)
        actions = list(the_plan.actions)
        deleting = frozenset(s.gameserver_id for s in read.servers if s.deletion_requested)
        brake = self._next_brake(
            stored, recent, actions, scope, read.complete, now, view, frozenset(unobserved), deleting
        )
        result.paused = tenant.paused
        if dry_run:
            result.brake = _brake_summary(brake, recent, self.settings)
            result.results = [ActionResult(a, Outcome.PLANNED) for a in actions]
            unsettled = {a.gameserver_id for a in actions if a.pending and not a.orphan}
            result.failing = sorted(
                s.gameserver_id
                for s in read.servers
                if s.gameserver_id in unsettled
                and s.status.phase in (Phase.FAILED, Phase.HELD)
                and s.status.observed_generation == s.generation
            )
            return
        if brake != stored and not self.store.put_deletion_brake(tenant.tenant_id, brake, stored.version):
            # Another pass of this tenant wrote the brake since we read it: it may have spent the allowance.
            actions = [
                replace(
                    a,
                    kind=ActionKind.HOLD,
                    code=HoldReason.DELETION_BRAKE.value,
                    reason="deletion not started: another pass changed the deletion brake meanwhile; the next pass "
                    "re-plans",
                )
                if a.kind is ActionKind.DELETE
                else a
                for a in actions
            ]
            brake = stored
        for newly in sorted(brake.held_keys - stored.held_keys):
            self._activity(
                tenant.tenant_id,
                next(h.gameserver_id for h in brake.held if h.key == newly),
                "brake",
                f"deletion of stack {newly} held by the deletion brake (more than {self.settings.max_deletions} "
                f"deletions in {self.settings.deletion_window_s} s); it stays held until an admin confirms with "
                f"`stackherd reconcile {tenant.tenant_id} --confirm-deletions`",
            )
        result.brake = _brake_summary(
            brake, brake.in_window(now_iso(now - window)) if brake.recent else (), self.settings
        )
        servers = {s.gameserver_id: s for s in read.servers}
        after = dict(orphans)
        for action in actions:
            if result.stopped and (action.mutating or action.kind is ActionKind.FINALIZE):
                result.results.append(
                    ActionResult(action, Outcome.SKIPPED, f"not done: {result.stopped} during this pass")
                )
                continue
            server = servers.get(action.gameserver_id)
            outcome = self._apply(tenant, gateways, action, server, after, seen=reading.described)
            result.results.append(outcome)
            if outcome.stopped:
                result.stopped = outcome.stopped
                continue
            delay = self._requeue_delay(outcome, server)
            if delay is not None:
                result.requeue.append((action.gameserver_id, delay))
        if result.stopped:
            skipped = sum(1 for r in result.results if r.outcome is Outcome.SKIPPED)
            log.info(
                "pass stopped: %s; %d changes not made",
                result.stopped,
                skipped,
                extra={"tenant_id": tenant.tenant_id},
            )

        # An orphan's budget goes with its stack: forgotten once a listing of its region no longer shows it. Only
        # a region listed in this pass says so; a region that could not be listed keeps what it had.
        # A scoped pass that read its stacks by name saw only those: it says nothing of the other orphans.
        if not after and not orphans:
            return  # no orphan had a budget, and none got one: nothing to forget or save
        live, listed = {s.stack_id for s in observed}, set(regions) - set(unobserved)
        looked = (
            None
            if scope is None
            else {naming.stack_name(self.settings.installation, tenant.tenant_id, server_id) for server_id in scope}
        )
        after = {
            k: budget
            for k, budget in after.items()
            if k in live or budget.region not in listed or (looked is not None and budget.stack_name not in looked)
        }
        if after != orphans:
            self.store.save_orphan_attempts(tenant.tenant_id, after, self.clock())

    def _next_brake(
        self,
        stored: DeletionBrake,
        recent: tuple[tuple[str, str], ...],
        actions: list[Action],
        scope: frozenset[str] | None,
        complete: bool,
        now: datetime,
        view: BrakeView,
        unobserved: frozenset[str] = frozenset(),
        deleting: frozenset[str] = frozenset(),
    ) -> DeletionBrake:
        """The brake after this plan: the deletions it starts are counted in the window, and the deletions
        it holds are stored as held (keeping when each was first held). A held deletion this pass did not
        plan (out of its scope, or not planned at all because the read was incomplete) stays held."""
        if not complete:
            return stored
        if not stored.held and not any(a.kind is ActionKind.DELETE or a.kind is ActionKind.HOLD for a in actions):
            return stored  # nothing held, started or to hold (a steady pass): what the rest below concludes
        since = {h.key: h.held_at for h in stored.held}
        stamp = now_iso(now)
        held = [
            HeldDeletion(brake_key(a), a.gameserver_id, since.get(brake_key(a), stamp))
            for a in actions
            if a.kind is ActionKind.HOLD and a.code == HoldReason.DELETION_BRAKE.value
        ]
        if scope is not None:
            held += [h for h in stored.held if h.gameserver_id not in scope]
        # A region not observed in this pass planned nothing there: what is held there stays held.
        held += [h for h in stored.held if h.key.split("/", 1)[0] in unobserved and h not in held]
        # A held deletion leaves the set only once it is made (confirmed), finished or no longer wanted (the
        # record is back). One this pass only reports (paused), waits on, backs off from or holds for another
        # reason (its failure budget, termination protection) is still a deletion, and stays held.
        unresolved = {
            brake_key(a)
            for a in actions
            if a.kind not in (ActionKind.DELETE, ActionKind.FINALIZE) and (a.orphan or a.gameserver_id in deleting)
        }
        kept = {h.key for h in held}
        held += [h for h in stored.held if h.key in unresolved and h.key not in kept]
        # Counted once per stack; what an admin confirmed is not counted against the allowance of others.
        started = sorted(
            {brake_key(a) for a in actions if a.kind is ActionKind.DELETE and a.stack_status != "DELETE_FAILED"}
            - view.counted
            - view.confirmed
        )
        if not started and {h.key for h in held} == stored.held_keys:
            return stored  # nothing to record: old entries of the window are pruned on the next write
        return replace(
            stored,
            held=tuple(sorted(held, key=lambda h: h.key)),
            recent=(*recent, *((stamp, key) for key in started)),
        )

    def _region_reader(
        self, tenant: Tenant, scope: frozenset[str] | None, regions: list[str], reading: _Reading
    ) -> Callable[[StackGateway], list[ObservedStack]]:
        """How one region is observed in this pass. A scoped pass of a few servers reads their stacks by name
        (DescribeStacks with StackName: absent is "does not exist") and lists nothing. Otherwise one paged
        ListStacks (names, statuses, last-change times) and a describe by name of only the stacks named with
        the tenant's prefix (`<installation>-<tenant>-`) that changed since their record's last full read, or
        that no record has read (possible orphans: their tags decide). Nothing else in the account is read."""
        installation = self.settings.installation
        names = (
            None
            if scope is None
            else frozenset(naming.stack_name(installation, tenant.tenant_id, server_id) for server_id in scope)
        )
        if names is not None and len(names) * len(regions) <= self.scoped_describe_limit:
            ordered = sorted(names)

            def by_name(gateway: StackGateway) -> list[ObservedStack]:
                stacks = [stack for name in ordered if (stack := gateway.describe(name)) is not None]
                reading.read_in_full(stacks)
                return stacks

            return by_name
        # The tenant's own namespace: stackherd names every stack it makes `<installation>-<tenant>-<server>`.
        prefix = naming.stack_name(installation, tenant.tenant_id, "")

        def listed(gateway: StackGateway) -> list[ObservedStack]:
            stacks: list[ObservedStack] = []
            for summary in gateway.list_summaries():
                if summary.nested or not summary.name.startswith(prefix):
                    continue  # not ours, or its root stack's: never read, never planned
                if names is not None and summary.name not in names:
                    # Out of this pass's scope: the planner only needs its name to know it is not an orphan.
                    stacks.append(bare(summary))
                    continue
                reused = still_seen(summary, reading.reused.get(summary.stack_id))
                if reused is not None:
                    reading.unread.add(reused.stack_id)
                    stacks.append(reused)
                    continue
                described = gateway.describe(summary.name)
                if described is not None:
                    reading.read_in_full([described])
                    stacks.append(described)
            return stacks

        return listed

    def _reread(
        self,
        tenant: Tenant,
        gateways: dict[str, StackGateway],
        observed: list[ObservedStack],
        stale: Collection[str | None],
        reading: _Reading,
        unobserved: dict[str, str],
    ) -> list[ObservedStack]:
        """`observed` with the stacks in `stale` read again by name (a stack gone meanwhile is left out). A
        region where that read fails is not observed in this pass: nothing is done there."""
        fresh: dict[str, ObservedStack | None] = {}
        for stack in observed:
            if stack.stack_id not in stale or stack.region in unobserved:
                continue
            try:
                found = self._call(tenant, gateways, stack.region, _describer(stack.name))
            except TenantUnavailableError:
                raise
            except ReconcileError as error:
                unobserved[stack.region] = f"region {stack.region}: stack {stack.name} could not be read: {error}"
                continue
            fresh[stack.stack_id] = found
            reading.unread.discard(stack.stack_id)
            if found is not None:
                reading.read_in_full([found])
        kept = [s for s in observed if s.region not in unobserved]
        result = [fresh.get(s.stack_id, s) for s in kept]
        return [s for s in result if s is not None]

    def _observe(
        self,
        tenant: Tenant,
        gateways: dict[str, StackGateway],
        regions: list[str],
        quarantined: dict[str, str],
        dry_run: bool,
        *,
        reader: Callable[[StackGateway], list[ObservedStack]],
    ) -> tuple[list[ObservedStack], dict[str, str]]:
        """List every region on its own. Returns the stacks of the regions listed, and why each other region
        was not: a region that cannot be listed fails only the servers placed there. Only an account-wide
        refusal (the role cannot be assumed, or every region refuses it) makes the tenant unavailable; a region
        that denies access alone (an SCP) is quarantined alone, with its reason."""
        observed: list[ObservedStack] = []
        unobserved: dict[str, str] = {}
        denied: dict[str, str] = {}
        first_error: ReconcileError | None = None
        listed = 0
        # A region that refuses the credentials as invalid before any region proved them is tried again after
        # the others: if another region accepts them, they are good and that region is not enabled. Assuming
        # the role again at once would do so on every pass of a tenant whose first region is not enabled.
        attempted = [r for r in regions if r not in quarantined]
        deferred: list[str] = []
        for region, retry in [*((r, False) for r in regions), *((r, True) for r in attempted)]:
            if retry and region not in deferred:
                continue
            if region in quarantined:
                unobserved[region] = (
                    f"region {region} is quarantined ({quarantined[region]}); its servers are left as they are "
                    f"until an operator runs `stackherd tenants unquarantine {tenant.tenant_id}`"
                )
                continue
            try:
                observed.extend(
                    self._call(
                        tenant,
                        gateways,
                        region,
                        reader,
                        dry_run,
                        proven=listed > 0,
                        refresh=retry or len(attempted) == 1,
                    )
                )
                listed += 1
            except CredentialsExpiredError as error:
                if retry or error.code != "InvalidClientTokenId":
                    raise
                deferred.append(region)
            except RegionDeniedError as error:
                denied[region] = str(error)
                unobserved[region] = f"region {region} denies access: {error}"
            except TenantUnavailableError:
                raise
            except ReconcileError as error:
                first_error = first_error or error
                unobserved[region] = f"region {region} could not be listed: {error}"
        if denied and len(denied) == len(attempted):  # every region refuses: the account refuses
            reason = f"access to account {tenant.account_id} denied: {next(iter(denied.values()))}"
            self.connector.invalidate(tenant)
            if not dry_run:
                self.store.set_quarantine(tenant.tenant_id, reason, self.clock())
            raise TenantUnavailableError(reason, code="AccessDenied")
        if attempted and not listed and first_error is not None and first_error.retryable:
            # Nothing could be listed at all (throttled, unreachable): the pass is retried. Also when some regions
            # denied access: with no region accepting the credentials in this pass, that refusal cannot be told
            # from the account's own (which ends by itself once access returns), so no region is quarantined on it.
            raise first_error
        if not dry_run:
            for region, reason in denied.items():
                self._quarantine_region(tenant, region, reason)
        return observed, unobserved

    def _summarize(
        self,
        tenant: Tenant,
        template: TemplateVersion,
        actions: Iterable[Action],
        observed: Iterable[ObservedStack],
        gateways: dict[str, StackGateway],
    ) -> TemplateVersion | None:
        """`template` completed with its summary read through the tenant's gateway (GetTemplateSummary: the
        platform has no CloudFormation permission of its own), or None when no stack's parameters differ
        from its rendering or the read fails (then drift is judged as before)."""
        stacks = {s.stack_id: s for s in observed}
        for action in actions:
            if action.kind is not ActionKind.UPDATE and action.would is not ActionKind.UPDATE:
                continue
            stack = stacks.get(action.stack_id or "")
            gateway = gateways.get(action.region)
            if stack is None or gateway is None or action.spec is None:
                continue
            if stack.parameters == dict(action.spec.parameters):
                continue
            try:
                summary = gateway.template_summary(template.url)
            except ReconcileError as error:
                log.warning(
                    "template version %s has no stored summary and GetTemplateSummary failed in account %s: %s; "
                    "a parameter the template defaults reads as drift until it can be read",
                    template.version,
                    tenant.account_id,
                    error,
                    extra={"tenant_id": tenant.tenant_id},
                )
                return None
            known = replace(template, parameters=dict(summary.parameters), capabilities=summary.capabilities)
            self._summarized.put(known)
            return known
        return None

    def _quarantine_region(self, tenant: Tenant, region: str, reason: str) -> None:
        self.store.set_region_quarantine(tenant.tenant_id, region, reason, self.clock())
        log.warning(
            "region %s of tenant %s quarantined: %s",
            region,
            tenant.tenant_id,
            reason,
            extra={"tenant_id": tenant.tenant_id},
        )

    def _requeue_delay(self, outcome: ActionResult, server: DesiredServer | None) -> int | None:
        """When to look at this server again without waiting for the sweep: after anything that started a
        CloudFormation operation, while one is in progress, and after a transient failure (with backoff)."""
        action = outcome.action
        if outcome.outcome is Outcome.FAILED:
            if not outcome.retryable:
                return None
            attempts = server.status.attempts + 1 if server is not None else 1
            return backoff_seconds(attempts)
        if outcome.outcome is Outcome.SKIPPED:
            return 1
        if action.requeue_after_s or action.mutating:
            return action.requeue_after_s or self.settings.requeue_after_s
        return None

    def _call(
        self,
        tenant: Tenant,
        gateways: dict[str, StackGateway],
        region: str,
        fn: Callable[[StackGateway], T],
        dry_run: bool = False,
        *,
        proven: bool = False,
        refresh: bool = True,
    ) -> T:
        """Run one gateway call; expired credentials are refreshed once. Access denied while getting the
        credentials (AssumeRole) quarantines the tenant; denied by the region's CloudFormation is the region's
        (`RegionDeniedError`). `proven`: these credentials already worked in another region in this pass.
        Without `refresh`, a token refused as invalid before anything proved it is raised as it is, for the
        caller to try another region first."""
        for attempt in (1, 2):
            gateway = gateways.get(region)
            try:
                if gateway is None:
                    gateway = gateways[region] = self.connector.gateway(tenant, region)
            except AccessDeniedError as error:
                self.connector.invalidate(tenant)
                reason = f"access to account {tenant.account_id} denied: {error}"
                if not dry_run:
                    self.store.set_quarantine(tenant.tenant_id, reason, self.clock())
                raise TenantUnavailableError(reason, code="AccessDenied") from error
            try:
                return fn(gateway)
            except CredentialsExpiredError as error:
                if error.code == "InvalidClientTokenId" and (proven or attempt == 2):
                    # Fresh credentials (or ones another region just accepted) refused here: the region is not
                    # enabled in the account. Assuming the role again would not help, on this pass or the next.
                    raise RegionUnavailableError(
                        f"region {region} refuses the tenant's credentials ({error}): it is probably not enabled "
                        f"in account {tenant.account_id}; enable it there, or move the servers to another region",
                        code="RegionNotEnabled",
                    ) from error
                if error.code == "InvalidClientTokenId" and not refresh:
                    raise
                self.connector.invalidate(tenant)
                gateways.pop(region, None)
                if attempt == 2:
                    raise
            except AccessDeniedError as error:
                raise RegionDeniedError(str(error), code=error.code) from error
        raise AssertionError("unreachable")

    def _failure_cause(self, tenant: Tenant, gateways: dict[str, StackGateway], action: Action) -> str | None:
        """The first failed resource event of the operation that failed; best effort (the status falls back
        to the stack status when the events cannot be read)."""
        target = action.stack_id or action.stack_name
        try:
            event = self._call(tenant, gateways, action.region, lambda gw: gw.failure_cause(target))
        except TenantUnavailableError:
            raise
        except ReconcileError as error:
            log.warning("could not read the events of %s: %s", target, error, extra={"tenant_id": tenant.tenant_id})
            return None
        return event.describe() if event is not None else None

    def _apply(
        self,
        tenant: Tenant,
        gateways: dict[str, StackGateway],
        action: Action,
        server: DesiredServer | None,
        orphans: dict[str, OrphanAttempts] | None = None,
        *,
        seen: dict[str, SeenStack] | None = None,
    ) -> ActionResult:
        kind = action.kind
        if (
            kind is ActionKind.NOOP
            and server is not None
            and not action.orphan
            and not action.failed_attempt
            and not action.stuck_since
            and not (seen and action.stack_id in seen)
            and still_ready(server.status, action)
        ):
            # Ready and seen in sync again (almost every server of a steady pass): no status to compute, write
            # or log, which is all the rest below would conclude.
            return _done(action)
        now = self.clock()
        if action.mutating or kind is ActionKind.FINALIZE:
            # Re-check with a consistent read right before the call: a newer write wins, and an orphan
            # that has just got a record is no orphan. A record that was already there when planning and is
            # unchanged lives elsewhere (the server moved region): the stack left behind is still an orphan.
            fresh = self.store.get_server(tenant.tenant_id, action.gameserver_id)
            if action.orphan and fresh is not None and (server is None or fresh.generation != server.generation):
                return ActionResult(action, Outcome.SKIPPED, "a record appeared since planning; the next pass re-plans")
            if not action.orphan and (
                fresh is None
                or fresh.generation != action.generation
                or (server is not None and fresh.incarnation != server.incarnation)
            ):
                return ActionResult(
                    action, Outcome.SKIPPED, "the record changed since planning; the next pass re-plans"
                )
            # Pause means stop: a pause (or quarantine) written while this pass runs ends its changes. Checked
            # last, right before the call, with one consistent read of the tenant's flags.
            stopped = self.store.tenant_stop_reason(tenant.tenant_id)
            if stopped:
                return ActionResult(action, Outcome.SKIPPED, f"not done: {stopped} during this pass", stopped=stopped)

        if kind is ActionKind.FINALIZE:
            assert server is not None
            if self.store.finalize(server):
                self._log(
                    server.tenant_id, action.gameserver_id, "finalized", "stack gone; record removed", action, server
                )
                return ActionResult(action, Outcome.DONE)
            return ActionResult(action, Outcome.SKIPPED, "the record changed since planning")

        stack_id: str | None = None
        error: ReconcileError | None = None
        effective = action
        cause = self._failure_cause(tenant, gateways, action) if action.failed_attempt else None
        if action.mutating:
            try:
                stack_id = self._mutate(tenant, gateways, action, now)
            except NoUpdatesError:
                effective = replace(action, kind=ActionKind.NOOP, diff=None, reason="no updates to perform")
            except AlreadyExistsError:
                effective = replace(
                    action,
                    kind=ActionKind.WAIT,
                    reason="stack is being created by another pass",
                    stack_status="CREATE_IN_PROGRESS",
                    requeue_after_s=self.settings.requeue_after_s,
                )
            except TenantUnavailableError:
                raise
            except RegionDeniedError as failure:
                # CloudFormation in this region refuses a change it let us list: the region is quarantined
                # alone (as a listing refused there would be), and the tenant's other regions go on.
                error = failure
                self._quarantine_region(tenant, action.region, str(failure))
            except ReconcileError as failure:
                error = (
                    failure
                    if isinstance(failure, (TransientError, PermanentError))
                    else PermanentError(str(failure), code=failure.code)
                )

        if server is not None and not action.orphan:
            status = next_status(server.status, effective, now, error=error, stack_id=stack_id, cause=cause)
            # The version this pass worked towards: a rollout judges a tenant by its servers' status at the new
            # version, never by a Ready left over from the old one.
            status = replace(status, template_version=tenant.template_version)
            if effective.mutating and error is None:
                # The stack is changing: what was read of it no longer holds (and a backend that does not move
                # the change time on every update, as moto, must not make the next pass trust it).
                status = replace(status, seen=None)
            elif seen and action.stack_id in seen:
                # Kept with the status so the next sweep that lists this stack unchanged need not read it again.
                status = replace(status, seen=seen[action.stack_id])
            if action.stuck_since and server.status.condition(STUCK) is None:
                self._log(tenant.tenant_id, action.gameserver_id, "stuck", f"{action.reason}: stuck", effective, server)
            if needs_write(server.status, status):
                # Conditional on the generation planned for: a pass that planned before a desired write must
                # not flap the newer generation's status back (the newer generation's pass writes its own).
                self.store.write_status(server, status)
                if error is not None or effective.kind not in (ActionKind.NOOP, ActionKind.WAIT):
                    message = f"{effective.kind.value}: {error or effective.reason}"
                    if effective.diff:
                        message += f" ({effective.diff})"
                    if action.failed_attempt and status.cause:
                        message += f"; cause: {status.cause}"
                    self._log(
                        tenant.tenant_id,
                        action.gameserver_id,
                        "status" if error else effective.kind.value,
                        message,
                        effective,
                        server,
                    )
                elif effective.kind is ActionKind.NOOP:
                    self._log(
                        tenant.tenant_id,
                        action.gameserver_id,
                        "ready",
                        "stack matches the desired config",
                        effective,
                        server,
                    )
        elif action.orphan and action.mutating:
            text = f"orphan delete: {error}" if error else f"orphan stack {action.stack_name} deleted"
            self._log(tenant.tenant_id, action.gameserver_id or action.stack_name, "orphan", text, effective)
        if action.orphan and orphans is not None and action.stack_id:
            before = orphans.get(action.stack_id)
            state = next_orphan_attempts(before, effective, now, error=error, cause=cause)
            if state is None:
                orphans.pop(action.stack_id, None)
            else:
                orphans[action.stack_id] = state
            if action.stuck_since and (state is None or state.stuck_since != action.stuck_since):
                # An orphan has no status to carry a Stuck condition: its budget keeps that it was reported,
                # so the activity log gets one entry per stuck operation, not one per pass.
                base = state or OrphanAttempts(action.stack_id, action.stack_name, action.region)
                orphans[action.stack_id] = replace(base, stuck_since=action.stuck_since)
                self._log(
                    tenant.tenant_id,
                    action.gameserver_id or action.stack_name,
                    "stuck",
                    f"orphan {action.stack_name}: {action.reason}: stuck; CloudFormation is still working on it "
                    "and stackherd never cancels its work: look at the stack's events",
                    effective,
                )
            if action.failed_attempt or (state is not None and state.held and (before is None or not before.held)):
                text = f"{action.stack_name}: {action.reason}"
                if state is not None and state.cause:
                    text += f"; cause: {state.cause}"
                self._log(tenant.tenant_id, action.gameserver_id or action.stack_name, "orphan", text, effective)

        if error is not None:
            return ActionResult(effective, Outcome.FAILED, str(error), retryable=error.retryable)
        if effective.kind is ActionKind.FAIL:
            return ActionResult(effective, Outcome.FAILED, effective.reason)
        if effective.kind is ActionKind.HOLD:
            return ActionResult(effective, Outcome.HELD, effective.reason)
        if effective is not action:
            return ActionResult(effective, Outcome.DONE, effective.reason)
        return ActionResult(action, Outcome.DONE)

    def _mutate(self, tenant: Tenant, gateways: dict[str, StackGateway], action: Action, now: datetime) -> str | None:
        name, gen = action.stack_name, action.generation if action.generation is not None else "orphan"
        # Updates, deletes and rollbacks are only sent for a stack observed at rest, and a create only when no
        # stack of the name was listed, so any earlier request of ours on it has ended: a try in a later pass
        # is a new request and needs a token of its own, or CloudFormation may take it for a replay of the
        # earlier one and do nothing (a second try after a rollback, a DELETE_FAILED retried after an
        # operator's reset, the same drift coming back, a stack deleted by hand or recreated after
        # ROLLBACK_COMPLETE). Within the pass a retried call keeps its token. Two passes racing to create
        # the same stack are kept apart by the name: the second gets AlreadyExists and waits.
        when = now_iso(now)
        if action.kind is ActionKind.CREATE:
            assert action.spec is not None
            spec = action.spec
            token = naming.request_token("create", name, gen, extra=when)
            return self._call(tenant, gateways, action.region, lambda gw: gw.create(spec, token))
        if action.kind is ActionKind.UPDATE:
            assert action.spec is not None
            spec = action.spec
            token = naming.request_token("update", name, gen, extra=f"{action.stack_status}|{action.diff}|{when}")
            return self._call(tenant, gateways, action.region, lambda gw: gw.update(spec, token))
        if action.kind in (ActionKind.DELETE, ActionKind.RECREATE):
            target = action.stack_id or name
            token = naming.request_token(
                "delete", name, gen, extra=f"{target}|{action.stack_status}|{action.attempt}|{when}"
            )
            self._call(tenant, gateways, action.region, lambda gw: gw.delete(target, token))
            return None
        if action.kind is ActionKind.CONTINUE_ROLLBACK:
            target = action.stack_id or name
            token = naming.request_token("rollback", name, gen, extra=f"{target}|{when}")
            self._call(tenant, gateways, action.region, lambda gw: gw.continue_update_rollback(target, token))
            return None
        raise AssertionError(f"not a mutating action: {action.kind}")

    def _activity(self, tenant_id: str, gameserver_id: str, kind: str, message: str) -> None:
        try:
            self.store.append_activity(tenant_id, gameserver_id, kind, message, None, self.clock())
        except Exception:  # the activity log is best effort; it never fails a reconcile
            log.exception("could not append to the activity log", extra={"tenant_id": tenant_id})

    def _log(
        self,
        tenant_id: str,
        gameserver_id: str,
        kind: str,
        message: str,
        action: Action,
        server: DesiredServer | None = None,
    ) -> None:
        """An entry in the server's history: of its incarnation, under the correlation id of the desired write
        that made the generation acted on, so a request's whole trail is one query."""
        trail = None
        if server is not None and server.trail is not None:
            trail = WriteTrail(actor="reconciler", door="reconciler", correlation_id=server.trail.correlation_id)
        try:
            self.store.append_activity(
                tenant_id,
                gameserver_id,
                kind,
                message,
                action.generation,
                self.clock(),
                incarnation=server.incarnation if server is not None else None,
                trail=trail,
            )
        except Exception:  # the activity log is best effort; it never fails a reconcile
            log.exception("could not append to the activity log", extra={"tenant_id": tenant_id})
