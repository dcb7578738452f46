"""The engine on the fake cloud: what it calls, what it writes, and how it converges."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.records import Phase
from reconciler.errors import ThrottledError
from reconciler.fakes.world import FakeWorld
from reconciler.planner import PlanSettings

ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"
MUTATING = ("CreateStack", "UpdateStack", "DeleteStack", "ContinueUpdateRollback")


def mutating_calls(world: FakeWorld) -> int:
    return sum(world.cloud.count(op) for op in MUTATING)


def converged_tenant(world: FakeWorld, tenant_id: str = "alpha", account: str = ACCOUNT_A, servers: int = 3) -> None:
    world.add_tenant(tenant_id, account)
    for index in range(servers):
        world.put(tenant_id, f"s{index}", seed=f"seed{index}")
    world.converge(tenant_id)


def test_new_servers_get_stacks_with_mapped_parameters_and_ownership_tags(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    world.put("alpha", "arena", difficulty="hard", player_count=8, seed="lava42")

    result = world.engine.reconcile_tenant("alpha")

    assert [(r.action.kind.value, r.outcome) for r in result.results] == [("create", "done")]
    (stack,) = world.cloud.stacks(ACCOUNT_A)
    assert stack.name == "stackherd-alpha-arena"
    assert stack.parameters == {"Difficulty": "hard", "PlayerCount": "8", "Seed": "lava42"}
    assert stack.tags["stackherd:installation"] == "stackherd"
    assert stack.tags["stackherd:tenant"] == "alpha"
    assert stack.tags["stackherd:gameserver"] == "arena"
    assert stack.tags["stackherd:generation"] == "1"
    server = world.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.CREATING
    assert result.requeue == [("arena", 30)]


def test_in_progress_stack_waits_then_becomes_ready(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    world.put("alpha", "arena")
    world.engine.reconcile_tenant("alpha")

    waiting = world.engine.reconcile_tenant("alpha")
    assert [r.action.kind.value for r in waiting.results] == ["wait"]
    assert world.cloud.count("CreateStack") == 1

    world.cloud.settle_all()
    world.engine.reconcile_tenant("alpha")
    server = world.server("alpha", "arena")
    assert server is not None
    assert server.status.phase is Phase.READY
    assert server.status.observed_generation == 1
    assert server.status.stack_id and server.status.stack_status == "CREATE_COMPLETE"


def test_steady_state_sweep_makes_no_mutating_call_no_describe_and_no_status_write(world: FakeWorld) -> None:
    converged_tenant(world, "alpha", ACCOUNT_A)
    converged_tenant(world, "bravo", ACCOUNT_B)
    world.cloud.reset_calls()
    writes_before = world.store.status_writes

    summary = world.engine.sweep().summary()

    assert summary.actions == {"no-op": 6}
    assert mutating_calls(world) == 0
    assert world.cloud.count("DescribeStack") == 0
    assert world.cloud.count("AssumeRole") == 0, "credentials are cached across passes"
    assert world.cloud.count("ListStacks", ACCOUNT_A) == 1
    assert world.cloud.count("ListStacks", ACCOUNT_B) == 1
    assert world.store.status_writes == writes_before


def test_config_change_updates_only_that_stack(world: FakeWorld) -> None:
    converged_tenant(world)
    world.cloud.reset_calls()
    world.put("alpha", "s1", seed="changed")

    result = world.engine.reconcile_tenant("alpha")

    kinds = {r.action.gameserver_id: r.action.kind.value for r in result.results}
    assert kinds == {"s0": "no-op", "s1": "update", "s2": "no-op"}
    assert world.cloud.count("UpdateStack") == 1
    update = next(r.action for r in result.results if r.action.gameserver_id == "s1")
    assert update.diff == "parameters.Seed: 'seed1' -> 'changed'"


def test_identical_put_does_not_bump_generation_or_touch_the_stack(world: FakeWorld) -> None:
    converged_tenant(world)
    world.cloud.reset_calls()
    result = world.put("alpha", "s1", seed="seed1")
    assert not result.changed and result.server.generation == 1
    world.engine.reconcile_tenant("alpha")
    assert mutating_calls(world) == 0


def test_hand_made_drift_and_a_deleted_stack_are_repaired(world: FakeWorld) -> None:
    converged_tenant(world)
    world.cloud.tamper(ACCOUNT_A, "us-east-1", "stackherd-alpha-s0", {"PlayerCount": "99"})
    world.cloud.remove_stack(ACCOUNT_A, "us-east-1", "stackherd-alpha-s2")

    world.engine.reconcile_tenant("alpha")
    server = world.server("alpha", "s0")
    assert server is not None and server.status.drift == "parameters.PlayerCount: '99' -> '4'"
    world.converge("alpha")

    stacks = {s.name: s for s in world.cloud.stacks(ACCOUNT_A)}
    assert stacks["stackherd-alpha-s0"].parameters["PlayerCount"] == "4"
    assert "stackherd-alpha-s2" in stacks
    assert world.engine.reconcile_tenant("alpha", dry_run=True).in_sync


def test_stacks_without_our_tags_are_never_touched(world: FakeWorld) -> None:
    converged_tenant(world)
    world.cloud.put_stack(ACCOUNT_A, "us-east-1", "their-own", tags={"team": "billing"})
    world.cloud.put_stack(
        ACCOUNT_A,
        "us-east-1",
        "other-install",
        tags={"stackherd:installation": "staging", "stackherd:tenant": "alpha", "stackherd:gameserver": "x"},
    )
    for _ in range(3):
        world.engine.sweep()
        world.cloud.settle_all()
    names = {s.name for s in world.cloud.stacks(ACCOUNT_A)}
    assert {"their-own", "other-install"} <= names
    assert not [c for c in world.cloud.calls if c.target in ("their-own", "other-install")]


def test_server_id_whose_stack_name_is_taken_by_a_foreign_stack_fails_clearly(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    world.cloud.put_stack(ACCOUNT_A, "us-east-1", "stackherd-alpha-arena")
    world.put("alpha", "arena")
    world.engine.reconcile_tenant("alpha")
    server = world.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.FAILED
    assert "is not this tenant's" in (server.status.last_error or "")
    assert mutating_calls(world) == 0


def test_deleting_a_server_whose_stack_name_is_taken_removes_only_the_record(world: FakeWorld) -> None:
    # The foreign stack was never this record's: the deletion finishes without touching it, rather than
    # failing on every pass for good.
    world.add_tenant("alpha", ACCOUNT_A)
    world.cloud.put_stack(ACCOUNT_A, "us-east-1", "stackherd-alpha-arena")
    world.put("alpha", "arena")
    world.engine.reconcile_tenant("alpha")
    world.delete("alpha", "arena")

    world.converge("alpha")

    assert world.server("alpha", "arena") is None
    assert [s.name for s in world.cloud.stacks(ACCOUNT_A)] == ["stackherd-alpha-arena"]
    assert mutating_calls(world) == 0


def test_orphans_are_deleted(world: FakeWorld) -> None:
    converged_tenant(world)
    del world.store.servers[("alpha", "s1")]  # the record vanished without a deletion request
    world.converge("alpha")
    assert {s.name for s in world.cloud.stacks(ACCOUNT_A)} == {"stackherd-alpha-s0", "stackherd-alpha-s2"}


def test_deleting_a_server_removes_its_stack_then_its_record(world: FakeWorld) -> None:
    converged_tenant(world)
    world.delete("alpha", "s0")
    first = world.engine.reconcile_tenant("alpha")
    assert [r.action.kind.value for r in first.results if r.action.gameserver_id == "s0"] == ["delete"]
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.DELETING
    world.cloud.settle_all()
    world.engine.reconcile_tenant("alpha")
    assert world.server("alpha", "s0") is None
    assert "stackherd-alpha-s0" not in {s.name for s in world.cloud.stacks(ACCOUNT_A)}


def test_deletion_brake_holds_deletes_when_the_desired_read_was_incomplete(world: FakeWorld) -> None:
    converged_tenant(world, servers=4)
    world.store.fail_reads.add("alpha")
    world.cloud.reset_calls()
    result = world.engine.reconcile_tenant("alpha")
    assert world.cloud.count("DeleteStack") == 0
    assert {r.action.code for r in result.results if r.action.kind.value == "hold"} == {"DesiredReadIncomplete"}


def test_deletion_brake_caps_deletions_per_pass_until_an_admin_confirms() -> None:
    world = FakeWorld(settings=PlanSettings(max_deletions=2))
    converged_tenant(world, servers=5)
    for index in range(5):
        del world.store.servers[("alpha", f"s{index}")]
    world.cloud.reset_calls()

    held = world.engine.reconcile_tenant("alpha")
    assert world.cloud.count("DeleteStack") == 2
    assert sum(1 for r in held.results if r.action.code == "DeletionBrake") == 3

    world.engine.reconcile_tenant("alpha", confirm_deletions=True)
    assert world.cloud.count("DeleteStack") == 5


def test_failed_create_is_deleted_and_created_again(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    world.cloud.set_outcome(ACCOUNT_A, "stackherd-alpha-arena", "create", "ROLLBACK_COMPLETE")
    world.put("alpha", "arena")
    world.engine.reconcile_tenant("alpha")
    world.cloud.settle_all()

    seen = world.engine.reconcile_tenant("alpha")
    assert [r.action.kind.value for r in seen.results] == ["backoff"]  # a failed attempt: wait before the next
    world.clock.advance(world.settings.failure_backoff_s)
    recreate = world.engine.reconcile_tenant("alpha")
    assert [r.action.kind.value for r in recreate.results] == ["recreate"]
    server = world.server("alpha", "arena")
    assert server is not None and "ROLLBACK_COMPLETE" in (server.status.last_error or "")
    world.converge("alpha")
    server = world.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.READY
    assert world.cloud.count("CreateStack") == 2


def test_update_rollback_failed_is_continued_then_updated_again(world: FakeWorld) -> None:
    converged_tenant(world, servers=1)
    world.cloud.set_outcome(ACCOUNT_A, "stackherd-alpha-s0", "update", "UPDATE_ROLLBACK_FAILED")
    world.put("alpha", "s0", seed="next")
    world.engine.reconcile_tenant("alpha")
    world.cloud.settle_all()
    seen = world.engine.reconcile_tenant("alpha")
    assert [r.action.kind.value for r in seen.results] == ["backoff"]
    world.clock.advance(world.settings.failure_backoff_s)
    result = world.engine.reconcile_tenant("alpha")
    assert [r.action.kind.value for r in result.results] == ["continue-rollback"]
    world.converge("alpha")
    (stack,) = world.cloud.stacks(ACCOUNT_A)
    assert stack.parameters["Seed"] == "next"


def test_delete_failed_is_retried_then_held_for_an_operator(world: FakeWorld) -> None:
    converged_tenant(world, servers=1)
    world.delete("alpha", "s0")
    world.cloud.set_outcome(ACCOUNT_A, "stackherd-alpha-s0", "delete", "DELETE_FAILED", always=True)
    for _ in range(8):
        world.engine.reconcile_tenant("alpha")
        world.clock.advance(15 * 60)
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.HELD
    assert world.cloud.count("DeleteStack") == 3  # the first delete and two retries: the failure budget
    condition = server.status.condition("Ready")
    assert condition is not None and condition.reason == "FailureBudgetExhausted"
    assert "DELETE_FAILED" in condition.message and "servers retry alpha s0" in condition.message


def test_paused_tenant_is_observed_and_reported_only(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A, paused=True)
    world.put("alpha", "arena")
    result = world.engine.reconcile_tenant("alpha")
    assert [r.action.kind.value for r in result.results] == ["report"]
    assert mutating_calls(world) == 0
    server = world.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.PAUSED


def test_access_denied_quarantines_one_tenant_and_the_sweep_goes_on(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    world.add_tenant("bravo", ACCOUNT_B)
    world.put("alpha", "a1")
    world.put("bravo", "b1")
    world.cloud.deny(ACCOUNT_A)

    summary = world.engine.sweep().summary()

    assert "alpha" in summary.failures
    assert world.cloud.stacks(ACCOUNT_B)[0].name == "stackherd-bravo-b1"
    tenant = world.store.get_tenant("alpha")
    assert tenant is not None and tenant.quarantined and "denied" in tenant.quarantined
    # A quarantined tenant is skipped until an operator releases it.
    assert world.engine.sweep().summary().skipped == ["alpha"]
    world.cloud.allow(ACCOUNT_A)
    world.store.set_quarantine("alpha", None, world.clock())
    world.engine.sweep()
    assert world.cloud.stacks(ACCOUNT_A)[0].name == "stackherd-alpha-a1"


def test_expired_credentials_are_refreshed_once_and_the_pass_succeeds(world: FakeWorld) -> None:
    converged_tenant(world, servers=1)
    world.cloud.reset_calls()
    world.cloud.expire_credentials(ACCOUNT_A)
    result = world.engine.reconcile_tenant("alpha")
    assert result.error is None
    assert world.cloud.count("AssumeRole") == 1


def test_credentials_are_reassumed_only_near_expiry(world: FakeWorld) -> None:
    converged_tenant(world, servers=1)
    world.cloud.reset_calls()
    for _ in range(10):
        world.clock.advance(60)
        world.engine.reconcile_tenant("alpha")
    assert world.cloud.count("AssumeRole") == 0
    world.clock.advance(3600)
    world.engine.reconcile_tenant("alpha")
    assert world.cloud.count("AssumeRole") == 1


def test_throttled_create_is_retried_later_with_backoff(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    world.put("alpha", "arena")
    world.cloud.fail_next(ACCOUNT_A, "create", lambda: ThrottledError("Throttling: Rate exceeded"))
    result = world.engine.reconcile_tenant("alpha")
    (outcome,) = result.results
    assert outcome.outcome == "failed" and outcome.retryable
    assert result.requeue == [("arena", 30)]
    server = world.server("alpha", "arena")
    assert server is not None and server.status.attempts == 1 and server.status.next_retry_at
    world.converge("alpha")
    server = world.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.READY and server.status.attempts == 0


def test_a_record_changed_after_planning_is_not_acted_on_with_stale_intent(world: FakeWorld) -> None:
    converged_tenant(world, servers=1)
    world.put("alpha", "s0", seed="first")
    store = world.store
    original = store.get_server

    def racing_get(tenant_id: str, gameserver_id: str):  # type: ignore[no-untyped-def]
        # A player writes again between the plan and the re-check.
        store.get_server = original  # type: ignore[method-assign]
        world.put("alpha", "s0", seed="second")
        return original(tenant_id, gameserver_id)

    store.get_server = racing_get  # type: ignore[method-assign]
    world.cloud.reset_calls()
    result = world.engine.reconcile_tenant("alpha")
    assert [r.outcome for r in result.results] == ["skipped"]
    assert world.cloud.count("UpdateStack") == 0
    world.converge("alpha")
    assert world.cloud.stacks(ACCOUNT_A)[0].parameters["Seed"] == "second"


def test_a_crash_between_the_call_and_the_status_write_converges_without_duplicates(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A)
    world.put("alpha", "arena")
    store = world.store
    original = store.write_status
    store.write_status = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash"))  # type: ignore[method-assign]
    crashed = world.engine.reconcile_tenant("alpha")
    assert crashed.error is not None
    store.write_status = original  # type: ignore[method-assign]
    world.converge("alpha")
    assert len(world.cloud.stacks(ACCOUNT_A)) == 1
    server = world.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.READY


def test_a_tenant_never_touches_another_tenants_account(world: FakeWorld) -> None:
    converged_tenant(world, "alpha", ACCOUNT_A)
    converged_tenant(world, "bravo", ACCOUNT_B)
    assert {s.tags["stackherd:tenant"] for s in world.cloud.stacks(ACCOUNT_A)} == {"alpha"}
    assert {s.tags["stackherd:tenant"] for s in world.cloud.stacks(ACCOUNT_B)} == {"bravo"}
    assert {c.account_id for c in world.cloud.calls if c.target.startswith("stackherd-alpha")} == {ACCOUNT_A}


def test_invalid_stored_config_fails_the_record_and_keeps_its_stack(world: FakeWorld) -> None:
    from dataclasses import replace

    converged_tenant(world, servers=1)
    key = ("alpha", "s0")
    world.store.servers[key] = replace(world.store.servers[key], unreadable="stored config.seed: bad")
    world.cloud.reset_calls()
    world.engine.reconcile_tenant("alpha")
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.FAILED
    assert mutating_calls(world) == 0


def test_missing_template_version_fails_with_a_clear_message(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT_A, template_version="v9")
    world.put("alpha", "arena")
    world.engine.reconcile_tenant("alpha")
    server = world.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.FAILED
    assert "v9" in (server.status.last_error or "") and "templates publish" in (server.status.last_error or "")


def test_pinning_a_new_template_version_updates_every_stack(world: FakeWorld) -> None:
    from dataclasses import replace

    converged_tenant(world, servers=2)
    world.templates.published.add("v2")
    tenant = world.store.get_tenant("alpha")
    assert tenant is not None
    world.store.put_tenant(replace(tenant, template_version="v2"))
    result = world.engine.reconcile_tenant("alpha")
    assert [r.action.kind.value for r in result.results] == ["update", "update"]
    assert "v1" in (result.results[0].action.diff or "")


@pytest.mark.parametrize("unknown", ["ghost", "nobody-here"])
def test_unknown_tenant_is_a_permanent_error(world: FakeWorld, unknown: str) -> None:
    result = world.engine.reconcile_tenant(unknown)
    assert result.error_code == "UnknownTenant" and not result.retryable


def test_a_region_dropped_from_the_tenant_is_still_looked_at_until_our_stacks_there_are_gone(
    world: FakeWorld,
) -> None:
    # s0 has no region of its own and followed the tenant's first region. Once that region left the tenant,
    # it was never listed again: s0 was created anew in the remaining region and the old stack ran on, unseen.
    world.add_tenant("alpha", ACCOUNT_A, regions=("us-east-1", "eu-west-1"))
    world.put("alpha", "s0")
    key = ("alpha", "s0")
    world.store.servers[key] = replace(world.store.servers[key], region=None)  # written before regions were kept
    world.converge("alpha")
    tenant = world.store.get_tenant("alpha")
    assert tenant is not None
    world.store.put_tenant(replace(tenant, regions=("eu-west-1",)))

    world.converge("alpha")

    assert [(s.region, s.name) for s in world.cloud.stacks(ACCOUNT_A)] == [("eu-west-1", "stackherd-alpha-s0")]
    assert world.engine.reconcile_tenant("alpha", dry_run=True).in_sync


def test_a_scoped_pass_never_deletes_the_stack_of_a_record_outside_its_scope(world: FakeWorld) -> None:
    # A stack of s1's name whose gameserver tag says s0: a stream pass for s0 alone took it for s0's orphan
    # (s1 was out of scope, so nothing claimed its name) and deleted s1's running server.
    world.add_tenant("alpha", ACCOUNT_A)
    world.put("alpha", "s0")
    world.put("alpha", "s1")
    world.converge("alpha")
    (s1,) = [s for s in world.cloud.stacks(ACCOUNT_A) if s.name == "stackherd-alpha-s1"]
    world.cloud.remove_stack(ACCOUNT_A, "us-east-1", s1.name)
    world.cloud.put_stack(
        ACCOUNT_A, "us-east-1", s1.name, parameters=s1.parameters, tags={**s1.tags, "stackherd:gameserver": "s0"}
    )

    result = world.engine.reconcile_tenant("alpha", scope={"s0"})

    assert [r.action.kind.value for r in result.results] == ["no-op"]
    assert "stackherd-alpha-s1" in {s.name for s in world.cloud.stacks(ACCOUNT_A)}
