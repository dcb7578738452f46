"""The CLI contract against a moto server on loopback (`AWS_ENDPOINT_URL`), with three tenant accounts.

This is the path an operator uses against a real endpoint: every call crosses HTTP, credentials are
assumed per tenant, and the stream is read back from the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli_on_moto import ACCOUNTS, TEMPLATE, cli, ok
from tests.e2e.moto_server import ROOT

pytestmark = pytest.mark.integration


def account_cfn(account: str) -> Any:
    from handlers.local.embedded import tenant_cloudformation

    return tenant_cloudformation(account)


def stacks_in(account: str) -> dict[str, dict[str, Any]]:
    return {
        s["StackName"]: s
        for s in account_cfn(account).describe_stacks()["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    }


def params(stack: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}


def tags(stack: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in stack.get("Tags", [])}


def test_cli_converges_three_accounts_through_a_moto_server(endpoint: str) -> None:
    ok("init")
    assert "nothing to create" in ok("init"), "init is idempotent"
    ok("templates", "publish", str(TEMPLATE), "--version", "v1")
    for tenant, account in ACCOUNTS.items():
        ok("tenants", "add", tenant, "--account", account, "--external-id", f"external-id-of-{tenant}-0123456789")
    listed = json.loads(ok("tenants", "list", "--json"))
    assert [t["tenant_id"] for t in listed] == ["alpha", "bravo", "charlie"]

    foreign = account_cfn(ACCOUNTS["charlie"])
    foreign.create_stack(
        StackName="their-own",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {"Difficulty": "easy", "PlayerCount": "2", "Seed": "mine"}.items()
        ],
    )

    ok("servers", "put", "alpha", "arena", "--owner", "ana", "--set", "difficulty=hard", "--set", "player_count=8")
    ok("servers", "put", "alpha", "lobby", "--owner", "ana")
    ok("servers", "put", "bravo", "castle", "--owner", "ben", "--set", "seed=moat")
    ok("servers", "put", "charlie", "citadel", "--owner", "cy")
    for tenant in ACCOUNTS:
        assert cli("plan", tenant)[0] == 2, "changes pending before the first reconcile"
        ok("reconcile", tenant)

    # Each tenant's stacks land only in its own account, with mapped parameters and ownership tags.
    for tenant, account in ACCOUNTS.items():
        owned = {n: s for n, s in stacks_in(account).items() if "stackherd:tenant" in tags(s)}
        assert {tags(s)["stackherd:tenant"] for s in owned.values()} == {tenant}
    arena = stacks_in(ACCOUNTS["alpha"])["stackherd-alpha-arena"]
    assert params(arena) == {"Difficulty": "hard", "PlayerCount": "8", "Seed": "default"}
    assert tags(arena)["stackherd:gameserver"] == "arena" and tags(arena)["stackherd:installation"] == "stackherd"

    ok("sweep")
    shown = json.loads(ok("servers", "show", "alpha", "arena", "--json"))
    assert shown["status"]["phase"] == "Ready" and shown["status"]["stack_id"]

    # A config change updates only that stack.
    before = {n: s.get("LastUpdatedTime") for n, s in stacks_in(ACCOUNTS["alpha"]).items()}
    ok("servers", "put", "alpha", "arena", "--owner", "ana", "--set", "seed=lava")
    result = json.loads(ok("reconcile", "alpha", "--json"))
    assert {a["gameserver_id"]: a["kind"] for a in result["actions"]} == {"arena": "update", "lobby": "no-op"}
    after = stacks_in(ACCOUNTS["alpha"])
    assert params(after["stackherd-alpha-arena"])["Seed"] == "lava"
    assert after["stackherd-alpha-lobby"].get("LastUpdatedTime") == before["stackherd-alpha-lobby"]

    # Drift by hand and a deleted stack are repaired by the sweep; plan then exits 0.
    castle = stacks_in(ACCOUNTS["bravo"])["stackherd-bravo-castle"]
    account_cfn(ACCOUNTS["bravo"]).update_stack(
        StackName="stackherd-bravo-castle",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in {**params(castle), "Seed": "hacked"}.items()],
        Tags=castle["Tags"],
    )
    account_cfn(ACCOUNTS["alpha"]).delete_stack(StackName="stackherd-alpha-lobby")
    assert cli("plan", "bravo")[0] == 2
    ok("sweep")
    ok("sweep")
    assert params(stacks_in(ACCOUNTS["bravo"])["stackherd-bravo-castle"])["Seed"] == "moat"
    assert "stackherd-alpha-lobby" in stacks_in(ACCOUNTS["alpha"])
    for tenant in ACCOUNTS:
        assert cli("plan", tenant)[0] == 0, f"{tenant} in sync after the sweep"

    # A deleted server's stack is removed, then its record.
    ok("servers", "delete", "alpha", "arena")
    ok("reconcile", "alpha")
    ok("reconcile", "alpha")
    assert "stackherd-alpha-arena" not in stacks_in(ACCOUNTS["alpha"])
    assert cli("servers", "show", "alpha", "arena")[0] == 1

    # The tenant's own stack survived every pass.
    assert "their-own" in stacks_in(ACCOUNTS["charlie"])


def test_stream_records_read_from_the_server_drive_the_stream_handler(endpoint: str) -> None:
    from handlers.local.embedded import LocalContext, StreamPoller
    from handlers.stream import handler

    ok("init")
    ok("templates", "publish", str(TEMPLATE), "--version", "v1")
    ok("tenants", "add", "alpha", "--account", ACCOUNTS["alpha"])
    poller = StreamPoller("stackherd-gameservers")
    ok("servers", "put", "alpha", "arena", "--owner", "ana", "--set", "difficulty=easy")
    events = poller.events()
    assert [r["eventName"] for e in events for r in e["Records"]] == ["INSERT"]
    for event in events:
        assert handler(event, LocalContext()) == {"batchItemFailures": []}
    assert params(stacks_in(ACCOUNTS["alpha"])["stackherd-alpha-arena"])["Difficulty"] == "easy"
    # The reconciler's status write comes back as a MODIFY and triggers no CloudFormation call.
    status_events = poller.events()
    assert [r["eventName"] for e in status_events for r in e["Records"]] == ["MODIFY"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["tenants", "add", "x", "--account", "12"], "account_id"),
        (["tenants", "add", "Bad_Id", "--account", "111111111111"], "tenant_id"),
        (["tenants", "add", "beta", "--account", "111111111111"], "already tenant 'alpha''s"),
        (
            ["tenants", "add", "x", "--account", "111111111111", "--role-name", "arn:aws:iam::444444444444:role/R"],
            "not in the tenant's account 111111111111",
        ),
        (["servers", "put", "alpha", "s1", "--owner", "a", "--set", "difficulty=extreme"], "difficulty"),
        (["servers", "put", "alpha", "s1", "--owner", "a", "--set", "colour=red"], "colour"),
        (["servers", "put", "alpha", "s1", "--owner", "a", "--set", "player_count=1000"], "player_count"),
        (["servers", "put", "alpha", "s1", "--owner", "a", "--set", "novalue"], "key=value"),
        (["servers", "put", "alpha", "s1", "--owner", ""], "owner"),
        (["servers", "put", "alpha", "s1", "--owner", "  "], "owner"),
        (["servers", "put", "alpha", "s1", "--owner", "x" * 129], "owner"),
        (["servers", "show", "ghost", "x"], "not found"),
        (["plan", "ghost"], "not found"),
        (["sweep", "--concurrency", "0"], "concurrency"),
        (["nonsense"], "invalid choice"),
        (["templates", "publish", "/nonexistent.yaml", "--version", "v2"], "cannot read"),
        (["templates", "publish", "infra/sam/gameserver.yaml", "--version", "v2\n"], "--version"),
        (["tenants", "update", "alpha", "--tier", ""], "tier"),
        (["tenants", "update", "alpha", "--template-version", ""], "template_version"),
        (["demo"], "invalid choice"),
    ],
)
def test_bad_input_exits_1_with_one_line_and_no_traceback(endpoint: str, argv: list[str], needle: str) -> None:
    ok("init")
    ok("templates", "publish", str(TEMPLATE), "--version", "v1")  # a tenant is pinned to a published version
    ok("tenants", "add", "alpha", "--account", "111111111111")
    process = subprocess.run(
        [sys.executable, "-m", "handlers.local.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ},
        cwd=ROOT,
        timeout=60,
    )
    assert process.returncode == 1, process.stderr
    assert "Traceback" not in process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], process.stderr
    assert process.stdout == ""


def test_a_published_template_version_cannot_be_replaced(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok("init")
    ok("templates", "publish", str(TEMPLATE), "--version", "v1")
    ok("templates", "publish", str(TEMPLATE), "--version", "v1")  # the same body again is fine
    changed = tmp_path / "changed.yaml"
    changed.write_text(TEMPLATE.read_text() + "\n# changed\n")

    assert cli("templates", "publish", str(changed), "--version", "v1")[0] == 1
    assert "already published with a different body" in capsys.readouterr().err
    ok("templates", "publish", str(changed), "--version", "v2")


def test_tenant_commands_change_only_what_they_name(endpoint: str) -> None:
    """Each command changes only its own fields, in one partial update: a quarantine a sweep wrote stays
    through pause, update and a repeated add (which is no conflict with the tenant's own registration)."""
    from datetime import UTC, datetime

    from handlers.runtime import runtime

    ok("init")
    ok("templates", "publish", str(TEMPLATE), "--version", "v1")
    ok("tenants", "add", "alpha", "--account", ACCOUNTS["alpha"])
    runtime().store.set_quarantine("alpha", "access to account denied", datetime.now(UTC))

    assert "already registered" in ok("tenants", "add", "alpha", "--account", ACCOUNTS["alpha"])
    ok("tenants", "pause", "alpha")
    ok("tenants", "update", "alpha", "--tier", "premium")

    (tenant,) = json.loads(ok("tenants", "list", "--json"))
    assert (tenant["paused"], tenant["tier"], tenant["quarantined"]) == (True, "premium", "access to account denied")
    resumed = json.loads(ok("tenants", "resume", "alpha", "--json"))
    assert (resumed["paused"], resumed["quarantined"]) == (False, "access to account denied")
    released = json.loads(ok("tenants", "unquarantine", "alpha", "--json"))
    assert (released["tenant_id"], released["quarantined"]) == ("alpha", None)


def test_a_region_with_servers_in_it_cannot_be_dropped(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    ok("init")
    ok("templates", "publish", str(TEMPLATE), "--version", "v1")
    ok("tenants", "add", "alpha", "--account", ACCOUNTS["alpha"], "--region", "us-east-1", "--region", "eu-west-1")
    ok("servers", "put", "alpha", "arena", "--owner", "ana")

    assert cli("tenants", "update", "alpha", "--region", "eu-west-1")[0] == 1
    assert "arena" in capsys.readouterr().err
    ok("tenants", "update", "alpha", "--region", "eu-west-1", "--region", "us-east-1")  # reordering is fine
