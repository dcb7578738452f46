"""A record stored with an id outside today's creation pattern (an older version's `Legacy-1` or `Legacy_1`):
its deletion goes through the write service and the engine like any other, ending with the record finalized
and its stack gone."""

from __future__ import annotations

from dataclasses import replace

from models.records import DesiredServer
from reconciler.fakes.world import FakeWorld

ACCOUNT = "111111111111"


def _legacy_record(world: FakeWorld, gameserver_id: str) -> DesiredServer:
    """A converged server of today, then its record and stack renamed to the id an older version stored."""
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "template-copy", seed="abc")
    world.converge("alpha")
    (stack,) = world.cloud.stacks(ACCOUNT)
    record = world.store.servers.pop(("alpha", "template-copy"))
    world.cloud.remove_stack(ACCOUNT, stack.region, stack.name)
    legacy = replace(
        record,
        gameserver_id=gameserver_id,
        unreadable=f"the stored gameserver_id {gameserver_id!r} is not 1-40 lowercase letters, digits or inner hyphens",
    )
    world.store.servers[("alpha", gameserver_id)] = legacy
    return legacy


def test_a_legacy_id_whose_stack_exists_is_deleted_and_finalized(world: FakeWorld) -> None:
    legacy = _legacy_record(world, "Legacy-1")
    world.cloud.put_stack(
        ACCOUNT,
        "us-east-1",
        "stackherd-alpha-Legacy-1",
        tags={"stackherd:installation": "stackherd", "stackherd:tenant": "alpha", "stackherd:gameserver": "Legacy-1"},
    )
    assert legacy.unreadable is not None

    world.delete("alpha", "Legacy-1")
    world.converge("alpha")

    assert world.server("alpha", "Legacy-1") is None
    assert world.cloud.stacks(ACCOUNT) == []
    assert world.cloud.count("DeleteStack") == 1


def test_a_legacy_id_that_cannot_name_a_stack_is_finalized_without_a_delete_call(world: FakeWorld) -> None:
    """`Legacy_1` cannot be part of a CloudFormation stack name, so no stack of it can exist: the deletion
    removes the record and never asks CloudFormation to delete a stack of that name."""
    _legacy_record(world, "Legacy_1")
    world.cloud.reset_calls()

    world.delete("alpha", "Legacy_1")
    world.converge("alpha")

    assert world.server("alpha", "Legacy_1") is None
    assert world.cloud.count("DeleteStack") == 0
