"""A cache of assumed-role credentials: one AssumeRole per (role ARN, external id) per credential lifetime.

Refreshes a few minutes before expiry, is invalidated on expired-token or access-denied, and is shared
by every thread of a process (the pattern of Cloud Custodian's `c7n/credentials.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime


#: assume(role_arn, external_id, session_name) -> Credentials
AssumeFn = Callable[[str, str, str], Credentials]


def utcnow() -> datetime:
    return datetime.now(UTC)


class CredentialsCache:
    def __init__(
        self,
        assume: AssumeFn,
        *,
        clock: Callable[[], datetime] = utcnow,
        refresh_margin: timedelta = timedelta(minutes=5),
    ) -> None:
        self._assume = assume
        self._clock = clock
        self._margin = refresh_margin
        self._entries: dict[tuple[str, str], Credentials] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self.assume_calls = 0

    def get(self, role_arn: str, external_id: str, session_name: str) -> Credentials:
        key = (role_arn, external_id)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one AssumeRole per key even when many threads ask at once
            cached = self._entries.get(key)
            if cached is not None and cached.expiration - self._margin > self._clock():
                return cached
            fresh = self._assume(role_arn, external_id, session_name)
            self.assume_calls += 1
            self._entries[key] = fresh
            return fresh

    def invalidate(self, role_arn: str, external_id: str) -> None:
        with self._guard:
            self._entries.pop((role_arn, external_id), None)
