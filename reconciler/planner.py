"""The decision table: `plan(...)` turns desired records and observed stacks into actions.

This module is pure: no I/O, no clock, no SDK. It is the only place reconcile decisions are made, so
the stream, the sweep and the admin all get the same answer for the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import attrgetter
from typing import Protocol

from models.config import TIERS, tier_limits
from models.records import DesiredServer, OrphanAttempts, Tenant, now_iso
from reconciler import naming
from reconciler.naming import TAG_GAMESERVER, TAG_INCARNATION, TAG_INSTALLATION, TAG_TEMPLATE_VERSION, TAG_TENANT
from reconciler.rendering import render, server_region
from reconciler.stacks import (
    CONTINUE_ROLLBACK_STATUSES,
    DELETE_FAILED,
    FAILED_OUTCOMES,
    GONE_STATUSES,
    RECREATE_STATUSES,
    REVIEW_IN_PROGRESS,
    STABLE_STATUSES,
    ObservedStack,
    StackSpec,
    TemplateVersion,
)


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RECREATE = "recreate"
    CONTINUE_ROLLBACK = "continue-rollback"
    WAIT = "wait"
    NOOP = "no-op"
    HOLD = "hold"
    FINALIZE = "finalize"
    REPORT = "report"
    FAIL = "fail"
    BACKOFF = "backoff"


#: Kinds that call CloudFormation (FINALIZE only writes DynamoDB).
CLOUD_MUTATIONS = frozenset(
    {
        ActionKind.CREATE,
        ActionKind.UPDATE,
        ActionKind.DELETE,
        ActionKind.RECREATE,
        ActionKind.CONTINUE_ROLLBACK,
    }
)


class HoldReason(StrEnum):
    DESIRED_READ_INCOMPLETE = "DesiredReadIncomplete"
    DELETION_BRAKE = "DeletionBrake"
    DELETE_FAILED = "DeleteFailedRepeatedly"
    UNEXPECTED_STATUS = "UnexpectedStackStatus"
    FAILURE_BUDGET = "FailureBudgetExhausted"
    TERMINATION_PROTECTED = "TerminationProtected"
    REVIEW_IN_PROGRESS = "ReviewInProgress"


#: The operation each mutating kind starts (a recreate starts with the delete).
OPERATIONS: Mapping[ActionKind, str] = {
    ActionKind.CREATE: "create",
    ActionKind.UPDATE: "update",
    ActionKind.DELETE: "delete",
    ActionKind.RECREATE: "delete",
    ActionKind.CONTINUE_ROLLBACK: "continue-rollback",
}


@dataclass(frozen=True)
class PlanSettings:
    installation: str = "stackherd"
    max_deletions: int = 10
    delete_retry_limit: int = 3
    requeue_after_s: int = 30
    confirm_deletions: bool = False
    deletion_window_s: int = 3600
    #: CloudFormation operations a generation may cost while it fails before the server is held.
    failure_budget: int = 3
    #: The wait after a failed attempt, doubled for each further one (capped at `failure_backoff_max_s`).
    failure_backoff_s: int = 300
    failure_backoff_max_s: int = 3600
    #: An operation in progress for longer than this is reported as Stuck (never cancelled).
    stuck_after_s: int = 3600
    #: A stack left in REVIEW_IN_PROGRESS (a change set never executed) longer than this is held.
    review_grace_s: int = 900
    #: An admin's force: act now, without waiting out a failed attempt's backoff.
    force: bool = False

    def failure_backoff(self, tries: int) -> int:
        """The wait after the `tries`-th failed attempt: base, 2 x base, 4 x base ... capped."""
        return int(min(self.failure_backoff_max_s, self.failure_backoff_s * (2 ** max(0, tries - 1))))


@dataclass(frozen=True)
class Action:
    """One step towards convergence. `generation` is None for orphans (no record)."""

    kind: ActionKind
    gameserver_id: str
    stack_name: str
    region: str
    reason: str
    generation: int | None = None
    spec: StackSpec | None = None
    stack_id: str | None = None
    stack_status: str | None = None
    diff: str | None = None
    code: str | None = None
    requeue_after_s: int | None = None
    orphan: bool = False
    attempt: int = 0
    #: for a REPORT in a paused tenant: what the action would be if the tenant were active
    would: ActionKind | None = None
    #: Which try of this generation a mutating action is (against the failure budget); 0 when not counted.
    tries: int = 0
    #: Set when this pass saw the outcome of our own operation fail: the engine reads its cause.
    failed_attempt: bool = False
    #: When the next attempt may be made (a backoff), ISO time.
    retry_at: str | None = None
    #: The backoff to record should this try's call be refused outright.
    backoff_s: int | None = None
    #: Set when the stack has been in progress for longer than `stuck_after_s`: since when (ISO time).
    stuck_since: str | None = None

    @property
    def mutating(self) -> bool:
        return self.kind in CLOUD_MUTATIONS

    @property
    def pending(self) -> bool:
        """True when this action stands for a change not yet made (made now, or held back by a pause)."""
        if self.kind is ActionKind.REPORT:
            return self.would not in (None, ActionKind.NOOP)
        return self.kind is not ActionKind.NOOP

    @property
    def blocked(self) -> bool:
        """True when the server is not converging: Failed or Held, or backing off after a failed attempt
        (phase Failed until a try succeeds)."""
        kind = self.would if self.kind is ActionKind.REPORT else self.kind
        return kind in (ActionKind.FAIL, ActionKind.HOLD, ActionKind.BACKOFF)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "kind": self.kind.value,
            "gameserver_id": self.gameserver_id,
            "stack_name": self.stack_name,
            "region": self.region,
            "reason": self.reason,
        }
        optional = {
            "generation": self.generation,
            "stack_id": self.stack_id,
            "stack_status": self.stack_status,
            "diff": self.diff,
            "code": self.code,
            "requeue_after_s": self.requeue_after_s,
            "would": self.would.value if self.would is not None else None,
            "retry_at": self.retry_at,
            "stuck_since": self.stuck_since,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        if self.orphan:
            data["orphan"] = True
        if self.failed_attempt:
            data["failed_attempt"] = True
        if self.spec is not None:
            data["parameters"] = dict(self.spec.parameters)
        return data


@dataclass(frozen=True)
class Plan:
    tenant_id: str
    actions: tuple[Action, ...] = field(default_factory=tuple)

    @property
    def changes(self) -> tuple[Action, ...]:
        """Actions that would change something (cloud calls or finalizing a record)."""
        return tuple(a for a in self.actions if a.mutating or a.kind is ActionKind.FINALIZE)

    @property
    def in_sync(self) -> bool:
        return not any(a.pending for a in self.actions)

    def to_dict(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "in_sync": self.in_sync,
            "actions": [a.to_dict() for a in self.actions],
        }


def effective_parameters(
    rendered: Mapping[str, str], reported: Mapping[str, str], template: TemplateVersion | None
) -> tuple[dict[str, str], dict[str, str]]:
    """(want, have) for drift: the rendering plus the template's defaults, against what the stack reports
    of the parameters the template declares. A parameter at its template default is not drift, and
    neither is one the template no longer declares."""
    if template is None or template.parameters is None:
        return dict(rendered), dict(reported)
    declared = template.parameters
    want = {**template.defaults(), **rendered}
    have = {k: v for k, v in reported.items() if k in declared or k in rendered}
    return want, have


def drift_summary(spec: StackSpec, stack: ObservedStack, template: TemplateVersion | None = None) -> str | None:
    """Human-readable difference between what should be and what is; None when they match.

    A cheap equality check runs first; deepdiff only explains a difference that is already known.
    """
    want_params, have_params = effective_parameters(spec.parameters, stack.parameters, template)
    want_tags = {k: spec.tags.get(k) for k in naming.IDENTITY_TAGS}
    have_tags = {k: stack.tags.get(k) for k in naming.IDENTITY_TAGS}
    if want_params == have_params and want_tags == have_tags:
        return None
    from deepdiff import DeepDiff  # deferred: only paid for when there is a difference to explain

    diff = DeepDiff(
        {"parameters": have_params, "tags": have_tags},
        {"parameters": want_params, "tags": want_tags},
        verbose_level=2,
    )
    lines = []
    for path, change in sorted(diff.get("values_changed", {}).items()):
        lines.append(f"{_path(path)}: {change['old_value']!r} -> {change['new_value']!r}")
    for path, value in sorted(diff.get("dictionary_item_added", {}).items()):
        lines.append(f"{_path(path)}: missing -> {value!r}")
    for path, value in sorted(diff.get("dictionary_item_removed", {}).items()):
        lines.append(f"{_path(path)}: {value!r} -> removed")
    for path, change in sorted(diff.get("type_changes", {}).items()):
        lines.append(f"{_path(path)}: {change.get('old_value')!r} -> {change.get('new_value')!r}")
    return "; ".join(lines) or "stack differs from its rendering"


def _path(deepdiff_path: str) -> str:
    # "root['parameters']['Seed']" -> "parameters.Seed"
    return deepdiff_path.removeprefix("root").replace("']['", ".").strip("[]'")


def _config_problem(tenant: Tenant, server: DesiredServer) -> str | None:
    if server.unreadable or server.config is None:
        return server.unreadable or "the stored config cannot be read"
    try:
        limits = tier_limits(tenant.tier)
    except ValueError as error:
        return str(error)
    if server.config.player_count > limits.max_player_count:
        return (
            f"config.player_count: {server.config.player_count} exceeds the {tenant.tier} tier's maximum "
            f"of {limits.max_player_count}; lower it or move the tenant to a larger tier"
        )
    if server.region and server.region not in tenant.regions:
        return f"region {server.region!r} is not one of the tenant's regions ({', '.join(tenant.regions)})"
    return None


def plan(
    tenant: Tenant,
    desired: Sequence[DesiredServer],
    observed: Sequence[ObservedStack],
    *,
    settings: PlanSettings,
    template_url: str | None,
    template_error: str | None = None,
    desired_complete: bool = True,
    scope: frozenset[str] | None = None,
    brake: BrakeView | None = None,
    unobserved: Mapping[str, str] | None = None,
    now: datetime | None = None,
    template: TemplateVersion | None = None,
    orphan_attempts: Mapping[str, OrphanAttempts] | None = None,
) -> Plan:
    """Decide what to do for one tenant. Pure: same inputs, same plan; never performs I/O.

    `observed` is everything the tenant's account lists (owned or not); `scope`, when given, limits the
    plan to those game-server ids (the stream path), including orphans with those ids. `brake` is what the
    stored deletion brake allows (None: at most `settings.max_deletions` in this plan). `unobserved` names
    the regions that could not be listed in this pass, with why: their servers fail alone, and since nothing
    was seen there, nothing there is an orphan. `now` is the pass's time (backoffs, stuck and review graces
    are judged against it; None judges none of them), `template` the pinned version as the catalog knows it,
    `orphan_attempts` the failure budget of the tenant's orphans by stack id.
    """
    unobserved = unobserved or {}
    installation = settings.installation
    if template is not None and template_url is None:
        template_url = template.url
    # Nested stacks belong to their root stack: listed with a ParentId and the parent's tags, they are never
    # an orphan and never touched.
    by_place = {(s.region, s.name): s for s in observed if not s.parent_id and s.status not in GONE_STATUSES}
    if scope is None and not tenant.paused and template_url is not None:
        in_sync = _in_sync_plan(tenant, desired, by_place, installation, template)
        if in_sync is not None:
            return in_sync
    return _plan_each(
        tenant,
        desired,
        by_place,
        settings,
        template_url,
        template_error,
        desired_complete,
        scope,
        brake,
        unobserved,
        now,
        template,
        orphan_attempts,
    )


def _plan_each(
    tenant: Tenant,
    desired: Sequence[DesiredServer],
    by_place: dict[tuple[str, str], ObservedStack],
    settings: PlanSettings,
    template_url: str | None,
    template_error: str | None,
    desired_complete: bool,
    scope: frozenset[str] | None,
    brake: BrakeView | None,
    unobserved: Mapping[str, str],
    now: datetime | None,
    template: TemplateVersion | None,
    orphan_attempts: Mapping[str, OrphanAttempts] | None,
) -> Plan:
    """The full decision, server by server, then the orphans, then the deletion brake."""
    installation = settings.installation
    claimed: set[tuple[str, str]] = set()
    actions: list[Action] = []

    for server in sorted(desired, key=attrgetter("gameserver_id")):
        name = naming.stack_name(installation, tenant.tenant_id, server.gameserver_id)
        region = server_region(tenant, server)
        if scope is not None and server.gameserver_id not in scope:
            # Not planned in this pass, but its stacks are no orphans: only a pass that plans the record
            # (the sweep) may decide that a stack of its name in another region was left behind by a move.
            claimed.update(place for place in by_place if place[1] == name)
            continue
        stack = by_place.get((region, name))
        claimed.add((region, name))
        action = _plan_server(
            tenant,
            server,
            stack,
            name,
            region,
            settings,
            template_url,
            template_error,
            unobserved.get(region),
            now,
            template,
        )
        if action.kind is ActionKind.FAIL:
            # A record that cannot be converged (e.g. moved to a region the tenant lacks) keeps the stack it
            # already has elsewhere: it is not an orphan, and a failing record must never cost a running server.
            claimed.update(place for place in by_place if place[1] == name)
        actions.append(action)

    for region, name in sorted(place for place in by_place if place not in claimed):
        stack = by_place[(region, name)]
        if not naming.is_owned(stack.tags, installation, tenant.tenant_id):
            continue  # not ours: never touched
        server_id = _orphan_id(stack, installation, tenant.tenant_id)
        if scope is not None and server_id not in scope:
            continue
        actions.append(
            _plan_orphan(tenant, stack, server_id, settings, (orphan_attempts or {}).get(stack.stack_id), now)
        )

    return Plan(tenant.tenant_id, tuple(_apply_deletion_brake(actions, settings, desired_complete, brake)))


_by_id = attrgetter("gameserver_id")


def _in_sync_plan(
    tenant: Tenant,
    desired: Sequence[DesiredServer],
    by_place: dict[tuple[str, str], ObservedStack],
    installation: str,
    template: TemplateVersion | None,
) -> Plan | None:
    """The plan of a tenant whose every server is in sync and whose account holds no orphan, decided in one
    tight loop (the steady state of almost every tenant in a sweep); None as soon as any server or stack
    needs the full decision. It concludes exactly what `_in_sync` concludes for each server (a no-op each,
    in id order), and with no deletion among them the brake changes nothing: the same `Plan` as
    `_plan_each`, at a fraction of the cost, since a worker that serves many tenants is bound by its CPU
    per tenant."""
    limits = TIERS.get(tenant.tier)
    if limits is None:
        return None
    max_players = limits.max_player_count
    tenant_id = tenant.tenant_id
    primary, regions, version = tenant.primary_region, tenant.regions, tenant.template_version
    prefix = naming.stack_name(installation, tenant_id, "")
    defaults = template.defaults() if template is not None and template.parameters else None
    stable = STABLE_STATUSES
    actions: list[Action] = []
    append = actions.append
    claimed, previous = 0, None
    for server in sorted(desired, key=_by_id):
        config, gameserver_id = server.config, server.gameserver_id
        if gameserver_id == previous:
            return None  # two records of one id (never stored): the full decision says what that means
        previous = gameserver_id
        if config is None or server.unreadable or server.deletion_requested or config.player_count > max_players:
            return None
        region = server.region
        if region:
            if region not in regions:
                return None
        else:
            region = primary
        name = prefix + gameserver_id
        stack = by_place.get((region, name))
        if stack is None or stack.status not in stable:
            return None
        tags = stack.tags
        if (
            tags.get(TAG_INSTALLATION) != installation
            or tags.get(TAG_TENANT) != tenant_id
            or tags.get(TAG_GAMESERVER) != gameserver_id
            or tags.get(TAG_TEMPLATE_VERSION) != version
            or tags.get(TAG_INCARNATION) != (server.incarnation or None)
        ):
            return None
        reported, rendered = stack.parameters, config.parameters()
        if reported != rendered and (defaults is None or reported != {**defaults, **rendered}):
            return None
        claimed += 1
        append(_in_sync_action(server, stack, name, region))
    if claimed != len(by_place) and _has_orphan(by_place, actions, installation, tenant_id):
        return None
    return Plan(tenant_id, tuple(actions))


def _has_orphan(
    by_place: dict[tuple[str, str], ObservedStack], actions: list[Action], installation: str, tenant_id: str
) -> bool:
    """True when the account holds a stack of this tenant that none of the planned servers claims."""
    claimed = {(a.region, a.stack_name) for a in actions}
    return any(
        place not in claimed and naming.is_owned(stack.tags, installation, tenant_id)
        for place, stack in by_place.items()
    )


def _orphan_id(stack: ObservedStack, installation: str, tenant_id: str) -> str:
    """The game-server id an orphan stands for: the one whose record would claim its name (its gameserver
    tag may be missing or say otherwise), else the tag, else the stack's name."""
    prefix = naming.stack_name(installation, tenant_id, "")
    if stack.name.startswith(prefix) and len(stack.name) > len(prefix):
        return stack.name[len(prefix) :]
    return stack.tags.get(naming.TAG_GAMESERVER) or stack.name


def _in_sync(
    tenant: Tenant,
    server: DesiredServer,
    stack: ObservedStack | None,
    installation: str,
    template_url: str | None,
    template: TemplateVersion | None = None,
) -> bool:
    """True when the stack is stable, ours and already renders exactly this record (what `render` +
    `drift_summary` would conclude), checked cheaply; any doubt falls through to the full decision."""
    if stack is None or template_url is None or tenant.paused or server.deletion_requested or not stack.stable:
        return False
    tags = stack.tags
    return (
        tags.get(naming.TAG_INSTALLATION) == installation
        and tags.get(naming.TAG_TENANT) == tenant.tenant_id
        and tags.get(naming.TAG_GAMESERVER) == server.gameserver_id
        and tags.get(naming.TAG_TEMPLATE_VERSION) == tenant.template_version
        and tags.get(naming.TAG_INCARNATION) == (server.incarnation or None)
        and _config_problem(tenant, server) is None
        and server.config is not None
        and _parameters_match(stack.parameters, server.config.parameters(), template)
    )


_NOOP_REASON = "stack matches its rendering"
_new, _NOOP = object.__new__, ActionKind.NOOP
if any(f.default_factory is not MISSING for f in fields(Action)):
    raise TypeError("Action fields must have plain defaults: _in_sync_action reads them from the class")


def _in_sync_action(server: DesiredServer, stack: ObservedStack, name: str, region: str) -> Action:
    """The no-op of a server whose stack already matches: equal, field for field, to the
    `Action(ActionKind.NOOP, ...)` the full decision builds. A steady-state pass builds one per server, and
    the frozen dataclass's `__init__` (twenty keyword parameters, one `object.__setattr__` each) was the
    largest single cost of planning an in-sync tenant. Only the fields a no-op sets are stored, in one
    update of the instance's dictionary: a dataclass keeps every plain default as a class attribute, so the
    others read exactly as `__init__` would have set them."""
    action: Action = _new(Action)
    action.__dict__.update(
        kind=_NOOP,
        gameserver_id=server.gameserver_id,
        stack_name=name,
        region=region,
        reason=_NOOP_REASON,
        generation=server.generation,
        stack_id=stack.stack_id,
        stack_status=stack.status,
    )
    return action


def _parameters_match(reported: dict[str, str], rendered: dict[str, str], template: TemplateVersion | None) -> bool:
    return reported == rendered or (
        template is not None and bool(template.parameters) and reported == {**template.defaults(), **rendered}
    )


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _seconds_left(retry_at: str | None, now: datetime | None) -> int:
    """Seconds until `retry_at` (0 when it has passed, or when time is not judged)."""
    at = _parse_time(retry_at)
    if at is None or now is None:
        return 0
    return max(0, int((at - now).total_seconds()))


def _age_s(stack: ObservedStack, now: datetime | None) -> float | None:
    if now is None or stack.changed_at is None:
        return None
    return (now - stack.changed_at).total_seconds()


def budget_hold_reason(tries: int, settings: PlanSettings, tenant_id: str, server_id: str, orphan: bool) -> str:
    """The same words on every pass while the server (or orphan) stays held, so its status does not flap."""
    way_out = (
        f"fix the cause, then run `stackherd servers retry {tenant_id} {server_id}`"
        if orphan
        else f"fix the cause, then run `stackherd servers retry {tenant_id} {server_id}` or write a new generation"
    )
    return (
        f"the failure budget is spent: {tries} CloudFormation operations without converging (budget "
        f"{settings.failure_budget}); {way_out}"
    )


#: The code of a backoff after a call that failed transiently (throttled, say): no attempt was spent.
RETRY_BACKOFF = "RetryBackoff"


def backoff_reason(tries: int, settings: PlanSettings, retry_at: str | None) -> str:
    if tries <= 0:
        return f"the last call failed transiently; next try after {retry_at or 'the backoff'}"
    return f"attempt {tries} of {settings.failure_budget} failed; next try after {retry_at or 'the backoff'}"


def _plan_server(
    tenant: Tenant,
    server: DesiredServer,
    stack: ObservedStack | None,
    name: str,
    region: str,
    settings: PlanSettings,
    template_url: str | None,
    template_error: str | None,
    region_problem: str | None = None,
    now: datetime | None = None,
    template: TemplateVersion | None = None,
) -> Action:
    if stack is not None and _in_sync(tenant, server, stack, settings.installation, template_url, template):
        # The common case of a steady-state pass, decided without rendering a spec.
        return _in_sync_action(server, stack, name, region)

    def act(kind: ActionKind, reason: str, **extra: object) -> Action:
        return Action(
            kind,
            server.gameserver_id,
            name,
            region,
            reason,
            generation=server.generation,
            stack_id=stack.stack_id if stack else None,
            stack_status=stack.status if stack else None,
            **extra,  # type: ignore[arg-type]
        )

    if tenant.paused:
        # Observe and report only, but say what would be done: a paused tenant with a missing stack is not
        # in sync, and `plan` must not say it is.
        active = replace(tenant, paused=False)
        inner = _plan_server(
            active, server, stack, name, region, settings, template_url, template_error, region_problem, now, template
        )
        if inner.kind is ActionKind.NOOP:
            return act(ActionKind.REPORT, "tenant is paused: observe and report only", would=ActionKind.NOOP)
        return act(
            ActionKind.REPORT,
            f"tenant is paused: observe and report only (would {inner.kind.value}: {inner.reason})",
            would=inner.kind,
            code=inner.code,
            diff=inner.diff,
        )
    if region_problem is not None:
        # Not observed in this pass: a missing stack may well be there, so neither create nor finalize.
        return act(
            ActionKind.FAIL,
            f"{region_problem}; the tenant's other regions go on",
            code="RegionUnavailable",
        )
    if stack is not None and not naming.is_owned(stack.tags, settings.installation, tenant.tenant_id):
        if server.deletion_requested:
            # The stack of that name was never this record's: there is nothing of ours to delete.
            return act(
                ActionKind.FINALIZE,
                f"deletion requested; the stack named {name} is not this tenant's and is left alone: remove the record",
            )
        return act(
            ActionKind.FAIL,
            f"a stack named {name} exists that is not this tenant's (its {naming.TAG_INSTALLATION} and "
            f"{naming.TAG_TENANT} tags do not say {settings.installation} and {tenant.tenant_id}); stackherd "
            "will not touch it: rename or remove it, or choose another game-server id",
            code="StackNameTaken",
        )
    status = server.status
    same_generation = status.observed_generation == server.generation
    spent = status.tries if same_generation else 0
    pending = status.operation if same_generation else None
    if pending in ("create", "update") and stack is not None and stack.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        spent = 0  # our operation succeeded: the budget is for failures, a later change starts afresh

    if stack is not None and not stack.in_progress and pending and stack.status in FAILED_OUTCOMES.get(pending, ()):
        # The outcome of our own operation for this generation: a failed attempt, whatever comes next.
        return _failed_attempt(act, spent, settings, now, tenant.tenant_id, server.gameserver_id, orphan=False)

    def attempt(kind: ActionKind, reason: str, **extra: object) -> Action:
        """A mutating action, unless the failure budget is spent or a failed attempt's backoff runs."""
        if spent >= settings.failure_budget:
            reason = budget_hold_reason(spent, settings, tenant.tenant_id, server.gameserver_id, orphan=False)
            return act(ActionKind.HOLD, reason, code=HoldReason.FAILURE_BUDGET.value)
        left = 0 if settings.force or not same_generation else _seconds_left(status.next_retry_at, now)
        if left:
            return act(
                ActionKind.BACKOFF,
                backoff_reason(spent, settings, status.next_retry_at),
                retry_at=status.next_retry_at,
                requeue_after_s=min(900, left),
                code=None if spent else RETRY_BACKOFF,
            )
        if stack is not None and stack.termination_protection and kind in (ActionKind.DELETE, ActionKind.RECREATE):
            return act(
                ActionKind.HOLD,
                f"{reason}; but the stack has termination protection, which stackherd never turns off: an "
                "operator disables it (aws cloudformation update-termination-protection "
                "--no-enable-termination-protection) if the stack may go",
                code=HoldReason.TERMINATION_PROTECTED.value,
            )
        return act(kind, reason, tries=spent + 1, backoff_s=settings.failure_backoff(spent + 1), **extra)

    if server.deletion_requested:
        if stack is None:
            return act(ActionKind.FINALIZE, "deletion requested and the stack is gone: remove the record")
        return _plan_removal(attempt, act, stack, server.status.attempts, settings, "deletion requested", now)

    problem = _config_problem(tenant, server)
    if problem:
        return act(ActionKind.FAIL, problem, code="InvalidConfig")
    if template_url is None:
        return act(
            ActionKind.FAIL,
            template_error or f"template version {tenant.template_version} is not published",
            code="TemplateNotFound",
        )
    spec = render(tenant, server, installation=settings.installation, url=template_url)
    if template is not None and template.capabilities:
        spec = replace(spec, capabilities=template.capabilities)

    if stack is None:
        return attempt(ActionKind.CREATE, "no stack yet", spec=spec)
    if stack.in_progress:
        return _plan_in_progress(act, stack, settings, now)
    if stack.status in RECREATE_STATUSES:
        reason = f"stack is {stack.status}" + (f" ({stack.status_reason})" if stack.status_reason else "")
        return attempt(ActionKind.RECREATE, reason + ": delete it, then create it again")
    if stack.status in CONTINUE_ROLLBACK_STATUSES:
        return attempt(ActionKind.CONTINUE_ROLLBACK, f"stack is {stack.status}: continue the rollback, then re-plan")
    if stack.status == DELETE_FAILED:
        return _plan_removal(attempt, act, stack, server.status.attempts, settings, "stack failed to delete", now)
    if not stack.stable:
        return act(
            ActionKind.HOLD,
            f"stack is in unexpected status {stack.status}; an operator should look",
            code=HoldReason.UNEXPECTED_STATUS.value,
        )
    diff = drift_summary(spec, stack, template)
    if diff is None:
        return act(ActionKind.NOOP, _NOOP_REASON)
    return attempt(ActionKind.UPDATE, "stack differs from its rendering", spec=spec, diff=diff)


def _failed_attempt(
    act: _ActFn, tries: int, settings: PlanSettings, now: datetime | None, tenant_id: str, server_id: str, orphan: bool
) -> Action:
    """The pass that sees our operation failed: back off, or hold once the budget is spent."""
    if tries >= settings.failure_budget:
        reason = budget_hold_reason(tries, settings, tenant_id, server_id, orphan)
        return act(ActionKind.HOLD, reason, code=HoldReason.FAILURE_BUDGET.value, failed_attempt=True)
    wait = settings.failure_backoff(tries)
    retry_at = now_iso(now + timedelta(seconds=wait)) if now is not None else None
    return act(
        ActionKind.BACKOFF,
        backoff_reason(tries, settings, retry_at),
        failed_attempt=True,
        retry_at=retry_at,
        requeue_after_s=min(900, wait),
    )


def _plan_in_progress(act: _ActFn, stack: ObservedStack, settings: PlanSettings, now: datetime | None) -> Action:
    """Wait for CloudFormation, never cancel it; say so when it takes far too long."""
    age = _age_s(stack, now)
    since = now_iso(stack.changed_at) if stack.changed_at is not None else None
    if stack.status == REVIEW_IN_PROGRESS and age is not None and age > settings.review_grace_s:
        return act(
            ActionKind.HOLD,
            f"stack is {REVIEW_IN_PROGRESS} since {since}: a change set was made for it and never executed; "
            "execute or delete the change set, or delete the stack, then reconcile",
            code=HoldReason.REVIEW_IN_PROGRESS.value,
        )
    if age is not None and age > settings.stuck_after_s:
        return act(
            ActionKind.WAIT,
            f"stack is {stack.status} since {since}",
            requeue_after_s=settings.requeue_after_s,
            stuck_since=since,
        )
    return act(ActionKind.WAIT, f"stack is {stack.status}", requeue_after_s=settings.requeue_after_s)


def _plan_removal(
    attempt: _ActFn,
    act: _ActFn,
    stack: ObservedStack,
    attempts: int,
    settings: PlanSettings,
    why: str,
    now: datetime | None = None,
) -> Action:
    if stack.in_progress:
        waiting = _plan_in_progress(act, stack, settings, now)
        if waiting.kind is ActionKind.WAIT:
            return replace(waiting, reason=f"{why}; {waiting.reason}")
        return waiting
    if stack.status == DELETE_FAILED and attempts >= settings.delete_retry_limit:
        return act(
            ActionKind.HOLD,
            f"{why}; delete failed {attempts} times ({stack.status_reason or 'no reason given'}): "
            "an operator must remove what blocks it, then reconcile",
            code=HoldReason.DELETE_FAILED.value,
        )
    if stack.status == DELETE_FAILED:
        return attempt(ActionKind.DELETE, f"{why}; retrying the delete", attempt=attempts + 1)
    return attempt(ActionKind.DELETE, why)


def _plan_orphan(
    tenant: Tenant,
    stack: ObservedStack,
    server_id: str,
    settings: PlanSettings,
    state: OrphanAttempts | None = None,
    now: datetime | None = None,
) -> Action:
    base = Action(
        ActionKind.DELETE,
        server_id,
        stack.name,
        stack.region,
        "owned stack without a desired record (orphan)",
        stack_id=stack.stack_id,
        stack_status=stack.status,
        orphan=True,
    )

    def act(kind: ActionKind, reason: str, **extra: object) -> Action:
        return _replace(base, kind=kind, reason=f"orphan: {reason}", **extra)

    if tenant.paused:
        # Left in place, but say what would be done (a delete, a wait, a backoff or a hold) had it been active.
        inner = _plan_orphan(replace(tenant, paused=False), stack, server_id, settings, state, now)
        return _replace(base, kind=ActionKind.REPORT, reason="tenant is paused; orphan left in place", would=inner.kind)
    if stack.in_progress:
        waiting = _plan_in_progress(act, stack, settings, now)
        if waiting.kind is ActionKind.WAIT and not waiting.stuck_since:
            return _replace(waiting, reason=f"orphan stack is {stack.status}")
        return waiting

    spent = state.tries if state is not None else 0
    if state is not None and state.operation == "delete" and stack.status in FAILED_OUTCOMES["delete"]:
        return _failed_attempt(act, spent, settings, now, tenant.tenant_id, server_id, orphan=True)
    if spent >= settings.failure_budget:
        reason = budget_hold_reason(spent, settings, tenant.tenant_id, server_id, orphan=True)
        return act(ActionKind.HOLD, reason, code=HoldReason.FAILURE_BUDGET.value)
    left = 0 if settings.force or state is None else _seconds_left(state.next_retry_at, now)
    if left:
        return act(
            ActionKind.BACKOFF,
            backoff_reason(spent, settings, state.next_retry_at if state else None),
            retry_at=state.next_retry_at if state else None,
            requeue_after_s=min(900, left),
        )
    if stack.termination_protection:
        return act(
            ActionKind.HOLD,
            "the stack has termination protection, which stackherd never turns off: an operator disables it "
            "if the stack may go, or removes the stack's stackherd tags to keep it",
            code=HoldReason.TERMINATION_PROTECTED.value,
        )
    return _replace(base, tries=spent + 1, backoff_s=settings.failure_backoff(spent + 1))


@dataclass(frozen=True)
class BrakeView:
    """What the stored deletion brake allows in this pass: an input of `plan`, so the plan stays pure.

    `allowance` is how many deletions the window still allows; `held` are the stacks held until an admin
    confirms; `confirmed` are the held stacks an admin has released for this pass (exactly those: a
    deletion that appears later is counted and held like any other)."""

    allowance: int
    held: frozenset[str] = frozenset()
    confirmed: frozenset[str] = frozenset()
    #: stacks whose deletion the window already counts (a retry after DELETE_FAILED spends nothing more)
    counted: frozenset[str] = frozenset()


def brake_key(action: Action) -> str:
    """The stack a deletion is about, as the brake stores it: region and stack name."""
    return f"{action.region}/{action.stack_name}"


def _apply_deletion_brake(
    actions: list[Action], settings: PlanSettings, complete: bool, brake: BrakeView | None
) -> list[Action]:
    if brake is None:  # no stored brake: the per-pass cap, lifted entirely by a confirmation
        everything = frozenset(brake_key(a) for a in actions if a.kind is ActionKind.DELETE)
        brake = BrakeView(
            allowance=settings.max_deletions, confirmed=everything if settings.confirm_deletions else frozenset()
        )
    result: list[Action] = []
    # A tripped brake (anything held and not confirmed) holds every new deletion too: once the window slides
    # past the deletions that tripped it, a leak that goes on must not get a fresh allowance while older
    # deletions wait for an admin.
    allowance = 0 if brake.held - brake.confirmed else brake.allowance
    for action in actions:
        if action.kind is not ActionKind.DELETE and action.kind is not ActionKind.REPORT:
            result.append(action)  # nothing the brake governs: every action of a steady-state pass
            continue
        if action.kind is ActionKind.REPORT and action.would is ActionKind.DELETE:
            key = brake_key(action)
            if key in brake.held and key not in brake.confirmed:  # a paused tenant's held deletion: still held
                action = _replace(action, would=ActionKind.HOLD, code=HoldReason.DELETION_BRAKE.value)
        if action.kind is not ActionKind.DELETE:
            result.append(action)
            continue
        if not complete:
            result.append(
                _replace(
                    action,
                    kind=ActionKind.HOLD,
                    code=HoldReason.DESIRED_READ_INCOMPLETE.value,
                    reason="deletion held: the desired-state read for this tenant was incomplete",
                )
            )
            continue
        if action.stack_status == DELETE_FAILED:
            # Retrying a delete that failed: the stack was already being deleted (a decision counted when it was
            # taken); a retry removes nothing new, so it neither spends nor waits for the allowance.
            result.append(action)
            continue
        key = brake_key(action)
        if key in brake.confirmed:
            result.append(_replace(action, reason=action.reason + "; released by an admin from the deletion brake"))
            continue
        if key not in brake.held and key in brake.counted:
            result.append(action)
            continue
        if key not in brake.held and allowance > 0:
            allowance -= 1
            result.append(action)
            continue
        result.append(
            _replace(
                action,
                kind=ActionKind.HOLD,
                code=HoldReason.DELETION_BRAKE.value,
                reason=(
                    f"deletion held by the brake: more than {settings.max_deletions} deletions in "
                    f"{_duration(settings.deletion_window_s)}; it "
                    "stays held until an admin confirms with `stackherd reconcile TENANT --confirm-deletions`"
                ),
            )
        )
    return result


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "an hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def _replace(action: Action, **changes: object) -> Action:
    return replace(action, **changes)  # type: ignore[arg-type]


class _ActFn(Protocol):
    def __call__(self, kind: ActionKind, reason: str, **extra: object) -> Action: ...
