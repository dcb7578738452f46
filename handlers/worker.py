"""Tenant worker: the one function that reconciles (and the only one that assumes tenant roles).

It consumes the work queue (SQS FIFO, one message group per tenant, so Lambda never runs two batches of one
tenant at once, whatever triggered them). For each message it claims the tenant's pending work (the union of
every trigger's scope since the message was sent) and runs one pass over it. Failures, per message, through
Powertools' `SqsFifoPartialProcessor` with `skip_group_on_error`: a failed message fails the rest of its
tenant's messages in the batch (their order holds) and never the other tenants'.

- a retryable failure (throttling, a table unreachable) puts the claimed work back and fails the message: SQS
  hands it over again after the visibility timeout;
- a message redelivered after its worker died mid-pass (its claim is gone with it) gets a full pass, so the
  scopes coalesced into that claim are not lost;
- a message that cannot be decoded, or names a tenant that is not registered, fails every time and so ends in
  the dead-letter queue after the queue's maximum receives, while the other tenants' groups go on;
- a permanent failure of the tenant (access denied: it is quarantined) is recorded by the pass and acknowledged.

A direct invocation `{"action": "plan", "tenant_id": "...", "confirm_deletions": false}` answers the tenant's
dry-run plan (the admin API and the admin function ask it here: they cannot assume tenant roles themselves).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handlers.observability import event_records, logger, metrics, tracer
from models.config import ID_PATTERN, describe_validation_error
from models.work import WorkMessage


class RetryLaterError(Exception):
    """The pass failed in a way a later try can fix: the message is reported failed, SQS retries it."""


class PoisonMessageError(Exception):
    """The message can never be served; it is failed until it reaches the dead-letter queue."""


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(pattern="^plan$")
    tenant_id: str = Field(pattern=ID_PATTERN)
    confirm_deletions: bool = Field(default=False, strict=True)


def _receives(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count)
    except (KeyError, TypeError, ValueError):
        return 1


def serve(record: SQSRecord) -> None:
    """One message: claim the tenant's pending work and run the pass. Raises to fail the message."""
    from handlers.runtime import runtime

    try:
        message = WorkMessage.model_validate_json(record.body)
    except (ValidationError, ValueError, TypeError) as error:
        metrics.add_metric(name="WorkMessagesRejected", unit=MetricUnit.Count, value=1)
        raise PoisonMessageError(f"work message cannot be decoded: {str(error)[:300]}") from error
    rt = runtime()
    queue = rt.work_queue
    claimed = queue.items.claim(message.tenant_id) if queue is not None else None
    if claimed is None and queue is not None and _receives(record) == 1:
        # Nothing pending: an earlier pass of this tenant already claimed and served this message's scope.
        metrics.add_metric(name="WorkMessagesCoalesced", unit=MetricUnit.Count, value=1)
        logger.info("work already served by an earlier pass", extra={"tenant_id": message.tenant_id})
        return
    scope: frozenset[str] | None = None
    # A redelivered message with nothing pending lost its claim with the worker that died mid-pass (a crash, a
    # timeout): the triggers coalesced into that claim are known only as "something changed", so a full pass.
    redelivered_without_claim = claimed is None and queue is not None
    if message.scope is not None and not redelivered_without_claim and (claimed is None or claimed.scope is not None):
        scope = message.scope | (claimed.scope if claimed is not None and claimed.scope is not None else frozenset())
    token = claimed.token if claimed is not None else (record.attributes.message_deduplication_id or "")
    logger.append_keys(tenant_id=message.tenant_id, trigger=message.trigger.value)
    force = claimed is not None and claimed.force
    confirm = claimed is not None and claimed.confirm_deletions
    result = rt.engine.reconcile_tenant(message.tenant_id, scope=scope, force=force, confirm_deletions=confirm)
    metrics.add_metric(name="WorkerPasses", unit=MetricUnit.Count, value=1)
    if result.stuck:
        metrics.add_metric(name="StuckStacks", unit=MetricUnit.Count, value=result.stuck)
    if result.error:
        metrics.add_metric(name="TenantPassFailures", unit=MetricUnit.Count, value=1)
        logger.warning("tenant pass failed", extra={"error": result.error, "error_code": result.error_code})
    if result.error_code in ("AccessDenied", "TenantUnavailable") and not result.retryable:
        metrics.add_metric(name="TenantsQuarantined", unit=MetricUnit.Count, value=1)
    if result.error_code == "UnknownTenant":
        from handlers.runtime import mark_servers_failed

        mark_servers_failed(message.tenant_id, scope or frozenset(), result.error or "unknown tenant", "UnknownTenant")
        raise PoisonMessageError(result.error)
    retry: frozenset[str] | None = None
    if result.error and result.retryable:
        retry = scope
    else:
        from reconciler.engine import Outcome

        failed = {r.action.gameserver_id for r in result.results if r.outcome is Outcome.FAILED and r.retryable}
        if failed:
            retry = frozenset(s for s in failed if s)
    if retry is not None or (result.error and result.retryable):
        if queue is not None and token:
            # Put the claimed work back under this message's token: its retry claims it again.
            queue.items.mark_pending(
                message.tenant_id, retry, token, queue.clock(), force=force, confirm_deletions=confirm
            )
        raise RetryLaterError(result.error or f"actions failed and will be retried: {sorted(retry or ())}")


def plan(event: dict[str, Any]) -> dict[str, Any]:
    """The dry-run plan of one tenant, for a direct invocation; a bad request gets a clear error."""
    from handlers.runtime import runtime

    try:
        request = PlanRequest.model_validate(event)
    except ValidationError as error:
        return {"ok": False, "error": describe_validation_error(error, prefix="event")}
    result = runtime().engine.reconcile_tenant(
        request.tenant_id, dry_run=True, confirm_deletions=request.confirm_deletions
    )
    return {"ok": result.error is None, **result.to_dict()}


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and "action" in event:
        return plan(event)
    records = event_records(event)
    if not records:
        return {"batchItemFailures": []}
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    # A batch whose every message failed is answered like any other (each reported), not raised as an error.
    processor.raise_on_entire_batch_failure = False
    response = process_partial_response(
        event={"Records": records}, record_handler=serve, processor=processor, context=context
    )
    return dict(response)
