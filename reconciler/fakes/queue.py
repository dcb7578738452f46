"""The work queue in memory: `MemoryWorkItems` (the coalescing item), `FakeSqsQueue` (SQS FIFO and standard
semantics on a fake clock: per-group order, one batch of a group in flight, visibility timeout, deduplication,
a dead-letter list after bounded receives), the senders onto it, and `MemoryRequeuer`, which only records what
the engine asked to look at again."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from models.work import WorkMessage
from reconciler.ports import PendingWork
from reconciler.work import CoalescingWorkQueue


@dataclass
class MemoryRequeuer:
    sent: list[tuple[str, str, int]] = field(default_factory=list)  # (tenant, server, delay)
    unreachable: bool = False  # every send raises, as a queue that cannot be reached would
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def requeue(self, tenant_id: str, delays: Sequence[tuple[str, int]]) -> int:
        if self.unreachable:
            raise ConnectionError("the requeue queue cannot be reached")
        with self._lock:
            self.sent.extend((tenant_id, server_id, delay) for server_id, delay in delays)
        return len({delay for _, delay in delays})  # like SQS: one message per distinct delay


# --- the work queue in memory ------------------------------------------------------------------------


@dataclass
class _WorkItem:
    token: str | None = None
    since: datetime | None = None
    scope: set[str] = field(default_factory=set)
    full: bool = False
    force: bool = False
    confirm_deletions: bool = False
    requeue_due: datetime | None = None
    requeue_token: str | None = None
    requeue_scope: set[str] = field(default_factory=set)


class MemoryWorkItems:
    """`WorkItems` in memory, with the DynamoDB adapter's semantics (each method atomic under one lock)."""

    def __init__(
        self, stale_after: timedelta = timedelta(minutes=15), overdue_after: timedelta = timedelta(minutes=2)
    ) -> None:
        self.stale_after = stale_after
        self.overdue_after = overdue_after
        self.items: dict[str, _WorkItem] = {}
        self.writes = 0  # conditional writes made, as DynamoDB would bill them
        self._lock = threading.Lock()

    def mark_pending(
        self,
        tenant_id: str,
        scope: frozenset[str] | None,
        token: str,
        at: datetime,
        *,
        force: bool = False,
        confirm_deletions: bool = False,
    ) -> str | None:
        with self._lock:
            self.writes += 1
            item = self.items.setdefault(tenant_id, _WorkItem())
            item.force |= force
            item.confirm_deletions |= confirm_deletions
            if scope is None:
                item.full = True
            else:
                item.scope |= scope
            if item.token is None:
                item.token, item.since = token, at
                return token
            if item.since is not None and item.since < at - self.stale_after:
                self.writes += 1
                item.token, item.since = token, at
                return token
            return None

    def release_pending(self, tenant_id: str, token: str) -> None:
        with self._lock:
            self.writes += 1
            item = self.items.get(tenant_id)
            if item is not None and item.token == token:
                item.token = item.since = None

    def claim(self, tenant_id: str) -> PendingWork | None:
        with self._lock:
            self.writes += 1
            item = self.items.get(tenant_id)
            if item is None or item.token is None:
                return None
            claimed = PendingWork(
                scope=None if item.full else frozenset(item.scope),
                token=item.token,
                force=item.force,
                confirm_deletions=item.confirm_deletions,
            )
            item.token = item.since = None
            item.scope, item.full, item.force, item.confirm_deletions = set(), False, False, False
            return claimed

    def record_requeue(self, tenant_id: str, scope: frozenset[str], due: datetime, token: str, at: datetime) -> bool:
        with self._lock:
            self.writes += 1
            item = self.items.setdefault(tenant_id, _WorkItem())
            item.requeue_scope |= scope
            if item.requeue_due is None or item.requeue_due > due or item.requeue_due < at - self.overdue_after:
                item.requeue_due, item.requeue_token = due, token
                return True
            return False

    def claim_requeue(self, tenant_id: str, token: str) -> frozenset[str] | None:
        with self._lock:
            self.writes += 1
            item = self.items.get(tenant_id)
            if item is None or item.requeue_token != token:
                return None
            scope = frozenset(item.requeue_scope)
            item.requeue_due, item.requeue_token, item.requeue_scope = None, None, set()
            return scope

    def release_requeue(self, tenant_id: str, token: str) -> None:
        with self._lock:
            self.writes += 1
            item = self.items.get(tenant_id)
            if item is not None and item.requeue_token == token:
                item.requeue_due = item.requeue_token = None


@dataclass
class QueuedMessage:
    message_id: str
    body: str
    group: str | None
    dedup_id: str | None
    attributes: dict[str, str]
    visible_at: datetime
    sent_at: datetime
    receives: int = 0
    receipt: str | None = None


class FakeSqsQueue:
    """An SQS queue on a fake clock. FIFO (`fifo=True`): messages of one group come out in order, and a group
    with a message in flight gives nothing until that message is deleted or its visibility timeout ends (what
    Lambda's event source mapping relies on to never run two batches of a group at once); a deduplication id
    seen within five minutes is dropped. Standard: per-message delays. Both: a message received
    `max_receives` times without being deleted goes to `dead_letters` on its next receive."""

    DEDUP_WINDOW = timedelta(minutes=5)

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        fifo: bool = True,
        visibility_timeout_s: int = 60,
        max_receives: int = 5,
    ) -> None:
        self.clock = clock
        self.fifo = fifo
        self.visibility_timeout = timedelta(seconds=visibility_timeout_s)
        self.max_receives = max_receives
        self.messages: list[QueuedMessage] = []
        self.dead_letters: list[QueuedMessage] = []
        self.sent = 0  # SendMessage entries accepted
        self.requests = 0  # API requests (a batch is one), as SQS bills them
        self.deduplicated = 0
        self._dedup: dict[str, datetime] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send_batch(self, entries: Sequence[tuple[str, str | None, str | None, int, dict[str, str]]]) -> None:
        """(body, group, dedup id, delay seconds, attributes) per entry, as one request of at most ten."""
        if len(entries) > 10:
            raise ValueError("SendMessageBatch takes at most ten entries")
        with self._lock:
            self.requests += 1
            now = self.clock()
            for body, group, dedup_id, delay, attributes in entries:
                if self.fifo and (group is None or dedup_id is None):
                    raise ValueError("a FIFO message needs a group and a deduplication id")
                if dedup_id is not None:
                    seen = self._dedup.get(dedup_id)
                    if seen is not None and now - seen < self.DEDUP_WINDOW:
                        self.deduplicated += 1
                        continue
                    self._dedup[dedup_id] = now
                self.sent += 1
                self.messages.append(
                    QueuedMessage(
                        message_id=f"m-{next(self._ids)}",
                        body=body,
                        group=group,
                        dedup_id=dedup_id,
                        attributes=dict(attributes),
                        visible_at=now + timedelta(seconds=0 if self.fifo else delay),
                        sent_at=now,
                    )
                )

    def receive(self, max_messages: int = 10) -> list[QueuedMessage]:
        with self._lock:
            self.requests += 1
            now = self.clock()
            blocked: set[str | None] = set()
            batch: list[QueuedMessage] = []
            for message in list(self.messages):
                if len(batch) >= max_messages:
                    break
                if self.fifo and message.group in blocked:
                    continue
                if message.visible_at > now:
                    if self.fifo:
                        blocked.add(message.group)  # in flight (or earlier in order): the group waits
                    continue
                if message.receives >= self.max_receives:
                    self.messages.remove(message)
                    self.dead_letters.append(message)
                    continue
                message.receives += 1
                message.receipt = f"{message.message_id}-{message.receives}"
                message.visible_at = now + self.visibility_timeout
                batch.append(message)
            return batch

    def delete(self, receipt: str) -> None:
        with self._lock:
            self.requests += 1
            self.messages = [m for m in self.messages if m.receipt != receipt]

    def in_flight_groups(self) -> set[str | None]:
        now = self.clock()
        with self._lock:
            return {m.group for m in self.messages if m.receives and m.visible_at > now}

    def __len__(self) -> int:
        with self._lock:
            return len(self.messages)

    def next_visible(self) -> datetime | None:
        """When the earliest message becomes visible (None when the queue is empty)."""
        with self._lock:
            return min((m.visible_at for m in self.messages), default=None)


def lambda_event(
    messages: Sequence[QueuedMessage], *, arn: str = "arn:aws:sqs:us-east-1:000000000000:q"
) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping would hand a function for these messages."""
    records = []
    for message in messages:
        attributes = {
            "ApproximateReceiveCount": str(message.receives),
            "SentTimestamp": str(int(message.sent_at.timestamp() * 1000)),
        }
        if message.group is not None:
            attributes["MessageGroupId"] = message.group
        if message.dedup_id is not None:
            attributes["MessageDeduplicationId"] = message.dedup_id
        records.append(
            {
                "messageId": message.message_id,
                "receiptHandle": message.receipt,
                "body": message.body,
                "attributes": attributes,
                "messageAttributes": {
                    name: {"stringValue": value, "dataType": "String"} for name, value in message.attributes.items()
                },
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def deliver(
    queue: FakeSqsQueue, handler: Callable[[dict[str, Any], Any], Any], context: Any, batch_size: int = 10
) -> int:
    """One poll as Lambda's event source mapping does it: receive a batch, run the handler, delete what it did not
    report as failed (failed ones come back after the visibility timeout). Returns the messages handed over."""
    batch = queue.receive(batch_size)
    if not batch:
        return 0
    response = handler(lambda_event(batch), context) or {}
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    for message in batch:
        if message.message_id not in failed and message.receipt is not None:
            queue.delete(message.receipt)
    return len(batch)


class FakeWorkSender:
    """`WorkSender` onto a FIFO `FakeSqsQueue`: group = tenant, deduplication id = token, ten per request."""

    def __init__(self, queue: FakeSqsQueue, *, unreachable: bool = False) -> None:
        self.queue = queue
        self.unreachable = unreachable

    def send(self, messages: Sequence[tuple[WorkMessage, str]]) -> list[str]:
        if self.unreachable:
            raise ConnectionError("the work queue cannot be reached")
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.queue.send_batch([(m.body(), m.tenant_id, token, 0, {}) for m, token in chunk])
        return []


class FakeDelaySender:
    """`DelaySender` onto a standard `FakeSqsQueue`: the token travels as a message attribute."""

    def __init__(self, queue: FakeSqsQueue) -> None:
        self.queue = queue

    def send_delayed(self, message: WorkMessage, token: str, delay_s: int) -> None:
        self.queue.send_batch([(message.body(), None, None, delay_s, {"token": token})])


@dataclass
class MemoryWorkQueue:
    """The whole work queue in memory: coalescing items, the FIFO work queue and the delay queue, on one clock."""

    clock: Callable[[], datetime]
    visibility_timeout_s: int = 60
    max_receives: int = 5
    items: MemoryWorkItems = field(default_factory=MemoryWorkItems)
    work: FakeSqsQueue = field(init=False)
    delays: FakeSqsQueue = field(init=False)
    queue: CoalescingWorkQueue = field(init=False)

    def __post_init__(self) -> None:
        self.work = FakeSqsQueue(
            self.clock, fifo=True, visibility_timeout_s=self.visibility_timeout_s, max_receives=self.max_receives
        )
        self.delays = FakeSqsQueue(
            self.clock, fifo=False, visibility_timeout_s=self.visibility_timeout_s, max_receives=self.max_receives
        )
        self.sender = FakeWorkSender(self.work)
        self.queue = CoalescingWorkQueue(self.items, self.sender, FakeDelaySender(self.delays), clock=self.clock)
