"""Where the stored deletion brake meets the failure budget: only a delete the plan makes takes a slot of the
window, and whatever leaves a server not converging (a backoff, a budget hold) is blocked for the verdict,
also when a paused tenant only reports it."""

from __future__ import annotations

from dataclasses import replace

from models.records import OrphanAttempts, ServerStatus
from reconciler.planner import ActionKind, BrakeView, PlanSettings, plan
from tests.unit.test_planner import LATER, NOW, PAUSED, TENANT, URL, server, stack

SETTINGS = PlanSettings(max_deletions=1)
D, H, B, R = ActionKind.DELETE, ActionKind.HOLD, ActionKind.BACKOFF, ActionKind.REPORT


def budget(gid: str, **changes: object) -> OrphanAttempts:
    arn = f"arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-acme-{gid}/{gid}-id"
    return replace(OrphanAttempts(arn, f"stackherd-acme-{gid}", "us-east-1"), **changes)  # type: ignore[arg-type]


def test_termination_protected_budget_held_and_backing_off_orphans_take_no_brake_slot() -> None:
    held, waiting = budget("gs-2", tries=3), budget("gs-3", tries=1, next_retry_at=LATER)
    result = plan(
        TENANT,
        [],
        [stack("gs-1", termination_protection=True), stack("gs-2"), stack("gs-3"), stack("gs-4")],
        settings=SETTINGS,
        template_url=URL,
        brake=BrakeView(allowance=1),
        now=NOW,
        orphan_attempts={held.stack_id: held, waiting.stack_id: waiting},
    )
    assert [(a.gameserver_id, a.kind, a.code) for a in result.actions] == [
        ("gs-1", H, "TerminationProtected"),
        ("gs-2", H, "FailureBudgetExhausted"),
        ("gs-3", B, None),
        ("gs-4", D, None),  # the one slot of the window goes to the only delete planned
    ]


def test_a_deletion_retried_after_delete_failed_passes_a_spent_window_within_its_budget() -> None:
    doomed = server(deletion_requested=True, generation=2, status=ServerStatus(observed_generation=2, attempts=1))
    result = plan(
        TENANT,
        [doomed],
        [stack(status="DELETE_FAILED")],
        settings=PlanSettings(max_deletions=1, delete_retry_limit=3),
        template_url=URL,
        brake=BrakeView(allowance=0),
        now=NOW,
    )
    (action,) = result.actions
    assert (action.kind, action.tries) == (D, 1)


def test_a_server_backing_off_is_pending_and_blocked() -> None:
    failed = server(status=ServerStatus(observed_generation=1, tries=1, next_retry_at=LATER))
    result = plan(TENANT, [failed], [], settings=SETTINGS, template_url=URL, now=NOW)
    (action,) = result.actions
    assert action.kind is B
    assert action.pending and action.blocked and not result.in_sync


def test_a_paused_tenant_reports_a_backing_off_server_as_blocked() -> None:
    failed = server(status=ServerStatus(observed_generation=1, tries=1, next_retry_at=LATER))
    (action,) = plan(PAUSED, [failed], [], settings=SETTINGS, template_url=URL, now=NOW).actions
    assert (action.kind, action.would) == (R, B)
    assert action.blocked


def test_a_paused_tenant_reports_what_it_would_do_with_an_orphan_whose_budget_is_spent() -> None:
    spent = budget("gs-9", tries=3)
    (action,) = plan(
        PAUSED,
        [],
        [stack("gs-9")],
        settings=SETTINGS,
        template_url=URL,
        now=NOW,
        orphan_attempts={spent.stack_id: spent},
    ).actions
    assert (action.kind, action.would, action.orphan) == (R, H, True)
    assert action.blocked and action.reason == "tenant is paused; orphan left in place"


def test_a_paused_tenant_reports_a_held_deletion_as_held_not_as_a_delete() -> None:
    result = plan(
        PAUSED,
        [],
        [stack("gs-1"), stack("gs-2")],
        settings=SETTINGS,
        template_url=URL,
        brake=BrakeView(allowance=1, held=frozenset({"us-east-1/stackherd-acme-gs-1"})),
    )
    assert [(a.gameserver_id, a.kind, a.would, a.code) for a in result.actions] == [
        ("gs-1", R, H, "DeletionBrake"),
        ("gs-2", R, D, None),
    ]
    assert result.actions[0].blocked and not result.actions[1].blocked
