"""DynamoDB stream handler: INSERT, MODIFY and REMOVE of desired records trigger a reconcile.

With a work queue configured (on AWS, always) the handler only produces: one scoped message per tenant of the
batch, coalesced on the tenant's work item, and the tenant worker runs the pass. Without one (a local tool's
runtime) it reconciles in-process as described below.

The batch goes through Powertools' `BatchProcessor`, which returns `{"batchItemFailures": [...]}`.
Records are decoded with Powertools' DynamoDB stream record classes (`DynamoDBRecord`, whose images are
deserialised to Python values) and grouped by tenant first, so each tenant is reconciled (and its role assumed)
once per batch, for only the servers that changed. A change that touched only `status` (the
reconciler's own write) triggers nothing. A record that cannot be decoded, names an unknown tenant
or carries an invalid config is logged, marked Failed where a record exists, and acknowledged; only
transient failures are reported back for retry. No input crashes the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
    StreamRecord,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.observability import event_records, logger, metrics, tracer

if TYPE_CHECKING:
    from reconciler.work import CoalescingWorkQueue

#: Attributes only the reconciler writes; a change limited to these is not a desired-state change.
STATUS_ATTRIBUTES = frozenset({"status"})


class TransientStreamError(Exception):
    """Raised for a record whose reconcile failed transiently, so the batch reports it for retry."""


@dataclass(frozen=True)
class ChangedKey:
    tenant_id: str
    gameserver_id: str
    event: str


def is_status_only(old_image: object, new_image: object) -> bool:
    """True when a MODIFY changed nothing but the reconciler's status (so it must not re-trigger). Images
    that are missing or not maps cannot show that: the change is reconciled (the engine reads the record)."""
    if not isinstance(old_image, dict) or not isinstance(new_image, dict):
        return False

    def desired(image: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in image.items() if k not in STATUS_ATTRIBUTES}

    return desired(old_image) == desired(new_image)


#: What Powertools' deserialiser raises for a value that is not a DynamoDB attribute value: not a map
#: (AttributeError), an empty one (IndexError), an unknown type (TypeError), a bad number (ArithmeticError).
_UNDECODABLE = (AttributeError, IndexError, KeyError, TypeError, ValueError, ArithmeticError)


def _decoded_images(record: StreamRecord) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Both images as Python values, or None when either is missing or cannot be decoded (a MODIFY is then
    reconciled: the engine reads the record itself)."""
    if not isinstance(record.get("OldImage"), dict) or not isinstance(record.get("NewImage"), dict):
        return None  # a stream without images (KEYS_ONLY), or images that are not maps
    try:
        return record.old_image, record.new_image
    except _UNDECODABLE:
        return None


def changed_key(raw: dict[str, Any]) -> ChangedKey | None:
    """The key a stream record names, or None when it needs no reconcile (a status-only change).

    Raises ValueError with a clear message when the record cannot be decoded.
    """
    record = DynamoDBRecord(raw)
    try:
        event = record.event_name
    except KeyError:
        event = None
    if event is None:
        raise ValueError(f"unsupported eventName {raw.get('eventName')!r}: expected INSERT, MODIFY or REMOVE")
    body = record.dynamodb
    if body is None or not isinstance(raw.get("dynamodb"), dict):
        raise ValueError("record has no 'dynamodb' section")
    expected = "record keys must be {'tenant_id': {'S': ...}, 'gameserver_id': {'S': ...}}"
    if not isinstance(body.get("Keys"), dict):
        raise ValueError(expected)
    try:
        keys = body.keys
    except _UNDECODABLE:
        raise ValueError(expected) from None
    tenant_id, gameserver_id = keys.get("tenant_id"), keys.get("gameserver_id")
    if not isinstance(tenant_id, str) or not isinstance(gameserver_id, str):
        raise ValueError(expected)
    if event is DynamoDBRecordEventName.MODIFY:
        images = _decoded_images(body)
        if images is not None and is_status_only(*images):
            return None
    return ChangedKey(tenant_id, gameserver_id, event.name)


def _identity(raw: dict[str, Any]) -> str:
    body = raw.get("dynamodb")
    sequence = body.get("SequenceNumber") if isinstance(body, dict) else None
    return str(sequence or raw.get("eventID") or id(raw))


class StreamBatch:
    """Decodes a batch, reconciles each tenant once, and answers per record."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.keys: dict[str, ChangedKey | None] = {}
        self.invalid: dict[str, str] = {}
        self.outcome: dict[tuple[str, str], str | None] = {}  # key -> transient error, if any
        for raw in records:
            ident = _identity(raw)
            try:
                self.keys[ident] = changed_key(raw)
            except ValueError as error:
                self.invalid[ident] = str(error)

    def reconcile(self, concurrency: int = 8) -> None:
        """Reconcile each tenant named in the batch once, scoped to its changed servers, tenants in parallel."""
        from concurrent.futures import ThreadPoolExecutor

        from handlers.runtime import runtime
        from reconciler.engine import Outcome

        rt = runtime()
        by_tenant: dict[str, set[str]] = {}
        for key in self.keys.values():
            if key is not None:
                by_tenant.setdefault(key.tenant_id, set()).add(key.gameserver_id)

        def one(item: tuple[str, set[str]]) -> None:
            tenant_id, servers = item
            result = rt.engine.reconcile_tenant(tenant_id, scope=servers)
            transient = result.error if (result.error and result.retryable) else None
            if result.error and not result.retryable:
                logger.warning(
                    "tenant reconcile failed permanently; records acknowledged",
                    extra={"tenant_id": tenant_id, "error": result.error},
                )
                from handlers.runtime import mark_servers_failed

                mark_servers_failed(tenant_id, servers, result.error, result.error_code or "Failed")
            failed = {
                r.action.gameserver_id: r.detail for r in result.results if r.outcome is Outcome.FAILED and r.retryable
            }
            for server in servers:
                self.outcome[(tenant_id, server)] = transient or failed.get(server)
            if result.stuck:
                metrics.add_metric(name="StuckStacks", unit=MetricUnit.Count, value=result.stuck)

        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(by_tenant) or 1))) as pool:
            list(pool.map(one, sorted(by_tenant.items())))
        metrics.add_metric(name="StreamTenantReconciles", unit=MetricUnit.Count, value=len(by_tenant))

    def enqueue(self, queue: CoalescingWorkQueue) -> None:
        """Put one scoped message per tenant on the work queue (coalesced with any pending one). Only a tenant
        whose trigger could not be recorded has its records reported for retry; the passes' own failures are
        the worker's, so one tenant's throttling never replays another tenant's records."""
        by_tenant: dict[str, set[str]] = {}
        for key in self.keys.values():
            if key is not None:
                by_tenant.setdefault(key.tenant_id, set()).add(key.gameserver_id)
        report = queue.enqueue_many(sorted(by_tenant.items()), "stream")
        for tenant_id in report.failed:
            for server in by_tenant[tenant_id]:
                self.outcome[(tenant_id, server)] = "could not be put on the work queue"
        metrics.add_metric(name="WorkMessagesSent", unit=MetricUnit.Count, value=report.sent)
        metrics.add_metric(name="WorkMessagesCoalesced", unit=MetricUnit.Count, value=report.coalesced)

    def handle(self, record: DynamoDBRecord) -> None:
        ident = _identity(record.raw_event)
        if ident in self.invalid:
            logger.error("stream record cannot be decoded; acknowledged", extra={"error": self.invalid[ident]})
            metrics.add_metric(name="StreamRecordsRejected", unit=MetricUnit.Count, value=1)
            return
        key = self.keys.get(ident)
        if key is None:
            return  # status-only change
        error = self.outcome.get((key.tenant_id, key.gameserver_id))
        if error:
            raise TransientStreamError(f"{key.tenant_id}/{key.gameserver_id}: {error}")


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    records = event_records(event)
    metrics.add_metric(name="StreamRecords", unit=MetricUnit.Count, value=len(records))
    if not records:
        return {"batchItemFailures": []}
    batch = StreamBatch(records)
    try:
        from handlers.runtime import runtime

        rt = runtime()
        if rt.work_queue is not None:
            batch.enqueue(rt.work_queue)
        else:  # no work queue (a local tool's runtime): the pass runs here
            batch.reconcile(concurrency=rt.settings.sweep_concurrency)
    except Exception as error:  # e.g. the tables are unreachable: retry every record, lose none
        logger.exception("batch could not be reconciled; reporting every record for retry")
        for key in batch.keys.values():
            if key is not None:
                batch.outcome.setdefault((key.tenant_id, key.gameserver_id), repr(error))
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event={"Records": records}, record_handler=batch.handle, processor=processor, context=context
    )
