"""The bounded caches of a warm process: assumed-role credentials and CloudFormation clients, least recently
used evicted first, so a worker that serves any number of tenants stays flat in memory.

The clients are real boto3 clients (making one sends no request); AssumeRole is the recording fake of
`test_credentials`, so nothing here reaches the network.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest
from freezegun import freeze_time

from models.records import Tenant
from models.settings import Settings
from reconciler.adapters.aws import AwsConnector
from reconciler.credentials import DEFAULT_CACHE_SIZE, CredentialsCache
from tests.unit.test_credentials import FakeSTS

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def tenant(n: int) -> Tenant:
    account = f"{100000000000 + n:012d}"
    return Tenant(
        tenant_id=f"t{n}",
        account_id=account,
        regions=("us-east-1",),
        role_arn=f"arn:aws:iam::{account}:role/StackherdExecution",
        external_id=f"ext-{n}",
    )


def connector(size: int, sts: FakeSTS | None = None) -> tuple[AwsConnector, FakeSTS]:
    sts = sts or FakeSTS()
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="AKIA", aws_secret_access_key="secret")
    return AwsConnector(session, cache=CredentialsCache(sts.assume, max_size=size), cache_size=size), sts


# --- credentials ---------------------------------------------------------------------------------------


def test_credentials_beyond_the_size_evict_the_least_recently_used() -> None:
    sts = FakeSTS()
    cache = CredentialsCache(sts.assume, max_size=2)
    with freeze_time(START):
        cache.get("role-a", "x", "s")
        cache.get("role-b", "x", "s")
        cache.get("role-c", "x", "s")  # evicts a, the least recently used
        cache.get("role-b", "x", "s")
        cache.get("role-c", "x", "s")
        cache.get("role-a", "x", "s")  # assumed again; evicts b

    assert [call[0] for call in sts.calls] == ["role-a", "role-b", "role-c", "role-a"]
    assert (cache.size, cache.evictions) == (2, 2)


def test_credentials_used_again_stay_cached_while_others_come_and_go() -> None:
    sts = FakeSTS()
    cache = CredentialsCache(sts.assume, max_size=2)
    with freeze_time(START):
        first = cache.get("role-hot", "x", "s")
        for n in range(10):
            cache.get(f"role-{n}", "x", "s")
            assert cache.get("role-hot", "x", "s") is first  # used after every newcomer: never the oldest

    assert [call[0] for call in sts.calls].count("role-hot") == 1
    assert sts.calls[0][0] == "role-hot"
    assert cache.size == 2


def test_a_credentials_cache_of_no_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_size must be at least 1"):
        CredentialsCache(FakeSTS().assume, max_size=0)


def test_concurrent_gets_of_many_keys_assume_once_each_and_stay_bounded() -> None:
    sts = FakeSTS(delay_s=0.01)
    cache = CredentialsCache(sts.assume, max_size=8)
    start = threading.Barrier(16)

    def ask(n: int) -> str:
        if n < 16:
            start.wait()
        return cache.get(f"role-{n % 8}", "x", "s").access_key_id

    with ThreadPoolExecutor(max_workers=16) as pool:
        keys = list(pool.map(ask, range(64)))

    assert len(sts.calls) == 8  # eight keys, eight AssumeRole, however many threads asked
    assert len(set(keys)) == 8
    assert cache.size == 8


# --- CloudFormation clients ------------------------------------------------------------------------------


def test_clients_beyond_the_size_evict_the_least_recently_used_tenant_region() -> None:
    aws, _ = connector(2)
    a, b, c = tenant(1), tenant(2), tenant(3)

    first_a = aws.gateway(a, "us-east-1").client
    aws.gateway(b, "us-east-1")
    aws.gateway(c, "us-east-1")  # evicts a's client

    assert aws.cached_clients == [(b.account_id, "us-east-1"), (c.account_id, "us-east-1")]
    assert aws.client_evictions == 1
    assert aws.gateway(a, "us-east-1").client is not first_a  # a new client for a, b's evicted in turn
    assert aws.cached_clients == [(c.account_id, "us-east-1"), (a.account_id, "us-east-1")]


def test_a_client_used_again_stays_cached() -> None:
    aws, sts = connector(2)
    hot = tenant(0)
    client = aws.gateway(hot, "us-east-1").client
    for n in range(1, 8):
        aws.gateway(tenant(n), "us-east-1")
        assert aws.gateway(hot, "us-east-1").client is client

    assert len(aws.cached_clients) == 2
    assert [call[0] for call in sts.calls].count(hot.role_arn) == 1


def test_each_region_of_a_tenant_is_its_own_entry() -> None:
    aws, sts = connector(2)
    t = tenant(1)

    aws.gateway(t, "us-east-1")
    aws.gateway(t, "eu-west-1")
    aws.gateway(tenant(2), "us-east-1")

    assert aws.cached_clients == [(t.account_id, "eu-west-1"), (tenant(2).account_id, "us-east-1")]
    assert len(sts.calls) == 2  # one AssumeRole per tenant, whatever the regions


def test_the_cache_size_setting_bounds_both_caches() -> None:
    settings = Settings.from_env({"STACKHERD_CLIENT_CACHE_SIZE": "3"})
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="AKIA", aws_secret_access_key="secret")
    aws = AwsConnector(session, cache_size=settings.client_cache_size)
    sts = FakeSTS()
    aws.cache._assume = sts.assume  # the connector's own cache, with a fake STS behind it

    for n in range(10):
        aws.gateway(tenant(n), "us-east-1")

    assert (aws.cache_size, aws.cache.max_size) == (3, 3)
    assert len(aws.cached_clients) == 3
    assert aws.cache.size == 3
    assert Settings.from_env({}).client_cache_size == DEFAULT_CACHE_SIZE == AwsConnector(session).cache_size


def test_a_client_cache_of_no_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cache_size must be at least 1"):
        AwsConnector(boto3.Session(region_name="us-east-1"), cache_size=0)


def test_threads_asking_for_one_tenant_region_at_once_share_one_client() -> None:
    aws, sts = connector(4, FakeSTS(delay_s=0.02))
    start = threading.Barrier(32)

    def ask(n: int) -> int:
        start.wait()
        return id(aws.gateway(tenant(n % 2), "us-east-1").client)

    with ThreadPoolExecutor(max_workers=32) as pool:
        clients = list(pool.map(ask, range(32)))

    assert len(set(clients)) == 2
    assert len(sts.calls) == 2
    assert len(aws.cached_clients) == 2
