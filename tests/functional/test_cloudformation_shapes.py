"""Shapes of real CloudFormation on the fake cloud: stacks stuck in progress, template defaults, nested stacks,
termination protection, change sets never executed, templates that need capabilities."""

from __future__ import annotations

import io

import pytest

from handlers import sweep
from handlers.local import cli
from handlers.local.embedded import LocalContext
from models.records import Phase
from reconciler import naming
from reconciler.errors import PermanentError
from reconciler.fakes.world import FakeWorld
from reconciler.planner import ActionKind, PlanSettings

ACCOUNT = "111111111111"
REGION = "us-east-1"
NAME = "stackherd-alpha-s0"
MUTATING = ("CreateStack", "UpdateStack", "DeleteStack", "ContinueUpdateRollback")
GAME_PARAMETERS: dict[str, str | None] = {"Difficulty": None, "PlayerCount": None, "Seed": None}


def mutating(world: FakeWorld) -> int:
    return sum(world.cloud.count(op) for op in MUTATING)


def owned_tags(server_id: str) -> dict[str, str]:
    return {
        naming.TAG_INSTALLATION: "stackherd",
        naming.TAG_TENANT: "alpha",
        naming.TAG_GAMESERVER: server_id,
        naming.TAG_TEMPLATE_VERSION: "v1",
    }


# --- stuck ----------------------------------------------------------------------------------------


def test_stack_in_progress_past_an_hour_is_reported_stuck_never_cancelled(
    installed: FakeWorld, context: LocalContext
) -> None:
    world = installed
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0", seed="old")
    world.converge("alpha")
    world.cloud.set_outcome(ACCOUNT, NAME, "update", "UPDATE_IN_PROGRESS")  # CloudFormation never finishes
    world.put("alpha", "s0", seed="new")
    world.engine.reconcile_tenant("alpha")
    started = world.clock()
    world.clock.advance(30 * 60)
    assert world.engine.reconcile_tenant("alpha").stuck == 0  # half an hour is just slow
    world.cloud.reset_calls()

    world.clock.advance(45 * 60)
    result = world.engine.reconcile_tenant("alpha")

    assert result.stuck == 1
    server = world.server("alpha", "s0")
    assert server is not None
    stuck = server.status.condition("Stuck")
    assert stuck is not None and stuck.status is True
    assert "UPDATE_IN_PROGRESS" in stuck.message and started.strftime("%Y-%m-%dT%H:%M:%SZ") in stuck.message
    assert any(kind == "stuck" for _, s, kind, *_ in world.store.activity if s == "s0")
    assert mutating(world) == 0  # never cancels CloudFormation's own work
    assert sweep.handler({}, context)["stuck"] == 1  # what the sweep's StuckStacks metric reports

    world.cloud.unstick(ACCOUNT, REGION, NAME, "UPDATE_COMPLETE")
    world.engine.reconcile_tenant("alpha")
    server = world.server("alpha", "s0")
    assert server is not None and server.status.condition("Stuck") is None


def test_orphan_whose_delete_stays_in_progress_past_an_hour_gets_one_stuck_activity_entry(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.cloud.put_stack(ACCOUNT, REGION, "stackherd-alpha-ghost", tags=owned_tags("ghost"))
    world.cloud.set_outcome(ACCOUNT, "stackherd-alpha-ghost", "delete", "DELETE_IN_PROGRESS")  # never finishes
    for _ in range(16):  # five minutes apart: well past the hour
        result = world.engine.reconcile_tenant("alpha")
        world.cloud.settle_all()
        world.clock.advance(300)
    assert result.stuck == 1 and world.cloud.count("DeleteStack") == 1  # never cancelled, never sent again
    stuck = [message for _, s, kind, message, *_ in world.store.activity if s == "ghost" and kind == "stuck"]
    assert len(stuck) == 1 and "DELETE_IN_PROGRESS since" in stuck[0]


# --- drift that knows the template ----------------------------------------------------------------


def _move_three_servers_to_v2_and_sweep_ten_more_times(world: FakeWorld) -> None:
    """Three converged servers on v1, the tenant moved to v2 (which adds `MapSize` with a default): each stack is
    updated once for the move and never again."""
    from dataclasses import replace

    tenant = world.add_tenant("alpha", ACCOUNT)
    for index in range(3):
        world.put("alpha", f"s{index}")
    world.converge("alpha")

    world.store.put_tenant(replace(tenant, template_version="v2"))
    world.converge("alpha", passes=2)
    assert world.cloud.count("UpdateStack") == 3  # the move to v2, once per server
    assert {s.parameters["MapSize"] for s in world.cloud.stacks(ACCOUNT)} == {"medium"}

    world.converge("alpha", passes=10)
    assert world.cloud.count("UpdateStack") == 3  # was one per server per pass: `MapSize: 'medium' -> removed`


def test_template_version_that_adds_a_defaulted_parameter_updates_once_then_is_in_sync(installed: FakeWorld) -> None:
    world = installed
    world.templates.add("v1", GAME_PARAMETERS)
    v2 = world.templates.add("v2", {**GAME_PARAMETERS, "MapSize": "medium"})
    world.cloud.register_template(world.templates.url("v1"), GAME_PARAMETERS)
    world.cloud.register_template(v2.url, dict(v2.parameters or {}))
    _move_three_servers_to_v2_and_sweep_ten_more_times(world)
    planned = world.engine.reconcile_tenant("alpha", dry_run=True)
    assert planned.in_sync, planned.to_dict()
    out = io.StringIO()
    assert cli.main(["plan", "alpha"], out) == 0, out.getvalue()  # was 2 ("changes pending") for ever


def test_version_published_without_a_summary_updates_once_then_is_in_sync(installed: FakeWorld) -> None:
    world = installed
    world.templates.add("v1", GAME_PARAMETERS)
    world.templates.published.add("v2")  # copied with `aws s3 cp`: the catalog holds no summary for it
    v2_url = world.templates.url("v2")
    world.cloud.register_template(world.templates.url("v1"), GAME_PARAMETERS)
    world.cloud.register_template(v2_url, {**GAME_PARAMETERS, "MapSize": "medium"})
    _move_three_servers_to_v2_and_sweep_ten_more_times(world)
    assert world.cloud.count("GetTemplateSummary") == 1  # read once, in the tenant's account, then cached
    planned = world.engine.reconcile_tenant("alpha", dry_run=True)
    assert planned.in_sync, planned.to_dict()
    out = io.StringIO()
    assert cli.main(["plan", "alpha"], out) == 0, out.getvalue()


def test_version_without_a_summary_in_sync_reads_no_template_summary(world: FakeWorld) -> None:
    world.templates.published.add("v1")  # no summary, and nothing the template defaults
    world.cloud.register_template(world.templates.url("v1"), GAME_PARAMETERS)
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    world.converge("alpha", passes=5)
    assert world.cloud.count("CreateStack") == 1 and world.cloud.count("UpdateStack") == 0
    assert world.cloud.count("GetTemplateSummary") == 0  # the steady state pays no extra call


def test_unreadable_template_summary_falls_back_to_drift_without_failing_the_pass(
    world: FakeWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.templates.published.add("v1")
    world.cloud.register_template(world.templates.url("v1"), {**GAME_PARAMETERS, "MapSize": "medium"})
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    world.converge("alpha", passes=1)
    world.cloud.reset_calls()
    world.cloud.fail_next(ACCOUNT, "GetTemplateSummary", lambda: PermanentError("AccessDenied: not allowed"), times=1)

    result = world.engine.reconcile_tenant("alpha")
    world.cloud.settle_all()

    assert result.error is None
    assert world.cloud.count("UpdateStack") == 1  # drift as before: `MapSize: 'medium' -> removed`
    assert "GetTemplateSummary failed" in caplog.text
    world.converge("alpha", passes=3)  # the read succeeds next time: no more updates
    assert world.cloud.count("UpdateStack") == 1 and world.cloud.count("GetTemplateSummary") == 2


def test_a_parameter_the_template_no_longer_declares_is_not_drift(world: FakeWorld) -> None:
    world.templates.add("v1", GAME_PARAMETERS)
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    world.converge("alpha")
    world.cloud.tamper(ACCOUNT, REGION, NAME, {"Retired": "yes"})  # as a stack made from an older version reports
    world.cloud.reset_calls()
    world.converge("alpha", passes=3)
    assert world.cloud.count("UpdateStack") == 0


def test_a_parameter_set_away_from_its_default_is_drift(world: FakeWorld) -> None:
    world.templates.add("v1", {**GAME_PARAMETERS, "MapSize": "medium"})
    world.cloud.register_template(world.templates.url("v1"), {**GAME_PARAMETERS, "MapSize": "medium"})
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    world.converge("alpha")
    world.cloud.tamper(ACCOUNT, REGION, NAME, {"MapSize": "huge"})
    planned = world.engine.reconcile_tenant("alpha", dry_run=True)
    (action,) = [r.action for r in planned.results]
    assert action.kind is ActionKind.UPDATE and action.diff == "parameters.MapSize: 'huge' -> 'medium'"


# --- nested stacks, termination protection, review state, capabilities ------------------------------


def test_nested_stack_with_our_tags_is_never_deleted_as_an_orphan(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    world.converge("alpha")
    (root,) = world.cloud.stacks(ACCOUNT)
    # CloudFormation names a nested stack <parent>-<LogicalId>-<suffix> and gives it the parent's tags.
    world.cloud.put_stack(ACCOUNT, REGION, f"{NAME}-Storage-1A2B3C", tags=root.tags, parent_id=root.stack_id)
    world.cloud.reset_calls()
    world.converge("alpha", passes=3)
    assert mutating(world) == 0
    planned = world.engine.reconcile_tenant("alpha", dry_run=True)
    assert [r.action.gameserver_id for r in planned.results] == ["s0"]


def test_termination_protected_orphan_is_held_and_takes_no_deletion_brake_slot() -> None:
    world = FakeWorld(settings=PlanSettings(max_deletions=1))
    world.add_tenant("alpha", ACCOUNT)
    world.cloud.put_stack(ACCOUNT, REGION, "stackherd-alpha-a0", tags=owned_tags("a0"), termination_protection=True)
    world.cloud.put_stack(ACCOUNT, REGION, "stackherd-alpha-b0", tags=owned_tags("b0"))

    result = world.engine.reconcile_tenant("alpha")

    kinds = {r.action.gameserver_id: (r.action.kind, r.action.code) for r in result.results}
    assert kinds["a0"] == (ActionKind.HOLD, "TerminationProtected")
    assert kinds["b0"] == (ActionKind.DELETE, None)  # was held by the brake: the protected one took its slot
    assert world.cloud.count("DeleteStack") == 1


def test_deleting_a_termination_protected_server_is_held_with_its_own_code(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    world.converge("alpha")
    world.cloud.protect(ACCOUNT, REGION, NAME)
    world.delete("alpha", "s0")
    world.cloud.reset_calls()
    world.converge("alpha", passes=3)
    assert world.cloud.count("DeleteStack") == 0  # was a refused delete every pass
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.HELD
    condition = server.status.condition("Ready")
    assert condition is not None and condition.reason == "TerminationProtected"


def test_stack_left_in_review_in_progress_is_held_after_the_grace_not_waited_on(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.cloud.put_stack(ACCOUNT, REGION, NAME, tags=owned_tags("s0"), status="REVIEW_IN_PROGRESS")
    world.put("alpha", "s0")
    assert [r.action.kind for r in world.engine.reconcile_tenant("alpha").results] == [ActionKind.WAIT]
    world.clock.advance(world.settings.review_grace_s + 1)
    result = world.engine.reconcile_tenant("alpha")
    assert [(r.action.kind, r.action.code) for r in result.results] == [(ActionKind.HOLD, "ReviewInProgress")]
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.HELD
    assert "change set" in (server.status.condition("Ready") or pytest.fail("no Ready condition")).message


def test_template_that_requires_capabilities_is_created_and_updated_with_them(world: FakeWorld) -> None:
    needs = ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")
    world.templates.add("v1", GAME_PARAMETERS, capabilities=needs)
    world.cloud.register_template(world.templates.url("v1"), GAME_PARAMETERS, capabilities=needs)
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0", seed="old")
    world.converge("alpha")
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.READY  # was InsufficientCapabilities
    world.put("alpha", "s0", seed="new")
    world.converge("alpha")
    (stack,) = world.cloud.stacks(ACCOUNT)
    assert stack.parameters["Seed"] == "new"
