"""Every trigger's way onto the work queue, coalesced per tenant.

A trigger records its scope on the tenant's work item (one conditional write) and sends a message only when it
is the one that made the tenant pending, so a burst of triggers for one tenant costs one message and one pass.
A requeue-after records its due time on the same item and goes to the delay queue only when it is the earliest
due: at most one requeue per tenant is live at any time, whatever the passes ask for. The senders and the item
store are ports (SQS and DynamoDB in `reconciler.adapters`, in memory in `reconciler.fakes.queue`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.work import Trigger, WorkMessage
from reconciler.credentials import utcnow
from reconciler.ports import DelaySender, WorkItems, WorkSender

log = logging.getLogger("stackherd.work")

#: SQS's largest per-message delay; a longer wait is looked at again after this and requeued by that pass.
MAX_DELAY_S = 900


class WorkQueueError(Exception):
    """A trigger could not be put on the work queue (the caller retries it: nothing was recorded as pending)."""


def new_token() -> str:
    return uuid.uuid4().hex


@dataclass
class EnqueueReport:
    """What a batch of triggers became: messages sent, triggers coalesced into a pending message, failures."""

    sent: int = 0
    coalesced: int = 0
    failed: list[str] = field(default_factory=list)  # tenant ids whose trigger was not recorded


class CoalescingWorkQueue:
    def __init__(
        self,
        items: WorkItems,
        sender: WorkSender,
        delays: DelaySender | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        token: Callable[[], str] = new_token,
    ) -> None:
        self.items = items
        self.sender = sender
        self.delays = delays
        self.clock = clock
        self.token = token

    def enqueue(
        self,
        tenant_id: str,
        scope: Iterable[str] | None,
        trigger: str,
        *,
        force: bool = False,
        confirm_deletions: bool = False,
    ) -> bool:
        """Ask for a pass of the tenant (None: a full pass). True when a message was sent, False when a pending
        one carries the scope. An admin's `force` and `confirm_deletions` ride on the pending work, so the pass
        that claims it honours them even when the trigger was coalesced. Raises WorkQueueError when the trigger
        could not be recorded or sent."""
        report = self.enqueue_many([(tenant_id, scope)], trigger, force=force, confirm_deletions=confirm_deletions)
        if report.failed:
            raise WorkQueueError(f"could not put tenant {tenant_id} on the work queue")
        return report.sent == 1

    def enqueue_many(
        self,
        requests: Sequence[tuple[str, Iterable[str] | None]],
        trigger: str,
        *,
        concurrency: int = 1,
        force: bool = False,
        confirm_deletions: bool = False,
    ) -> EnqueueReport:
        """Record each (tenant, scope) and send the messages of the tenants made pending, in batches. A tenant
        whose write or send fails is reported in `failed` (its pending state released) and never stops the rest."""
        report = EnqueueReport()
        kind = Trigger(trigger)
        now = self.clock()

        def mark(request: tuple[str, Iterable[str] | None]) -> tuple[str, WorkMessage, str | None] | None:
            tenant_id, scope = request
            wanted = None if scope is None else frozenset(scope)
            try:
                sent_with = self.items.mark_pending(
                    tenant_id, wanted, self.token(), now, force=force, confirm_deletions=confirm_deletions
                )
            except Exception as error:
                log.warning("could not record work for tenant %s: %s", tenant_id, error, extra={"tenant_id": tenant_id})
                return None
            return tenant_id, WorkMessage.of(tenant_id, wanted, kind), sent_with

        if concurrency > 1 and len(requests) > 1:
            with ThreadPoolExecutor(max_workers=min(concurrency, len(requests))) as pool:
                marked = list(pool.map(mark, requests))
        else:
            marked = [mark(r) for r in requests]
        to_send: list[tuple[WorkMessage, str]] = []
        for request, outcome in zip(requests, marked, strict=True):
            if outcome is None:
                report.failed.append(request[0])
            elif outcome[2] is None:
                report.coalesced += 1
            else:
                to_send.append((outcome[1], outcome[2]))
        if not to_send:
            return report
        try:
            refused = set(self.sender.send(to_send))
        except Exception as error:
            log.warning("could not send %d work messages: %s", len(to_send), error)
            refused = {token for _, token in to_send}
        for message, token in to_send:
            if token in refused:
                self._release(message.tenant_id, token)
                report.failed.append(message.tenant_id)
            else:
                report.sent += 1
        return report

    def _release(self, tenant_id: str, token: str) -> None:
        try:
            self.items.release_pending(tenant_id, token)
        except Exception as error:  # left pending, it is taken over once stale: the next trigger sends again
            log.warning("could not release pending work of %s: %s", tenant_id, error, extra={"tenant_id": tenant_id})

    def requeue_after(self, tenant_id: str, scope: Iterable[str], delay_s: int) -> bool:
        """Ask for another look at `scope` after `delay_s` (at most 900 s). True when this is now the tenant's
        live requeue (a delayed message was sent); False when an earlier live one carries the scope."""
        if self.delays is None:
            raise WorkQueueError("no delay queue is configured (STACKHERD_REQUEUE_QUEUE_URL)")
        delay = min(MAX_DELAY_S, max(0, int(delay_s)))
        now = self.clock()
        ids = frozenset(scope)
        token = self.token()
        if not self.items.record_requeue(tenant_id, ids, now + timedelta(seconds=delay), token, now):
            return False
        try:
            self.delays.send_delayed(WorkMessage.of(tenant_id, ids, Trigger.REQUEUE), token, delay)
        except Exception:
            try:
                self.items.release_requeue(tenant_id, token)
            except Exception as error:
                log.warning("could not release a requeue of %s: %s", tenant_id, error, extra={"tenant_id": tenant_id})
            raise
        return True

    def requeue(self, tenant_id: str, delays: Sequence[tuple[str, int]]) -> int:
        """The engine's requeue port: one pass's waits become ONE requeue of their servers, at the earliest delay
        (a server looked at early is simply asked for again by that pass). Returns 1 when recorded."""
        if not delays:
            return 0
        self.requeue_after(tenant_id, {server for server, _ in delays}, min(delay for _, delay in delays))
        return 1

    def due_requeue(self, tenant_id: str, token: str, scope: Iterable[str]) -> bool:
        """A delayed requeue arrived: forward it onto the work queue when it is still the tenant's live one.
        False for a superseded one (an earlier requeue replaced it): it is dropped."""
        live = self.items.claim_requeue(tenant_id, token)
        if live is None:
            return False
        wanted = live | frozenset(scope)
        try:
            self.enqueue(tenant_id, wanted, Trigger.REQUEUE)
        except WorkQueueError:
            # Put it back under the same token, due now, so the message's retry finds it live again.
            now = self.clock()
            self.items.record_requeue(tenant_id, wanted, now, token, now)
            raise
        return True
