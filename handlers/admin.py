"""Admin handler: force one tenant now, or ask for its plan first.

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
    from handlers.runtime import runtime

    rt = runtime()
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
