"""Figures of `stackherd local` as a user sees it: the time from starting it to the first accepted request,
PUT -> Ready over loopback for N servers (median and p95), and the idle runtime's CPU share over a minute.

    .venv/bin/python -m tests.bench.local_bench [--servers 20] [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.e2e.local_runtime import Running, clean_env
from tests.e2e.moto_server import ROOT, free_port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=60)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="stackherd-bench-"))
    api_port, aws_port = free_port(), free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "handlers.local.cli", "local", "--port", str(api_port), "--aws-port", str(aws_port)],
        cwd=ROOT,
        env={**clean_env(), "STACKHERD_LOCAL_DIR": str(state)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True).start()
    local = Running(
        process, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{aws_port}", "", state, api_port, aws_port, 0.0
    )
    try:
        token = local.token("--tenant", "alpha", "--user", "bench")
        while True:
            try:
                if local.request("GET", "/servers", token)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() - started > 120:
                raise SystemExit("stackherd local did not start:\n" + "".join(lines[-30:]))
            time.sleep(0.05)
        first_request_s = time.monotonic() - started

        # One player per server, as a fleet's players would (one player is rate limited to a burst of 10 writes);
        # the admin's listing of the tenant sees every player's servers.
        players = [local.token("--tenant", "alpha", "--user", f"bench-{index:02d}") for index in range(args.servers)]
        admin = local.token("--user", "bench-admin", "--admin")
        put_at: dict[str, float] = {}
        for index, player in enumerate(players):
            name = f"bench-{index:02d}"
            put_at[name] = time.monotonic()
            status, body = local.request("PUT", f"/servers/{name}", player, {"config": {"difficulty": "easy"}})
            assert status == 201, body
        ready_after: dict[str, float] = {}
        deadline = time.monotonic() + 300
        while len(ready_after) < len(put_at) and time.monotonic() < deadline:
            status, page = local.request("GET", "/tenants/alpha/servers?limit=100", admin)
            now = time.monotonic()
            for server in page["items"]:
                name = server["gameserver_id"]
                if name not in ready_after and server["status"]["phase"] == "Ready":
                    ready_after[name] = now - put_at[name]
            time.sleep(0.05)
        latencies = sorted(ready_after.values())
        time.sleep(5)  # let the last requeues settle
        cpu_before, wall_before = cpu_seconds(process.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle_share = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - wall_before)
    finally:
        local.stop()
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)] if latencies else float("nan")
    print(f"first accepted request after start: {first_request_s:.2f} s")
    print(
        f"PUT -> Ready over loopback, {len(latencies)}/{args.servers} servers: "
        f"median {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s"
    )
    print(f"idle CPU share over {args.idle_seconds:.0f} s: {idle_share:.1%} of one core")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if len(latencies) == args.servers else 1


if __name__ == "__main__":
    raise SystemExit(main())
