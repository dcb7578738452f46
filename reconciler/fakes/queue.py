"""An in-memory `Requeuer`: records what the engine asked to look at again, or fails when told to."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field


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
