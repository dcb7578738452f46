"""Scheduled sweep: the safety net that looks at every tenant. It first advances the active rollouts (DynamoDB
only: a wave is pinned through the write path, and the tenants' passes do the CloudFormation work).

With a work queue configured (on AWS, always) it only dispatches: it lists the tenants and puts one full-pass
message per tenant that is not quarantined on the work queue (coalesced on each tenant's work item, sent ten
per SendMessageBatch), so it finishes in seconds for thousands of tenants and the tenant workers run the
passes. Between chunks it checks the invocation's remaining time; when too little is left it hands the rest
on to a new asynchronous invocation of itself (`{"cursor": "<last tenant id dispatched>"}`) instead of being
killed part-way. A tenant whose message could not be recorded or sent is logged; the next sweep covers it.

Without a work queue (a local tool's runtime) it reconciles every tenant in-process, with bounded concurrency:
one tenant's failure is isolated in its own result and never stops the others. Returns a summary either way.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.observability import logger, metrics, tracer
from handlers.rollouts import advance_rollouts

#: Tenants recorded and sent between two looks at the remaining time.
CHUNK = 500
#: Stop dispatching when less than this is left of the invocation (a chunk takes well under it).
RESERVE_MS = 20_000
#: Work-item writes in flight at once while dispatching (each is one conditional UpdateItem).
DISPATCH_CONCURRENCY = 16


def hand_on(context: LambdaContext, cursor: str) -> None:
    """Invoke this function again, asynchronously, to dispatch the tenants after `cursor`."""
    import boto3

    from reconciler.adapters.aws import CLIENT_CONFIG

    client = boto3.client("lambda", config=CLIENT_CONFIG)
    client.invoke(
        FunctionName=context.invoked_function_arn,
        InvocationType="Event",
        Payload=json.dumps({"cursor": cursor}).encode(),
    )


def dispatch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from handlers.runtime import runtime

    rt = runtime()
    queue = rt.work_queue
    assert queue is not None
    cursor = event.get("cursor") if isinstance(event, dict) else None
    tenants = rt.store.list_tenants()
    skipped = sorted(t.tenant_id for t in tenants if t.quarantined)
    todo = sorted(t.tenant_id for t in tenants if not t.quarantined and (not cursor or t.tenant_id > str(cursor)))
    sent = coalesced = 0
    failed: list[str] = []
    handed_on: str | None = None
    for start in range(0, len(todo), CHUNK):
        if start and context.get_remaining_time_in_millis() < RESERVE_MS:
            handed_on = todo[start - 1]
            hand_on(context, handed_on)
            logger.info("handing the rest of the sweep on", extra={"cursor": handed_on, "left": len(todo) - start})
            break
        chunk = todo[start : start + CHUNK]
        report = queue.enqueue_many([(t, None) for t in chunk], "sweep", concurrency=DISPATCH_CONCURRENCY)
        sent, coalesced = sent + report.sent, coalesced + report.coalesced
        failed.extend(report.failed)
    if failed:
        logger.warning("tenants not dispatched; the next sweep covers them", extra={"tenants": failed[:100]})
    metrics.add_metric(name="SweepTenants", unit=MetricUnit.Count, value=len(todo))
    metrics.add_metric(name="WorkMessagesSent", unit=MetricUnit.Count, value=sent)
    metrics.add_metric(name="WorkMessagesCoalesced", unit=MetricUnit.Count, value=coalesced)
    metrics.add_metric(name="SweepDispatchFailures", unit=MetricUnit.Count, value=len(failed))
    answer: dict[str, Any] = {
        "tenants": len(tenants),
        "dispatched": sent,
        "coalesced": coalesced,
        "skipped": skipped,
        "failed": sorted(failed),
        "handed_on": handed_on,
    }
    logger.info("sweep dispatched", extra={"summary": answer})
    return answer


def reconcile_in_process() -> dict[str, Any]:
    from handlers.runtime import runtime

    rt = runtime()
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


@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from handlers.runtime import runtime

    rt = runtime()
    if not (isinstance(event, dict) and event.get("cursor")):
        advance_rollouts(rt, metrics)  # once per sweep: not again when it hands the rest of its tenants on
    if rt.work_queue is not None:
        return dispatch(event, context)
    return reconcile_in_process()
