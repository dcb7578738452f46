"""Requeueing lives behind one port the engine is given: every pass that waits on CloudFormation or backs off
asks the requeuer for another look, whichever door started it, and a requeuer that fails hides nothing."""

from __future__ import annotations

from typing import Any

from handlers import admin, stream, sweep
from handlers.local.embedded import LocalContext, fake_runtime
from handlers.runtime import install_runtime
from reconciler.adapters.sqs import SqsRequeuer
from reconciler.fakes.world import FakeWorld
from tests.functional.conftest import image, stream_record

ACCOUNT = "111111111111"


def test_a_pass_that_starts_a_stack_asks_for_another_look(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")

    result = world.engine.reconcile_tenant("alpha")

    assert world.requeuer.sent == [("alpha", "arena", 30)]
    assert result.requeued == 1


def test_a_dry_run_asks_for_nothing(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")

    world.engine.reconcile_tenant("alpha", dry_run=True)

    assert world.requeuer.sent == []


def test_every_door_requeues_through_the_engine(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT)
    doors = {
        "by-admin": lambda: admin.handler({"tenant_id": "alpha", "dry_run": False}, context),
        "by-stream": lambda: stream.handler(
            {"Records": [stream_record("INSERT", "alpha", "by-stream", "1", new=image("alpha", "by-stream"))]},
            context,
        ),
        "by-sweep": lambda: sweep.handler({}, context),
    }
    for server, door in doors.items():
        installed.put("alpha", server)
        before = len(installed.requeuer.sent)
        door()
        assert ("alpha", server, 30) in installed.requeuer.sent[before:], server


def test_a_requeuer_that_raises_is_logged_and_the_pass_is_reported(world: FakeWorld, context: LocalContext) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")
    world.requeuer.unreachable = True
    install_runtime(fake_runtime(world))
    try:
        applied = admin.handler({"tenant_id": "alpha", "dry_run": False}, context)
    finally:
        install_runtime(None)

    assert applied["ok"] is True
    assert [(a["kind"], a["outcome"]) for a in applied["actions"]] == [("create", "done")]


class RecordingSqs:
    def __init__(self, failed: int = 0) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.failed = failed

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.batches.append(Entries)
        return {"Failed": [{"Id": e["Id"]} for e in Entries[: self.failed]]}


def test_sqs_sends_one_message_per_delay_clamped_to_what_sqs_allows() -> None:
    client = RecordingSqs()
    requeuer = SqsRequeuer("https://sqs.example/q", region="us-east-1", client=client)

    sent = requeuer.requeue("alpha", [("b", 30), ("a", 30), ("c", 5000), ("d", -1)])

    assert sent == 3
    (batch,) = client.batches
    assert [(e["DelaySeconds"], e["MessageBody"]) for e in batch] == [
        (0, '{"tenant_id": "alpha", "gameserver_ids": ["d"]}'),
        (30, '{"tenant_id": "alpha", "gameserver_ids": ["a", "b"]}'),
        (900, '{"tenant_id": "alpha", "gameserver_ids": ["c"]}'),
    ]


def test_sqs_counts_only_the_messages_it_accepted_in_batches_of_ten() -> None:
    client = RecordingSqs(failed=1)
    requeuer = SqsRequeuer("https://sqs.example/q", region="us-east-1", client=client)

    sent = requeuer.requeue("alpha", [(f"s{i}", i) for i in range(12)])

    assert [len(b) for b in client.batches] == [10, 2]
    assert sent == 10
