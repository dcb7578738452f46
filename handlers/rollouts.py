"""Rollouts for the ways in: the service over a runtime, and `advance_rollouts`, which every sweep calls (the
scheduled one and `stackherd sweep`) so that rollouts advance without anyone watching, with their metrics
(`RolloutWavesStarted`, `RolloutsHalted`, `RolloutsRolledBack`). DynamoDB only: pins are desired-state writes,
and the tenants' own passes do the CloudFormation work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

    from handlers.runtime import Runtime
    from reconciler.rollout_service import RolloutService
    from reconciler.rollouts import Rollout


def rollout_service(rt: Runtime) -> RolloutService:
    from reconciler.desired import DesiredWrites
    from reconciler.rollout_service import RolloutService

    clock = rt.engine.clock
    writes = DesiredWrites(rt.store, clock=clock, templates=rt.templates)
    return RolloutService(rt.store, writes, clock=clock, timeout_s=rt.settings.rollout_tenant_timeout_s)


def advance_rollouts(rt: Runtime, metrics: Metrics | None = None) -> dict[str, Any]:
    """Advance every active rollout once; with `metrics`, count the waves started, the halts and the rollbacks
    (a Lambda's metrics; the CLI passes none). A failure here is logged and never fails the sweep."""
    import logging

    from reconciler.desired import trail

    log = logging.getLogger("stackherd.rollouts")
    try:
        report = rollout_service(rt).advance_all(trail("stackherd", "rollout"))
    except Exception as error:  # the sweep itself must go on; the next one advances again
        log.exception("rollouts could not advance")
        return {"error": str(error)}
    if metrics is not None:
        from aws_lambda_powertools.metrics import MetricUnit

        metrics.add_metric(name="RolloutWavesStarted", unit=MetricUnit.Count, value=report.waves_started)
        metrics.add_metric(name="RolloutsHalted", unit=MetricUnit.Count, value=report.halted)
        metrics.add_metric(name="RolloutsRolledBack", unit=MetricUnit.Count, value=report.rolled_back)
    return report.to_dict()


def rollout_dict(rollout: Rollout) -> dict[str, Any]:
    """A rollout as the CLI's --json and the API show it: the stored plan with each tenant's outcome, the
    counts, and the failures with their causes."""
    from reconciler.rollouts import TenantOutcome

    data: dict[str, Any] = rollout.to_dict()
    by_id = {t.tenant_id: t for t in rollout.tenants}
    data["counts"] = rollout.counts()
    data["failures"] = [
        {"tenant_id": t.tenant_id, "wave": t.wave + 1, "cause": t.cause}
        for t in rollout.tenants
        if t.outcome is TenantOutcome.FAILED or (t.cause or "").startswith("failed: ")
    ]
    data["waves"] = [
        {
            "wave": index + 1,
            "canary": index == 0 and rollout.has_canary,
            "tenants": [{"tenant_id": t, "outcome": by_id[t].outcome.value, "cause": by_id[t].cause} for t in wave],
        }
        for index, wave in enumerate(rollout.waves)
    ]
    data.pop("tenants")
    data["wave"] = rollout.current_wave + 1
    return data
