"""Requeue handler: messages sent with a delay by the engine ("look again in N seconds"), so an in-progress
stack is re-observed without waiting in a handler and without waiting for the next sweep.

With a work queue configured (on AWS, always) the handler only forwards: a message whose token (the message
attribute `token`) is still the tenant's live requeue goes onto the work queue through the same coalescing
enqueue as every trigger; one superseded by an earlier requeue is dropped, so a tenant never has more than one
requeue chain. Bodies are work messages (`{"tenant_id", "gameserver_ids", "trigger": "requeue"}`) or, from
before the work queue, `{"tenant_id", "gameserver_ids"}`. Without a work queue it reconciles in-process."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handlers.observability import event_records, logger, metrics, tracer
from models.config import ID_PATTERN
from models.work import Trigger, WorkMessage


class RequeueMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(pattern=ID_PATTERN)
    gameserver_ids: list[str] = Field(min_length=1, max_length=1000)


class RetryLaterError(Exception):
    pass


def decode(data: object) -> RequeueMessage:
    """A work message of trigger `requeue`, or the older body without a trigger."""
    if isinstance(data, dict) and "trigger" in data:
        work = WorkMessage.model_validate(data)
        if work.trigger is not Trigger.REQUEUE or work.gameserver_ids is None:
            raise ValueError("a requeue message names trigger 'requeue' and a list of gameserver_ids")
        return RequeueMessage(tenant_id=work.tenant_id, gameserver_ids=work.gameserver_ids)
    return RequeueMessage.model_validate(data)


def forward(record: SQSRecord, message: RequeueMessage) -> None:
    """Onto the work queue, when still the tenant's live requeue; raises to have SQS retry a failed forward."""
    from handlers.runtime import runtime
    from reconciler.work import WorkQueueError

    queue = runtime().work_queue
    assert queue is not None
    attributes = record.raw_event.get("messageAttributes")
    attribute = attributes.get("token") if isinstance(attributes, dict) else None
    token = attribute.get("stringValue") if isinstance(attribute, dict) else None
    try:
        if token:
            if not queue.due_requeue(message.tenant_id, token, message.gameserver_ids):
                metrics.add_metric(name="RequeuesSuperseded", unit=MetricUnit.Count, value=1)
                return
        else:
            queue.enqueue(message.tenant_id, message.gameserver_ids, "requeue")
    except WorkQueueError as error:
        raise RetryLaterError(str(error)) from error
    metrics.add_metric(name="RequeuesForwarded", unit=MetricUnit.Count, value=1)


def handle_record(record: SQSRecord) -> None:
    from handlers.runtime import runtime

    try:
        body = record.body
        if not isinstance(body, str):
            raise ValueError(f"message body must be a JSON string, not {type(body).__name__}")
        message = decode(json.loads(body))
    except (ValueError, TypeError, RecursionError, ValidationError) as error:
        # Retrying cannot fix it, and the sweep looks at every server anyway: drop it rather than let it
        # cycle to the dead-letter queue.
        logger.error("requeue message cannot be decoded; dropped", extra={"error": str(error)[:500]})
        metrics.add_metric(name="RequeueMessagesRejected", unit=MetricUnit.Count, value=1)
        return
    rt = runtime()
    if rt.work_queue is not None:
        forward(record, message)
        return
    result = rt.engine.reconcile_tenant(message.tenant_id, scope=message.gameserver_ids)
    if result.error and result.retryable:
        raise RetryLaterError(result.error)


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    records = event_records(event)
    if not records:
        return {"batchItemFailures": []}
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event={"Records": records}, record_handler=handle_record, processor=processor, context=context
    )
