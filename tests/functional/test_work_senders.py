"""The SQS senders: the work queue's messages carry the tenant as their group and the pending token as their
deduplication id, ten to a request, and a refused entry comes back as its token (its pending state is then
released, so the next trigger sends again); the delay queue's message carries its delay and token."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from models.work import Trigger, WorkMessage
from reconciler.adapters.sqs import SqsDelaySender, SqsWorkSender
from reconciler.fakes.queue import MemoryWorkItems
from reconciler.work import CoalescingWorkQueue, WorkQueueError


class RecordingSqs:
    def __init__(self, refuse: set[str] | None = None, down: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.single: list[dict[str, Any]] = []
        self.refuse = refuse or set()
        self.down = down

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        if self.down:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessageBatch")
        self.batches.append(Entries)
        failed = [e for e in Entries if e["MessageGroupId"] in self.refuse]
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in failed],
            "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in failed],
        }

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.single.append(kwargs)
        return {"MessageId": "m"}


def test_work_messages_are_grouped_by_tenant_deduplicated_by_token_and_batched_by_ten() -> None:
    client = RecordingSqs(refuse={"t03"})
    sender = SqsWorkSender("https://sqs.example/work.fifo", region="us-east-1", client=client)
    messages = [(WorkMessage.of(f"t{i:02d}", None, Trigger.SWEEP), f"token-{i}") for i in range(23)]

    refused = sender.send(messages)

    assert [len(b) for b in client.batches] == [10, 10, 3]
    first = client.batches[0][0]
    assert first["MessageGroupId"] == "t00" and first["MessageDeduplicationId"] == "token-0"
    assert json.loads(first["MessageBody"]) == {"tenant_id": "t00", "gameserver_ids": None, "trigger": "sweep"}
    assert refused == ["token-3"]


def test_a_refused_send_releases_the_pending_state_so_the_next_trigger_sends_again() -> None:
    client = RecordingSqs(down=True)
    items = MemoryWorkItems()
    queue = CoalescingWorkQueue(items, SqsWorkSender("https://sqs.example/w.fifo", region="us-east-1", client=client))

    with pytest.raises(WorkQueueError):
        queue.enqueue("alpha", {"a"}, "stream")
    client.down = False
    assert queue.enqueue("alpha", {"b"}, "stream") is True  # not coalesced into a message that was never sent

    assert json.loads(client.batches[0][0]["MessageBody"])["gameserver_ids"] == ["b"]
    claimed = items.claim("alpha")
    assert claimed is not None and claimed.scope == frozenset({"a", "b"})


def test_a_requeue_carries_its_delay_and_token_and_longer_waits_are_capped_at_fifteen_minutes() -> None:
    client = RecordingSqs()
    queue = CoalescingWorkQueue(
        MemoryWorkItems(),
        SqsWorkSender("https://sqs.example/w.fifo", region="us-east-1", client=client),
        SqsDelaySender("https://sqs.example/requeue", region="us-east-1", client=client),
        clock=lambda: datetime(2026, 3, 1, tzinfo=UTC),
        token=lambda: "r-1",
    )

    assert queue.requeue_after("alpha", {"arena"}, 3600) is True

    (sent,) = client.single
    assert sent["DelaySeconds"] == 900
    assert sent["MessageAttributes"] == {"token": {"DataType": "String", "StringValue": "r-1"}}
    assert json.loads(sent["MessageBody"]) == {"tenant_id": "alpha", "gameserver_ids": ["arena"], "trigger": "requeue"}
