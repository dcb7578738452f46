"""Rollout benchmark (part of `make bench`, not of `make test`). Prints one JSON object.

On the fake cloud with the sweep benchmark's per-call latency and per-account throttling, for TENANTS x SERVERS:
the cold sweep (every stack created on v1), then a rollout of v2 across every tenant (a canary of one, a first
wave of 5 %, then waves of 25 %, no bake time), driven the way production drives it: a sweep every five minutes
(simulated), each advancing the rollouts first. Reported: the wall time and CloudFormation calls of the rollout
(next to the cold sweep's), how many sweeps and how much simulated time it took. Then a rollout of v3, which fails
in 3 % of the tenants (every update of their stacks rolls back), with a failure tolerance of 1 %: how many tenants
were pinned before it halted (the blast radius), how many failed, and how long that took.

Environment: BENCH_TENANTS (1000), BENCH_SERVERS (10), BENCH_LATENCY_MS (20), BENCH_RATE (5 calls/s per
account), BENCH_CONCURRENCY (8).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from typing import Any

from reconciler import naming
from reconciler.desired import DesiredWrites, trail
from reconciler.fakes.world import FakeWorld
from reconciler.pacing import AccountRateLimiter, PacedConnector
from reconciler.rollout_service import RolloutService
from reconciler.rollouts import RolloutState, TenantOutcome
from tests.bench.sweep_bench import MUTATING, env_int, measure

SWEEP_INTERVAL_S = 300
TRAIL = trail("stackherd", "rollout")


def drive(world: FakeWorld, service: RolloutService, rollout_id: str, concurrency: int) -> dict[str, Any]:
    """Sweeps five (simulated) minutes apart, each advancing the rollouts first, until the rollout ends."""
    calls: Counter[str] = Counter()
    sweeps = 0
    wall = 0.0
    started_at = world.clock()
    for _ in range(200):
        world.cloud.reset_calls()
        start = time.perf_counter()
        service.advance_all(TRAIL)
        rollout = service.get(rollout_id)
        if rollout.state not in (RolloutState.IN_PROGRESS, RolloutState.BAKING):
            wall += time.perf_counter() - start
            break
        world.engine.sweep(concurrency=concurrency)
        wall += time.perf_counter() - start
        calls.update(world.cloud.counts())
        sweeps += 1
        world.clock.advance(SWEEP_INTERVAL_S)
    rollout = service.get(rollout_id)
    counts = rollout.counts()
    return {
        "state": rollout.state.value,
        "reason": rollout.reason,
        "waves": len(rollout.waves),
        "waves_started": rollout.current_wave + 1,
        "wave_sizes": [len(w) for w in rollout.waves],
        "sweeps": sweeps,
        "simulated_minutes": round((world.clock() - started_at).total_seconds() / 60, 1),
        "wall_s": round(wall, 3),
        "calls": dict(sorted(calls.items())),
        "mutating_calls": sum(calls[op] for op in MUTATING),
        "tenants_pinned": sum(1 for t in rollout.tenants if t.pinned_at is not None),
        "tenants_failed": rollout.failures,
        "outcomes": {k: v for k, v in counts.items() if v},
        "first_failure": next((t.cause for t in rollout.tenants if t.outcome is TenantOutcome.FAILED), None),
    }


def main() -> int:
    tenants_n = env_int("BENCH_TENANTS", 1000)
    servers_n = env_int("BENCH_SERVERS", 10)
    latency_s = env_int("BENCH_LATENCY_MS", 20) / 1000
    rate = float(os.environ.get("BENCH_RATE", "5"))
    concurrency = env_int("BENCH_CONCURRENCY", 8)

    world = FakeWorld(latency_s=latency_s, rate_per_account=rate)
    limiter = AccountRateLimiter(rate * 0.9, burst=rate * 0.9)
    world.engine.connector = PacedConnector(world.connector, limiter)
    world.templates.add("v2")
    world.templates.add("v3")
    for index in range(tenants_n):
        tenant_id = f"t{index:04d}"
        world.add_tenant(tenant_id, f"{100000000000 + index:012d}")
        for server in range(servers_n):
            world.put(tenant_id, f"s{server:02d}", seed=f"seed{server}")
    writes = DesiredWrites(world.store, clock=world.clock, templates=world.templates)
    service = RolloutService(world.store, writes, clock=world.clock)
    report: dict[str, Any] = {
        "tenants": tenants_n,
        "servers_per_tenant": servers_n,
        "latency_ms": latency_s * 1000,
        "account_rate_per_s": rate,
        "concurrency": concurrency,
        "sweep_interval_s": SWEEP_INTERVAL_S,
    }

    sweep = lambda: world.engine.sweep(concurrency=concurrency).summary().to_dict()  # noqa: E731
    report["cold_sweep"] = measure(world, sweep)
    world.cloud.settle_all()
    measure(world, sweep)  # every server Ready on v1
    world.clock.advance(SWEEP_INTERVAL_S)

    waves = ["5%", "25%"]
    rollout = service.start("v2", trail=TRAIL, wave_sizes=waves, failure_tolerance="0")
    report["rollout_v2"] = {"wave_size": waves, **drive(world, service, rollout.rollout_id, concurrency)}

    failing = [t for i, t in enumerate(sorted(world.store.tenants)) if i % 100 in (7, 41, 74)]  # 3 %
    for tenant_id in failing:
        account = world.store.tenants[tenant_id].account_id
        for server in range(servers_n):
            name = naming.stack_name(world.settings.installation, tenant_id, f"s{server:02d}")
            world.cloud.set_outcome(account, name, "update", "UPDATE_ROLLBACK_COMPLETE", always=True)
    rollout = service.start("v3", trail=TRAIL, wave_sizes=waves, failure_tolerance="1%")
    report["rollout_v3_failing_3pct"] = {
        "wave_size": waves,
        "failure_tolerance": "1%",
        "tolerance_tenants": rollout.failure_tolerance,
        "failing_tenants": len(failing),
        **drive(world, service, rollout.rollout_id, concurrency),
    }
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
