"""Process-wide wiring: settings from the environment, and the store, connector, catalog and engine
built once per process (Lambda reuses them across invocations; so do the CLI and the demo).

Heavy imports (boto3, PynamoDB) happen when `runtime()` is first called, not when a handler module
is imported, which keeps cold starts short.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.settings import Settings, SettingsError

_log = logging.getLogger("stackherd.runtime")

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
        delete_retry_limit=settings.delete_retry_limit,
        requeue_after_s=settings.requeue_after_s,
    )


@dataclass
class Runtime:
    """The process's collaborators. Tests and the benchmark install one built on the fake cloud."""

    settings: Settings
    store: DesiredStore
    connector: AwsConnector | Any
    templates: S3TemplateCatalog | Any
    engine: Engine
    sqs: Any = None

    @property
    def writes(self) -> DesiredWrites:
        """The one writer of desired state, over this runtime's store."""
        from reconciler.desired import DesiredWrites

        return DesiredWrites(self.store)

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
    from reconciler.adapters.aws import AwsConnector, s3_client
    from reconciler.adapters.dynamo import DynamoStore
    from reconciler.adapters.s3 import S3TemplateCatalog
    from reconciler.engine import Engine

    configure(settings)
    session = boto3.Session(region_name=settings.region)
    store = DynamoStore()
    limiter = None
    if settings.account_calls_per_second:
        from reconciler.pacing import AccountRateLimiter

        limiter = AccountRateLimiter(settings.account_calls_per_second)
    connector = AwsConnector(session, limiter=limiter)
    templates = S3TemplateCatalog(s3_client(session), settings.template_bucket)
    engine = Engine(store, connector, templates, settings=plan_settings(settings))
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
