"""Rollouts on the fleet as AWS runs it: the scheduled sweep advances the rollouts once, then dispatches one
message per tenant onto the work queue, and the tenant workers reconcile the pinned tenants."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from handlers import sweep
from handlers.rollouts import rollout_service
from reconciler.desired import trail
from reconciler.fakes.world import FakeWorld
from reconciler.rollouts import RolloutState
from tests.functional.fleet import Fleet


@pytest.fixture
def fleet(world: FakeWorld) -> Iterator[Fleet]:
    world.templates.add("v2")
    for index in range(4):
        world.add_tenant(f"t{index}", f"{400000000000 + index}")
        world.put(f"t{index}", "a")
        world.converge(f"t{index}")
    with Fleet(world).installed() as running:
        yield running


def test_the_dispatching_sweep_advances_a_rollout_to_completion(fleet: Fleet) -> None:
    service = rollout_service(fleet.runtime)
    rollout = service.start("v2", trail=trail("ops", "test"), wave_sizes=["1"])
    for _ in range(20):
        sweep.handler({}, fleet.context)
        fleet.pump()
        fleet.run_for(60, step=30)
        if service.get(rollout.rollout_id).state is not RolloutState.IN_PROGRESS:
            break
    done = service.get(rollout.rollout_id)
    assert done.state is RolloutState.COMPLETED, done
    for index in range(4):
        stacks = fleet.world.cloud.stacks(f"{400000000000 + index}")
        assert {s.tags["stackherd:template-version"] for s in stacks} == {"v2"}


def test_a_handed_on_sweep_does_not_advance_again(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    service = rollout_service(fleet.runtime)
    rollout = service.start("v2", trail=trail("ops", "test"), wave_sizes=["1"])
    fleet.world.converge("t0")  # the canary is Ready at v2: the next advance pins wave 2
    sweep.handler({"cursor": "t9"}, fleet.context)  # the rest of a sweep: nothing left to dispatch
    assert service.get(rollout.rollout_id).current_wave == 0
    sweep.handler({}, fleet.context)
    assert service.get(rollout.rollout_id).current_wave == 1
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    counts = [m["RolloutWavesStarted"] for m in emitted if "RolloutWavesStarted" in m]
    assert [c if isinstance(c, list) else [c] for c in counts] == [[1.0]]  # one sweep advanced, once
