"""Process-wide wiring: settings from the environment, and the store, connector, catalog and engine
built once per process (Lambda reuses them across invocations; so do the CLI and the demo).

Heavy imports (boto3, PynamoDB) happen when `runtime()` is first called, not when a handler module
is imported, which keeps cold starts short.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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

    @property
    def writes(self) -> DesiredWrites:
        """The one writer of desired state, over this runtime's store."""
        from reconciler.desired import DesiredWrites

        return DesiredWrites(self.store, templates=self.templates)


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
    connector = AwsConnector(session, limiter=limiter)
    templates = S3TemplateCatalog(
        s3_client(session),
        settings.template_bucket,
        region=settings.region,
        cloudformation=session.client("cloudformation", config=CLIENT_CONFIG),
        expected_owner=settings.template_bucket_owner or _caller_account(session),
    )
    engine = Engine(
        store,
        connector,
        templates,
        settings=plan_settings(settings),
        requeuer=SqsRequeuer(settings.requeue_queue_url, region=settings.region)
        if settings.requeue_queue_url
        else None,
    )
    return Runtime(settings, store, connector, templates, engine)


_installed: Runtime | None = None


@functools.cache
def _from_env() -> Runtime:
    return build_runtime(Settings.from_env())


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
