"""A cache of assumed-role credentials: one AssumeRole per (role ARN, external id) per credential lifetime.

Refreshes a few minutes before expiry, is invalidated on expired-token or access-denied, and is shared
by every thread of a process (the pattern of Cloud Custodian's `c7n/credentials.py`). Bounded: it keeps the
`max_size` keys used most recently, so a warm worker that serves any number of tenants stays flat in memory.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
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


#: The size of the credential and client caches unless told otherwise (`STACKHERD_CLIENT_CACHE_SIZE`).
DEFAULT_CACHE_SIZE = 256

#: Locks that serialize the AssumeRole of one key, shared by keys that hash alike: a fixed number, so that the
#: locks stay bounded with the entries, and enough that unrelated tenants rarely wait for each other.
_LOCK_STRIPES = 256


class CredentialsCache:
    def __init__(
        self,
        assume: AssumeFn,
        *,
        clock: Callable[[], datetime] = utcnow,
        refresh_margin: timedelta = timedelta(minutes=5),
        max_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        self._assume = assume
        self._clock = clock
        self._margin = refresh_margin
        self.max_size = max_size
        self._entries: OrderedDict[tuple[str, str], Credentials] = OrderedDict()  # least recently used first
        self._stripes = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))
        self._guard = threading.Lock()
        self.assume_calls = 0
        self.evictions = 0

    def get(self, role_arn: str, external_id: str, session_name: str) -> Credentials:
        key = (role_arn, external_id)
        cached = self._valid(key)
        if cached is not None:
            return cached
        with self._stripes[zlib.crc32(f"{role_arn}\n{external_id}".encode()) % _LOCK_STRIPES]:
            # One AssumeRole per key even when many threads ask at once: the ones that waited find it here.
            cached = self._valid(key)
            if cached is not None:
                return cached
            fresh = self._assume(role_arn, external_id, session_name)
            with self._guard:
                self.assume_calls += 1
                self._entries[key] = fresh
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_size:
                    self._entries.popitem(last=False)
                    self.evictions += 1
            return fresh

    def _valid(self, key: tuple[str, str]) -> Credentials | None:
        """The cached credentials of `key` while they are good for more than the margin (now most recently used)."""
        with self._guard:
            cached = self._entries.get(key)
            if cached is None or cached.expiration - self._margin <= self._clock():
                return None
            self._entries.move_to_end(key)
            return cached

    def invalidate(self, role_arn: str, external_id: str) -> None:
        with self._guard:
            self._entries.pop((role_arn, external_id), None)

    @property
    def size(self) -> int:
        """How many keys are cached now."""
        return len(self._entries)
