"""The scheduled dispatch at fleet scale: 10,000 tenants become 10,000 full-pass messages, ten per
SendMessageBatch, in seconds (the SQS client is a stub that accepts every entry and counts the requests)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from handlers import sweep
from handlers.local.embedded import LocalContext, fake_runtime
from handlers.runtime import install_runtime
from models.records import Tenant, role_arn_for
from reconciler.adapters.sqs import SqsWorkSender
from reconciler.fakes.queue import MemoryWorkItems
from reconciler.fakes.world import FakeWorld
from reconciler.work import CoalescingWorkQueue

TENANTS = 10_000


class AcceptingSqs:
    def __init__(self) -> None:
        self.requests = 0
        self.entries = 0
        self.groups: set[str] = set()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        assert len(Entries) <= 10
        self.requests += 1
        self.entries += len(Entries)
        self.groups.update(e["MessageGroupId"] for e in Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_the_dispatcher_enqueues_ten_thousand_tenants_in_under_five_seconds(world: FakeWorld) -> None:
    for index in range(TENANTS):
        account = f"{100000000000 + index}"
        world.store.put_tenant(Tenant(f"t{index:05d}", account, ("us-east-1",), role_arn_for(account, "R"), "ext"))
    client = AcceptingSqs()
    items = MemoryWorkItems()
    queue = CoalescingWorkQueue(
        items, SqsWorkSender("https://sqs.example/work.fifo", region="us-east-1", client=client)
    )
    install_runtime(replace(fake_runtime(world), work_queue=queue))
    try:
        started = time.perf_counter()
        answer = sweep.handler({"source": "aws.events"}, LocalContext())
        elapsed = time.perf_counter() - started
        writes = items.writes
        again = sweep.handler({"source": "aws.events"}, LocalContext())  # before any worker ran: all coalesced
    finally:
        install_runtime(None)

    assert answer["dispatched"] == TENANTS and answer["failed"] == [] and answer["handed_on"] is None
    assert client.requests == TENANTS // 10 and len(client.groups) == TENANTS
    assert writes == TENANTS  # one conditional write per tenant
    assert again["dispatched"] == 0 and again["coalesced"] == TENANTS
    assert elapsed < 5.0, f"dispatching {TENANTS} tenants took {elapsed:.2f} s"
