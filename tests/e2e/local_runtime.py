"""`stackherd local` as a subprocess on free ports, for the end-to-end suites that drive it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.moto_server import ROOT, free_port


@dataclass
class Running:
    process: subprocess.Popen[str]
    api: str
    aws: str
    dashboard: str
    state_dir: Path
    api_port: int
    aws_port: int
    started_s: float
    lines: list[str] = field(default_factory=list)

    def token(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "handlers.local.cli", "token", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        return out.strip()

    def env(self) -> dict[str, str]:
        return {**clean_env(), "STACKHERD_LOCAL_DIR": str(self.state_dir)}

    def request(self, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def boto3(self, service: str, account: str | None = None) -> Any:
        """A client on the runtime's moto, acting inside `account` when given (an assumed role)."""
        import boto3

        base = {
            "region_name": "us-east-1",
            "endpoint_url": self.aws,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        if account is None:
            return boto3.client(service, **base)  # type: ignore[call-overload]
        creds = boto3.client("sts", **base).assume_role(  # type: ignore[call-overload]
            RoleArn=f"arn:aws:iam::{account}:role/OperatorByHand", RoleSessionName="test"
        )["Credentials"]
        return boto3.client(  # type: ignore[call-overload]
            service,
            **{**base, "aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"]},
            aws_session_token=creds["SessionToken"],
        )

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


def clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "STACKHERD_", "POWERTOOLS_")) or k == "STACKHERD_DEBUG"
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_for(check: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what} within {timeout_s} s (last seen: {last!r})")


@contextmanager
def local_runtime(state_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Running]:
    """Start `stackherd local` on free ports; yield once it accepts requests; stop it (SIGINT) after."""
    api_port, aws_port = free_port(), free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "handlers.local.cli",
            "local",
            "--port",
            str(api_port),
            "--aws-port",
            str(aws_port),
            *args,
        ],
        cwd=ROOT,
        env={**clean_env(), "STACKHERD_LOCAL_DIR": str(state_dir), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    dashboard: list[str] = []

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "dashboard:" in line:
                dashboard.append(line.split("dashboard:", 1)[1].strip())
            if line.startswith("ready in"):
                ready.set()

    threading.Thread(target=drain, daemon=True).start()
    running = Running(
        process=process,
        api=f"http://127.0.0.1:{api_port}",
        aws=f"http://127.0.0.1:{aws_port}",
        dashboard="",
        state_dir=state_dir,
        api_port=api_port,
        aws_port=aws_port,
        started_s=0.0,
        lines=lines,
    )
    try:
        if not ready.wait(90) or process.poll() is not None:
            raise AssertionError("stackherd local did not start:\n" + "\n".join(lines[-40:]))
        running.dashboard = dashboard[0]
        running.started_s = time.monotonic() - started
        yield running
    finally:
        running.stop()
