"""A steady pass (every server Ready and in sync) costs one listing and three store reads, whatever shortcuts
the engine takes for it: the calls are what a fleet of workers pays for, per tenant, every sweep."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from models.records import Phase, ServerStatus
from reconciler.engine import ActionResult, Outcome
from reconciler.fakes.world import FakeWorld
from reconciler.planner import ActionKind
from tests.bench.fanout import fanout

ACCOUNT = "111111111111"


def count_store_calls(world: FakeWorld) -> Counter[str]:
    """Counts every call of the store's public methods from now on."""
    calls: Counter[str] = Counter()

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return method(*args, **kwargs)

        return call

    for name in dir(world.store):
        method = getattr(world.store, name)
        if not name.startswith("_") and callable(method):
            setattr(world.store, name, counted(name, method))
    return calls


def steady_tenant(world: FakeWorld, servers: int = 10) -> None:
    world.add_tenant("alpha", ACCOUNT)
    for n in range(servers):
        world.put("alpha", f"s{n:02d}", seed=f"seed{n}")
    world.converge("alpha")
    assert all(s.status.phase is Phase.READY for s in world.store.read_servers("alpha").servers)


def test_a_steady_pass_reads_the_tenant_its_records_and_its_state_once_and_lists_once(world: FakeWorld) -> None:
    steady_tenant(world)
    world.cloud.reset_calls()
    activity, before = len(world.store.activity), world.store.read_servers("alpha").servers
    store = count_store_calls(world)

    result = world.engine.reconcile_tenant("alpha")

    assert result.ok and result.in_sync
    assert [(r.action.kind, r.outcome) for r in result.results] == [(ActionKind.NOOP, Outcome.DONE)] * 10
    assert dict(store) == {"get_tenant": 1, "read_servers": 1, "get_tenant_state": 1}
    assert dict(world.cloud.counts()) == {"ListStacks": 1}
    assert len(world.store.activity) == activity
    # Not one status rewritten: each record is the very object the pass read.
    assert all(a is b for a, b in zip(world.store.read_servers("alpha").servers, before, strict=True))


def test_a_server_in_sync_but_not_yet_ready_still_gets_its_status_written(world: FakeWorld) -> None:
    steady_tenant(world, servers=3)
    server = world.server("alpha", "s01")
    assert server is not None
    world.store.write_status(server, ServerStatus(phase=Phase.PENDING))
    writes = world.store.status_writes

    result = world.engine.reconcile_tenant("alpha")

    assert result.in_sync and world.store.status_writes == writes + 1
    after = world.server("alpha", "s01")
    assert after is not None and after.status.phase is Phase.READY and after.status.stack_id


def test_a_fanout_steady_pass_without_the_cold_pass_is_steady() -> None:
    # The benchmark converges its world itself when it skips the cold pass: its steady pass must then list
    # each tenant once and nothing else, not read every new stack for the first time.
    report = fanout(3, 2, 0.001, 50.0, 2, cold=False)

    assert report["fanout_steady"]["calls"] == {"ListStacks": 3}
    assert report["fanout_steady"]["tenants_failed"] == 0


def test_a_ready_no_op_reports_the_very_result_the_constructor_builds(world: FakeWorld) -> None:
    steady_tenant(world, servers=2)

    result = world.engine.reconcile_tenant("alpha")

    for done in result.results:
        assert done == ActionResult(done.action, Outcome.DONE)
        assert (done.detail, done.retryable, done.stopped) == (None, False, None)
        assert done.to_dict() == ActionResult(done.action, Outcome.DONE).to_dict()
