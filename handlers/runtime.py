"""Process-wide wiring: settings from the environment, and the store, connector, catalog and engine
built once per process (Lambda reuses them across invocations; so do the CLI and the demo).

Heavy imports (boto3, PynamoDB) happen when `runtime()` is first called, not when a handler module
is imported, which keeps cold starts short.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Logs through the engine's logger, which the handlers give their JSON shape.
_log = logging.getLogger("stackherd.engine")

if TYPE_CHECKING:
    from reconciler.adapters.aws import AwsConnector
    from reconciler.adapters.dynamo import DynamoStore
    from reconciler.adapters.s3 import S3TemplateCatalog
    from reconciler.engine import Engine


class SettingsError(ValueError):
    """An environment variable holds a value stackherd cannot use."""


class Settings(BaseModel):
    """Configuration, read from `STACKHERD_*` and the standard AWS variables."""

    model_config = ConfigDict(frozen=True)

    tenants_table: str = "stackherd-tenants"
    gameservers_table: str = "stackherd-gameservers"
    activity_table: str = "stackherd-activity"
    template_bucket: str = "stackherd-templates"
    installation: str = Field(default="stackherd", pattern=r"^[a-z][a-z0-9]{0,19}$")
    region: str = "us-east-1"
    requeue_queue_url: str | None = None
    sweep_concurrency: int = Field(default=8, ge=1, le=64)
    max_deletions: int = Field(default=10, ge=0)
    delete_retry_limit: int = Field(default=3, ge=1)
    requeue_after_s: int = Field(default=30, ge=1, le=900)
    account_calls_per_second: float | None = Field(default=None, gt=0, le=1000)
    failure_budget: int = Field(default=3, ge=1, le=100)
    failure_backoff_s: int = Field(default=300, ge=1, le=86400)
    stuck_after_s: int = Field(default=3600, ge=60)
    review_grace_s: int = Field(default=900, ge=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        fields = {
            "tenants_table": "STACKHERD_TENANTS_TABLE",
            "gameservers_table": "STACKHERD_GAMESERVERS_TABLE",
            "activity_table": "STACKHERD_ACTIVITY_TABLE",
            "template_bucket": "STACKHERD_TEMPLATE_BUCKET",
            "installation": "STACKHERD_INSTALLATION",
            "requeue_queue_url": "STACKHERD_REQUEUE_QUEUE_URL",
            "sweep_concurrency": "STACKHERD_SWEEP_CONCURRENCY",
            "max_deletions": "STACKHERD_MAX_DELETIONS",
            "delete_retry_limit": "STACKHERD_DELETE_RETRY_LIMIT",
            "requeue_after_s": "STACKHERD_REQUEUE_AFTER_SECONDS",
            "account_calls_per_second": "STACKHERD_ACCOUNT_CALLS_PER_SECOND",
            "failure_budget": "STACKHERD_FAILURE_BUDGET",
            "failure_backoff_s": "STACKHERD_FAILURE_BACKOFF_SECONDS",
            "stuck_after_s": "STACKHERD_STUCK_AFTER_SECONDS",
            "review_grace_s": "STACKHERD_REVIEW_GRACE_SECONDS",
        }
        values: dict[str, Any] = {name: env[var] for name, var in fields.items() if env.get(var)}
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if region:
            values["region"] = region
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"{fields.get(str(e['loc'][0]), str(e['loc'][0]))}: {e['msg']}" for e in error.errors()
            )
            raise SettingsError(f"invalid configuration in the environment: {problems}") from None


@dataclass
class Runtime:
    """The process's collaborators. Tests and the benchmark install one built on the fake cloud."""

    settings: Settings
    store: DynamoStore | Any
    connector: AwsConnector | Any
    templates: S3TemplateCatalog | Any
    engine: Engine
    sqs: Any = None

    def requeue(self, tenant_id: str, delays: list[tuple[str, int]]) -> int:
        """Ask to look at these servers again after a delay (SQS DelaySeconds); the sweep is the backstop, so
        a queue that cannot be reached is logged, never raised. Returns how many messages were accepted."""
        url = self.settings.requeue_queue_url
        if not url or not delays:
            return 0
        if self.sqs is None:
            import boto3

            from reconciler.adapters.aws import CLIENT_CONFIG

            self.sqs = boto3.client("sqs", region_name=self.settings.region, config=CLIENT_CONFIG)
        by_delay: dict[int, list[str]] = {}
        for server_id, delay in delays:
            by_delay.setdefault(min(900, max(0, delay)), []).append(server_id)
        import json

        entries = [
            {
                "Id": str(index),
                "MessageBody": json.dumps({"tenant_id": tenant_id, "gameserver_ids": sorted(set(ids))}),
                "DelaySeconds": delay,
            }
            for index, (delay, ids) in enumerate(sorted(by_delay.items()))
        ]
        from botocore.exceptions import BotoCoreError, ClientError

        sent = 0
        for start in range(0, len(entries), 10):
            batch = entries[start : start + 10]
            try:
                response = self.sqs.send_message_batch(QueueUrl=url, Entries=batch)
            except (ClientError, BotoCoreError) as error:
                # Best effort: the pass has already acted, and the sweep looks at every server again.
                _log.warning("could not requeue; the next sweep covers these servers", extra={"error": str(error)})
                continue
            failed = response.get("Failed", [])
            if failed:
                _log.warning("some requeue messages were refused", extra={"failed": failed})
            sent += len(batch) - len(failed)
        return sent


def build_runtime(settings: Settings) -> Runtime:
    import boto3

    from models.tables import configure
    from reconciler.adapters.aws import CLIENT_CONFIG, AwsConnector, s3_client
    from reconciler.adapters.dynamo import DynamoStore
    from reconciler.adapters.s3 import S3TemplateCatalog
    from reconciler.engine import Engine, EngineSettings

    configure(
        tenants_table=settings.tenants_table,
        gameservers_table=settings.gameservers_table,
        activity_table=settings.activity_table,
        region=settings.region,
    )
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
    )
    engine = Engine(
        store,
        connector,
        templates,
        settings=EngineSettings(
            installation=settings.installation,
            max_deletions=settings.max_deletions,
            delete_retry_limit=settings.delete_retry_limit,
            requeue_after_s=settings.requeue_after_s,
            failure_budget=settings.failure_budget,
            failure_backoff_s=settings.failure_backoff_s,
            stuck_after_s=settings.stuck_after_s,
            review_grace_s=settings.review_grace_s,
        ),
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
