"""Fail-safe behaviour of the engine on the fake cloud: a deletion brake that holds across passes and
triggers, a pause that stops a pass already running, and regions that fail alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from handlers import stream
from handlers.local.embedded import LocalContext
from models.records import Phase
from reconciler.errors import AccessDeniedError, TransientError, UnknownRegionError
from reconciler.fakes.world import FakeWorld
from reconciler.planner import PlanSettings
from tests.functional.conftest import stream_record

ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"
MUTATING = ("CreateStack", "UpdateStack", "DeleteStack", "ContinueUpdateRollback")


def mutating_calls(world: FakeWorld) -> int:
    return sum(world.cloud.count(op) for op in MUTATING)


def deleted_stacks(world: FakeWorld) -> set[str]:
    # the target is the stack id (arn:...:stack/<name>/<uuid>) or the name
    return {
        c.target.split("/")[1] if "/" in c.target else c.target
        for c in world.cloud.calls
        if c.operation == "DeleteStack"
    }


def vanished_tenant(world: FakeWorld, servers: int = 25) -> None:
    """A converged tenant whose records all vanish at once (a bad script, a restore)."""
    world.add_tenant("alpha", ACCOUNT_A, tier="premium")
    for index in range(servers):
        world.put("alpha", f"s{index:02d}")
    world.converge("alpha")
    for index in range(servers):
        del world.store.servers[("alpha", f"s{index:02d}")]
    world.cloud.reset_calls()


# --- a brake that holds ------------------------------------------------------------------------------


def test_mass_deletion_brake_holds_across_sweeps_until_an_admin_confirms(world: FakeWorld) -> None:
    vanished_tenant(world)

    first = world.engine.sweep()
    assert world.cloud.count("DeleteStack") == 10
    (result,) = first.results
    assert sum(1 for r in result.results if r.action.code == "DeletionBrake") == 15
    braked = [entry for entry in world.store.activity if entry[2] == "brake"]
    assert len(braked) == 15 and "--confirm-deletions" in braked[0][3]
    world.cloud.settle_all()

    for _ in range(2):  # the second and third sweeps, and later ones, delete nothing more
        world.clock.advance(300)
        world.engine.sweep()
        world.cloud.settle_all()
    assert world.cloud.count("DeleteStack") == 10
    # ... not even after the window has passed: what is held stays held until confirmed
    world.clock.advance(2 * 3600)
    world.engine.sweep()
    assert world.cloud.count("DeleteStack") == 10
    assert sum(1 for entry in world.store.activity if entry[2] == "brake") == 15  # logged once, not per pass

    state = world.store.get_tenant_state("alpha").deletion_brake
    assert len(state.held) == 15
    confirmed = world.engine.reconcile_tenant("alpha", confirm_deletions=True)
    assert world.cloud.count("DeleteStack") == 25
    assert deleted_stacks(world) == {f"stackherd-alpha-s{i:02d}" for i in range(25)}
    assert {r.action.gameserver_id for r in confirmed.results if r.action.kind.value == "delete"} == {
        h.gameserver_id for h in state.held
    }
    assert world.store.get_tenant_state("alpha").deletion_brake.held == ()


def test_mass_deletion_brake_holds_against_stream_batches(world: FakeWorld, context: LocalContext) -> None:
    from handlers.local.embedded import fake_runtime
    from handlers.runtime import install_runtime

    vanished_tenant(world)
    world.engine.sweep()
    assert world.cloud.count("DeleteStack") == 10
    install_runtime(fake_runtime(world))
    try:
        records = [stream_record("REMOVE", "alpha", f"s{i:02d}", str(100 + i)) for i in range(25)]
        for _ in range(3):
            stream.handler({"Records": records}, context)  # type: ignore[arg-type]
    finally:
        install_runtime(None)
    assert world.cloud.count("DeleteStack") == 10
    assert len(world.store.get_tenant_state("alpha").deletion_brake.held) == 15


def test_confirming_releases_exactly_the_held_set_not_a_deletion_that_appeared_later(world: FakeWorld) -> None:
    world = FakeWorld(settings=PlanSettings(max_deletions=2))
    world.add_tenant("alpha", ACCOUNT_A)
    for index in range(6):
        world.put("alpha", f"s{index}")
    world.converge("alpha")
    for index in range(4):
        del world.store.servers[("alpha", f"s{index}")]
    world.cloud.reset_calls()
    world.engine.reconcile_tenant("alpha")  # deletes two, holds two
    held = {h.gameserver_id for h in world.store.get_tenant_state("alpha").deletion_brake.held}
    assert len(held) == 2

    del world.store.servers[("alpha", "s5")]  # vanishes after the admin looked at the plan
    world.cloud.reset_calls()
    result = world.engine.reconcile_tenant("alpha", confirm_deletions=True)

    assert {name.removeprefix("stackherd-alpha-") for name in deleted_stacks(world)} == held
    late = [r for r in result.results if r.action.gameserver_id == "s5"]
    assert [(r.action.kind.value, r.action.code) for r in late] == [("hold", "DeletionBrake")]
    assert {h.gameserver_id for h in world.store.get_tenant_state("alpha").deletion_brake.held} == {"s5"}


def test_slow_deletion_leak_trips_the_brake_over_the_window() -> None:
    world = FakeWorld(settings=PlanSettings(max_deletions=3, deletion_window_s=3600))
    world.add_tenant("alpha", ACCOUNT_A)
    for index in range(8):
        world.put("alpha", f"s{index}")
    world.converge("alpha")
    world.cloud.reset_calls()
    for index in range(8):  # one record lost every five minutes: never more than one per pass
        del world.store.servers[("alpha", f"s{index}")]
        world.engine.reconcile_tenant("alpha")
        world.cloud.settle_all()
        world.clock.advance(300)
    assert world.cloud.count("DeleteStack") == 3
    assert len(world.store.get_tenant_state("alpha").deletion_brake.held) == 5


def test_deletion_brake_is_shown_by_a_dry_run(world: FakeWorld) -> None:
    vanished_tenant(world)
    world.engine.sweep()
    world.cloud.reset_calls()
    plan = world.engine.reconcile_tenant("alpha", dry_run=True)
    assert mutating_calls(world) == 0
    assert plan.brake is not None and plan.brake["held"] == 15 and plan.brake["deletions_in_window"] == 10
    assert plan.to_dict()["deletion_brake"] == plan.brake


def test_brake_allowance_cannot_be_spent_twice_by_racing_passes(world: FakeWorld) -> None:
    vanished_tenant(world, servers=4)
    store = world.store
    original = store.put_deletion_brake

    def racing(tenant_id: str, brake: Any, expected_version: int) -> bool:
        store.put_deletion_brake = original  # type: ignore[method-assign]
        original(tenant_id, brake, expected_version)  # another pass wrote first
        return original(tenant_id, brake, expected_version)

    store.put_deletion_brake = racing  # type: ignore[method-assign]
    result = world.engine.reconcile_tenant("alpha")
    assert world.cloud.count("DeleteStack") == 0
    assert {r.action.kind.value for r in result.results} == {"hold"}


# --- pause means stop --------------------------------------------------------------------------------


def test_pause_while_a_pass_is_creating_servers_stops_its_cloudformation_calls(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    for index in range(10):
        world.put("alpha", f"s{index}")
    cloud = world.cloud
    original = cloud.op_create

    def create_then_pause(*args: Any, **kwargs: Any) -> str:
        stack_id = original(*args, **kwargs)
        if cloud.count("CreateStack") == 3:
            tenant = world.store.tenants["alpha"]
            world.store.tenants["alpha"] = replace(tenant, paused=True)  # an operator pauses mid-pass
        return stack_id

    cloud.op_create = create_then_pause  # type: ignore[method-assign]
    result = world.engine.reconcile_tenant("alpha")

    assert mutating_calls(world) == 3
    assert result.stopped is not None and "paused" in result.stopped
    assert [r.outcome for r in result.results].count("skipped") == 7
    assert result.to_dict()["stopped"] == result.stopped
    assert not result.requeue[3:]


def test_quarantine_during_a_pass_stops_its_deletions(world: FakeWorld) -> None:
    vanished_tenant(world, servers=3)
    original = world.cloud.op_delete

    def delete_then_quarantine(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        world.store.set_quarantine("alpha", "access denied", world.clock())

    world.cloud.op_delete = delete_then_quarantine  # type: ignore[method-assign]
    world.engine.reconcile_tenant("alpha")
    assert world.cloud.count("DeleteStack") == 1


# --- regions fail alone ------------------------------------------------------------------------------

TWO_REGIONS = ("us-east-1", "eu-west-1")


def two_region_tenant(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A, regions=TWO_REGIONS)
    world.put("alpha", "east", "player", region="us-east-1")
    world.put("alpha", "west", "player", region="eu-west-1")
    world.converge("alpha")
    world.cloud.reset_calls()


def phase(world: FakeWorld, server_id: str) -> tuple[Phase, str]:
    server = world.server("alpha", server_id)
    assert server is not None
    ready = server.status.condition("Ready")
    return server.status.phase, f"{ready.reason}: {ready.message}" if ready else ""


def test_a_region_that_cannot_be_listed_fails_only_its_own_servers(world: FakeWorld) -> None:
    two_region_tenant(world)
    world.cloud.break_region(ACCOUNT_A, "eu-west-1", lambda: TransientError("ServiceUnavailable: endpoint down"))
    world.put("alpha", "east2")  # a new server in the healthy region is still created

    result = world.engine.reconcile_tenant("alpha")

    assert result.error is None
    assert set(result.unobserved_regions) == {"eu-west-1"}
    assert phase(world, "west")[0] is Phase.FAILED
    assert "RegionUnavailable: region eu-west-1 could not be listed" in phase(world, "west")[1]
    assert phase(world, "east")[0] is Phase.READY
    assert world.cloud.count("CreateStack") == 1
    world.cloud.heal_region(ACCOUNT_A, "eu-west-1")
    world.converge("alpha")
    assert phase(world, "west")[0] is Phase.READY


def test_no_orphan_is_deleted_and_no_record_finalized_in_a_region_not_observed(world: FakeWorld) -> None:
    two_region_tenant(world)
    world.delete("alpha", "west")  # its stack is in the region that cannot be listed
    world.cloud.break_region(ACCOUNT_A, "eu-west-1", lambda: TransientError("ServiceUnavailable: endpoint down"))
    world.engine.reconcile_tenant("alpha")
    assert world.server("alpha", "west") is not None  # not finalized: its stack was not seen to be gone
    assert world.cloud.count("DeleteStack") == 0
    assert [s.name for s in world.cloud.stacks(ACCOUNT_A, "eu-west-1")] == ["stackherd-alpha-west"]


def test_a_region_denied_by_an_scp_is_quarantined_alone_and_the_others_go_on(world: FakeWorld) -> None:
    two_region_tenant(world)
    world.cloud.deny_region(ACCOUNT_A, "eu-west-1")
    world.put("alpha", "east", seed="changed")

    result = world.engine.reconcile_tenant("alpha")

    tenant = world.store.get_tenant("alpha")
    assert tenant is not None and tenant.quarantined is None
    assert "eu-west-1" in world.store.get_tenant_state("alpha").quarantined_regions()
    assert "denies access" in result.unobserved_regions["eu-west-1"]
    assert world.cloud.count("UpdateStack") == 1
    # The quarantined region is not tried again until an operator releases it.
    world.cloud.settle_all()
    world.cloud.reset_calls()
    world.engine.reconcile_tenant("alpha")
    assert {c.region for c in world.cloud.calls if c.operation in ("ListStacks", "DescribeStack")} == {"us-east-1"}
    assert "quarantined" in phase(world, "west")[1]


def test_only_an_account_wide_refusal_quarantines_the_tenant(world: FakeWorld) -> None:
    two_region_tenant(world)
    for region in TWO_REGIONS:
        world.cloud.deny_region(ACCOUNT_A, region)
    result = world.engine.reconcile_tenant("alpha")
    tenant = world.store.get_tenant("alpha")
    assert result.error_code == "AccessDenied" and tenant is not None and tenant.quarantined


def test_an_account_denial_met_while_the_primary_region_fails_transiently_quarantines_no_region(
    world: FakeWorld,
) -> None:
    """The account refuses the role (cached credentials are refused too) while the primary region's listing
    fails once for another reason: only eu-west-1 is seen denying, but nothing showed that the account accepts
    the credentials, so that is no evidence the refusal is the region's. Quarantining eu-west-1 alone would
    outlast the incident: the tenant's quarantine ends by itself once access returns, a region's waits for an
    operator, and its servers stayed Failed."""
    two_region_tenant(world)
    world.cloud.deny(ACCOUNT_A)
    world.cloud.fail_next(ACCOUNT_A, "list", lambda: TransientError("ServiceUnavailable"))

    result = world.engine.sweep(concurrency=1).results[0]

    assert world.store.get_tenant_state("alpha").quarantined_regions() == {}
    assert result.retryable and result.error == "ServiceUnavailable"  # the pass is retried
    # Retried while the account still refuses, every region denies: the tenant is quarantined, as it should be.
    retried = world.engine.reconcile_tenant("alpha")
    tenant = world.store.get_tenant("alpha")
    assert retried.error_code == "AccessDenied" and tenant is not None and tenant.quarantined
    assert world.store.get_tenant_state("alpha").quarantined_regions() == {}

    world.cloud.allow(ACCOUNT_A)  # access returns; the next pass that reaches the account releases the tenant
    world.converge("alpha")
    tenant = world.store.get_tenant("alpha")
    assert tenant is not None and tenant.quarantined is None
    assert phase(world, "west")[0] is Phase.READY and phase(world, "east")[0] is Phase.READY


def test_a_region_denied_alone_is_still_quarantined_once_another_region_lists(world: FakeWorld) -> None:
    two_region_tenant(world)
    world.cloud.deny_region(ACCOUNT_A, "eu-west-1")
    world.cloud.fail_next(ACCOUNT_A, "list", lambda: TransientError("ServiceUnavailable"))

    assert world.engine.reconcile_tenant("alpha").error == "ServiceUnavailable"
    assert world.store.get_tenant_state("alpha").quarantined_regions() == {}

    result = world.engine.reconcile_tenant("alpha")  # the primary lists: the refusal is eu-west-1's own
    assert result.error is None and "denies access" in result.unobserved_regions["eu-west-1"]
    assert set(world.store.get_tenant_state("alpha").quarantined_regions()) == {"eu-west-1"}
    assert phase(world, "east")[0] is Phase.READY


def test_a_region_not_enabled_is_that_regions_problem_not_expired_credentials(world: FakeWorld) -> None:
    two_region_tenant(world)
    world.cloud.disable_region(ACCOUNT_A, "eu-west-1")
    for _ in range(3):
        result = world.engine.reconcile_tenant("alpha")
        assert result.error is None
    assert world.cloud.count("AssumeRole") == 0  # the primary region proved the credentials: no re-assume
    assert "not enabled" in result.unobserved_regions["eu-west-1"]
    assert phase(world, "west")[0] is Phase.FAILED and phase(world, "east")[0] is Phase.READY


def test_a_region_not_enabled_as_the_only_region_is_not_read_as_expired_credentials(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A, regions=("eu-west-1",))
    world.put("alpha", "west")
    world.cloud.disable_region(ACCOUNT_A, "eu-west-1")
    result = world.engine.reconcile_tenant("alpha")
    assert result.error is None and result.verdict == "failed"
    assert "not enabled" in result.unobserved_regions["eu-west-1"] and world.cloud.count("AssumeRole") == 2
    assert phase(world, "west")[0] is Phase.FAILED


def test_a_tenant_whose_region_is_unknown_fails_with_a_clear_permanent_error(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A, regions=("us-east-1",))
    world.put("alpha", "east")
    world.cloud.break_region(ACCOUNT_A, "us-east-1", lambda: UnknownRegionError("region 'us-east-1' is unknown"))
    result = world.engine.reconcile_tenant("alpha")
    assert result.verdict == "failed" and "is unknown" in result.unobserved_regions["us-east-1"]
    assert (
        phase(world, "east")
        == (
            Phase.FAILED,
            "RegionUnavailable: region us-east-1 could not be listed: UnknownRegion... ",
        )
        or "region 'us-east-1' is unknown" in phase(world, "east")[1]
    )


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_mass_deletion_brake_holds_against_requeue_and_the_admin_handler(
    world: FakeWorld, context: LocalContext
) -> None:
    import json

    from handlers import admin, requeue
    from handlers.local.embedded import fake_runtime
    from handlers.runtime import install_runtime

    vanished_tenant(world)
    world.engine.sweep()
    install_runtime(fake_runtime(world))
    try:
        body = json.dumps({"tenant_id": "alpha", "gameserver_ids": [f"s{i:02d}" for i in range(25)]})
        message = {"messageId": "m-1", "receiptHandle": "r", "body": body, "attributes": {}, "eventSource": "aws:sqs"}
        requeue.handler({"Records": [message]}, context)  # type: ignore[arg-type]
        admin.handler({"tenant_id": "alpha", "dry_run": False}, context)  # type: ignore[arg-type]
        assert world.cloud.count("DeleteStack") == 10
        released = admin.handler({"tenant_id": "alpha", "dry_run": False, "confirm_deletions": True}, context)  # type: ignore[arg-type]
    finally:
        install_runtime(None)
    assert world.cloud.count("DeleteStack") == 25
    assert sum(1 for a in released["actions"] if a["kind"] == "delete") == 15


def test_an_sdk_error_an_adapter_let_through_is_classified_not_an_internal_error(world: FakeWorld) -> None:
    from botocore.exceptions import InvalidRegionError

    world.add_tenant("alpha", ACCOUNT_A)
    world.put("alpha", "arena")
    connector = world.engine.connector
    original = connector.gateway

    def broken(tenant: Any, region: str) -> Any:
        raise InvalidRegionError(region_name=region)

    connector.gateway = broken  # type: ignore[method-assign]
    try:
        result = world.engine.reconcile_tenant("alpha")
    finally:
        connector.gateway = original  # type: ignore[method-assign]
    assert (result.error_code, result.retryable) == ("UnknownRegion", False)
    assert "internal error" not in (result.error or "")


def test_a_change_denied_in_one_region_quarantines_that_region_not_the_tenant(world: FakeWorld) -> None:
    two_region_tenant(world)
    world.put("alpha", "west", seed="changed")
    world.store.servers[("alpha", "west")] = replace(world.store.servers[("alpha", "west")], region="eu-west-1")
    denied = "AccessDenied: not authorized to perform cloudformation:UpdateStack (an SCP)"
    world.cloud.fail_next(ACCOUNT_A, "update", lambda: AccessDeniedError(denied))

    result = world.engine.reconcile_tenant("alpha")

    tenant = world.store.get_tenant("alpha")
    assert tenant is not None and tenant.quarantined is None and result.error is None
    assert world.store.get_tenant_state("alpha").quarantined_regions() == {"eu-west-1": denied}
    assert phase(world, "west")[0] is Phase.FAILED


# --- input that cannot poison a pass ---------------------------------------------------------------------


@pytest.mark.parametrize("owner", ["o'brien", "ana!", "jose\u0301"])
def test_a_player_name_with_awkward_characters_does_not_roll_back_the_create(world: FakeWorld, owner: str) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    world.put("alpha", "arena", owner=owner)
    world.converge("alpha")
    (stack,) = world.cloud.stacks(ACCOUNT_A)
    assert stack.status == "CREATE_COMPLETE" and world.cloud.count("CreateStack") == 1
    server = world.server("alpha", "arena")
    assert server is not None and server.username == owner and server.status.phase is Phase.READY


def test_tripped_brake_holds_a_leak_that_outlasts_the_window() -> None:
    world = FakeWorld(settings=PlanSettings(max_deletions=3, deletion_window_s=3600))
    world.add_tenant("alpha", ACCOUNT_A)
    for index in range(12):
        world.put("alpha", f"s{index:02d}")
    world.converge("alpha")
    world.cloud.reset_calls()
    for index in range(12):  # one record lost every ten minutes, for two hours: the window slides meanwhile
        del world.store.servers[("alpha", f"s{index:02d}")]
        world.engine.reconcile_tenant("alpha", scope=[f"s{index:02d}"])
        world.cloud.settle_all()
        world.clock.advance(600)
    assert world.cloud.count("DeleteStack") == 3
    assert len(world.store.get_tenant_state("alpha").deletion_brake.held) == 9
    world.clock.advance(3 * 3600)
    world.engine.sweep()  # long after the window, nothing is released by itself
    assert world.cloud.count("DeleteStack") == 3
    world.engine.reconcile_tenant("alpha", confirm_deletions=True)
    assert world.cloud.count("DeleteStack") == 12


def test_a_first_region_not_enabled_does_not_assume_the_role_again_on_every_pass(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A, regions=("eu-west-1", "us-east-1"))
    world.put("alpha", "west", "player", region="eu-west-1")
    world.put("alpha", "east", "player", region="us-east-1")
    world.converge("alpha")
    world.cloud.reset_calls()
    world.cloud.disable_region(ACCOUNT_A, "eu-west-1")
    for _ in range(3):
        result = world.engine.reconcile_tenant("alpha")
        world.clock.advance(300)
        assert result.error is None
    assert world.cloud.count("AssumeRole") == 0  # us-east-1 proved the credentials in each pass
    assert "not enabled" in result.unobserved_regions["eu-west-1"]
    assert phase(world, "west")[0] is Phase.FAILED and phase(world, "east")[0] is Phase.READY
