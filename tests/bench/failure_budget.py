"""Failure-budget benchmark: `python -m tests.bench.failure_budget` (not a timed test). Prints one JSON object.

On the fake cloud, 12 passes five minutes apart (a fake clock) over one tenant with three servers that can
never converge: one whose updates always roll back (UPDATE_ROLLBACK_COMPLETE), one whose create always rolls
back (ROLLBACK_COMPLETE) and one orphan stack (our tags, no record) whose delete always fails (DELETE_FAILED).
For each it reports the CloudFormation calls made on its stack (mutating and in total), and the phase and
message it shows at the end (for the orphan: the last activity entry and its budget). The functional tests
(tests/functional/test_failure_budget.py) assert the bound on the same run.

Environment: BENCH_PASSES (12), BENCH_INTERVAL_S (300).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

from reconciler import naming
from reconciler.fakes.cloud import FailureCause
from reconciler.fakes.world import FakeWorld

MUTATING = frozenset({"CreateStack", "UpdateStack", "DeleteStack", "ContinueUpdateRollback"})
ACCOUNT = "111111111111"
TENANT = "alpha"
UPDATE_FAILS, CREATE_FAILS, ORPHAN = "rolls", "newborn", "ghost"


def stack_name(server_id: str) -> str:
    return naming.stack_name("stackherd", TENANT, server_id)


def build(world: FakeWorld) -> None:
    """The tenant, a converged server whose next update will always roll back, a new server whose create
    always rolls back, and an orphan that cannot be deleted."""
    world.add_tenant(TENANT, ACCOUNT)
    world.put(TENANT, UPDATE_FAILS)
    world.converge(TENANT, passes=3)
    world.cloud.set_outcome(
        ACCOUNT,
        stack_name(UPDATE_FAILS),
        "update",
        "UPDATE_ROLLBACK_COMPLETE",
        always=True,
        cause=FailureCause("Server", "AWS::EC2::Instance", "The requested instance type is not supported"),
    )
    world.cloud.set_outcome(
        ACCOUNT,
        stack_name(CREATE_FAILS),
        "create",
        "ROLLBACK_COMPLETE",
        always=True,
        cause=FailureCause("Volume", "AWS::EC2::Volume", "Volume size exceeds the account's limit"),
    )
    world.cloud.set_outcome(
        ACCOUNT,
        stack_name(ORPHAN),
        "delete",
        "DELETE_FAILED",
        always=True,
        cause=FailureCause("Bucket", "AWS::S3::Bucket", "The bucket you tried to delete is not empty"),
    )
    world.cloud.put_stack(
        ACCOUNT,
        "us-east-1",
        stack_name(ORPHAN),
        parameters={"Difficulty": "normal", "PlayerCount": "8", "Seed": "default"},
        tags={
            naming.TAG_INSTALLATION: "stackherd",
            naming.TAG_TENANT: TENANT,
            naming.TAG_GAMESERVER: ORPHAN,
            naming.TAG_GENERATION: "1",
            naming.TAG_TEMPLATE_VERSION: "v1",
        },
    )
    world.put(TENANT, UPDATE_FAILS, seed="changed")  # the change whose update always rolls back
    world.put(TENANT, CREATE_FAILS)
    world.cloud.reset_calls()


def run(passes: int = 12, interval_s: float = 300.0, world: FakeWorld | None = None) -> dict[str, Any]:
    world = world or FakeWorld()
    build(world)
    for _ in range(passes):
        world.engine.reconcile_tenant(TENANT)
        world.clock.advance(interval_s)

    calls = Counter((c.target, c.operation) for c in world.cloud.calls)
    report: dict[str, Any] = {
        "passes": passes,
        "interval_s": interval_s,
        "listing_calls": sum(n for (target, op), n in calls.items() if op in ("ListStacks", "DescribeStacks")),
        "servers": {},
    }
    for server_id in (UPDATE_FAILS, CREATE_FAILS, ORPHAN):
        name = stack_name(server_id)
        # Calls name a stack by its name or by its id (`arn:...:stack/<name>/<uuid>`).
        mine: Counter[str] = Counter()
        for (target, op), n in calls.items():
            if target == name or f":stack/{name}/" in target:
                mine[op] += n
        entry: dict[str, Any] = {
            "mutating_calls": sum(n for op, n in mine.items() if op in MUTATING),
            "calls": dict(sorted(mine.items())),
        }
        server = world.server(TENANT, server_id)
        if server is not None:
            condition = server.status.condition("Ready")
            entry.update(
                phase=server.status.phase.value,
                reason=condition.reason if condition else None,
                message=condition.message if condition else None,
                tries=server.status.tries,
                cause=server.status.cause,
            )
        else:
            (state,) = world.store.orphan_attempts(TENANT).values() or [None]
            entries = [a for a in world.store.activity if a[1] == server_id]
            entry.update(
                phase="Held" if state is not None and state.held else "Retrying",
                message=entries[-1][3] if entries else None,
                tries=state.tries if state is not None else 0,
                cause=state.cause if state is not None else None,
            )
        report["servers"][server_id] = entry
    return report


def main() -> None:
    passes = int(os.environ.get("BENCH_PASSES", 12))
    interval = float(os.environ.get("BENCH_INTERVAL_S", 300))
    json.dump(run(passes, interval), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
