"""Defects the stateful property test found, each pinned by the smallest scenario that shows it."""

from __future__ import annotations

from dataclasses import replace

from models.records import DesiredServer, Phase
from reconciler.fakes.world import FakeWorld
from reconciler.planner import PlanSettings

ACCOUNT = "111111111111"
PRIMARY, SECONDARY = "us-east-1", "eu-west-1"
NAME = "stackherd-alpha-s0"


def converge(world: FakeWorld, passes: int = 4) -> None:
    """Sweeps far enough apart for any failed attempt's backoff to have run out before the next."""
    for _ in range(passes):
        world.engine.sweep(concurrency=1)
        world.cloud.settle_all()
        world.clock.advance(20 * 60)


def test_server_moved_to_another_region_does_not_leave_its_old_stack_behind() -> None:
    # The stack left in the old region is an orphan, but its game-server id still has a record; the
    # re-check before the delete took that record for one that "appeared since planning" and skipped the
    # delete on every pass, so the old stack (a running server) was never removed.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT, regions=(PRIMARY, SECONDARY))
    world.put("alpha", "s0")
    converge(world)
    server = world.server("alpha", "s0")
    assert server is not None

    assert server.config is not None
    world.put("alpha", "s0", server.username, region=SECONDARY, **server.config.model_dump())
    converge(world)

    assert [(s.region, s.name) for s in world.cloud.stacks(ACCOUNT)] == [(SECONDARY, NAME)]
    moved = world.server("alpha", "s0")
    assert moved is not None and moved.status.phase is Phase.READY


def test_update_tried_again_after_a_rollback_is_a_new_request() -> None:
    # The update token named only the observed status and the diff, so a second try after an update that
    # rolled back from UPDATE_ROLLBACK_COMPLETE sent the token of the first try again: CloudFormation takes
    # that for a replay and does nothing, and the server stayed Updating with the old config for good.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0", seed="old")
    converge(world)

    world.put("alpha", "s0", seed="new")
    for _ in range(2):
        world.cloud.set_outcome(ACCOUNT, NAME, "update", "UPDATE_ROLLBACK_COMPLETE")
        world.engine.reconcile_tenant("alpha")
        world.cloud.settle_all()
        world.engine.reconcile_tenant("alpha")  # sees the rollback: a failed attempt, then a backoff
        world.clock.advance(2 * world.settings.failure_backoff_s)
    converge(world)

    (stack,) = world.cloud.stacks(ACCOUNT)
    assert stack.parameters["Seed"] == "new"
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.READY


def test_continue_rollback_tried_again_after_it_failed_is_a_new_request() -> None:
    # The continue-rollback token was the same for every try at one generation, so after a rollback that
    # failed twice the third ContinueUpdateRollback was taken for a replay and the stack stayed
    # UPDATE_ROLLBACK_FAILED for good. (A budget large enough for the two injected failures and the repairs.)
    world = FakeWorld(settings=PlanSettings(failure_budget=5))
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0", seed="old")
    converge(world)

    world.cloud.set_outcome(ACCOUNT, NAME, "update", "UPDATE_ROLLBACK_FAILED")
    world.put("alpha", "s0", seed="new")
    world.engine.reconcile_tenant("alpha")
    world.cloud.settle_all()
    world.cloud.set_outcome(ACCOUNT, NAME, "continue-rollback", "UPDATE_ROLLBACK_FAILED")
    world.engine.reconcile_tenant("alpha")
    world.cloud.settle_all()
    converge(world, passes=7)

    (stack,) = world.cloud.stacks(ACCOUNT)
    assert (stack.status, stack.parameters["Seed"]) == ("UPDATE_COMPLETE", "new")


def test_the_same_drift_coming_back_is_repaired_every_time() -> None:
    # Someone (or some tool) sets the same parameter to the same value by hand again and again. The second
    # repair from UPDATE_COMPLETE sent the first repair's token again and was ignored, so the drift stayed.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0", seed="wanted")
    converge(world)

    for _ in range(3):
        world.cloud.tamper(ACCOUNT, PRIMARY, NAME, {"Seed": "hand"})
        converge(world)
        (stack,) = world.cloud.stacks(ACCOUNT)
        assert stack.parameters["Seed"] == "wanted"


def test_pinning_a_template_version_again_updates_the_stacks_again() -> None:
    # v1 -> v2 -> v1 -> v2 -> v1 at one generation: the last move repeats the second one's observed status and
    # diff, so its update was taken for a replay and the stack kept v2.
    world = FakeWorld()
    world.templates.published.add("v2")
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    converge(world)

    for version in ("v2", "v1", "v2", "v1"):
        tenant = world.store.get_tenant("alpha")
        assert tenant is not None
        world.store.put_tenant(replace(tenant, template_version=version))
        converge(world)
        (stack,) = world.cloud.stacks(ACCOUNT)
        assert stack.tags["stackherd:template-version"] == version


def test_an_orphan_whose_delete_failed_is_deleted_again_once_unblocked() -> None:
    # An orphan has no record to count its tries, so every retry of its delete from DELETE_FAILED sent the
    # same token: after the first retry CloudFormation took the rest for replays and the stack stayed.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    converge(world)
    del world.store.servers[("alpha", "s0")]

    for _ in range(2):
        world.cloud.set_outcome(ACCOUNT, NAME, "delete", "DELETE_FAILED")
        world.engine.reconcile_tenant("alpha")
        world.cloud.settle_all()
    converge(world)

    assert world.cloud.stacks(ACCOUNT) == []


def test_servers_retry_after_repeated_delete_failed_deletes_the_stack() -> None:
    # The documented operator step for a server held after repeated DELETE_FAILED is `stackherd servers retry`
    # (the retry count back to 0) and a reconcile. The retries then counted 1, 2, 3 again and sent the
    # tokens of the first three retries, which CloudFormation ignores as replays: nothing was ever deleted
    # and the server was held again.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    converge(world)
    world.delete("alpha", "s0")
    for _ in range(6):
        world.cloud.set_outcome(ACCOUNT, NAME, "delete", "DELETE_FAILED")
        world.engine.reconcile_tenant("alpha")
        world.cloud.settle_all()
        world.clock.advance(20 * 60)
    held = world.server("alpha", "s0")
    assert held is not None and held.status.phase is Phase.HELD
    world.cloud.clear_faults()  # the operator removed what blocked the delete

    reset = replace(held.status, attempts=0, next_retry_at=None, tries=0, operation=None)  # servers retry
    world.store.write_status(held, reset)
    converge(world)

    assert world.cloud.stacks(ACCOUNT) == []
    assert world.server("alpha", "s0") is None


def test_a_pass_planned_before_a_write_does_not_overwrite_the_newer_status() -> None:
    # Two passes of one tenant overlap: the first plans, then a player's write and the pass its stream
    # event starts run (the second pass starts the update and records it), then the first pass records what
    # it planned for the older generation. That flapped the status back to Ready at generation 1 while the
    # stack was being updated to generation 2.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s1", seed="old")
    world.engine.reconcile_tenant("alpha")
    world.cloud.settle_all()  # s1 is created but its record still says Creating
    world.put("alpha", "s0")  # gives the first pass a create to re-check before
    store, original = world.store, world.store.get_server

    def write_and_pass_between_plan_and_apply(tenant_id: str, server_id: str) -> DesiredServer | None:
        del store.get_server  # once
        world.put("alpha", "s1", seed="new")
        world.engine.reconcile_tenant("alpha", scope={"s1"})
        return original(tenant_id, server_id)

    store.get_server = write_and_pass_between_plan_and_apply  # type: ignore[method-assign, assignment]
    world.engine.reconcile_tenant("alpha")

    server = world.server("alpha", "s1")
    assert server is not None
    assert (server.generation, server.status.observed_generation) == (2, 2)
    assert (server.status.phase, server.status.stack_status) == (Phase.UPDATING, "UPDATE_IN_PROGRESS")


def test_a_record_popped_from_the_memory_store_is_no_longer_read() -> None:
    # The in-memory store's per-tenant index was kept in step by item assignment and `del` only, so a record
    # removed with `servers.pop(key)` (as a test removing a record behind the reconciler's back might) was
    # still read, and the reconciler recreated its stack instead of deleting it as an orphan.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    world.put("alpha", "s1")

    world.store.servers.pop(("alpha", "s0"))
    world.store.servers.setdefault(("alpha", "s1"), world.store.servers[("alpha", "s1")])

    assert [s.gameserver_id for s in world.store.read_servers("alpha").servers] == ["s1"]
    world.store.servers.clear()
    assert world.store.read_servers("alpha").servers == ()


def test_a_stack_deleted_by_hand_is_created_again_with_a_new_request() -> None:
    # The create token named only the stack and the generation, so the create that repaired a stack deleted
    # by hand sent the token of the create that made it: a CloudFormation that keeps a deleted stack's
    # tokens takes that for a replay and creates nothing, and the server was never running again.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "s0")
    converge(world)

    world.cloud.remove_stack(ACCOUNT, PRIMARY, NAME)
    converge(world)

    assert [s.name for s in world.cloud.stacks(ACCOUNT)] == [NAME]
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.READY


def test_a_create_that_rolled_back_is_recreated_with_a_new_request() -> None:
    # After ROLLBACK_COMPLETE the stack is deleted and created again at the same generation; with the
    # first create's token the second create was a replay of a deleted stack's request.
    world = FakeWorld()
    world.add_tenant("alpha", ACCOUNT)
    world.cloud.set_outcome(ACCOUNT, NAME, "create", "ROLLBACK_COMPLETE")
    world.put("alpha", "s0")
    world.engine.reconcile_tenant("alpha")
    world.cloud.settle_all()
    assert [s.status for s in world.cloud.stacks(ACCOUNT)] == ["ROLLBACK_COMPLETE"]

    converge(world)

    assert [s.status for s in world.cloud.stacks(ACCOUNT)] == ["CREATE_COMPLETE"]
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.READY
