"""Scheduled sweep: advance the active rollouts, then reconcile every tenant that is not quarantined, with
bounded concurrency.

One tenant's failure (access denied, throttling) is isolated in its own result and never stops the
others; access denied also quarantines the tenant with a visible reason. Returns a summary.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.observability import logger, metrics, tracer
from handlers.rollouts import advance_rollouts


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from handlers.runtime import runtime

    rt = runtime()
    advance_rollouts(rt, metrics)
    result = rt.engine.sweep(concurrency=rt.settings.sweep_concurrency)
    for tenant in result.results:
        if tenant.error:
            logger.warning(
                "tenant failed in sweep",
                extra={"tenant_id": tenant.tenant_id, "error": tenant.error, "error_code": tenant.error_code},
            )
    summary = result.summary()
    metrics.add_metric(name="SweepTenants", unit=MetricUnit.Count, value=len(result.results))
    metrics.add_metric(name="SweepTenantFailures", unit=MetricUnit.Count, value=len(summary.failures))
    # Stacks in progress past the stuck setting: CloudFormation's own work, never cancelled, but alarmed on.
    metrics.add_metric(name="StuckStacks", unit=MetricUnit.Count, value=summary.stuck)
    for kind, count in summary.actions.items():
        metrics.add_metric(name=f"Actions_{kind}", unit=MetricUnit.Count, value=count)
    answer = summary.to_dict()
    logger.info("sweep finished", extra={"summary": answer})
    return answer
