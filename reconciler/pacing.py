"""Client-side pacing per tenant account: a token bucket per account, so a sweep stays under each
account's CloudFormation API rate instead of provoking throttling, and one busy account never slows
another. Optional: botocore's retries still handle the throttling that pacing does not prevent.

`AwsConnector(limiter=...)` takes a token per HTTP request (every page, every retry); `PacedConnector`
wraps any other connector (the fake cloud, whose listing is one call) and takes one per gateway call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from models.records import Tenant
from reconciler.ports import AccountConnector, StackGateway
from reconciler.stacks import ObservedStack, StackEvent, StackSpec, StackSummary, TemplateSummary

T = TypeVar("T")


class AccountRateLimiter:
    def __init__(
        self,
        rate_per_second: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = rate_per_second
        self.burst = burst if burst is not None else rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, tuple[float, float]] = {}  # account -> (tokens, at)
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self, account_id: str) -> None:
        """Take one token for the account, sleeping until one is available."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(account_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate) - 1.0
            self._buckets[account_id] = (tokens, now)
            wait = -tokens / self.rate if tokens < 0 else 0.0
            self.waited_s += wait
        if wait > 0:
            self._sleep(wait)


class PacedGateway:
    def __init__(self, inner: StackGateway, limiter: AccountRateLimiter) -> None:
        self.inner = inner
        self.limiter = limiter
        self.account_id = inner.account_id
        self.region = inner.region

    def _paced(self, fn: Callable[[], T]) -> T:
        self.limiter.acquire(self.account_id)
        return fn()

    def list_stacks(self) -> list[ObservedStack]:
        return self._paced(self.inner.list_stacks)

    def list_summaries(self) -> list[StackSummary]:
        return self._paced(self.inner.list_summaries)

    def describe(self, name: str) -> ObservedStack | None:
        return self._paced(lambda: self.inner.describe(name))

    def create(self, spec: StackSpec, token: str) -> str:
        return self._paced(lambda: self.inner.create(spec, token))

    def update(self, spec: StackSpec, token: str) -> str:
        return self._paced(lambda: self.inner.update(spec, token))

    def delete(self, name: str, token: str) -> None:
        self._paced(lambda: self.inner.delete(name, token))

    def continue_update_rollback(self, name: str, token: str) -> None:
        self._paced(lambda: self.inner.continue_update_rollback(name, token))

    def failure_cause(self, name: str) -> StackEvent | None:
        return self._paced(lambda: self.inner.failure_cause(name))

    def template_summary(self, url: str) -> TemplateSummary:
        return self._paced(lambda: self.inner.template_summary(url))


class PacedConnector:
    """Wraps any `AccountConnector` so every gateway call is paced per account."""

    def __init__(self, inner: AccountConnector, limiter: AccountRateLimiter) -> None:
        self.inner = inner
        self.limiter = limiter

    def gateway(self, tenant: Tenant, region: str) -> PacedGateway:
        return PacedGateway(self.inner.gateway(tenant, region), self.limiter)

    def invalidate(self, tenant: Tenant) -> None:
        self.inner.invalidate(tenant)
