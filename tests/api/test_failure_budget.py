"""The failure budget as the API shows it: a player sees how many tries a change has cost and that the last one
rolled back, an admin also why (CloudFormation's resource event), and an admin's reconcile can skip a backoff
with `force=true`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.api.conftest import ACME_ACCOUNT, ALICE, ROOT, ApiClient, put_config

if TYPE_CHECKING:
    from reconciler.fakes.world import FakeWorld

NAME = "stackherd-acme-alpha-1"
REASON = "The requested instance type is not supported"
CAUSE_TEXT = f"Server (AWS::EC2::Instance) UPDATE_FAILED: {REASON}"


def _failed_update(api: ApiClient, world: FakeWorld) -> None:
    """A converged server, then a change whose update CloudFormation rolls back, seen by the next pass."""
    from reconciler.fakes.cloud import FailureCause

    api.put("/servers/alpha-1", put_config())
    api.post("/tenants/acme/reconcile")
    world.cloud.settle_all()
    world.cloud.set_outcome(
        ACME_ACCOUNT,
        NAME,
        "update",
        "UPDATE_ROLLBACK_COMPLETE",
        always=True,
        cause=FailureCause("Server", "AWS::EC2::Instance", REASON),
    )
    assert api.patch("/servers/alpha-1", {"config": {"seed": "new"}}).status == 200
    api.post("/tenants/acme/reconcile")  # sends the update
    world.cloud.settle_all()  # ... which rolls back
    api.post("/tenants/acme/reconcile")  # sees the rollback: a failed attempt, and a backoff
    world.cloud.reset_calls()


def test_a_server_shows_its_tries_and_the_cause_of_a_failed_attempt(api: ApiClient, memory_world: FakeWorld) -> None:
    converged = api.put("/servers/alpha-1", put_config())
    assert "tries" not in converged.json()["status"] and "cause" not in converged.json()["status"]

    _failed_update(api, memory_world)

    # The player: the tries and the stable reason, not CloudFormation's text.
    status = api.get("/servers/alpha-1", ALICE).json()["status"]
    assert status["phase"] == "Failed"
    assert status["tries"] == 1 and "cause" not in status
    assert status["next_retry_at"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "StackRolledBack" and REASON not in ready["message"]
    (listed,) = api.get("/servers", ALICE).json()["items"]
    assert listed["status"]["tries"] == 1 and "cause" not in listed["status"]
    # The admin: the cause as recorded.
    (seen,) = api.get("/tenants/acme/servers", ROOT).json()["items"]
    assert (seen["status"]["tries"], seen["status"]["cause"]) == (1, CAUSE_TEXT)
    assert CAUSE_TEXT in next(c["message"] for c in seen["status"]["conditions"] if c["type"] == "Ready")


def test_reconcile_with_force_skips_a_failed_attempts_backoff(api: ApiClient, memory_world: FakeWorld) -> None:
    _failed_update(api, memory_world)

    waiting = api.post("/tenants/acme/reconcile").json()
    assert [(a["kind"], a["outcome"]) for a in waiting["actions"]] == [("backoff", "done")]
    assert waiting["actions"][0]["retry_at"]
    assert memory_world.cloud.count("UpdateStack") == 0

    forced = api.post("/tenants/acme/reconcile", query={"force": "true"})
    assert forced.status == 200
    assert [(a["kind"], a["outcome"]) for a in forced.json()["actions"]] == [("update", "done")]
    assert memory_world.cloud.count("UpdateStack") == 1
