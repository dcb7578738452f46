"""How the engine observes a tenant's account: one ListStacks per region, and DescribeStacks by name only for
the tenant's own stacks that changed (or that no record has read); a scoped pass reads its stacks by name.

The fake cloud runs in narrow-role mode here, as the tenant role grants: ListStacks on the account and every
other call only on `stack/<installation>-*`. Reading any other stack is refused with AccessDenied, which the
engine would take as the region denying access.
"""

from __future__ import annotations

import pytest

from models.records import Phase
from reconciler import naming
from reconciler.fakes.cloud import Call
from reconciler.fakes.world import FakeWorld

ACCOUNT = "111111111111"
EAST, WEST = "us-east-1", "us-west-2"


@pytest.fixture
def narrow(world: FakeWorld) -> FakeWorld:
    world.cloud.narrow_role = world.settings.installation
    return world


def name_of(world: FakeWorld, server_id: str, tenant_id: str = "alpha") -> str:
    return naming.stack_name(world.settings.installation, tenant_id, server_id)


def aimed_at(call: Call, name: str) -> bool:
    """A call's target is the stack's name or its id (arn:...:stack/<name>/<uuid>)."""
    return call.target == name or f":stack/{name}/" in call.target


def reads(world: FakeWorld, name: str) -> list[Call]:
    return [c for c in world.cloud.calls if c.operation == "DescribeStack" and aimed_at(c, name)]


def converged(world: FakeWorld, servers: int = 3, regions: tuple[str, ...] = (EAST,)) -> None:
    world.add_tenant("alpha", ACCOUNT, regions=regions)
    for index in range(servers):
        world.put("alpha", f"s{index}", seed=f"seed{index}")
    world.converge("alpha")
    world.cloud.reset_calls()


def ready(world: FakeWorld, server_id: str) -> bool:
    server = world.server("alpha", server_id)
    return server is not None and server.status.phase is Phase.READY


def test_a_tenants_non_stackherd_stack_is_never_described(narrow: FakeWorld) -> None:
    world = narrow
    world.add_tenant("alpha", ACCOUNT)
    world.cloud.put_stack(ACCOUNT, EAST, "billing-db", parameters={"Password": "secret"}, tags={"team": "billing"})
    world.cloud.put_stack(ACCOUNT, EAST, "payments-api", tags={"team": "payments"})
    world.put("alpha", "s0", seed="one")

    world.converge("alpha")
    world.engine.reconcile_tenant("alpha", scope={"s0"})
    world.engine.sweep()

    assert ready(world, "s0")
    assert world.store.get_tenant_state("alpha").quarantined_regions() == {}
    tenant = world.store.get_tenant("alpha")
    assert tenant is not None and tenant.quarantined is None
    assert world.cloud.count("DescribeStacks") == 0, "nothing walks every stack of the account"
    touched = {c.target for c in world.cloud.calls if c.target}
    assert not touched & {"billing-db", "payments-api"}
    assert all(t.startswith(name_of(world, "")) or t.startswith("arn:") or "AssumeRole" in t for t in touched if t)


def test_a_steady_sweep_is_one_listing_and_no_describe(narrow: FakeWorld) -> None:
    world = narrow
    converged(world, servers=4)
    world.cloud.put_stack(ACCOUNT, EAST, "billing-db", tags={"team": "billing"})
    world.engine.sweep()  # reads nothing new of ours; the foreign stack is listed, not read
    world.cloud.reset_calls()
    writes = world.store.status_writes

    summary = world.engine.sweep().summary()

    assert summary.actions == {"no-op": 4}
    assert dict(world.cloud.counts()) == {"ListStacks": 1}
    assert world.store.status_writes == writes


def test_the_first_sweep_reads_each_stack_once_then_keeps_what_it_read(narrow: FakeWorld) -> None:
    world = narrow
    world.add_tenant("alpha", ACCOUNT)
    world.cloud.put_stack(ACCOUNT, EAST, "billing-db", tags={"team": "billing"})
    for index in range(3):
        world.put("alpha", f"s{index}")
    world.converge("alpha", passes=2)  # created, then seen complete: each complete stack is read once
    for server_id in ("s0", "s1", "s2"):
        server = world.server("alpha", server_id)
        assert server is not None and server.status.seen is not None
        assert server.status.seen.status == "CREATE_COMPLETE"
        assert dict(server.status.seen.tags)[naming.TAG_GAMESERVER] == server_id
    world.cloud.reset_calls()

    world.engine.sweep()

    assert world.cloud.count("DescribeStack") == 0


def test_a_stack_changed_by_hand_is_described_and_converged(narrow: FakeWorld) -> None:
    world = narrow
    converged(world)
    name = name_of(world, "s1")
    world.clock.advance(60)
    world.cloud.tamper(ACCOUNT, EAST, name, {"Seed": "by-hand"})

    result = world.engine.sweep().results[0]

    assert [c.target for c in world.cloud.calls if c.operation == "DescribeStack"] == [name]
    assert [c.target for c in world.cloud.calls if c.operation == "UpdateStack"] == [name]
    (update,) = [r.action for r in result.results if r.action.kind.value == "update"]
    assert update.diff is not None and "by-hand" in update.diff
    changing = world.server("alpha", "s1")
    assert changing is not None and changing.status.seen is None, "a stack being updated is read afresh next time"
    world.cloud.settle_all()
    world.converge("alpha", passes=2)
    (stack,) = [s for s in world.cloud.stacks(ACCOUNT) if s.name == name]
    assert stack.parameters["Seed"] == "seed1"
    assert ready(world, "s1")
    world.cloud.reset_calls()
    world.engine.sweep()
    assert world.cloud.count("DescribeStack") == 0 and world.cloud.count("UpdateStack") == 0


def test_a_scoped_pass_does_not_list(narrow: FakeWorld) -> None:
    world = narrow
    converged(world, servers=5)
    world.put("alpha", "s3", seed="newseed")
    world.put("alpha", "s9", seed="brandnew")
    world.cloud.reset_calls()

    result = world.engine.reconcile_tenant("alpha", scope={"s3", "s9"})

    assert world.cloud.count("ListStacks") == 0 and world.cloud.count("DescribeStacks") == 0
    assert sorted(c.target for c in world.cloud.calls if c.operation == "DescribeStack") == [
        name_of(world, "s3"),
        name_of(world, "s9"),
    ]
    kinds = {r.action.gameserver_id: r.action.kind.value for r in result.results}
    assert kinds == {"s3": "update", "s9": "create"}


def test_a_scoped_pass_reads_its_stacks_in_every_region_the_tenant_uses(narrow: FakeWorld) -> None:
    world = narrow
    converged(world, servers=1, regions=(EAST, WEST))

    world.engine.reconcile_tenant("alpha", scope={"s0"})

    assert world.cloud.count("ListStacks") == 0
    assert sorted(c.region for c in world.cloud.calls if c.operation == "DescribeStack") == [EAST, WEST]


def test_a_large_scope_lists_and_reads_only_its_own_changed_stacks(narrow: FakeWorld) -> None:
    world = narrow
    converged(world, servers=8)
    for index in range(6):
        world.put("alpha", f"s{index}", seed=f"changed{index}")  # six servers: more than a few describes
    world.cloud.reset_calls()

    world.engine.reconcile_tenant("alpha", scope={f"s{i}" for i in range(6)})

    assert world.cloud.count("ListStacks") == 1
    # Unchanged since their last full read: planned from it, and read by name only right before the update.
    assert world.cloud.count("DescribeStack") == 6
    assert world.cloud.count("UpdateStack") == 6
    assert not {c.target for c in world.cloud.calls} & {name_of(world, "s6"), name_of(world, "s7")}


def test_an_orphans_tags_are_read_before_deletion(narrow: FakeWorld) -> None:
    world = narrow
    converged(world, servers=1)
    orphan = name_of(world, "gone")
    tags = {naming.TAG_INSTALLATION: world.settings.installation, naming.TAG_TENANT: "alpha"}
    world.cloud.put_stack(ACCOUNT, EAST, orphan, tags={**tags, naming.TAG_GAMESERVER: "gone"})
    impostor = name_of(world, "impostor")
    world.cloud.put_stack(ACCOUNT, EAST, impostor, tags={"team": "games"})  # our namespace, not our tags

    world.engine.sweep()

    operations = [c.operation for c in world.cloud.calls if aimed_at(c, orphan)]
    assert operations[:2] == ["DescribeStack", "DeleteStack"]
    assert reads(world, impostor), "a stack in the tenant's namespace is read to learn whose it is"
    assert not [c for c in world.cloud.calls if aimed_at(c, impostor) and c.operation != "DescribeStack"]


def test_a_moved_servers_old_stack_is_read_again_before_it_is_deleted(narrow: FakeWorld) -> None:
    world = narrow
    converged(world, servers=1, regions=(EAST, WEST))
    old = world.server("alpha", "s0")
    assert old is not None and old.status.seen is not None  # the east stack's full read is kept
    world.put("alpha", "s0", region=WEST, seed="seed0")
    world.cloud.reset_calls()

    world.engine.sweep()

    east = [c.operation for c in world.cloud.calls if c.region == EAST and c.operation != "ListStacks"]
    assert east == ["DescribeStack", "DeleteStack"]


def test_termination_protection_turned_on_by_hand_is_seen_before_a_delete(narrow: FakeWorld) -> None:
    world = narrow
    converged(world, servers=1)
    world.cloud.protect(ACCOUNT, EAST, name_of(world, "s0"))  # no stack operation: the listing cannot tell
    world.delete("alpha", "s0")
    world.cloud.reset_calls()

    result = world.engine.sweep().results[0]

    (action,) = [r.action for r in result.results]
    assert (action.kind.value, action.code) == ("hold", "TerminationProtected")
    assert world.cloud.count("DeleteStack") == 0
    assert reads(world, name_of(world, "s0"))


def test_a_scoped_pass_that_reads_by_name_keeps_the_other_orphans_budgets() -> None:
    from tests.bench.failure_budget import ORPHAN, run

    world = FakeWorld()
    run(passes=12, interval_s=300, world=world)
    (held,) = world.store.orphan_attempts("alpha").values()
    world.cloud.reset_calls()

    world.engine.reconcile_tenant("alpha", scope={"s0"})

    assert world.cloud.count("ListStacks") == 0  # read by name: the orphan was not looked at
    assert held.stack_id in world.store.orphan_attempts("alpha")
    world.engine.reconcile_tenant("alpha", scope={ORPHAN})
    assert world.store.orphan_attempts("alpha")[held.stack_id].held


def test_a_delete_freed_by_a_fresh_read_is_read_before_it_is_made() -> None:
    from reconciler.planner import PlanSettings

    world = FakeWorld(settings=PlanSettings(max_deletions=1))
    world.cloud.narrow_role = world.settings.installation
    converged(world, servers=2, regions=(EAST, WEST))
    for server_id in ("s0", "s1"):
        world.put("alpha", server_id, region=WEST, seed="moved")
    # Protected by hand: only a fresh read shows it. The brake's one deletion then goes to the other stack.
    world.cloud.protect(ACCOUNT, EAST, name_of(world, "s0"))
    world.cloud.reset_calls()

    world.engine.sweep()

    east = [(c.operation, c.target) for c in world.cloud.calls if c.region == EAST and c.operation != "ListStacks"]
    s1 = [op for op, target in east if target == name_of(world, "s1") or f":stack/{name_of(world, 's1')}/" in target]
    assert s1 == ["DescribeStack", "DeleteStack"]
    assert not [op for op, target in east if op == "DeleteStack" and name_of(world, "s0") in target]
