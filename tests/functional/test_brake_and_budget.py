"""The failure budget under the safety rules, on the fake cloud: a server backing off after a failed attempt
fails `plan`'s and `reconcile`'s verdicts, and an orphan's budget is forgotten only by a pass that listed
its region."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from handlers.local import cli
from handlers.local.embedded import fake_runtime
from handlers.runtime import install_runtime
from models.records import OrphanAttempts, Phase
from reconciler.errors import TransientError
from reconciler.fakes.world import FakeWorld
from reconciler.planner import ActionKind

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
