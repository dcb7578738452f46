"""Process-wide wiring: settings from the environment, and the store, connector, catalog and engine
built once per process (Lambda reuses them across invocations; so do the CLI and the demo).

Heavy imports (boto3, PynamoDB) happen when `runtime()` is first called, not when a handler module
is imported, which keeps cold starts short.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.settings import Settings, SettingsError

if TYPE_CHECKING:
    from reconciler.adapters.aws import AwsConnector
    from reconciler.adapters.s3 import S3TemplateCatalog
    from reconciler.desired import DesiredWrites
    from reconciler.engine import Engine
    from reconciler.planner import PlanSettings
    from reconciler.ports import DesiredStore
    from reconciler.work import CoalescingWorkQueue

__all__ = ["Runtime", "Settings", "SettingsError", "build_runtime", "install_runtime", "reset_runtime", "runtime"]


def plan_settings(settings: Settings) -> PlanSettings:
    """The planner's settings out of the process's settings (the engine is given these, not a copy)."""
    from reconciler.planner import PlanSettings

    return PlanSettings(
        installation=settings.installation,
        max_deletions=settings.max_deletions,
        deletion_window_s=settings.deletion_window_s,
        delete_retry_limit=settings.delete_retry_limit,
        requeue_after_s=settings.requeue_after_s,
        failure_budget=settings.failure_budget,
        failure_backoff_s=settings.failure_backoff_s,
        stuck_after_s=settings.stuck_after_s,
        review_grace_s=settings.review_grace_s,
    )


@dataclass
class Runtime:
    """The process's collaborators. Tests and the benchmark install one built on the fake cloud."""

    settings: Settings
    store: DesiredStore
    connector: AwsConnector | Any
    templates: S3TemplateCatalog | Any
    engine: Engine
    #: every trigger's way onto the work queue (None: no work queue is configured, passes run in-process)
    work_queue: CoalescingWorkQueue | None = None
    #: the Lambda client that invokes the worker for a plan (None: one is built on first use)
    worker_client: Any = None

    def plan(self, tenant_id: str, *, confirm_deletions: bool = False) -> dict[str, Any]:
        """A tenant's dry-run plan as JSON data (`{"ok": ..., **TenantResult.to_dict()}`). With a worker function
        configured it is asked by a synchronous invocation (only the worker may assume tenant roles); else the
        pass runs here."""
        if self.settings.worker_function:
            return invoke_worker_plan(
                self.settings, tenant_id, confirm_deletions=confirm_deletions, client=self.worker_client
            )
        result = self.engine.reconcile_tenant(tenant_id, dry_run=True, confirm_deletions=confirm_deletions)
        return {"ok": result.error is None, **result.to_dict()}

    @property
    def writes(self) -> DesiredWrites:
        """The one writer of desired state, over this runtime's store."""
        from reconciler.desired import DesiredWrites, WriteLimits

        settings = self.settings
        limits = WriteLimits(
            player_per_minute=settings.player_writes_per_minute,
            player_burst=settings.player_write_burst,
            tenant_per_minute=settings.tenant_writes_per_minute,
            tenant_burst=settings.tenant_write_burst,
            move_cooldown_s=settings.region_move_cooldown_s,
        )
        return DesiredWrites(
            self.store, templates=self.templates, tenant_role_name=settings.tenant_role_name, limits=limits
        )


def _caller_account(session: Any) -> Callable[[], str]:
    """The account of the process's own credentials, asked of STS once, on the first S3 call that needs it."""

    @functools.cache
    def account() -> str:
        from reconciler.adapters.aws import CLIENT_CONFIG

        return str(session.client("sts", config=CLIENT_CONFIG).get_caller_identity()["Account"])

    return account


def build_runtime(settings: Settings) -> Runtime:
    import boto3

    from models.tables import configure
    from reconciler.adapters.aws import CLIENT_CONFIG, AwsConnector, s3_client
    from reconciler.adapters.dynamo import DynamoStore
    from reconciler.adapters.s3 import S3TemplateCatalog
    from reconciler.adapters.sqs import SqsRequeuer
    from reconciler.engine import Engine

    configure(settings)
    session = boto3.Session(region_name=settings.region)
    store = DynamoStore()
    limiter = None
    if settings.account_calls_per_second:
        from reconciler.pacing import AccountRateLimiter

        limiter = AccountRateLimiter(settings.account_calls_per_second)
    connector = AwsConnector(session, limiter=limiter, cache_size=settings.client_cache_size)
    templates = S3TemplateCatalog(
        s3_client(session),
        settings.template_bucket,
        region=settings.region,
        cloudformation=session.client("cloudformation", config=CLIENT_CONFIG),
        expected_owner=settings.template_bucket_owner or _caller_account(session),
    )
    work_queue = build_work_queue(settings)
    requeuer: Any = None
    if work_queue is not None and settings.requeue_queue_url:
        requeuer = work_queue  # at most one live requeue per tenant, coalesced on its work item
    elif settings.requeue_queue_url:
        requeuer = SqsRequeuer(settings.requeue_queue_url, region=settings.region)
    engine = Engine(store, connector, templates, settings=plan_settings(settings), requeuer=requeuer)
    return Runtime(settings, store, connector, templates, engine, work_queue=work_queue)


class WorkerUnavailableError(RuntimeError):
    """The worker could not be asked for a plan (throttled, failed, misconfigured): the caller says so."""


def invoke_worker_plan(
    settings: Settings, tenant_id: str, *, confirm_deletions: bool = False, client: Any = None
) -> dict[str, Any]:
    """Ask the tenant worker for a dry-run plan: `{"action": "plan", ...}`, invoked synchronously."""
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    if client is None:
        import boto3

        from reconciler.adapters.aws import CLIENT_CONFIG

        client = boto3.client("lambda", region_name=settings.region, config=CLIENT_CONFIG)
    request = {"action": "plan", "tenant_id": tenant_id, "confirm_deletions": confirm_deletions}
    try:
        response = client.invoke(
            FunctionName=settings.worker_function, InvocationType="RequestResponse", Payload=json.dumps(request)
        )
        payload = response["Payload"].read()
    except (ClientError, BotoCoreError) as error:
        raise WorkerUnavailableError(f"the tenant worker could not be invoked for a plan: {error}") from error
    if response.get("FunctionError"):
        raise WorkerUnavailableError(f"the tenant worker failed to plan tenant {tenant_id}: {payload[:300]!r}")
    answer = json.loads(payload)
    if not isinstance(answer, dict):
        raise WorkerUnavailableError(f"the tenant worker answered a plan that is not an object: {payload[:300]!r}")
    return answer


def build_work_queue(settings: Settings) -> CoalescingWorkQueue | None:
    """The coalescing work queue on SQS and the tenants table, when `STACKHERD_WORK_QUEUE_URL` is set."""
    if not settings.work_queue_url:
        return None
    from reconciler.adapters.sqs import SqsDelaySender, SqsWorkSender
    from reconciler.adapters.work_items import DynamoWorkItems
    from reconciler.work import CoalescingWorkQueue

    delays = SqsDelaySender(settings.requeue_queue_url, region=settings.region) if settings.requeue_queue_url else None
    return CoalescingWorkQueue(
        DynamoWorkItems(), SqsWorkSender(settings.work_queue_url, region=settings.region), delays
    )


_installed: Runtime | None = None


@functools.cache
def _from_env() -> Runtime:
    return build_runtime(Settings.from_env())


def mark_servers_failed(tenant_id: str, servers: Iterable[str], message: str, code: str) -> None:
    """A tenant the pass could not serve (not registered, or failed as a whole): say so on each record of the
    scope that exists, writing only what changes."""
    from dataclasses import replace

    from models.records import Condition, Phase

    store = runtime().store
    for server_id in sorted(servers):
        server = store.get_server(tenant_id, server_id)
        if server is None:
            continue
        condition = Condition("Ready", False, code, message)
        status = replace(server.status, phase=Phase.FAILED, last_error=message, conditions=(condition,))
        if status.comparable() != server.status.comparable():
            store.write_status(server, status)


def runtime() -> Runtime:
    """The process's runtime: an installed one, or one built on first use from the environment."""
    return _installed if _installed is not None else _from_env()


def install_runtime(rt: Runtime | None) -> None:
    """Use `rt` for this process (None goes back to the environment's)."""
    global _installed
    _installed = rt


def reset_runtime() -> None:
    """Forget the process's runtime (tests and the demo change the environment between uses)."""
    install_runtime(None)
    _from_env.cache_clear()
