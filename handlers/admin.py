"""Admin handler: force one tenant now, or ask for its plan first.

With a work queue configured (on AWS, always) a force is a full-pass message on the work queue (its `force` and
`confirm_deletions` ride on the tenant's work item) and answers `{"ok": true, "queued": true}`; a dry run asks
the tenant worker for the plan by a synchronous invocation. Without one, the pass runs here.

Event: `{"tenant_id": "...", "dry_run": true|false, "confirm_deletions": false, "force": false}` (`force`
acts now on servers waiting out a failed attempt's backoff). Returns the plan
(dry run) or the actions taken, as JSON-serialisable data; a bad event returns a clear error.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handlers.observability import logger, metrics, tracer
from models.config import ID_PATTERN, describe_validation_error


class AdminRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(pattern=ID_PATTERN)
    # JSON booleans only: a string such as "false" or "no" must not quietly turn a dry run into real changes.
    dry_run: bool = Field(default=True, strict=True)
    confirm_deletions: bool = Field(default=False, strict=True)
    force: bool = Field(default=False, strict=True)


def run(request: AdminRequest) -> dict[str, Any]:
    from handlers.runtime import WorkerUnavailableError, runtime
    from reconciler.work import WorkQueueError

    rt = runtime()
    if rt.work_queue is not None:
        # Through the worker: only it may assume tenant roles, and its message group keeps one pass at a time.
        try:
            if request.dry_run:
                return rt.plan(request.tenant_id, confirm_deletions=request.confirm_deletions)
            if rt.store.get_tenant(request.tenant_id) is None:
                return {"ok": False, "error": f"tenant {request.tenant_id!r} is not registered"}
            sent = rt.work_queue.enqueue(
                request.tenant_id,
                None,
                "admin",
                force=request.force,
                confirm_deletions=request.confirm_deletions,
            )
        except (WorkQueueError, WorkerUnavailableError) as error:
            return {"ok": False, "error": f"{error}; try again"}
        metrics.add_metric(name="WorkMessagesSent" if sent else "WorkMessagesCoalesced", unit=MetricUnit.Count, value=1)
        return {"ok": True, "tenant_id": request.tenant_id, "queued": True, "coalesced": not sent}
    result = rt.engine.reconcile_tenant(
        request.tenant_id, dry_run=request.dry_run, confirm_deletions=request.confirm_deletions, force=request.force
    )
    return {"ok": result.error is None, **result.to_dict()}


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="AdminRequests", unit=MetricUnit.Count, value=1)
    try:
        request = AdminRequest.model_validate(event)
    except ValidationError as error:
        message = describe_validation_error(error, prefix="event")
        logger.warning("bad admin event", extra={"error": message})
        return {"ok": False, "error": message}
    logger.append_keys(tenant_id=request.tenant_id)
    return run(request)
