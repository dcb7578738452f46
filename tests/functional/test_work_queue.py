"""The work queue on the fake cloud and the in-memory queue (SQS semantics on the fake clock): every trigger is one
message per tenant, duplicates collapse, requeues keep their delay and never multiply, a poison message ends in
the dead-letter list without holding up other tenants, and one tenant is never in two passes at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from handlers import admin, stream, sweep, worker
from reconciler.fakes.queue import deliver
from reconciler.fakes.world import FakeWorld
from tests.functional.conftest import image, stream_record
from tests.functional.fleet import Fleet

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"


@pytest.fixture
def fleet(world: FakeWorld) -> Iterator[Fleet]:
    with Fleet(world).installed() as running:
        yield running


def insert(tenant_id: str, server: str, sequence: str) -> dict[str, object]:
    return {"Records": [stream_record("INSERT", tenant_id, server, sequence, new=image(tenant_id, server))]}


def test_duplicate_triggers_within_a_window_collapse_into_one_pass(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    for server in ("a", "b", "c"):
        fleet.world.put("alpha", server)
    for sequence, server in enumerate(("a", "b", "c", "a")):
        assert stream.handler(insert("alpha", server, str(sequence)), fleet.context) == {"batchItemFailures": []}
    dispatched = sweep.handler({}, fleet.context)
    forced = admin.handler({"tenant_id": "alpha", "dry_run": False}, fleet.context)

    assert fleet.mq.work.sent == 1  # one message for six triggers
    assert dispatched["coalesced"] == 1 and forced["coalesced"] is True
    fleet.pump()
    assert fleet.passes_of("alpha") == [None]  # one pass, full (the sweep's scope wins over the stream's)
    assert {s.name for s in fleet.world.cloud.stacks(ACCOUNT_A)} == {
        f"stackherd-alpha-{server}" for server in ("a", "b", "c")
    }


def test_stream_scopes_are_united_into_the_pass_that_claims_them(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    for sequence, server in enumerate(("a", "b")):
        fleet.world.put("alpha", server)
        stream.handler(insert("alpha", server, str(sequence)), fleet.context)

    fleet.pump()

    assert fleet.passes_of("alpha") == [frozenset({"a", "b"})]


def test_a_trigger_after_the_claim_sends_again(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "a")
    stream.handler(insert("alpha", "a", "1"), fleet.context)
    fleet.pump()
    fleet.world.put("alpha", "b")
    stream.handler(insert("alpha", "b", "2"), fleet.context)
    fleet.pump()

    assert fleet.mq.work.sent == 2
    assert fleet.passes_of("alpha") == [frozenset({"a"}), frozenset({"b"})]


def test_a_requeue_after_is_honoured_with_its_delay(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "arena")
    stream.handler(insert("alpha", "arena", "1"), fleet.context)
    fleet.pump()  # creates the stack: CREATE_IN_PROGRESS, look again in 30 s
    assert len(fleet.passes_of("alpha")) == 1

    fleet.run_for(29)
    assert len(fleet.passes_of("alpha")) == 1  # not before its delay

    fleet.run_for(1)
    assert fleet.passes_of("alpha") == [frozenset({"arena"}), frozenset({"arena"})]
    assert fleet.world.server("alpha", "arena").status.phase.value == "Ready"  # type: ignore[union-attr]


def test_only_the_earliest_requeue_of_a_tenant_stays_live(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    queue = fleet.mq.queue
    assert queue.requeue_after("alpha", {"a"}, 60) is True
    assert queue.requeue_after("alpha", {"b"}, 30) is True  # earlier: replaces the live one
    assert queue.requeue_after("alpha", {"c"}, 90) is False  # later: rides on the live one

    fleet.run_for(120)

    # Two delayed messages were sent, one pass came of them: the superseded one was dropped on arrival.
    assert fleet.mq.delays.sent == 2
    assert fleet.passes_of("alpha") == [frozenset({"a", "b", "c"})]


def test_one_server_in_progress_for_an_hour_keeps_one_requeue_chain(fleet: Fleet) -> None:
    """Before, every pass that waited sent its own delayed requeue and every sweep started one more chain: an
    hour of one stack in progress grew a dozen parallel chains and 780 listings."""
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "arena")
    fleet.world.cloud.set_outcome(ACCOUNT_A, "stackherd-alpha-arena", "create", "CREATE_IN_PROGRESS")
    stream.handler(insert("alpha", "arena", "1"), fleet.context)
    fleet.pump()

    most_delayed = 0
    for second in range(1, 3601):
        fleet.world.clock.advance(1)
        if second % 300 == 0:
            sweep.handler({}, fleet.context)
        fleet.pump()
        most_delayed = max(most_delayed, len(fleet.mq.delays))

    passes = len(fleet.passes_of("alpha"))
    # One chain: a look every 30 s (120 in the hour) plus the twelve sweeps' passes, never more.
    assert passes <= 3600 // 30 + 12 + 1, passes
    assert fleet.listings() <= 12 + 1  # a walk per sweep; the chain's looks read the one stack by name
    assert fleet.world.cloud.count("DescribeStack") <= passes
    assert most_delayed <= 1  # never two requeues of the tenant in flight
    assert fleet.mq.delays.sent <= 3600 // 30 + 1


def test_a_player_patching_every_two_seconds_keeps_at_most_one_live_chain(fleet: Fleet) -> None:
    """Before, every PATCH's pass sent a requeue of its own: 300 live chains after ten minutes."""
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "arena", player_count=2)
    stream.handler(insert("alpha", "arena", "0"), fleet.context)
    fleet.pump()
    most_delayed = 0
    for patch in range(1, 301):
        fleet.world.clock.advance(2)
        fleet.world.put("alpha", "arena", player_count=2 + patch % 8)
        stream.handler(insert("alpha", "arena", str(patch)), fleet.context)
        fleet.pump()
        most_delayed = max(most_delayed, len(fleet.mq.delays))
        assert len(fleet.live_requeues()) <= 1

    assert most_delayed <= 2  # the live requeue, and at most one superseded one waiting to be dropped
    passes = len(fleet.passes_of("alpha"))
    assert passes <= 301 + 600 // 30 + 1, passes  # a pass per PATCH at most, plus one chain of looks


def test_a_poison_message_goes_to_the_dead_letter_list_after_bounded_tries_while_others_proceed(
    world: FakeWorld,
) -> None:
    with Fleet(world, visibility_timeout_s=30, max_receives=3).installed() as fleet:
        fleet.world.add_tenant("alpha", ACCOUNT_A)
        fleet.world.put("alpha", "arena")
        fleet.mq.work.send_batch([("{not json", "alpha", "poison-1", 0, {})])
        fleet.mq.queue.enqueue("ghost", None, "sweep")  # a tenant that is not registered
        fleet.world.add_tenant("bravo", ACCOUNT_B)
        fleet.world.put("bravo", "b")
        stream.handler(insert("bravo", "b", "1"), fleet.context)

        fleet.pump()
        assert fleet.passes_of("bravo") == [frozenset({"b"})]  # never held up by the other groups' failures

        fleet.run_for(200, step=10)

        assert sorted(m.group or "" for m in fleet.mq.work.dead_letters) == ["alpha", "ghost"]
        assert all(m.receives == 3 for m in fleet.mq.work.dead_letters)
        assert len(fleet.mq.work) == 0


def test_a_retryable_failure_is_retried_with_its_claimed_scope(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "a")
    fleet.world.put("alpha", "b")
    fleet.world.cloud.throttle_next(ACCOUNT_A, times=50)
    stream.handler(insert("alpha", "a", "1"), fleet.context)
    stream.handler(insert("alpha", "b", "2"), fleet.context)
    fleet.pump()
    assert len(fleet.mq.work) == 1  # failed, waiting out its visibility timeout

    fleet.world.cloud.clear_faults()
    fleet.run_for(61)

    assert fleet.passes_of("alpha")[-1] == frozenset({"a", "b"})
    assert {s.name for s in fleet.world.cloud.stacks(ACCOUNT_A)} == {"stackherd-alpha-a", "stackherd-alpha-b"}
    assert len(fleet.mq.work) == 0


def test_a_tenant_is_never_reconciled_by_two_workers_at_once_on_the_fake_queue(fleet: Fleet) -> None:
    for index, tenant in enumerate(("alpha", "bravo", "charlie")):
        fleet.world.add_tenant(tenant, f"{index + 1}" * 12)
        for server in range(5):
            fleet.world.put(tenant, f"s{server}")
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            deliver(fleet.mq.work, worker.handler, fleet.context, batch_size=2)

    threads = [threading.Thread(target=poll) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(20):
            for tenant in ("alpha", "bravo", "charlie"):
                stream.handler(insert(tenant, f"s{round_ % 5}", f"{round_}"), fleet.context)
                admin.handler({"tenant_id": tenant, "dry_run": False}, fleet.context)
            sweep.handler({}, fleet.context)
            fleet.world.clock.advance(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    fleet.pump()
    assert fleet.overlaps == []
    assert len(fleet.passes) >= 3


def test_the_worker_answers_a_direct_plan_invocation(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "arena")

    answer = worker.handler({"action": "plan", "tenant_id": "alpha"}, fleet.context)

    assert answer["ok"] is True and answer["dry_run"] is True
    assert [a["kind"] for a in answer["actions"]] == ["create"]
    assert fleet.world.cloud.stacks(ACCOUNT_A) == []
    bad = worker.handler({"action": "plan", "tenant_id": "Not An Id"}, fleet.context)
    assert bad["ok"] is False and "tenant_id" in bad["error"]


def test_an_admin_force_is_carried_by_the_work_item_to_the_pass(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "a")
    stream.handler(insert("alpha", "a", "1"), fleet.context)  # pending, not yet served
    admin.handler({"tenant_id": "alpha", "dry_run": False, "force": True, "confirm_deletions": True}, fleet.context)

    claimed = fleet.mq.items.items["alpha"]
    assert claimed.force and claimed.confirm_deletions and fleet.mq.work.sent == 1


def test_the_dispatcher_hands_the_rest_on_when_its_time_runs_low(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(12):
        fleet.world.add_tenant(f"t{index:02d}", f"{index + 1:012d}")
    handed: list[str] = []
    monkeypatch.setattr(sweep, "CHUNK", 5)
    monkeypatch.setattr(sweep, "hand_on", lambda context, cursor: handed.append(cursor))

    class Late:
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:sweep"

        def get_remaining_time_in_millis(self) -> int:
            return 1_000

    first = sweep.dispatch({}, Late())  # type: ignore[arg-type]
    assert first["dispatched"] == 5 and handed == ["t04"]
    rest = sweep.dispatch({"cursor": "t04"}, fleet.context)  # type: ignore[arg-type]
    assert rest["dispatched"] == 7 and rest["handed_on"] is None
    assert fleet.mq.work.sent == 12


def test_a_requeue_message_from_before_the_work_queue_is_forwarded_once(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "arena")
    fleet.mq.delays.send_batch([('{"tenant_id": "alpha", "gameserver_ids": ["arena"]}', None, None, 0, {})])

    fleet.pump()

    assert fleet.passes_of("alpha") == [frozenset({"arena"})]
    assert len(fleet.mq.delays) == 1  # the pass's own requeue, not the old message


def test_a_worker_that_dies_after_its_claim_loses_no_coalesced_scope(fleet: Fleet) -> None:
    fleet.world.add_tenant("alpha", ACCOUNT_A)
    fleet.world.put("alpha", "a")
    fleet.world.put("alpha", "b")
    stream.handler(insert("alpha", "a", "1"), fleet.context)  # the message names "a" only
    stream.handler(insert("alpha", "b", "2"), fleet.context)  # coalesced onto the work item
    assert fleet.mq.work.sent == 1
    # A worker receives the message and claims the tenant's work, then its invocation times out mid-pass: the
    # message is never deleted and comes back after the visibility timeout, but the claimed work item is empty.
    assert len(fleet.mq.work.receive()) == 1
    assert fleet.mq.items.claim("alpha") is not None

    fleet.run_for(61)

    assert {s.name for s in fleet.world.cloud.stacks(ACCOUNT_A)} == {"stackherd-alpha-a", "stackherd-alpha-b"}
    assert len(fleet.mq.work) == 0
