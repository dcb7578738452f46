"""Status classification: what a record shows after each action and outcome, and that it does not flap."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.records import Condition, Phase, ServerStatus
from reconciler.errors import AccessDeniedError, PermanentError, ThrottledError
from reconciler.planner import Action, ActionKind
from reconciler.status import _computed_status, backoff_seconds, needs_write, next_status

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
STACK_ID = "arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-acme-gs-1/abc"


def action(kind: ActionKind, **fields: object) -> Action:
    base: dict[str, object] = {"generation": 3, "stack_id": STACK_ID, "stack_status": "CREATE_COMPLETE"}
    base.update(fields)
    return Action(kind, "gs-1", "stackherd-acme-gs-1", "us-east-1", f"{kind.value} for a test", **base)  # type: ignore[arg-type]


def test_noop_makes_the_record_ready_at_the_planned_generation() -> None:
    current = ServerStatus(phase=Phase.CREATING, observed_generation=2, attempts=2, last_error="Throttling: slow")

    new = next_status(current, action(ActionKind.NOOP), T0)

    assert new.phase is Phase.READY
    assert new.observed_generation == 3
    assert new.condition("Ready") == Condition(
        "Ready", True, "Available", "stack matches the desired config", "2024-05-01T12:00:00Z"
    )
    assert (new.attempts, new.last_error, new.next_retry_at) == (0, None, None)
    assert new.stack_id == STACK_ID
    assert new.stack_status == "CREATE_COMPLETE"
    assert new.last_transition_time == "2024-05-01T12:00:00Z"


def test_create_records_the_new_stack_id_and_creating_phase() -> None:
    new = next_status(
        ServerStatus(), action(ActionKind.CREATE, stack_id=None, stack_status=None), T0, stack_id=STACK_ID
    )

    assert (new.phase, new.stack_id, new.stack_status) == (Phase.CREATING, STACK_ID, "CREATE_IN_PROGRESS")
    ready = new.condition("Ready")
    assert ready is not None
    assert ready.status is False


def test_update_records_the_drift_it_repairs() -> None:
    diff = "parameters.Seed: 'a' -> 'b'"

    new = next_status(ServerStatus(phase=Phase.READY), action(ActionKind.UPDATE, diff=diff), T0)

    assert (new.phase, new.drift) == (Phase.UPDATING, diff)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(ActionKind.FAIL, id="fail"),
        pytest.param(ActionKind.HOLD, id="hold"),
        pytest.param(ActionKind.WAIT, id="wait"),
        pytest.param(ActionKind.REPORT, id="report"),
        pytest.param(ActionKind.NOOP, id="noop"),
    ],
)
def test_the_same_outcome_twice_needs_no_second_write(kind: ActionKind) -> None:
    the_action = action(kind, code="InvalidConfig" if kind is ActionKind.FAIL else None)
    first = next_status(ServerStatus(phase=Phase.PENDING), the_action, T0)

    second = next_status(first, the_action, T1)

    assert second.comparable() == first.comparable()
    assert not needs_write(first, second)
    assert second.last_transition_time == first.last_transition_time == "2024-05-01T12:00:00Z"
    assert second.conditions == first.conditions  # transition time of the condition kept too


def test_a_planned_failure_shows_its_reason_as_the_error() -> None:
    fail = Action(
        ActionKind.FAIL,
        "gs-1",
        "stackherd-acme-gs-1",
        "us-east-1",
        "config.player_count: 40 exceeds the standard tier's maximum of 32",
        generation=3,
        code="InvalidConfig",
    )

    new = next_status(ServerStatus(phase=Phase.READY), fail, T0)

    assert new.phase is Phase.FAILED
    assert new.last_error == "config.player_count: 40 exceeds the standard tier's maximum of 32"
    ready = new.condition("Ready")
    assert ready is not None
    assert ready.reason == "InvalidConfig"


def test_the_same_permanent_error_twice_needs_no_second_write() -> None:
    create = action(ActionKind.CREATE, stack_id=None, stack_status=None)
    denied = AccessDeniedError(
        "AccessDenied: not authorized to perform cloudformation:CreateStack", code="AccessDenied"
    )
    first = next_status(ServerStatus(), create, T0, error=denied)

    second = next_status(first, create, T1, error=denied)

    assert not needs_write(first, second)
    assert second == first


def test_a_transient_error_counts_the_attempt_and_schedules_a_retry() -> None:
    current = ServerStatus(phase=Phase.CREATING, observed_generation=3, attempts=1, stack_status="CREATE_IN_PROGRESS")
    throttled = ThrottledError("Throttling: Rate exceeded", code="Throttling")

    new = next_status(current, action(ActionKind.UPDATE), T0, error=throttled)

    assert new.phase is Phase.CREATING
    assert new.attempts == 2
    assert new.next_retry_at == "2024-05-01T12:01:00Z"  # backoff for the second attempt: 60 s
    assert new.last_error == "Throttling: Rate exceeded"
    ready = new.condition("Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == (False, "Throttling")
    assert "will retry" in ready.message
    assert new.stack_status == "CREATE_IN_PROGRESS"  # an error says nothing new about the stack


def test_a_transient_error_on_a_ready_record_leaves_ready() -> None:
    new = next_status(ServerStatus(phase=Phase.READY), action(ActionKind.UPDATE), T0, error=ThrottledError("slow"))

    assert new.phase is Phase.PENDING


def test_a_permanent_error_fails_the_record_with_its_message() -> None:
    denied = AccessDeniedError("AccessDenied: role cannot call CreateStack", code="AccessDenied")

    new = next_status(ServerStatus(phase=Phase.CREATING), action(ActionKind.CREATE), T0, error=denied)

    assert new.phase is Phase.FAILED
    assert new.last_error == "AccessDenied: role cannot call CreateStack"
    assert new.next_retry_at is None
    ready = new.condition("Ready")
    assert ready is not None
    assert ready.reason == "AccessDenied"
    assert ready.message == "create failed: AccessDenied: role cannot call CreateStack"


def test_a_different_permanent_error_is_written() -> None:
    first = next_status(ServerStatus(), action(ActionKind.CREATE), T0, error=PermanentError("ValidationError: one"))

    second = next_status(first, action(ActionKind.CREATE), T1, error=PermanentError("ValidationError: two"))

    assert needs_write(first, second)
    assert second.last_error == "ValidationError: two"


def test_deleting_a_delete_failed_stack_counts_the_attempt() -> None:
    current = ServerStatus(phase=Phase.DELETING, attempts=1, stack_status="DELETE_FAILED")

    new = next_status(current, action(ActionKind.DELETE, stack_status="DELETE_FAILED"), T0)

    assert (new.phase, new.attempts, new.stack_status) == (Phase.DELETING, 2, "DELETE_IN_PROGRESS")


def test_a_throttled_retry_of_a_delete_failed_stack_is_not_a_delete_try() -> None:
    """The planner holds a DELETE_FAILED stack after `delete_retry_limit` deletes; a call refused by throttling
    never reached CloudFormation and must not use one up."""
    current = ServerStatus(phase=Phase.DELETING, attempts=2, stack_status="DELETE_FAILED")
    retry = action(ActionKind.DELETE, stack_status="DELETE_FAILED", attempt=3)

    throttled = next_status(current, retry, T0, error=ThrottledError("Throttling: Rate exceeded"))
    refused = next_status(current, retry, T0, error=PermanentError("ValidationError: role may not delete"))

    assert (throttled.attempts, throttled.next_retry_at is not None) == (2, True)
    assert refused.attempts == 3


def test_a_first_delete_starts_counting_from_zero() -> None:
    new = next_status(ServerStatus(attempts=4), action(ActionKind.DELETE, stack_status="CREATE_COMPLETE"), T0)

    assert new.attempts == 0


def test_waiting_keeps_the_attempt_count() -> None:
    """The delete retry limit relies on the count surviving the DELETE_IN_PROGRESS passes in between."""
    current = ServerStatus(phase=Phase.DELETING, attempts=2)

    new = next_status(current, action(ActionKind.WAIT, stack_status="DELETE_IN_PROGRESS"), T0)

    assert (new.phase, new.attempts) == (Phase.DELETING, 2)


def test_an_orphan_action_keeps_the_observed_generation() -> None:
    new = next_status(ServerStatus(observed_generation=7), action(ActionKind.WAIT, generation=None), T0)

    assert new.observed_generation == 7


def test_needs_write_ignores_timestamps_only() -> None:
    status = next_status(ServerStatus(), action(ActionKind.NOOP), T0)
    restamped = next_status(ServerStatus(), action(ActionKind.NOOP), T1)

    assert status.last_transition_time != restamped.last_transition_time
    assert not needs_write(status, restamped)
    assert needs_write(status, next_status(status, action(ActionKind.NOOP, generation=4), T1))


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [
        pytest.param(0, 30, id="never-below-base"),
        pytest.param(1, 30, id="first"),
        pytest.param(2, 60, id="second"),
        pytest.param(3, 120, id="third"),
        pytest.param(5, 480, id="fifth"),
        pytest.param(6, 900, id="capped"),
        pytest.param(1000, 900, id="capped-far-out"),
    ],
)
def test_backoff_doubles_and_caps_at_fifteen_minutes(attempts: int, seconds: int) -> None:
    assert backoff_seconds(attempts) == seconds


# --- the failure budget and stuck stacks ------------------------------------------------------------


def test_a_started_operation_is_awaited_and_counted_against_the_budget() -> None:
    new = next_status(ServerStatus(observed_generation=3, tries=1), action(ActionKind.UPDATE, tries=2), T0)
    assert (new.phase, new.operation, new.tries, new.next_retry_at) == (Phase.UPDATING, "update", 2, None)
    recreate = next_status(ServerStatus(), action(ActionKind.RECREATE, tries=1), T0)
    assert (recreate.operation, recreate.tries) == ("delete", 1)


def test_a_failed_attempt_records_its_cause_and_backoff_and_is_failed() -> None:
    current = ServerStatus(phase=Phase.UPDATING, observed_generation=3, operation="update", tries=1)
    seen = replace(
        action(
            ActionKind.BACKOFF,
            stack_status="UPDATE_ROLLBACK_COMPLETE",
            failed_attempt=True,
            retry_at="2024-05-01T12:05:00Z",
        ),
        reason="attempt 1 of 3 failed; next try after 2024-05-01T12:05:00Z",
    )
    cause = "Server (AWS::EC2::Instance) UPDATE_FAILED: instance type not supported"

    new = next_status(current, seen, T0, cause=cause)

    assert (new.phase, new.operation, new.tries, new.cause) == (Phase.FAILED, None, 1, cause)
    assert (new.next_retry_at, new.last_error) == ("2024-05-01T12:05:00Z", cause)
    ready = new.condition("Ready")
    assert ready is not None and ready.reason == "AttemptFailed" and ready.message.endswith(f"; cause: {cause}")
    # The passes that wait it out say the same and write nothing.
    waiting = replace(seen, failed_attempt=False)
    assert not needs_write(new, next_status(new, waiting, T1))


def test_a_failed_attempt_without_readable_events_falls_back_to_the_stack_status() -> None:
    current = ServerStatus(observed_generation=3, operation="delete", tries=1)
    new = next_status(current, action(ActionKind.BACKOFF, stack_status="DELETE_FAILED", failed_attempt=True), T0)
    assert new.cause == "stack ended in DELETE_FAILED"


def test_the_budget_hold_keeps_the_cause_and_no_retry_time() -> None:
    current = ServerStatus(observed_generation=3, operation="update", tries=3, next_retry_at="2024-05-01T11:00:00Z")
    held = replace(action(ActionKind.HOLD, code="FailureBudgetExhausted", failed_attempt=True), reason="budget spent")
    new = next_status(current, held, T0, cause="X (T) UPDATE_FAILED: r")
    assert (new.phase, new.next_retry_at, new.cause, new.tries) == (Phase.HELD, None, "X (T) UPDATE_FAILED: r", 3)
    ready = new.condition("Ready")
    assert ready is not None and ready.message == "budget spent; cause: X (T) UPDATE_FAILED: r"


def test_converging_starts_the_budget_afresh() -> None:
    current = ServerStatus(observed_generation=3, operation="update", tries=2, cause="old")
    new = next_status(current, action(ActionKind.NOOP), T0)
    assert (new.operation, new.tries, new.cause) == (None, 0, None)


def test_a_call_refused_outright_is_a_failed_attempt_with_a_backoff() -> None:
    refused = next_status(
        ServerStatus(observed_generation=3),
        action(ActionKind.DELETE, tries=1, backoff_s=300),
        T0,
        error=PermanentError("ValidationError: TerminationProtection is enabled"),
    )
    assert (refused.phase, refused.tries, refused.next_retry_at) == (Phase.FAILED, 1, "2024-05-01T12:05:00Z")
    assert refused.cause == "ValidationError: TerminationProtection is enabled"


def test_a_stuck_stack_gets_a_stuck_condition_that_goes_once_it_moves() -> None:
    stuck = action(ActionKind.WAIT, stack_status="UPDATE_IN_PROGRESS", stuck_since="2024-05-01T10:00:00Z")
    new = next_status(ServerStatus(observed_generation=3), stuck, T0)
    condition = new.condition("Stuck")
    assert condition is not None and condition.status and condition.reason == "StackStuck"
    assert "UPDATE_IN_PROGRESS since 2024-05-01T10:00:00Z" in condition.message
    again = next_status(new, stuck, T1)
    assert not needs_write(new, again) and again.condition("Stuck") == condition
    moved = next_status(again, action(ActionKind.NOOP), T1)
    assert moved.condition("Stuck") is None


def test_waiting_out_a_transient_backoff_leaves_the_status_as_it_is() -> None:
    current = next_status(ServerStatus(), action(ActionKind.CREATE, tries=1), T0, error=ThrottledError("Throttling"))
    waiting = action(ActionKind.BACKOFF, code="RetryBackoff", retry_at=current.next_retry_at)
    assert next_status(current, waiting, T1) == current


_READY = Condition("Ready", True, "Available", "stack matches the desired config", "2024-05-01T11:00:00Z")
_STEADY = ServerStatus(
    phase=Phase.READY,
    observed_generation=3,
    conditions=(_READY,),
    stack_id=STACK_ID,
    stack_status="CREATE_COMPLETE",
    last_transition_time="2024-05-01T11:00:00Z",
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "phase": st.sampled_from([Phase.READY, Phase.UPDATING, Phase.FAILED, Phase.PAUSED]),
            "observed_generation": st.sampled_from([2, 3]),
            "conditions": st.sampled_from(
                [
                    (),
                    (replace(_READY, message="other"),),
                    (replace(_READY, status=False),),
                    (replace(_READY, reason="Updating"),),
                    (_READY, Condition("Stuck", True, "StackStuck", "stuck")),
                    (Condition("Stuck", True, "StackStuck", "stuck"), _READY),
                ]
            ),
            "stack_id": st.sampled_from([None, STACK_ID + "-old"]),
            "stack_status": st.sampled_from([None, "UPDATE_COMPLETE"]),
            "last_error": st.just("Throttling: slow"),
            "attempts": st.just(1),
            "next_retry_at": st.just("2024-05-01T12:30:00Z"),
            "drift": st.just("parameters.Seed: 'a' -> 'b'"),
            "operation": st.just("update"),
            "tries": st.just(1),
            "cause": st.just("Resource failed"),
        },
    ),
    st.sampled_from([None, STACK_ID, STACK_ID + "-new"]),
    st.sampled_from([3, None]),
    st.sampled_from([STACK_ID, None]),
)
def test_a_ready_server_seen_in_sync_again_gets_exactly_the_status_the_full_computation_gives(
    changes: dict[str, object], stack_id: str | None, generation: int | None, planned_stack_id: str | None
) -> None:
    # A steady-state pass returns the current status itself for a server that is already Ready and in sync,
    # without building one; it must be the very status the full computation builds, whatever differs.
    current = replace(_STEADY, **changes)  # type: ignore[arg-type]
    noop = action(ActionKind.NOOP, generation=generation, stack_id=planned_stack_id)

    new = next_status(current, noop, T1, stack_id=stack_id)

    assert new == _computed_status(current, noop, T1, stack_id=stack_id)
    assert needs_write(current, new) == (current.comparable() != new.comparable())


def test_a_ready_server_seen_in_sync_again_needs_no_write_and_keeps_its_status() -> None:
    new = next_status(_STEADY, action(ActionKind.NOOP), T1)

    assert new is _STEADY
    assert not needs_write(_STEADY, new)
    assert next_status(_STEADY, action(ActionKind.NOOP, stack_status="UPDATE_COMPLETE"), T1).stack_status == (
        "UPDATE_COMPLETE"
    )
