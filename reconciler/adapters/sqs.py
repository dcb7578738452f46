"""`Requeuer` on SQS: "look at these servers again in N seconds" as messages with `DelaySeconds`, which the
requeue handler receives. Servers of one tenant due at the same delay share a message."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("stackherd.requeue")

#: SQS's largest per-message delay; a longer wait is left to the sweep.
MAX_DELAY_S = 900
#: SendMessageBatch takes at most ten entries.
BATCH = 10


class SqsRequeuer:
    def __init__(self, queue_url: str, *, region: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:  # created on first use: most passes requeue nothing
            import boto3

            from reconciler.adapters.aws import CLIENT_CONFIG

            self._client = boto3.client("sqs", region_name=self.region, config=CLIENT_CONFIG)
        return self._client

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
