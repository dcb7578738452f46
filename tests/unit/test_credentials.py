"""The assumed-role credentials cache: one AssumeRole per (role, external id) per credential lifetime."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from freezegun import freeze_time

from reconciler.credentials import Credentials, CredentialsCache

ROLE_A = "arn:aws:iam::111111111111:role/StackherdExecution"
ROLE_B = "arn:aws:iam::222222222222:role/StackherdExecution"
START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
LIFETIME = timedelta(hours=1)


class FakeSTS:
    """Stands in for sts:AssumeRole: records each call and hands out numbered credentials."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def assume(self, role_arn: str, external_id: str, session_name: str) -> Credentials:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.calls.append((role_arn, external_id, session_name))
            n = len(self.calls)
        return Credentials(f"AKIA{n}", f"secret-{n}", f"token-{n}", datetime.now(UTC) + LIFETIME)


def test_one_assume_per_key_while_valid() -> None:
    sts = FakeSTS()
    cache = CredentialsCache(sts.assume)
    with freeze_time(START) as clock:
        first = cache.get(ROLE_A, "ext-a", "stackherd-acme")
        clock.tick(timedelta(minutes=30))
        second = cache.get(ROLE_A, "ext-a", "stackherd-acme")

    assert second is first
    assert len(sts.calls) == 1
    assert cache.assume_calls == 1


def test_refreshes_five_minutes_before_expiry() -> None:
    sts = FakeSTS()
    cache = CredentialsCache(sts.assume)
    with freeze_time(START) as clock:
        first = cache.get(ROLE_A, "ext-a", "s")
        clock.move_to(START + LIFETIME - timedelta(minutes=5, seconds=1))
        still = cache.get(ROLE_A, "ext-a", "s")
        clock.move_to(START + LIFETIME - timedelta(minutes=5))
        fresh = cache.get(ROLE_A, "ext-a", "s")

    assert still is first
    assert fresh.access_key_id == "AKIA2"
    assert fresh.expiration == START + LIFETIME - timedelta(minutes=5) + LIFETIME
    assert len(sts.calls) == 2


def test_expired_credentials_are_never_returned() -> None:
    sts = FakeSTS()
    cache = CredentialsCache(sts.assume)
    with freeze_time(START) as clock:
        cache.get(ROLE_A, "ext-a", "s")
        clock.move_to(START + 2 * LIFETIME)
        later = cache.get(ROLE_A, "ext-a", "s")

    assert later.expiration > START + 2 * LIFETIME


def test_invalidate_forces_a_new_assume() -> None:
    sts = FakeSTS()
    cache = CredentialsCache(sts.assume)
    with freeze_time(START):
        first = cache.get(ROLE_A, "ext-a", "s")
        cache.invalidate(ROLE_A, "ext-a")
        second = cache.get(ROLE_A, "ext-a", "s")
        cache.invalidate(ROLE_B, "never-cached")  # invalidating an unknown key is harmless

    assert second.access_key_id != first.access_key_id
    assert len(sts.calls) == 2


def test_external_id_and_session_name_are_passed_through() -> None:
    sts = FakeSTS()
    cache = CredentialsCache(sts.assume)
    with freeze_time(START):
        cache.get(ROLE_A, "ext-acme-9f3", "stackherd-acme")

    assert sts.calls == [(ROLE_A, "ext-acme-9f3", "stackherd-acme")]


def test_keys_are_independent() -> None:
    sts = FakeSTS()
    cache = CredentialsCache(sts.assume)
    with freeze_time(START):
        a = cache.get(ROLE_A, "ext-a", "s")
        b = cache.get(ROLE_B, "ext-b", "s")
        other_external_id = cache.get(ROLE_A, "ext-z", "s")
        cache.invalidate(ROLE_B, "ext-b")
        a_again = cache.get(ROLE_A, "ext-a", "s")

    assert len({a.access_key_id, b.access_key_id, other_external_id.access_key_id}) == 3
    assert a_again is a
    assert [call[:2] for call in sts.calls] == [(ROLE_A, "ext-a"), (ROLE_B, "ext-b"), (ROLE_A, "ext-z")]


def test_concurrent_gets_assume_once() -> None:
    sts = FakeSTS(delay_s=0.05)  # slow enough that every thread arrives while the first assume runs
    cache = CredentialsCache(sts.assume)
    start = threading.Barrier(8)
    results: list[Credentials] = []
    results_lock = threading.Lock()

    def worker() -> None:
        start.wait()
        creds = cache.get(ROLE_A, "ext-a", "s")
        with results_lock:
            results.append(creds)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 8
    assert len(sts.calls) == 1
    assert all(r is results[0] for r in results)
