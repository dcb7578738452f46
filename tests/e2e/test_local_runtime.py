"""`stackherd local` end to end: a subprocess on free ports, driven over HTTP with tokens like any client; the
stacks checked with boto3 inside the tenant accounts on its moto; then Ctrl-C, leaving no port or process."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.local_runtime import Running, local_runtime, wait_for

pytestmark = pytest.mark.integration

ALPHA, BRAVO = "111111111111", "222222222222"
BOUND_S = 30


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with local_runtime(tmp_path_factory.mktemp("local"), "--tenants", "2", "--sweep-every", "5") as running:
        yield running


def stacks(local: Running, account: str) -> dict[str, dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    for attempt in range(5):
        try:
            found = local.boto3("cloudformation", account).describe_stacks()["Stacks"]
            return {s["StackName"]: s for s in found if s["StackStatus"] != "DELETE_COMPLETE"}
        except (BotoCoreError, ClientError):
            # moto's server may answer a read that races a stack operation with a 500; look again.
            if attempt == 4:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def params(stack: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}


def phase(local: Running, token: str, server: str) -> str | None:
    status, body = local.request("GET", f"/servers/{server}", token)
    return body["status"]["phase"] if status == 200 else None


def test_the_banner_names_the_endpoints_and_a_dashboard_address_with_an_admin_token(local: Running) -> None:
    assert local.dashboard.startswith(f"{local.api}/dashboard#token=")
    assert any(local.aws in line for line in local.lines)
    status, body = local.request("GET", "/fleet", local.dashboard.split("#token=", 1)[1])
    assert status == 200 and [t["tenant"]["tenant_id"] for t in body["tenants"]] == ["alpha", "bravo"]


def test_a_server_is_created_changed_and_deleted_in_its_tenants_account(local: Running) -> None:
    ana = local.token("--tenant", "alpha", "--user", "ana")
    status, body = local.request("PUT", "/servers/arena", ana, {"config": {"difficulty": "hard", "player_count": 8}})
    assert status == 201, body

    stack = wait_for(lambda: stacks(local, ALPHA).get("stackherd-alpha-arena"), BOUND_S, "the stack in alpha's account")
    assert params(stack)["Difficulty"] == "hard"
    assert "stackherd-alpha-arena" not in stacks(local, BRAVO), "never in another tenant's account"
    wait_for(lambda: phase(local, ana, "arena") == "Ready", BOUND_S, "arena Ready")

    status, body = local.request("PUT", "/servers/arena", ana, {"config": {"difficulty": "easy", "player_count": 8}})
    assert status == 200, body
    wait_for(
        lambda: params(stacks(local, ALPHA)["stackherd-alpha-arena"])["Difficulty"] == "easy",
        BOUND_S,
        "the stack updated",
    )

    status, _ = local.request("DELETE", "/servers/arena", ana)
    assert status == 202
    wait_for(lambda: "stackherd-alpha-arena" not in stacks(local, ALPHA), BOUND_S, "the stack deleted")
    wait_for(lambda: local.request("GET", "/servers/arena", ana)[0] == 404, BOUND_S, "the record finalized")
    assert any("alpha" in line and "arena" in line and "create" in line for line in local.lines), local.lines[-20:]


def test_bad_expired_and_other_tenant_tokens_are_refused_as_on_aws(local: Running) -> None:
    ana = local.token("--tenant", "alpha", "--user", "ana")
    assert local.request("PUT", "/servers/lobby", ana, {"config": {}})[0] == 201
    assert local.request("GET", "/servers", None)[0] == 401
    assert local.request("GET", "/servers", "garbage")[0] == 401
    assert local.request("GET", "/servers", ana[:-4] + "AAAA")[0] == 401
    import jwt

    claims = jwt.decode(ana, options={"verify_signature": False})
    key = (local.state_dir / "jwt-key").read_text()
    expired = jwt.encode({**claims, "exp": claims["iat"] - 1}, key, algorithm="HS256")
    status, body = local.request("GET", "/servers", expired)
    assert status == 401 and "expired" in body["reason"]
    ben = local.token("--tenant", "bravo", "--user", "ben")
    assert local.request("GET", "/servers/lobby", ben)[0] == 404
    assert local.request("GET", "/tenants", ben)[0] == 403


def test_the_stream_failure_destination_is_a_queue_that_can_be_listed(local: Running) -> None:
    sqs = local.boto3("sqs")
    urls = sqs.list_queues()["QueueUrls"]
    assert any(url.endswith("stackherd-stream-failures") for url in urls)
    assert any(url.endswith("stackherd-requeue-dlq") for url in urls)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_ctrl_c_stops_everything_and_leaves_no_port_or_process(local: Running) -> None:
    """Last in this module: it stops the runtime the others share."""
    pid = local.process.pid
    assert children_of(pid) == [], "everything runs in the one process"
    assert local.stop(signal.SIGINT) == 0
    assert local.lines[-1] == "stopped", local.lines[-5:]
    assert not Path(f"/proc/{pid}").exists()
    for port in (local.api_port, local.aws_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with socket.socket() as sock:
            # Connections the server closed may linger in TIME_WAIT; only a listener would refuse this bind.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
