"""A fleet on the fake cloud driven the way AWS drives it: every trigger through the handlers onto the in-memory
work queue (SQS semantics on the fake clock), the tenant worker fed by a stand-in for Lambda's event source
mapping, due requeues forwarded by the requeue handler. It records every pass and catches two passes of one
tenant at once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from handlers import requeue, worker
from handlers.local.embedded import LocalContext, fake_runtime
from handlers.runtime import Runtime, install_runtime
from reconciler.engine import TenantResult
from reconciler.fakes.queue import MemoryWorkQueue, deliver
from reconciler.fakes.world import FakeWorld


class Fleet:
    def __init__(self, world: FakeWorld, *, visibility_timeout_s: int = 60, max_receives: int = 5) -> None:
        self.world = world
        self.mq = MemoryWorkQueue(world.clock, visibility_timeout_s=visibility_timeout_s, max_receives=max_receives)
        world.engine.requeuer = self.mq.queue
        self.runtime: Runtime = replace(fake_runtime(world), work_queue=self.mq.queue)
        self.context = LocalContext()
        self.passes: list[tuple[str, frozenset[str] | None]] = []
        self.overlaps: list[str] = []
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()
        original = world.engine.reconcile_tenant

        def recorded(tenant_id: str, **kwargs: Any) -> TenantResult:
            scope = kwargs.get("scope")
            with self._lock:
                if self._running[tenant_id]:
                    self.overlaps.append(tenant_id)
                self._running[tenant_id] += 1
                if not kwargs.get("dry_run"):
                    self.passes.append((tenant_id, None if scope is None else frozenset(scope)))
            try:
                return original(tenant_id, **kwargs)
            finally:
                with self._lock:
                    self._running[tenant_id] -= 1

        world.engine.reconcile_tenant = recorded  # type: ignore[method-assign]

    @contextmanager
    def installed(self) -> Iterator[Fleet]:
        install_runtime(self.runtime)
        try:
            yield self
        finally:
            install_runtime(None)

    def pump(self) -> int:
        """Deliver everything visible now (work, then due requeues) until nothing is left to hand over."""
        total = 0
        while True:
            moved = deliver(self.mq.work, worker.handler, self.context)
            moved += deliver(self.mq.delays, requeue.handler, self.context)
            if not moved:
                return total
            total += moved

    def run_for(self, seconds: int, step: int = 1) -> None:
        for _ in range(0, seconds, step):
            self.world.clock.advance(step)
            self.pump()

    def listings(self) -> int:
        """Account-wide walks of the stacks (the sweep's); a scoped pass reads its stacks by name instead."""
        return self.world.cloud.count("ListStacks")

    def passes_of(self, tenant_id: str) -> list[frozenset[str] | None]:
        return [scope for tenant, scope in self.passes if tenant == tenant_id]

    def live_requeues(self) -> dict[str, str]:
        return {t: i.requeue_token for t, i in self.mq.items.items.items() if i.requeue_token is not None}
