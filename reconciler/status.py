"""Status classification: the status a record should show after an action and its outcome. Pure.

The same problem always yields the same phase, reason and message, so repeated passes do not flap
and `ServerStatus.comparable()` lets the engine skip writes that change nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from models.records import Condition, Phase, ServerStatus, now_iso
from reconciler.errors import ReconcileError
from reconciler.planner import Action, ActionKind

READY = "Ready"
HELD = "Held"
SYNCED = "Synced"

_BACKOFF_BASE_S = 30
_BACKOFF_MAX_S = 900


def backoff_seconds(attempts: int) -> int:
    """Exponential backoff for transient failures: 30 s, 60 s, 120 s ... capped at 15 minutes."""
    return int(min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * (2 ** max(0, attempts - 1))))


def _phase_for_stack(stack_status: str | None) -> Phase:
    if not stack_status:
        return Phase.PENDING
    if stack_status.startswith("DELETE"):
        return Phase.DELETING
    if stack_status.startswith("CREATE") or stack_status.startswith("ROLLBACK") or stack_status == "REVIEW_IN_PROGRESS":
        return Phase.CREATING
    return Phase.UPDATING


def _success(action: Action, current: ServerStatus) -> tuple[Phase, str | None, Condition, int]:
    """Phase, stack status, Ready condition and attempts after `action` succeeded."""
    kind = action.kind
    stack_status = action.stack_status
    attempts = 0
    if kind is ActionKind.CREATE:
        return (
            Phase.CREATING,
            "CREATE_IN_PROGRESS",
            Condition(READY, False, "Creating", "stack create started"),
            0,
        )
    if kind is ActionKind.UPDATE:
        return Phase.UPDATING, "UPDATE_IN_PROGRESS", Condition(READY, False, "Updating", action.reason), 0
    if kind is ActionKind.RECREATE:
        return Phase.CREATING, "DELETE_IN_PROGRESS", Condition(READY, False, "Recreating", action.reason), 0
    if kind is ActionKind.CONTINUE_ROLLBACK:
        return (
            Phase.UPDATING,
            "UPDATE_ROLLBACK_IN_PROGRESS",
            Condition(READY, False, "ContinuingRollback", action.reason),
            0,
        )
    if kind is ActionKind.DELETE:
        if stack_status == "DELETE_FAILED":
            attempts = current.attempts + 1
        return (
            Phase.DELETING,
            "DELETE_IN_PROGRESS",
            Condition(READY, False, "Deleting", action.reason),
            attempts,
        )
    if kind is ActionKind.WAIT:
        phase = _phase_for_stack(stack_status)
        return (
            phase,
            stack_status,
            Condition(READY, False, "InProgress", f"stack is {stack_status}"),
            current.attempts,
        )
    if kind is ActionKind.NOOP:
        return (
            Phase.READY,
            stack_status,
            Condition(READY, True, "Available", "stack matches the desired config"),
            0,
        )
    if kind is ActionKind.HOLD:
        return (
            Phase.HELD,
            stack_status,
            Condition(READY, False, action.code or HELD, action.reason),
            current.attempts,
        )
    if kind is ActionKind.FAIL:
        return Phase.FAILED, stack_status, Condition(READY, False, action.code or "Failed", action.reason), 0
    # REPORT: a paused tenant is observed, not changed.
    return (
        Phase.PAUSED,
        stack_status,
        Condition(READY, stack_status is not None, "TenantPaused", action.reason),
        0,
    )


def next_status(
    current: ServerStatus,
    action: Action,
    now: datetime,
    *,
    error: ReconcileError | None = None,
    stack_id: str | None = None,
) -> ServerStatus:
    """The status to record after `action`; `error` is what the cloud call raised, if anything."""
    stamp = now_iso(now)
    generation = action.generation if action.generation is not None else current.observed_generation
    if error is not None:
        attempts = current.attempts + 1
        if error.retryable and action.kind is ActionKind.DELETE and action.stack_status == "DELETE_FAILED":
            # For a DELETE_FAILED stack the count is of deletes CloudFormation took and failed, which the
            # planner stops at `delete_retry_limit`; a throttled call never reached it and is no such try.
            attempts = current.attempts
        phase: Phase
        if error.retryable:
            phase = current.phase if current.phase is not Phase.READY else Phase.PENDING
            condition = Condition(READY, False, error.code, f"{action.kind.value} failed, will retry: {error}")
            next_retry = now_iso(now + timedelta(seconds=backoff_seconds(attempts)))
        else:
            phase = Phase.FAILED
            condition = Condition(READY, False, error.code, f"{action.kind.value} failed: {error}")
            next_retry = None
            if current.phase is Phase.FAILED and current.last_error == str(error):
                # The same permanent problem on every pass is not news: counting it would rewrite the status
                # (and log an activity entry) each sweep, which is exactly the flapping status must avoid.
                attempts = current.attempts
        return _with_condition(
            replace(
                current,
                phase=phase,
                observed_generation=generation,
                last_error=str(error),
                attempts=attempts,
                next_retry_at=next_retry,
            ),
            condition,
            stamp,
            current,
        )

    phase, stack_status, condition, attempts = _success(action, current)
    last_error = action.reason if action.kind is ActionKind.FAIL else None
    if action.kind is ActionKind.RECREATE:
        last_error = action.reason
    drift = action.diff if action.kind is ActionKind.UPDATE else None
    if action.kind in (ActionKind.WAIT, ActionKind.HOLD, ActionKind.REPORT):
        drift = current.drift
    new = replace(
        current,
        phase=phase,
        observed_generation=generation,
        stack_id=stack_id or action.stack_id or (None if action.kind is ActionKind.CREATE else current.stack_id),
        stack_status=stack_status,
        last_error=last_error,
        attempts=attempts,
        next_retry_at=None,
        drift=drift,
    )
    return _with_condition(new, condition, stamp, current)


def _with_condition(new: ServerStatus, condition: Condition, stamp: str, current: ServerStatus) -> ServerStatus:
    previous = current.condition(condition.type)
    if previous is not None and previous.same_as(condition):
        condition = previous  # unchanged: keep its transition time so the status does not flap
    else:
        condition = replace(condition, last_transition_time=stamp)
    others = tuple(c for c in new.conditions if c.type != condition.type)
    transition = current.last_transition_time if new.phase is current.phase else stamp
    return replace(new, conditions=(*others, condition), last_transition_time=transition)


def needs_write(current: ServerStatus, new: ServerStatus) -> bool:
    return current.comparable() != new.comparable()
