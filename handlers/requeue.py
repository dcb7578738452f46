"""Requeue handler: SQS messages `{"tenant_id": ..., "gameserver_ids": [...]}` sent with a delay by
the engine ("look again in N seconds"), so an in-progress stack is re-observed without waiting in a
handler and without waiting for the next sweep."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handlers.observability import logger, metrics, tracer
from models.config import ID_PATTERN


class RequeueMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(pattern=ID_PATTERN)
    gameserver_ids: list[str] = Field(min_length=1, max_length=1000)


class RetryLaterError(Exception):
    pass


def handle_record(record: SQSRecord) -> None:
    from handlers.runtime import runtime

    try:
        body = record.body
        if not isinstance(body, str):
            raise ValueError(f"message body must be a JSON string, not {type(body).__name__}")
        message = RequeueMessage.model_validate(json.loads(body))
    except (ValueError, TypeError, RecursionError, ValidationError) as error:
        # Retrying cannot fix it, and the sweep looks at every server anyway: drop it rather than let it
        # cycle to the dead-letter queue.
        logger.error("requeue message cannot be decoded; dropped", extra={"error": str(error)[:500]})
        metrics.add_metric(name="RequeueMessagesRejected", unit=MetricUnit.Count, value=1)
        return
    rt = runtime()
    result = rt.engine.reconcile_tenant(message.tenant_id, scope=message.gameserver_ids)
    if result.error and result.retryable:
        raise RetryLaterError(result.error)


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    raw_records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(raw_records, list):
        logger.error("event has no Records list; nothing to do", extra={"event_type": type(event).__name__})
        raw_records = []
    records = [r for r in raw_records if isinstance(r, dict)]
    if not records:
        return {"batchItemFailures": []}
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event={"Records": records}, record_handler=handle_record, processor=processor, context=context
    )
