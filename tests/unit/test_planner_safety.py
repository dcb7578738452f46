"""The decision table's fail-safe rows: the stored deletion brake, a paused tenant saying what it would do,
and regions that were not observed. One row per case, each with its reason; the planner stays pure."""

from __future__ import annotations

import pytest

from reconciler.planner import Action, ActionKind, BrakeView, PlanSettings, plan
from tests.unit.test_planner import PAUSED, TENANT, URL, server, stack

SETTINGS = PlanSettings(max_deletions=2)
D, H, F, N, R = ActionKind.DELETE, ActionKind.HOLD, ActionKind.FAIL, ActionKind.NOOP, ActionKind.REPORT


def key(gid: str, region: str = "us-east-1") -> str:
    return f"{region}/stackherd-acme-{gid}"


def orphans(*gids: str, status: str = "CREATE_COMPLETE") -> tuple:  # type: ignore[type-arg]
    return tuple(stack(g, status) for g in gids)


def kinds(actions: tuple[Action, ...]) -> list[tuple[str, ActionKind, str | None]]:
    return [(a.gameserver_id, a.kind, a.code) for a in actions]


BRAKE_ROWS = [
    pytest.param(
        BrakeView(allowance=2),
        ["a", "b", "c"],
        [("a", D, None), ("b", D, None), ("c", H, "DeletionBrake")],
        id="the window's allowance is spent in order; the rest is held",
    ),
    pytest.param(
        BrakeView(allowance=0),
        ["a"],
        [("a", H, "DeletionBrake")],
        id="a window already spent holds even one deletion (a slow leak trips it)",
    ),
    pytest.param(
        BrakeView(allowance=2, held=frozenset({key("a")})),
        ["a", "b"],
        [("a", H, "DeletionBrake"), ("b", H, "DeletionBrake")],
        id="a tripped brake holds every new deletion, even when the window has room again",
    ),
    pytest.param(
        BrakeView(allowance=0, held=frozenset({key("a")}), confirmed=frozenset({key("a")})),
        ["a", "b"],
        [("a", D, None), ("b", H, "DeletionBrake")],
        id="a confirmation releases exactly the held set, not a deletion that appeared later",
    ),
    pytest.param(
        BrakeView(allowance=0, counted=frozenset({key("a")})),
        ["a", "b"],
        [("a", D, None), ("b", H, "DeletionBrake")],
        id="a stack the window already counts is not counted twice",
    ),
]


@pytest.mark.parametrize(("brake", "gone", "expected"), BRAKE_ROWS)
def test_stored_deletion_brake(brake: BrakeView, gone: list[str], expected: list[tuple[str, ActionKind, str]]) -> None:
    result = plan(TENANT, [], orphans(*gone), settings=SETTINGS, template_url=URL, brake=brake)
    assert kinds(result.actions) == expected


def test_a_delete_retried_after_delete_failed_neither_spends_nor_waits_for_the_allowance() -> None:
    result = plan(
        TENANT,
        [],
        (*orphans("a", status="DELETE_FAILED"), *orphans("b")),
        settings=SETTINGS,
        template_url=URL,
        brake=BrakeView(allowance=1),
    )
    assert kinds(result.actions) == [("a", D, None), ("b", D, None)]


def test_a_paused_tenant_reports_what_it_would_do_so_a_missing_stack_is_pending() -> None:
    result = plan(PAUSED, [server()], [], settings=SETTINGS, template_url=URL)
    (action,) = result.actions
    assert (action.kind, action.would) == (R, ActionKind.CREATE)
    assert action.pending and not result.in_sync
    converged = plan(PAUSED, [server()], [stack()], settings=SETTINGS, template_url=URL)
    assert converged.in_sync and converged.actions[0].would is N


def test_a_paused_tenant_with_a_server_that_cannot_converge_reports_it_as_blocked() -> None:
    result = plan(PAUSED, [server(region="ap-south-1")], [], settings=SETTINGS, template_url=URL)
    (action,) = result.actions
    assert (action.kind, action.would, action.code) == (R, F, "InvalidConfig") and action.blocked


UNOBSERVED = {"eu-west-1": "region eu-west-1 could not be listed: ServiceUnavailable"}


def test_a_server_in_a_region_not_observed_fails_alone_with_the_regions_reason() -> None:
    desired = [server("east"), server("west", region="eu-west-1")]
    result = plan(TENANT, desired, [stack("east")], settings=SETTINGS, template_url=URL, unobserved=UNOBSERVED)
    assert kinds(result.actions) == [("east", N, None), ("west", F, "RegionUnavailable")]
    assert "eu-west-1 could not be listed" in result.actions[1].reason


def test_a_deleted_record_in_a_region_not_observed_is_not_finalized() -> None:
    gone = server("west", region="eu-west-1", deletion_requested=True)
    result = plan(TENANT, [gone], [], settings=SETTINGS, template_url=URL, unobserved=UNOBSERVED)
    assert kinds(result.actions) == [("west", F, "RegionUnavailable")]
