"""The failure budget under the safety rules, on the fake cloud: a server backing off after a failed attempt
fails `plan`'s and `reconcile`'s verdicts, and an orphan's budget is forgotten only by a pass that listed
its region."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from handlers.local import cli
from handlers.local.embedded import fake_runtime
from handlers.runtime import install_runtime
from models.records import OrphanAttempts, Phase
from reconciler.engine import TenantResult
from reconciler.errors import TransientError
from reconciler.fakes.world import FakeWorld
from reconciler.planner import ActionKind, PlanSettings

ACCOUNT = "111111111111"


@pytest.fixture
def world() -> Iterator[FakeWorld]:
    world = FakeWorld()
    install_runtime(fake_runtime(world))
    yield world
    install_runtime(None)


def run_json(*argv: str) -> tuple[int, dict[str, object]]:
    out = io.StringIO()
    code = cli.main([*argv, "--json"], out=out)
    return code, json.loads(out.getvalue())


def test_plan_and_reconcile_fail_for_a_server_backing_off_after_a_failed_attempt(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.cloud.set_outcome(ACCOUNT, "stackherd-alpha-arena", "create", "ROLLBACK_COMPLETE", always=True)
    world.put("alpha", "arena")
    world.converge("alpha", passes=1)  # the create is sent and rolls back
    world.engine.reconcile_tenant("alpha")  # the pass that sees it: a failed attempt, backing off
    server = world.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.FAILED and server.status.next_retry_at

    code, data = run_json("plan", "alpha")
    assert (code, data["verdict"]) == (cli.EXIT_ERROR, "failed")
    assert [a["kind"] for a in data["actions"]] == [ActionKind.BACKOFF.value]  # type: ignore[index]

    out = io.StringIO()
    assert cli.main(["reconcile", "alpha"], out=out) == cli.EXIT_ERROR
    assert "back off before the next try" in out.getvalue() and "reconcile alpha --force" in out.getvalue()


def test_an_orphans_budget_is_kept_while_its_region_cannot_be_listed(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT, regions=("us-east-1", "eu-west-1"))
    world.put("alpha", "arena")
    world.converge("alpha")
    gone = OrphanAttempts(
        f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/stackherd-alpha-ghost/1",
        "stackherd-alpha-ghost",
        "eu-west-1",
        tries=3,
        held=True,
    )
    world.store.save_orphan_attempts("alpha", {gone.stack_id: gone}, world.clock())

    world.cloud.break_region(ACCOUNT, "eu-west-1", lambda: TransientError("endpoint unreachable"))
    result = world.engine.reconcile_tenant("alpha")
    assert "eu-west-1" in result.unobserved_regions
    assert world.store.orphan_attempts("alpha") == {gone.stack_id: gone}  # not seen is not gone

    world.cloud.heal_region(ACCOUNT, "eu-west-1")
    world.engine.reconcile_tenant("alpha")
    assert world.store.orphan_attempts("alpha") == {}  # listed, and the stack is not there


def test_orphan_budgets_live_beside_the_deletion_brake_in_the_tenants_reconciler_state(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    ghost = OrphanAttempts("arn:ghost", "stackherd-alpha-ghost", "us-east-1", tries=1)
    world.store.save_orphan_attempts("alpha", {ghost.stack_id: ghost}, world.clock())
    state = world.store.get_tenant_state("alpha")
    assert state.orphan_budgets == (ghost,)
    assert state.deletion_brake.version == 0  # saving budgets leaves the brake as it was


def _braked_world() -> FakeWorld:
    """Two servers deleted while the window allows one deletion: `a` is deleted, `b`'s deletion is held."""
    world = FakeWorld(settings=PlanSettings(max_deletions=1))
    world.add_tenant("alpha", ACCOUNT)
    for server_id in ("a", "b"):
        world.put("alpha", server_id)
    world.converge("alpha")
    return world


def _held(world: FakeWorld) -> frozenset[str]:
    return world.store.get_tenant_state("alpha").deletion_brake.held_keys


def _kinds(result: TenantResult) -> dict[str, tuple[ActionKind, str | None]]:
    return {r.action.gameserver_id: (r.action.kind, r.action.code) for r in result.results}


def test_a_held_deletion_stays_held_through_a_paused_pass_until_confirmed() -> None:
    world = _braked_world()
    for server_id in ("a", "b"):
        world.delete("alpha", server_id)
    world.engine.reconcile_tenant("alpha")
    assert _held(world) == {"us-east-1/stackherd-alpha-b"}

    tenant = world.store.get_tenant("alpha")
    assert tenant is not None
    world.store.put_tenant(replace(tenant, paused=True))
    world.engine.reconcile_tenant("alpha")  # observe and report only: nothing is released by it
    assert _held(world) == {"us-east-1/stackherd-alpha-b"}

    world.store.put_tenant(tenant)  # resumed, long after the window
    world.clock.advance(2 * 3600)
    assert _kinds(world.engine.reconcile_tenant("alpha"))["b"] == (ActionKind.HOLD, "DeletionBrake")
    assert _kinds(world.engine.reconcile_tenant("alpha", confirm_deletions=True))["b"] == (ActionKind.DELETE, None)


def test_a_held_deletion_that_backs_off_after_a_failed_update_stays_held_until_confirmed() -> None:
    world = _braked_world()
    world.cloud.set_outcome(ACCOUNT, "stackherd-alpha-b", "update", "UPDATE_ROLLBACK_COMPLETE", always=True)
    world.put("alpha", "b", seed="changed")
    world.engine.reconcile_tenant("alpha")  # the update is sent; it rolls back
    world.cloud.settle_all()
    for server_id in ("a", "b"):
        world.delete("alpha", server_id)
    world.engine.reconcile_tenant("alpha")
    assert _held(world) == {"us-east-1/stackherd-alpha-b"}

    # The next pass sees the update's failure at the deletion's generation: a backoff, still a held deletion.
    assert _kinds(world.engine.reconcile_tenant("alpha"))["b"][0] is ActionKind.BACKOFF
    assert _held(world) == {"us-east-1/stackherd-alpha-b"}

    world.clock.advance(2 * 3600)  # past the backoff and the window
    assert _kinds(world.engine.reconcile_tenant("alpha"))["b"] == (ActionKind.HOLD, "DeletionBrake")
    assert "stackherd-alpha-b" in {s.name for s in world.cloud.stacks(ACCOUNT)}
