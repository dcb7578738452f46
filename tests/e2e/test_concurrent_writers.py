"""The quota and the one-tenant-per-account rule under concurrent writers in separate processes (as separate
Lambda instances would be) against one DynamoDB: a moto server on loopback, its DynamoDB operations taken
one at a time as DynamoDB's are (see tests/moto_atomic.py), so the limit holds only through stackherd's
conditions and transactions."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.moto_server import moto_server

pytestmark = pytest.mark.integration

FREE = {"tenant_id": "free", "account_id": "333333333333", "tier": "free"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[dict[str, str]]:
    # Serialised DynamoDB requests: moto's transactions are not thread-safe (see tests/moto_atomic.py).
    with moto_server("tests.moto_atomic") as url:
        env = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        yield env


@pytest.fixture
def tables(endpoint: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    import urllib.request

    from models import tables

    urllib.request.urlopen(urllib.request.Request(f"{endpoint['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST"))
    for key, value in endpoint.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    tables.configure()
    tables.create_tables()
    yield endpoint
    monkeypatch.undo()
    tables.configure()


def _writer(env: dict[str, str], barrier: Any, results: Any, job: tuple[str, int]) -> None:
    """One process: its own PynamoDB connection to the shared table, started with the others."""
    os.environ.update(env)
    from models.config import TenantSpec
    from models.tables import configure
    from reconciler.adapters.dynamo import DynamoStore
    from reconciler.desired import DesiredWrites, trail

    configure()
    writes = DesiredWrites(DynamoStore())
    kind, index = job
    tenant = writes.store.get_tenant("free")
    barrier.wait(timeout=60)
    try:
        if kind == "server":
            assert tenant is not None
            writes.put_server(tenant, f"s{index}", "ana", {}, trail=trail("ana", "test"))
        else:
            spec = TenantSpec(tenant_id=f"t{index}", account_id="444444444444")
            writes.register_tenant(spec, trail=trail("root", "test"))
    except Exception as error:
        results.put((index, type(error).__name__))
    else:
        results.put((index, None))


def _run(env: dict[str, str], kind: str, n: int) -> dict[int, str | None]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(n)
    results = context.Queue()
    processes = [context.Process(target=_writer, args=(env, barrier, results, (kind, i))) for i in range(n)]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    return outcomes


def test_ten_processes_creating_on_the_free_tier_make_exactly_three(tables: dict[str, str]) -> None:
    from models.config import TenantSpec
    from reconciler.adapters.dynamo import DynamoStore
    from reconciler.desired import DesiredWrites, trail

    store = DynamoStore()
    DesiredWrites(store).register_tenant(TenantSpec.model_validate(FREE), trail=trail("root", "test"))

    outcomes = _run(tables, "server", 10)

    assert sorted(outcomes.values(), key=str) == [None] * 3 + ["QuotaExceededError"] * 7, outcomes
    assert len(store.read_servers("free").servers) == 3
    assert store.live_server_count("free") == 3


def test_eight_processes_registering_one_account_make_exactly_one_tenant(tables: dict[str, str]) -> None:
    from reconciler.adapters.dynamo import DynamoStore

    outcomes = _run(tables, "tenant", 8)

    winners = [index for index, error in outcomes.items() if error is None]
    assert len(winners) == 1, outcomes
    assert set(outcomes.values()) <= {None, "AccountTakenError"}, outcomes
    listed = [t.tenant_id for t in DynamoStore().list_tenants() if t.account_id == "444444444444"]
    assert listed == [f"t{winners[0]}"]
