"""Status classification: the status a record should show after an action and its outcome. Pure.

The same problem always yields the same phase, reason and message, so repeated passes do not flap
and `ServerStatus.comparable()` lets the engine skip writes that change nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from models.records import Condition, OrphanAttempts, Phase, ServerStatus, now_iso
from reconciler.errors import ReconcileError
from reconciler.planner import OPERATIONS, RETRY_BACKOFF, Action, ActionKind, HoldReason

READY = "Ready"
HELD = "Held"
SYNCED = "Synced"
STUCK = "Stuck"

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
    if kind is ActionKind.BACKOFF:
        return (
            Phase.FAILED,
            stack_status,
            Condition(READY, False, "AttemptFailed", action.reason),
            current.attempts,
        )
    # REPORT: a paused tenant is observed, not changed.
    return (
        Phase.PAUSED,
        stack_status,
        Condition(READY, stack_status is not None, "TenantPaused", action.reason),
        0,
    )


#: The Ready condition of a server whose stack matches its record (see `_success`).
_AVAILABLE = (READY, True, "Available", "stack matches the desired config")


def _still_ready(current: ServerStatus, action: Action, stack_id: str | None) -> bool:
    """True when `current` is already, field for field, the status the full computation gives after this
    successful no-op (then it returns `current` itself): Ready for the action's generation and stack, nothing
    failing, pending or stuck, and the Available condition alone. Checked without building a status, since a
    steady-state pass asks this for every server of every tenant."""
    conditions = current.conditions
    if len(conditions) != 1 or current.phase is not Phase.READY:
        return False
    ready = conditions[0]
    return (
        (ready.type, ready.status, ready.reason, ready.message) == _AVAILABLE
        and current.observed_generation
        == (action.generation if action.generation is not None else current.observed_generation)
        and current.stack_status == action.stack_status
        and current.stack_id == (stack_id or action.stack_id or current.stack_id)
        and current.attempts == 0
        and current.tries == 0
        and current.last_error is None
        and current.drift is None
        and current.operation is None
        and current.cause is None
        and current.next_retry_at is None
    )


def still_ready(current: ServerStatus, action: Action) -> bool:
    """True when `action` is a no-op that leaves `current` exactly as it is (`next_status` returns it): the
    server was Ready for this generation and stack, and is again."""
    return action.kind is ActionKind.NOOP and _still_ready(current, action, None)


def next_status(
    current: ServerStatus,
    action: Action,
    now: datetime,
    *,
    error: ReconcileError | None = None,
    stack_id: str | None = None,
    cause: str | None = None,
) -> ServerStatus:
    """The status to record after `action`; `error` is what the cloud call raised, if anything, and
    `cause` what made a failed attempt fail (its first failed resource event), when the pass saw one."""
    if error is None and action.kind is ActionKind.NOOP and _still_ready(current, action, stack_id):
        return current  # what a steady-state pass sees for almost every server: nothing to change
    return _computed_status(current, action, now, error=error, stack_id=stack_id, cause=cause)


def _computed_status(
    current: ServerStatus,
    action: Action,
    now: datetime,
    *,
    error: ReconcileError | None = None,
    stack_id: str | None = None,
    cause: str | None = None,
) -> ServerStatus:
    stamp = now_iso(now)
    generation = action.generation if action.generation is not None else current.observed_generation
    if action.kind is ActionKind.BACKOFF and action.code == RETRY_BACKOFF and error is None:
        return current  # waiting out a transient failure's backoff: what the status says already holds
    if error is not None and action.tries and not error.retryable:
        # A call CloudFormation refused outright (a template it will not take, termination protection) is
        # a failed attempt like a rollback: it counts against the budget and is retried only after a backoff.
        message = f"{action.kind.value} failed: {error}"
        retry_at = now_iso(now + timedelta(seconds=action.backoff_s or 0)) if action.backoff_s else None
        failed = replace(
            current,
            phase=Phase.FAILED,
            observed_generation=generation,
            last_error=str(error),
            tries=action.tries,
            operation=None,
            cause=str(error),
            next_retry_at=retry_at,
        )
        return _with_stuck(_with_condition(failed, Condition(READY, False, error.code, message), stamp, current), None)
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
    if action.kind in (ActionKind.WAIT, ActionKind.HOLD, ActionKind.REPORT, ActionKind.BACKOFF):
        drift = current.drift
    operation, tries, known_cause, next_retry = _budget(current, action, cause)
    if action.kind is ActionKind.BACKOFF or action.code == HoldReason.FAILURE_BUDGET.value:
        last_error = known_cause or action.stack_status
        if known_cause:
            condition = replace(condition, message=f"{condition.message}; cause: {known_cause}")
    new = replace(
        current,
        phase=phase,
        observed_generation=generation,
        stack_id=stack_id or action.stack_id or (None if action.kind is ActionKind.CREATE else current.stack_id),
        stack_status=stack_status,
        last_error=last_error,
        attempts=attempts,
        next_retry_at=next_retry,
        drift=drift,
        operation=operation,
        tries=tries,
        cause=known_cause,
    )
    return _with_stuck(_with_condition(new, condition, stamp, current), action, stamp, current)


def _budget(current: ServerStatus, action: Action, cause: str | None) -> tuple[str | None, int, str | None, str | None]:
    """(operation, tries, cause, next_retry_at) after a successful step: a started operation is awaited on
    the next pass; a converged server starts its budget afresh; a failed attempt records its cause."""
    kind = action.kind
    if kind in OPERATIONS:
        tries = action.tries or current.tries
        return OPERATIONS[kind], tries, current.cause, None
    if kind is ActionKind.NOOP:
        return None, 0, None, None
    if action.failed_attempt:
        fallback = f"stack ended in {action.stack_status}" if action.stack_status else current.cause
        return None, current.tries, cause or fallback, action.retry_at
    if kind is ActionKind.BACKOFF:
        return current.operation, current.tries, current.cause, action.retry_at
    return current.operation, current.tries, current.cause, None


def _with_stuck(
    new: ServerStatus, action: Action | None, stamp: str = "", current: ServerStatus | None = None
) -> ServerStatus:
    """A `Stuck` condition while the stack's operation has run past the setting; gone once it moves on."""
    if action is not None and action.kind is ActionKind.WAIT and action.stuck_since:
        message = (
            f"stack has been {action.stack_status} since {action.stuck_since}; CloudFormation is still working "
            "on it and stackherd never cancels its work: look at the stack's events"
        )
        return _with_condition(new, Condition(STUCK, True, "StackStuck", message), stamp, current or new)
    if new.condition(STUCK) is None:
        return new
    return replace(new, conditions=tuple(c for c in new.conditions if c.type != STUCK))


def next_orphan_attempts(
    current: OrphanAttempts | None,
    action: Action,
    now: datetime,
    *,
    error: ReconcileError | None = None,
    cause: str | None = None,
) -> OrphanAttempts | None:
    """The failure budget of an orphan after `action`: what `next_status` is to a record's status."""
    if not action.orphan or not action.stack_id:
        return current
    base = current if current is not None and current.stack_id == action.stack_id else None
    state = base or OrphanAttempts(action.stack_id, action.stack_name, action.region)
    if action.kind is ActionKind.DELETE:
        if error is not None and error.retryable:
            return base
        if error is not None:
            retry_at = now_iso(now + timedelta(seconds=action.backoff_s)) if action.backoff_s else None
            return replace(state, tries=action.tries, operation=None, next_retry_at=retry_at, cause=str(error))
        return replace(state, tries=action.tries or state.tries + 1, operation="delete", next_retry_at=None)
    if action.failed_attempt:
        fallback = f"stack ended in {action.stack_status}" if action.stack_status else state.cause
        return replace(
            state,
            operation=None,
            next_retry_at=action.retry_at,
            cause=cause or fallback,
            held=action.kind is ActionKind.HOLD,
        )
    if action.kind is ActionKind.HOLD and base is not None and not base.held:
        return replace(base, held=True)
    return base


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
    return new is not current and current.comparable() != new.comparable()
