"""SQS senders: the work queue (FIFO, one message group per tenant) and the delay queue (standard, per-message
`DelaySeconds`) the requeue handler receives from. `SqsRequeuer` is the older direct requeue: servers of one
tenant due at the same delay share a message, with no coalescing across passes."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from models.work import WorkMessage

log = logging.getLogger("stackherd.requeue")

#: SQS's largest per-message delay; a longer wait is left to the sweep.
MAX_DELAY_S = 900
#: SendMessageBatch takes at most ten entries.
BATCH = 10


class _Client:
    """A queue URL and its SQS client, created on first use (most passes send nothing)."""

    def __init__(self, queue_url: str, *, region: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            from reconciler.adapters.aws import CLIENT_CONFIG

            self._client = boto3.client("sqs", region_name=self.region, config=CLIENT_CONFIG)
        return self._client


class SqsRequeuer(_Client):
    def requeue(self, tenant_id: str, delays: Sequence[tuple[str, int]]) -> int:
        """Send one message per distinct delay; returns how many messages SQS accepted. A batch SQS refuses
        is logged and skipped (the sweep looks at every server anyway), never raised."""
        if not delays:
            return 0
        by_delay: dict[int, list[str]] = {}
        for server_id, delay in delays:
            by_delay.setdefault(min(MAX_DELAY_S, max(0, delay)), []).append(server_id)
        entries = [
            {
                "Id": str(index),
                "MessageBody": json.dumps({"tenant_id": tenant_id, "gameserver_ids": sorted(set(ids))}),
                "DelaySeconds": delay,
            }
            for index, (delay, ids) in enumerate(sorted(by_delay.items()))
        ]
        sent = 0
        for start in range(0, len(entries), BATCH):
            batch = entries[start : start + BATCH]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=batch)
            except (ClientError, BotoCoreError) as error:
                log.warning("could not requeue; the next sweep covers these servers", extra={"error": str(error)})
                continue
            failed = response.get("Failed", [])
            if failed:
                log.warning("some requeue messages were refused", extra={"failed": failed})
            sent += len(batch) - len(failed)
        return sent


class SqsWorkSender(_Client):
    """`WorkSender` on the SQS FIFO work queue: `MessageGroupId` = tenant id, so one tenant's messages are never
    in two workers at once; `MessageDeduplicationId` = the pending token, so a send retried after a lost answer
    is one message; ten entries per SendMessageBatch."""

    def send(self, messages: Sequence[tuple[WorkMessage, str]]) -> list[str]:
        refused: list[str] = []
        for start in range(0, len(messages), BATCH):
            chunk = messages[start : start + BATCH]
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": message.body(),
                    "MessageGroupId": message.tenant_id,
                    "MessageDeduplicationId": token,
                }
                for index, (message, token) in enumerate(chunk)
            ]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                log.warning("could not send work messages", extra={"error": str(error), "count": len(chunk)})
                refused.extend(token for _, token in chunk)
                continue
            for failure in response.get("Failed", []):
                log.warning("a work message was refused", extra={"failure": failure})
                refused.append(chunk[int(failure["Id"])][1])
        return refused


class SqsDelaySender(_Client):
    """`DelaySender` on the standard requeue queue: `DelaySeconds` per message, the requeue's token as the
    message attribute `token` (the requeue handler drops a message whose token is no longer the live one)."""

    def send_delayed(self, message: WorkMessage, token: str, delay_s: int) -> None:
        try:
            self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=message.body(),
                DelaySeconds=min(MAX_DELAY_S, max(0, delay_s)),
                MessageAttributes={"token": {"DataType": "String", "StringValue": token}},
            )
        except (ClientError, BotoCoreError) as error:
            raise ConnectionError(f"could not send a requeue of tenant {message.tenant_id}: {error}") from error
