"""The rollout CLI contract against a moto server on loopback: v1 and v2 published, three tenants in three
accounts, a rollout with a canary and waves of one driven by `stackherd sweep` until Completed (every stack then
tagged v2), and a second rollout aborted half-way (what was pinned stays, nothing more is)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.cli_on_moto import ACCOUNTS, TEMPLATE, cli, ok

pytestmark = pytest.mark.integration


def version_tags(account: str) -> set[str]:
    from handlers.local.embedded import tenant_cloudformation

    found = set()
    for stack in tenant_cloudformation(account).describe_stacks()["Stacks"]:
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        if "stackherd:tenant" in tags and stack["StackStatus"] != "DELETE_COMPLETE":
            found.add(tags["stackherd:template-version"])
    return found


def status(rollout_id: str) -> dict[str, Any]:
    code, out = cli("rollout", "status", rollout_id, "--json")
    assert code in (0, 1), out
    return json.loads(out)  # type: ignore[no-any-return]


def fleet() -> None:
    ok("init")
    ok("templates", "publish", str(TEMPLATE), "--version", "v1")
    ok("templates", "publish", str(TEMPLATE), "--version", "v2")
    for tenant, account in ACCOUNTS.items():
        ok("tenants", "add", tenant, "--account", account)
        ok("servers", "put", tenant, "arena", "--owner", "ana")
        ok("reconcile", tenant)
    ok("sweep")
    for account in ACCOUNTS.values():
        assert version_tags(account) == {"v1"}


def test_a_rollout_with_a_canary_and_waves_of_one_completes_through_sweeps(endpoint: str) -> None:
    fleet()
    rollout_id = ok("rollout", "start", "v2", "--canary", "bravo", "--wave-size", "1").strip()
    for _ in range(12):
        ok("sweep")
        if status(rollout_id)["state"] != "InProgress":
            break
    final = status(rollout_id)
    assert final["state"] == "Completed", final
    assert [w["tenants"][0]["tenant_id"] for w in final["waves"]] == ["bravo", "alpha", "charlie"]
    assert final["counts"]["succeeded"] == 3
    for account in ACCOUNTS.values():
        assert version_tags(account) == {"v2"}
    assert [r["state"] for r in json.loads(ok("rollout", "list", "--json"))] == ["Completed"]
    # Each server's history says which rollout and wave moved it.
    from handlers.runtime import runtime

    store = runtime().store
    server = store.get_server("alpha", "arena")
    assert server is not None
    messages = [e.message for e in store.history("alpha", "arena", server.incarnation).entries]
    assert f"pinned to v2 (from v1) by rollout {rollout_id}, wave 2" in messages


def test_a_rollout_aborted_half_way_keeps_what_it_pinned(endpoint: str) -> None:
    fleet()
    rollout_id = ok("rollout", "start", "v2", "--wave-size", "1").strip()  # canary alpha, then bravo, charlie
    for _ in range(8):
        ok("sweep")
        if status(rollout_id)["wave"] >= 2:
            break
    assert status(rollout_id)["wave"] == 2
    assert json.loads(ok("rollout", "abort", rollout_id, "--json"))["state"] == "Aborted"
    for _ in range(3):
        ok("sweep")
    tenants = {t["tenant_id"]: t["template_version"] for t in json.loads(ok("tenants", "list", "--json"))}
    assert tenants == {"alpha": "v2", "bravo": "v2", "charlie": "v1"}
    assert version_tags(ACCOUNTS["alpha"]) == {"v2"}
    assert version_tags(ACCOUNTS["charlie"]) == {"v1"}
    assert status(rollout_id)["state"] == "Aborted"
