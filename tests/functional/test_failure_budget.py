"""A change CloudFormation keeps failing never loops: the failure budget, its backoff and the way out, on the
fake cloud. The bound is measured by tests/bench/failure_budget.py (12 passes five minutes apart)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import pytest

from handlers import admin, requeue
from handlers.local import cli
from handlers.local.embedded import LocalContext
from models.records import Phase, now_iso
from reconciler.fakes.cloud import FailureCause
from reconciler.fakes.world import FakeWorld
from reconciler.planner import ActionKind
from tests.bench.failure_budget import CREATE_FAILS, ORPHAN, UPDATE_FAILS, run, stack_name

ACCOUNT = "111111111111"
NAME = "stackherd-alpha-s0"
MUTATING = ("CreateStack", "UpdateStack", "DeleteStack", "ContinueUpdateRollback")
CAUSE = FailureCause("Server", "AWS::EC2::Instance", "The requested instance type is not supported")


def mutating(world: FakeWorld) -> int:
    return sum(world.cloud.count(op) for op in MUTATING)


@pytest.fixture(scope="module")
def twelve_passes() -> dict[str, object]:
    return run(passes=12, interval_s=300)


def _entry(report: dict[str, object], server_id: str) -> dict[str, object]:
    servers = report["servers"]
    assert isinstance(servers, dict)
    entry = servers[server_id]
    assert isinstance(entry, dict)
    return entry


def test_update_that_always_rolls_back_is_held_after_its_budget_not_sent_every_pass(
    twelve_passes: dict[str, object],
) -> None:
    entry = _entry(twelve_passes, UPDATE_FAILS)
    assert entry["mutating_calls"] == 3  # was 12: one UpdateStack per pass, for ever
    assert entry["phase"] == "Held" and entry["reason"] == "FailureBudgetExhausted"
    message = str(entry["message"])
    assert "Server (AWS::EC2::Instance) UPDATE_FAILED: The requested instance type is not supported" in message
    assert "stackherd servers retry alpha rolls" in message and "new generation" in message


def test_create_that_always_rolls_back_is_held_not_recreated_every_other_pass(twelve_passes: dict[str, object]) -> None:
    entry = _entry(twelve_passes, CREATE_FAILS)
    assert isinstance(entry["mutating_calls"], int) and entry["mutating_calls"] <= 4
    assert entry["phase"] == "Held" and entry["reason"] == "FailureBudgetExhausted"
    assert "Volume (AWS::EC2::Volume) CREATE_FAILED" in str(entry["message"])


def test_orphan_stuck_in_delete_failed_is_held_after_its_budget(twelve_passes: dict[str, object]) -> None:
    entry = _entry(twelve_passes, ORPHAN)
    assert isinstance(entry["mutating_calls"], int) and entry["mutating_calls"] <= 4  # was one DeleteStack per pass
    assert entry["phase"] == "Held"
    assert "Bucket (AWS::S3::Bucket) DELETE_FAILED: The bucket you tried to delete is not empty" in str(entry["cause"])


def test_held_orphan_is_visible_in_the_plan_and_the_activity_log() -> None:
    world = FakeWorld()
    run(passes=12, interval_s=300, world=world)
    planned = world.engine.reconcile_tenant("alpha", dry_run=True)
    (orphan,) = [r.action for r in planned.results if r.action.orphan]
    assert (orphan.kind, orphan.code) == (ActionKind.HOLD, "FailureBudgetExhausted")
    assert "stackherd servers retry alpha ghost" in orphan.reason
    logged = [message for _, server, kind, message, _, _ in world.store.activity if server == ORPHAN]
    assert any("DELETE_FAILED" in m and "not empty" in m for m in logged), logged
    assert any("failure budget is spent" in m for m in logged), logged


def _failed_once(world: FakeWorld) -> datetime:
    """A converged server, then a change whose update rolls back, seen by the next pass (at the time returned)."""
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0", seed="old")
    world.converge("alpha")
    world.cloud.set_outcome(ACCOUNT, NAME, "update", "UPDATE_ROLLBACK_COMPLETE", always=True, cause=CAUSE)
    world.put("alpha", "s0", seed="new")
    world.engine.reconcile_tenant("alpha")
    world.cloud.settle_all()
    seen_at = world.clock()
    world.engine.reconcile_tenant("alpha")  # sees the rollback
    world.cloud.reset_calls()
    return seen_at


def test_rolled_back_update_records_the_first_failed_resource_event_as_its_cause(world: FakeWorld) -> None:
    seen_at = _failed_once(world)
    server = world.server("alpha", "s0")
    assert server is not None
    status = server.status
    assert status.phase is Phase.FAILED  # was Updating, with no error, for ever
    assert status.cause == "Server (AWS::EC2::Instance) UPDATE_FAILED: The requested instance type is not supported"
    condition = status.condition("Ready")
    assert condition is not None and condition.reason == "AttemptFailed"
    assert "attempt 1 of 3 failed" in condition.message and status.cause in condition.message
    assert status.next_retry_at == now_iso(seen_at + timedelta(seconds=world.settings.failure_backoff_s))
    assert world.cloud.count("DescribeStackEvents") == 0  # the cause was read once, on the pass that saw it
    logged = [message for _, server, kind, message, _, _ in world.store.activity if server == "s0"]
    assert logged[-1].startswith("backoff: attempt 1 of 3 failed") and logged[-1].endswith(f"; cause: {status.cause}")


def test_stream_requeue_and_sweep_all_wait_out_the_backoff(installed: FakeWorld, context: LocalContext) -> None:
    world = installed
    _failed_once(world)
    world.engine.reconcile_tenant("alpha", scope={"s0"})  # the stream's pass
    message = {"messageId": "1", "body": json.dumps({"tenant_id": "alpha", "gameserver_ids": ["s0"]})}
    requeue.handler({"Records": [{**message, "eventSource": "aws:sqs"}]}, context)
    world.engine.sweep()
    # Three passes looked: the stream's and the requeue's read s0 by name, the sweep listed.
    assert world.cloud.count("DescribeStack") == 2
    assert world.cloud.count("ListStacks") == 1
    assert mutating(world) == 0

    world.clock.advance(world.settings.failure_backoff_s)
    world.engine.sweep()
    assert world.cloud.count("UpdateStack") == 1  # the second try, once the backoff ran out


def test_a_new_generation_skips_the_backoff(world: FakeWorld) -> None:
    _failed_once(world)
    world.cloud.clear_faults()
    world.put("alpha", "s0", seed="fixed")
    world.engine.reconcile_tenant("alpha")
    assert world.cloud.count("UpdateStack") == 1


def test_an_admin_force_skips_the_backoff(installed: FakeWorld, context: LocalContext) -> None:
    world = installed
    _failed_once(world)
    admin.handler({"tenant_id": "alpha", "dry_run": False}, context)
    assert mutating(world) == 0
    admin.handler({"tenant_id": "alpha", "dry_run": False, "force": True}, context)
    assert world.cloud.count("UpdateStack") == 1


def test_servers_retry_gives_a_held_server_a_fresh_budget(installed: FakeWorld) -> None:
    world = installed
    _failed_once(world)
    for _ in range(6):
        world.clock.advance(timedelta(minutes=20).total_seconds())
        world.engine.reconcile_tenant("alpha")
        world.cloud.settle_all()
    held = world.server("alpha", "s0")
    assert held is not None and held.status.phase is Phase.HELD
    world.cloud.clear_faults()  # the operator fixed the cause
    world.cloud.reset_calls()
    world.engine.reconcile_tenant("alpha")
    assert mutating(world) == 0  # still held: nothing is retried on its own

    assert cli.main(["servers", "retry", "alpha", "s0"], io.StringIO()) == 0
    world.converge("alpha", passes=2)
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.READY and server.status.tries == 0
    (stack,) = world.cloud.stacks(ACCOUNT)
    assert stack.parameters["Seed"] == "new"


def test_servers_retry_gives_a_held_orphan_a_fresh_budget(installed: FakeWorld) -> None:
    world = installed
    run(passes=12, interval_s=300, world=world)
    world.cloud.clear_faults()
    out = io.StringIO()
    assert cli.main(["servers", "retry", "alpha", ORPHAN], out) == 0
    assert "failure budget reset" in out.getvalue()
    world.converge("alpha", passes=2)
    assert stack_name(ORPHAN) not in {s.name for s in world.cloud.stacks(ACCOUNT)}


def test_successful_changes_do_not_spend_the_budget(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0", seed="wanted")
    world.converge("alpha")
    for _ in range(5):
        world.cloud.tamper(ACCOUNT, "us-east-1", NAME, {"Seed": "hand"})
        world.converge("alpha", passes=2)
        (stack,) = world.cloud.stacks(ACCOUNT)
        assert stack.parameters["Seed"] == "wanted"
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.READY


def test_an_orphans_budget_is_forgotten_once_its_stack_is_gone() -> None:
    # The budgets come with the tenant's reconciler state every pass reads, so a gone orphan's entry is dropped
    # by the next pass that lists its region (here one that also has another orphan to plan).
    world = FakeWorld()
    run(passes=12, interval_s=300, world=world)
    (held,) = world.store.orphan_attempts("alpha").values()
    assert held.held
    world.cloud.remove_stack(ACCOUNT, "us-east-1", stack_name(ORPHAN))  # an operator deleted it by hand
    world.cloud.put_stack(ACCOUNT, "us-east-1", stack_name("other"), tags=_owned("other"))
    world.engine.reconcile_tenant("alpha")
    assert held.stack_id not in world.store.orphan_attempts("alpha")


def _owned(server_id: str) -> dict[str, str]:
    from reconciler import naming

    return {naming.TAG_INSTALLATION: "stackherd", naming.TAG_TENANT: "alpha", naming.TAG_GAMESERVER: server_id}


def test_the_cli_shows_the_cause_and_next_try_and_reconcile_force_skips_the_backoff(installed: FakeWorld) -> None:
    world = installed
    _failed_once(world)
    shown = io.StringIO()
    assert cli.main(["servers", "show", "alpha", "s0"], shown) == 0
    text = shown.getvalue()
    assert "cause        Server (AWS::EC2::Instance) UPDATE_FAILED: The requested instance type" in text
    assert "next try     after " in text

    cli.main(["reconcile", "alpha"], io.StringIO())
    assert mutating(world) == 0
    cli.main(["reconcile", "alpha", "--force"], io.StringIO())
    assert world.cloud.count("UpdateStack") == 1
