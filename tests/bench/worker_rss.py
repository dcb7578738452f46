"""Peak RSS of one worker process after reconciling N distinct tenant accounts with real boto3 clients.

`python -m tests.bench.worker_rss N [CACHE_SIZE]` prints one JSON object. Each tenant is its own account: an
AssumeRole and a CloudFormation client of its own, then a steady pass (DescribeStacks lists its one game
server's stack, in sync: no write). The calls go through real boto3 clients (serialized, signed, parsed) to the
stubbed endpoint of `stub_endpoint`, so nothing but the worker's own memory grows. The desired records are
made up per tenant as they are read, as a worker reads them from DynamoDB, and not kept: what stays in the
process is what the worker itself keeps (the credential and client caches). Run it in a fresh process per N
so each RSS is clean.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time

import boto3

from models.config import GameServerConfig
from models.records import Condition, DesiredServer, Phase, ServerStatus, Tenant, role_arn_for
from reconciler import naming
from reconciler.adapters.aws import AwsConnector
from reconciler.credentials import DEFAULT_CACHE_SIZE
from reconciler.engine import Engine
from reconciler.fakes.memory import MemoryStore
from reconciler.fakes.templates import StaticTemplateCatalog
from reconciler.ports import DesiredRead
from tests.bench import stub_endpoint

REGION = "us-east-1"
CONFIG = GameServerConfig()


def account_of(index: int) -> str:
    return f"{200000000000 + index:012d}"


def tenant_id_of(account: str) -> str:
    return f"w{account}"


def stack_name(account: str) -> str:
    return naming.stack_name("stackherd", tenant_id_of(account), "s00")


class MadeUpStore(MemoryStore):
    """Tenants `w<account>` with one in-sync, Ready server each, made up on every read and never kept."""

    writes = 0

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        account = tenant_id.removeprefix("w")
        return Tenant(tenant_id, account, (REGION,), role_arn_for(account, "StackherdExecution"), f"ext-{account}")

    def read_servers(self, tenant_id: str) -> DesiredRead:
        account = tenant_id.removeprefix("w")
        name = stack_name(account)
        status = ServerStatus(
            phase=Phase.READY,
            observed_generation=1,
            conditions=(Condition("Ready", True, "Available", "stack matches the desired config", "x"),),
            stack_id=f"arn:aws:cloudformation:{REGION}:{account}:stack/{name}/0",
            stack_status="CREATE_COMPLETE",
        )
        return DesiredRead((DesiredServer(tenant_id, "s00", "player", CONFIG, status=status),))

    def write_status(self, server: DesiredServer, status: ServerStatus) -> bool:
        self.writes += 1
        return True


def stacks_for(account: str) -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
    tags = {
        naming.TAG_INSTALLATION: "stackherd",
        naming.TAG_TENANT: tenant_id_of(account),
        naming.TAG_GAMESERVER: "s00",
        naming.TAG_TEMPLATE_VERSION: "v1",
    }
    return [(stack_name(account), "CREATE_COMPLETE", CONFIG.parameters(), tags)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(tenants: int, cache_size: int = DEFAULT_CACHE_SIZE) -> dict[str, object]:
    session = boto3.Session(region_name=REGION, aws_access_key_id="AKIA", aws_secret_access_key="secret")
    stub_endpoint.install(session, stacks_for)
    connector = AwsConnector(session, cache_size=cache_size)
    store = MadeUpStore()
    engine = Engine(store, connector, StaticTemplateCatalog())
    start = time.perf_counter()
    failed = in_sync = 0
    for index in range(tenants):
        result = engine.reconcile_tenant(tenant_id_of(account_of(index)))
        failed += not result.ok
        in_sync += result.ok and result.in_sync
    wall = time.perf_counter() - start
    gc.collect()
    return {
        "tenants": tenants,
        "cache_size": cache_size,
        "peak_rss_mb": round(rss_mb(), 1),
        "wall_s": round(wall, 2),
        "ms_per_tenant": round(wall / tenants * 1000, 2),
        "tenants_in_sync": in_sync,
        "tenants_failed": failed,
        "assume_role_calls": connector.cache.assume_calls,
        "cached_clients": len(connector.cached_clients),
        "status_writes": store.writes,
    }


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:]]
    json.dump(main(*arguments), sys.stdout)
    sys.stdout.write("\n")
