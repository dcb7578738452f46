"""The decision table: `plan(...)` turns desired records and observed stacks into actions.

This module is pure: no I/O, no clock, no SDK. It is the only place reconcile decisions are made, so
the stream, the sweep and the admin all get the same answer for the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from operator import attrgetter
from typing import Protocol

from models.config import tier_limits
from models.records import DesiredServer, Tenant
from reconciler import naming
from reconciler.rendering import render, server_region
from reconciler.stacks import (
    CONTINUE_ROLLBACK_STATUSES,
    DELETE_FAILED,
    GONE_STATUSES,
    RECREATE_STATUSES,
    ObservedStack,
    StackSpec,
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


@dataclass(frozen=True)
class PlanSettings:
    installation: str = "stackherd"
    max_deletions: int = 10
    delete_retry_limit: int = 3
    requeue_after_s: int = 30
    confirm_deletions: bool = False
    deletion_window_s: int = 3600


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
        """True when the server cannot converge without someone acting (Failed or Held)."""
        kind = self.would if self.kind is ActionKind.REPORT else self.kind
        return kind in (ActionKind.FAIL, ActionKind.HOLD)

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
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        if self.orphan:
            data["orphan"] = True
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


def drift_summary(spec: StackSpec, stack: ObservedStack) -> str | None:
    """Human-readable difference between what should be and what is; None when they match.

    A cheap equality check runs first; deepdiff only explains a difference that is already known.
    """
    want_params, have_params = spec.parameters, stack.parameters
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
) -> Plan:
    """Decide what to do for one tenant. Pure: same inputs, same plan; never performs I/O.

    `observed` is everything the tenant's account lists (owned or not); `scope`, when given, limits the
    plan to those game-server ids (the stream path), including orphans with those ids. `brake` is what the
    stored deletion brake allows (None: at most `settings.max_deletions` in this plan). `unobserved` names
    the regions that could not be listed in this pass, with why: their servers fail alone, and since nothing
    was seen there, nothing there is an orphan.
    """
    unobserved = unobserved or {}
    installation = settings.installation
    by_place = {(s.region, s.name): s for s in observed if s.status not in GONE_STATUSES}
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
            tenant, server, stack, name, region, settings, template_url, template_error, unobserved.get(region)
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
        actions.append(_plan_orphan(tenant, stack, server_id, settings))

    return Plan(tenant.tenant_id, tuple(_apply_deletion_brake(actions, settings, desired_complete, brake)))


def _orphan_id(stack: ObservedStack, installation: str, tenant_id: str) -> str:
    """The game-server id an orphan stands for: the one whose record would claim its name (its gameserver
    tag may be missing or say otherwise), else the tag, else the stack's name."""
    prefix = naming.stack_name(installation, tenant_id, "")
    if stack.name.startswith(prefix) and len(stack.name) > len(prefix):
        return stack.name[len(prefix) :]
    return stack.tags.get(naming.TAG_GAMESERVER) or stack.name


def _in_sync(
    tenant: Tenant, server: DesiredServer, stack: ObservedStack | None, installation: str, template_url: str | None
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
        and stack.parameters == server.config.parameters()
    )


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
) -> Action:
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

    if _in_sync(tenant, server, stack, settings.installation, template_url):
        # The common case of a steady-state pass, decided without rendering a spec.
        return act(ActionKind.NOOP, "stack matches its rendering")
    wait_s = settings.requeue_after_s
    if tenant.paused:
        # Observe and report only, but say what would be done: a paused tenant with a missing stack is not
        # in sync, and `plan` must not say it is.
        active = replace(tenant, paused=False)
        inner = _plan_server(
            active, server, stack, name, region, settings, template_url, template_error, region_problem
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
    if server.deletion_requested:
        if stack is None:
            return act(ActionKind.FINALIZE, "deletion requested and the stack is gone: remove the record")
        return _plan_removal(act, stack, server.status.attempts, settings, "deletion requested")

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

    if stack is None:
        return act(ActionKind.CREATE, "no stack yet", spec=spec)
    if stack.in_progress:
        return act(ActionKind.WAIT, f"stack is {stack.status}", requeue_after_s=wait_s)
    if stack.status in RECREATE_STATUSES:
        reason = f"stack is {stack.status}" + (f" ({stack.status_reason})" if stack.status_reason else "")
        return act(ActionKind.RECREATE, reason + ": delete it, then create it again")
    if stack.status in CONTINUE_ROLLBACK_STATUSES:
        return act(ActionKind.CONTINUE_ROLLBACK, f"stack is {stack.status}: continue the rollback, then re-plan")
    if stack.status == DELETE_FAILED:
        return _plan_removal(act, stack, server.status.attempts, settings, "stack failed to delete")
    if not stack.stable:
        return act(
            ActionKind.HOLD,
            f"stack is in unexpected status {stack.status}; an operator should look",
            code=HoldReason.UNEXPECTED_STATUS.value,
        )
    diff = drift_summary(spec, stack)
    if diff is None:
        return act(ActionKind.NOOP, "stack matches its rendering")
    return act(ActionKind.UPDATE, "stack differs from its rendering", spec=spec, diff=diff)


def _plan_removal(act: _ActFn, stack: ObservedStack, attempts: int, settings: PlanSettings, why: str) -> Action:
    if stack.in_progress:
        return act(ActionKind.WAIT, f"{why}; stack is {stack.status}", requeue_after_s=settings.requeue_after_s)
    if stack.status == DELETE_FAILED and attempts >= settings.delete_retry_limit:
        return act(
            ActionKind.HOLD,
            f"{why}; delete failed {attempts} times ({stack.status_reason or 'no reason given'}): "
            "an operator must remove what blocks it, then reconcile",
            code=HoldReason.DELETE_FAILED.value,
        )
    if stack.status == DELETE_FAILED:
        return act(ActionKind.DELETE, f"{why}; retrying the delete", attempt=attempts + 1)
    return act(ActionKind.DELETE, why)


def _plan_orphan(tenant: Tenant, stack: ObservedStack, server_id: str, settings: PlanSettings) -> Action:
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
    if tenant.paused:
        return _replace(
            base,
            kind=ActionKind.REPORT,
            reason="tenant is paused; orphan left in place",
            would=ActionKind.WAIT if stack.in_progress else ActionKind.DELETE,
        )
    if stack.in_progress:
        return _replace(
            base,
            kind=ActionKind.WAIT,
            reason=f"orphan stack is {stack.status}",
            requeue_after_s=settings.requeue_after_s,
        )
    return base


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
    window = _duration(settings.deletion_window_s)
    result: list[Action] = []
    allowance = brake.allowance
    for action in actions:
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
                    f"deletion held by the brake: more than {settings.max_deletions} deletions in {window}; it "
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
