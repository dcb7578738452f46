"""Scale benchmark: `make bench` (not part of `make test`). Prints one JSON object.

On the fake cloud with a per-call latency and per-account CloudFormation throttling (a token bucket),
for TENANTS x SERVERS: a cold sweep (nothing exists), a steady-state sweep (everything in sync,
credentials cached), a sweep after 10% drift, and a stream burst of INSERTs in batches of 100; then
the same steady-state work done the naive way (an AssumeRole and a stack lookup per record,
sequentially) on the same fake in the same run.

The naive pass is sequential, so its time is linear in the records it visits: by default it visits
BENCH_NAIVE_TENANTS tenants and scales the measured time to all tenants (`naive_sampled_tenants`
says how many it really ran; set BENCH_NAIVE_TENANTS to BENCH_TENANTS for a full run).

Environment: BENCH_TENANTS (1000), BENCH_SERVERS (10), BENCH_LATENCY_MS (20), BENCH_RATE (5 calls/s
per account), BENCH_CONCURRENCY (8, the sweep's production default), BENCH_WIDE_CONCURRENCY (32, a
second steady-state sweep for comparison), BENCH_NAIVE_TENANTS (50), BENCH_STREAM_SHARDS (8).

The fleet-scale parts (`tests.bench.fanout`, `tests.bench.worker_rss`): the fan-out of BENCH_FANOUT_TENANTS
(10,000) x BENCH_SERVERS to W workers (`--workers 64,256`, BENCH_FANOUT_WORKERS), the dispatch of one message per
tenant, and the peak RSS of one worker process after 500 and 5,000 tenant accounts (`--rss-tenants`). `--parts`
picks what runs (default: all; e.g. `--parts fanout,dispatch`); `--no-fanout-cold` skips the fan-out's cold
passes (the longest part: about 4 minutes at W = 64).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stdout
from typing import Any

import reconciler.engine as engine_module
from handlers.local.embedded import LocalContext, fake_runtime
from handlers.runtime import install_runtime
from models.records import Tenant
from reconciler import naming
from reconciler.fakes.cloud import FakeGateway
from reconciler.fakes.world import FakeWorld
from reconciler.pacing import AccountRateLimiter, PacedConnector, PacedGateway
from reconciler.rendering import render

MUTATING = ("CreateStack", "UpdateStack", "DeleteStack", "ContinueUpdateRollback")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class PlanningTimer:
    """Measures the CPU time spent inside the pure planner, across threads."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = engine_module.plan

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.thread_time() - start
                with self._lock:
                    self.cpu_s += elapsed
                    self.calls += 1

        engine_module.plan = timed  # type: ignore[assignment]
        try:
            yield
        finally:
            engine_module.plan = original


def measure(world: FakeWorld, work: Callable[[], Any]) -> dict[str, Any]:
    world.cloud.reset_calls()
    # The garbage of the phases before is collected before this one starts, not by whichever call of this
    # phase happens to cross the collector's threshold: a full collection walks the whole fake world (every
    # account's stacks, every record), 0.1-0.2 s at 1,000 tenants, a heap a Lambda never holds, and the
    # planning timer would charge it to `plan`. `gc_collections` shows what the phase itself set off.
    gc.collect()
    collections = [g["collections"] for g in gc.get_stats()]
    start = time.perf_counter()
    result = work()
    wall = time.perf_counter() - start
    counts = world.cloud.counts()
    return {
        "wall_s": round(wall, 3),
        "gc_collections": [g["collections"] - c for g, c in zip(gc.get_stats(), collections, strict=True)],
        "calls": dict(sorted(counts.items())),
        "mutating_calls": sum(counts[op] for op in MUTATING),
        "throttled_or_failed": sweep_throttled(result) if isinstance(result, dict) else None,
    }


def sweep_throttled(summary: dict[str, Any]) -> int:
    return int(summary.get("failed_actions", 0)) + len(summary.get("failures", {}))


def naive_pass(world: FakeWorld, tenants: list[Tenant], limiter: AccountRateLimiter) -> int:
    """The original design: per record, assume the role and look the stack up, one record at a time."""
    touched = 0
    for tenant in tenants:
        for server in world.store.read_servers(tenant.tenant_id).servers:
            credentials = world.cloud.assume_role(tenant.role_arn, tenant.external_id, "naive")
            gateway = PacedGateway(
                FakeGateway(world.cloud, tenant.account_id, tenant.primary_region, credentials), limiter
            )
            name = naming.stack_name(world.settings.installation, tenant.tenant_id, server.gameserver_id)
            stack = gateway.describe(name)
            spec = render(tenant, server, installation=world.settings.installation, url=world.templates.url_for("v1"))
            if stack is None:
                gateway.create(spec, naming.request_token("create", name, server.generation))
            elif stack.parameters != spec.parameters:
                gateway.update(spec, naming.request_token("update", name, server.generation))
            touched += 1
    return touched


def sweep_report() -> dict[str, Any]:
    """The single-process sweep scenario of 1,000 tenants (see the module's docstring)."""
    tenants_n = env_int("BENCH_TENANTS", 1000)
    servers_n = env_int("BENCH_SERVERS", 10)
    latency_s = env_int("BENCH_LATENCY_MS", 20) / 1000
    rate = float(os.environ.get("BENCH_RATE", "5"))
    concurrency = env_int("BENCH_CONCURRENCY", 8)
    wide = env_int("BENCH_WIDE_CONCURRENCY", 32)
    naive_tenants = min(tenants_n, env_int("BENCH_NAIVE_TENANTS", 50))
    shards = env_int("BENCH_STREAM_SHARDS", 8)

    world = FakeWorld(latency_s=latency_s, rate_per_account=rate)
    # Pace just under the account's limit so the sweep does not provoke throttling it must then retry.
    limiter = AccountRateLimiter(rate * 0.9, burst=rate * 0.9)
    world.engine.connector = PacedConnector(world.connector, limiter)
    for index in range(tenants_n):
        tenant_id = f"t{index:04d}"
        world.add_tenant(tenant_id, f"{100000000000 + index:012d}")
        for server in range(servers_n):
            world.put(tenant_id, f"s{server:02d}", seed=f"seed{server}")
    tenants = world.store.list_tenants()
    sweep = lambda: world.engine.sweep(concurrency=concurrency).summary().to_dict()  # noqa: E731
    report: dict[str, Any] = {
        "tenants": tenants_n,
        "servers_per_tenant": servers_n,
        "latency_ms": latency_s * 1000,
        "account_rate_per_s": rate,
        "concurrency": concurrency,
    }

    cold = measure(world, sweep)
    world.cloud.settle_all()
    measure(world, sweep)  # observes the finished creates and marks every server Ready
    world.cloud.settle_all()

    timer = PlanningTimer()
    with timer.installed():
        steady = measure(world, sweep)
    # Pages of account-wide listings: ListStacks (DescribeStacks without a name before observation used it).
    listings = steady["calls"].get("ListStacks", 0) + steady["calls"].get("DescribeStacks", 0)
    wide_timer = PlanningTimer()
    with wide_timer.installed():
        steady_wide = measure(world, lambda: world.engine.sweep(concurrency=wide).summary().to_dict())
    steady_wide["concurrency"] = wide
    steady_wide["planning_cpu_share"] = round(wide_timer.cpu_s / steady_wide["wall_s"], 4)
    steady_wide["planning_us_per_tenant"] = round(wide_timer.cpu_s / max(1, wide_timer.calls) * 1e6, 1)
    # One listing per tenant, `wide` at a time: the time the steady sweep cannot beat.
    steady_wide["floor_s"] = round(-(-tenants_n // wide) * latency_s, 3)
    steady_wide["ratio"] = round(steady_wide["wall_s"] / steady_wide["floor_s"], 3)

    for index, tenant in enumerate(tenants):
        if index % 10 == 0:
            name = naming.stack_name(world.settings.installation, tenant.tenant_id, "s00")
            world.cloud.tamper(tenant.account_id, tenant.primary_region, name, {"Seed": "drifted"})
    drift = measure(world, sweep)
    world.cloud.settle_all()
    measure(world, sweep)

    # The naive way over the same in-sync world the steady-state sweep saw.
    naive_sample = tenants[:naive_tenants]
    naive = measure(world, lambda: naive_pass(world, naive_sample, limiter))
    naive_wall = naive["wall_s"] * (tenants_n / naive_tenants)

    from handlers import stream

    install_runtime(fake_runtime(world, sweep_concurrency=8))
    records: list[dict[str, Any]] = []
    sequence = 0
    for tenant in tenants:
        for server in range(servers_n, 2 * servers_n):
            server_id = f"s{server:02d}"
            world.put(tenant.tenant_id, server_id)
            sequence += 1
            records.append(
                {
                    "eventID": str(sequence),
                    "eventName": "INSERT",
                    "eventSource": "aws:dynamodb",
                    "dynamodb": {
                        "Keys": {"tenant_id": {"S": tenant.tenant_id}, "gameserver_id": {"S": server_id}},
                        "SequenceNumber": str(sequence),
                    },
                }
            )
    batches = [{"Records": records[i : i + 100]} for i in range(0, len(records), 100)]
    failures: Counter[str] = Counter()

    def burst() -> None:
        # The handlers print their metrics (EMF) to stdout; this program's stdout is the JSON report.
        with ThreadPoolExecutor(max_workers=shards) as pool, redirect_stdout(io.StringIO()):
            for response in pool.map(lambda b: stream.handler(b, LocalContext()), batches):
                failures["reported"] += len(response["batchItemFailures"])

    stream_burst = measure(world, burst)
    stream_burst["inserts"] = len(records)
    stream_burst["batches"] = len(batches)
    stream_burst["reported_for_retry"] = failures["reported"]
    install_runtime(None)
    world.cloud.settle_all()

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report.update(
        {
            "cold": cold,
            "steady": steady,
            "steady_wide": steady_wide,
            "drift_10pct": drift,
            "stream_burst": stream_burst,
            "naive_steady": {**naive, "sampled_tenants": naive_tenants},
            "steady_mutating_calls": steady["mutating_calls"],
            "steady_assume_role_calls": steady["calls"].get("AssumeRole", 0),
            "steady_listing_calls_per_tenant": round(listings / tenants_n, 3),
            "steady_describe_calls": steady["calls"].get("DescribeStack", 0),
            "steady_wall_s": steady["wall_s"],
            "naive_wall_s": round(naive_wall, 3),
            "naive_sampled_tenants": naive_tenants,
            "speedup_vs_naive": round(naive_wall / steady["wall_s"], 1) if steady["wall_s"] else None,
            "peak_rss_mb": round(peak_rss_mb, 1),
            "planning_cpu_s": round(timer.cpu_s, 4),
            "planning_us_per_tenant": round(timer.cpu_s / timer.calls * 1e6, 1) if timer.calls else None,
            "planning_cpu_share": round(timer.cpu_s / steady["wall_s"], 4) if steady["wall_s"] else None,
            "pacing_wait_s": round(limiter.waited_s, 1),
        }
    )
    return report


PARTS = ("sweep", "fanout", "dispatch", "rss", "cold-start")


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def worker_rss(tenants: int, cache_size: int | None = None) -> dict[str, Any]:
    """`tests.bench.worker_rss` in a fresh process, so its RSS is its own."""
    command = [sys.executable, "-m", "tests.bench.worker_rss", str(tenants)]
    if cache_size is not None:
        command.append(str(cache_size))
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800).stdout
    return dict(json.loads(output))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="stackherd's scale benchmark; prints one JSON object")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--workers", default=os.environ.get("BENCH_FANOUT_WORKERS", "64,256"))
    parser.add_argument("--fanout-tenants", type=int, default=env_int("BENCH_FANOUT_TENANTS", 10_000))
    parser.add_argument("--no-fanout-cold", action="store_true", help="skip the fan-out's cold passes")
    parser.add_argument("--rss-tenants", default="500,5000")
    parser.add_argument("--rss-unbounded", action="store_true", help="also the largest RSS run with no bound")
    options = parser.parse_args(argv)
    parts = {p.strip() for p in options.parts.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}: use {', '.join(PARTS)}")
    servers = env_int("BENCH_SERVERS", 10)
    latency_s = env_int("BENCH_LATENCY_MS", 20) / 1000
    rate = float(os.environ.get("BENCH_RATE", "5"))

    report: dict[str, Any] = {}
    if "sweep" in parts:
        say("sweep scenario")
        report.update(sweep_report())
    if "fanout" in parts:
        from tests.bench.fanout import fanout

        runs = []
        for workers in (int(w) for w in options.workers.split(",")):
            runs.append(
                fanout(
                    options.fanout_tenants,
                    servers,
                    latency_s,
                    rate,
                    workers,
                    cold=not options.no_fanout_cold,
                    progress=say,
                )
            )
            gc.collect()
        report["fanout"] = runs
        # The flat keys, one value per W reported, in the order of `fanout_workers`.
        for key in (
            "fanout_workers",
            "fanout_steady_wall_s",
            "fanout_steady_floor_s",
            "fanout_steady_ratio",
            "fanout_cold_wall_s",
            "fanout_cold_floor_s",
            "fanout_cold_ratio",
        ):
            if all(key in run for run in runs):
                report[key] = [run[key] for run in runs]
        report["fanout_tenants"] = options.fanout_tenants
    if "dispatch" in parts:
        from tests.bench.fanout import dispatch

        say("dispatch")
        report.update(dispatch([f"t{index:05d}" for index in range(options.fanout_tenants)]))
    if "rss" in parts:
        sizes = [int(n) for n in options.rss_tenants.split(",")]
        rss_runs: dict[str, Any] = {}
        for tenants in sizes:
            say(f"worker RSS after {tenants} tenant accounts")
            rss_runs[str(tenants)] = worker_rss(tenants)
            report[f"worker_rss_mb_{tenants}"] = rss_runs[str(tenants)]["peak_rss_mb"]
        if options.rss_unbounded:
            say(f"worker RSS after {max(sizes)} tenant accounts, caches unbounded")
            rss_runs[f"{max(sizes)}_unbounded"] = worker_rss(max(sizes), 100_000)
        report["worker_rss"] = rss_runs
    if "cold-start" in parts:
        report["cold_start"] = cold_start_ratios()
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def cold_start_ratios(runs: int = 10) -> dict[str, Any]:
    """Import time of each handler module / import time of boto3 alone, median of fresh processes."""
    from tests.bench.cold_start import measure_import_ratios

    return measure_import_ratios(runs)


if __name__ == "__main__":
    raise SystemExit(main())
