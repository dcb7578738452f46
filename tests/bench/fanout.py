"""The fleet-scale fan-out benchmark: TENANTS x SERVERS on the fake cloud, W workers pulling tenant messages
from one queue, each running what the worker handler runs for a message (parse it, `engine.reconcile_tenant`).

A cold pass (nothing exists: every server is created) and a steady pass (everything in sync), each against
its floor, the time the work cannot beat with W workers:

- steady: one listing per tenant, `latency` each, W at a time: `ceil(T / W) x latency`;
- cold: one AssumeRole, one listing and a create per server per tenant, the listing and the creates at the
  account's CloudFormation rate `r` with a burst `b` (calls `c = 1 + S`): a tenant cannot finish before
  `latency + (c - b) / r + latency` (its AssumeRole, then the calls past the burst at the rate, then the last
  call's latency), nor before `(1 + c) x latency` (its calls one after another);
  W tenants at a time: `ceil(T / W) x max(...)`.

Also the dispatch: one message per tenant onto a FIFO queue in SendMessageBatch calls of ten, with a real
boto3 client on a stubbed endpoint (moto's SQS took 1.9 s per batch call here, which measures moto).
"""

from __future__ import annotations

import gc
import json
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.fakes.world import FakeWorld
from reconciler.pacing import AccountRateLimiter, PacedConnector

#: What the queue carries for a sweep's full pass of a tenant (the fleet's work-message shape).
STOP = ""


def message(tenant_id: str) -> str:
    return json.dumps({"tenant_id": tenant_id, "gameserver_ids": None, "trigger": "sweep"})


def build_world(tenants: int, servers: int, latency_s: float, rate: float) -> FakeWorld:
    world = FakeWorld(latency_s=latency_s, rate_per_account=rate)
    # Pace just under the account's limit so the passes do not provoke throttling they must then retry.
    limiter = AccountRateLimiter(rate * 0.9, burst=rate * 0.9)
    world.engine.connector = PacedConnector(world.connector, limiter)
    for index in range(tenants):
        tenant_id = f"t{index:05d}"
        world.add_tenant(tenant_id, f"{100000000000 + index:012d}")
        for server in range(servers):
            world.put(tenant_id, f"s{server:02d}", seed=f"seed{server}")
    return world


def run_workers(world: FakeWorld, workers: int, tenant_ids: list[str]) -> dict[str, Any]:
    """Enqueue one message per tenant, then let `workers` threads drain the queue; the pass's figures."""
    work: queue.SimpleQueue[str] = queue.SimpleQueue()
    for tenant_id in tenant_ids:
        work.put(message(tenant_id))
    for _ in range(workers):
        work.put(STOP)
    failed: list[str] = []
    mutating = threading.local()
    lock = threading.Lock()

    def worker() -> None:
        mutating.count = 0
        while True:
            body = work.get()
            if body == STOP:
                return
            request = json.loads(body)
            result = world.engine.reconcile_tenant(request["tenant_id"], scope=request["gameserver_ids"])
            if not result.ok:
                with lock:
                    failed.append(result.tenant_id)

    world.cloud.reset_calls()
    gc.collect()
    start = time.perf_counter()
    cpu_start = time.process_time()
    threads = [threading.Thread(target=worker, name=f"worker-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    counts = world.cloud.counts()
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(time.process_time() - cpu_start, 3),
        "calls": dict(sorted(counts.items())),
        "tenants_failed": len(failed),
    }


def steady_floor(tenants: int, workers: int, latency_s: float) -> float:
    return math.ceil(tenants / workers) * latency_s


def cold_floor(tenants: int, workers: int, servers: int, latency_s: float, rate: float, burst: float) -> float:
    calls = 1 + servers  # the listing and one create per server, all against the account's rate
    per_tenant = max(latency_s + max(0.0, calls - burst) / rate + latency_s, (1 + calls) * latency_s)
    return math.ceil(tenants / workers) * per_tenant


def fanout(
    tenants: int,
    servers: int,
    latency_s: float,
    rate: float,
    workers: int,
    *,
    cold: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One world, W workers: the cold pass (skipped with `cold=False`: the world is then converged with no
    latency), then the steady pass."""
    say = progress or (lambda _: None)
    started = time.perf_counter()
    world = build_world(tenants, servers, latency_s, rate)
    tenant_ids = [t.tenant_id for t in world.store.list_tenants()]
    say(f"fan-out W={workers}: world of {tenants} x {servers} built in {time.perf_counter() - started:.1f} s")
    report: dict[str, Any] = {"fanout_tenants": tenants, "fanout_workers": workers}
    if cold:
        cold_pass = run_workers(world, workers, tenant_ids)
        floor = cold_floor(tenants, workers, servers, latency_s, rate, rate)
        report.update(
            {
                "fanout_cold_wall_s": cold_pass["wall_s"],
                "fanout_cold_floor_s": round(floor, 3),
                "fanout_cold_ratio": round(cold_pass["wall_s"] / floor, 3),
                "fanout_cold": cold_pass,
            }
        )
        say(f"fan-out W={workers}: cold pass {cold_pass['wall_s']} s (floor {floor:.1f} s)")
    # Converge without latency, throttling or pacing (the creates are made if the cold pass did not run, they
    # finish, and a pass reads each new stack once and marks every server Ready), then the steady pass at the
    # benchmark's latency and rate, paced, with credentials cached as a warm worker has them. Paced, converging
    # 10,000 tenants would take about half an hour of waiting for the accounts' rates.
    paced = world.engine.connector
    world.engine.connector = world.connector
    world.cloud.latency_s, world.cloud.rate_per_account = 0.0, None
    for _ in range(2 if cold else 3):
        world.cloud.settle_all()
        run_workers(world, max(8, workers // 8), tenant_ids)
    world.cloud.settle_all()
    world.engine.connector = paced
    world.cloud.latency_s, world.cloud.rate_per_account = latency_s, rate
    time.sleep(1.5)  # the paced buckets refill
    steady = run_workers(world, workers, tenant_ids)
    floor = steady_floor(tenants, workers, latency_s)
    report.update(
        {
            "fanout_steady_wall_s": steady["wall_s"],
            "fanout_steady_floor_s": round(floor, 3),
            "fanout_steady_ratio": round(steady["wall_s"] / floor, 3),
            "fanout_steady": {**steady, "cpu_us_per_tenant": round(steady["cpu_s"] / tenants * 1e6, 1)},
        }
    )
    say(f"fan-out W={workers}: steady pass {steady['wall_s']} s (floor {floor:.2f} s)")
    return report


def dispatch(tenant_ids: list[str], *, batch: int = 10) -> dict[str, Any]:
    """One full-pass message per tenant onto a FIFO work queue (group = tenant), SendMessageBatch of ten, with
    a real boto3 SQS client on the stubbed endpoint (`stub_endpoint`): the dispatcher's part of a sweep, all
    but the network's round trips (about 100 calls; a few ms each on AWS, not counted here)."""
    import boto3

    from reconciler.adapters.aws import CLIENT_CONFIG
    from tests.bench import stub_endpoint

    session = boto3.Session(region_name="us-east-1", aws_access_key_id="AKIA", aws_secret_access_key="secret")
    stub_endpoint.install(session)
    sqs = session.client("sqs", config=CLIENT_CONFIG)
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/stackherd-work.fifo"
    start = time.perf_counter()
    sent = calls = 0
    for first in range(0, len(tenant_ids), batch):
        entries = [
            {
                "Id": str(n),
                "MessageBody": message(tenant_id),
                "MessageGroupId": tenant_id,
                "MessageDeduplicationId": f"sweep-{tenant_id}",
            }
            for n, tenant_id in enumerate(tenant_ids[first : first + batch])
        ]
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        sent += len(response.get("Successful", []))
        calls += 1
    wall = time.perf_counter() - start
    return {
        "fanout_dispatch_s": round(wall, 3),
        "fanout_dispatch": {"tenants": len(tenant_ids), "sent": sent, "calls": calls},
    }
