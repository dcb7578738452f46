"""The admin rollout routes (`/rollouts`): start a rollout of a template version, read and list rollouts, and
pause, resume, abort or roll one back; the same operations as `stackherd rollout`, through the same service.
Only DynamoDB is read and written: pins are desired-state writes, and the tenants' passes reconcile them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import Field

from handlers.api.models import JsonBoolean, JsonInteger, _Out, _StrictInput, optional
from handlers.api.routing import ADMIN_ERRORS, BODY_ERRORS, caller, json_response, request_trail, responses
from handlers.observability import logger
from models.config import ID_PATTERN, VERSION_PATTERN

if TYPE_CHECKING:
    from reconciler.rollout_service import RolloutService
    from reconciler.rollouts import Rollout

router = Router()

COUNT_PATTERN = r"^[0-9]{1,6}%?$"
Count = Annotated[str, Field(pattern=COUNT_PATTERN, examples=["5%", "10"])]
TenantName = Annotated[str, Field(pattern=ID_PATTERN, max_length=40)]
RolloutId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=40, description="a rollout's id", examples=["ro-0123456789ab"])
]
Outcome = Literal["waiting", "in-flight", "succeeded", "failed", "skipped", "rolled-back"]
State = Literal["InProgress", "Baking", "Paused", "Halted", "Completed", "Aborted", "RolledBack"]


class RolloutCreate(_StrictInput):
    """A rollout to start. Without `tenants`, every tenant not paused or quarantined and not already on the
    version. `wave_size` sizes the waves after the canary: each entry sizes one wave, the last repeats."""

    version: str = Field(pattern=VERSION_PATTERN, examples=["v2"])
    tenants: list[TenantName] | None = optional(min_length=1, max_length=2000)
    canary: list[TenantName] | None = optional(max_length=100)
    wave_size: list[Count] | None = optional(min_length=1, max_length=20)
    failure_tolerance: Count = "0"
    bake_seconds: JsonInteger = Field(default=0, ge=0, le=7 * 24 * 3600)
    auto_rollback: JsonBoolean = False


class RolloutTenantView(_Out):
    tenant_id: str
    outcome: Outcome
    cause: str | None = None


class WaveView(_Out):
    wave: int = Field(description="1 is the canary wave (when there is one)")
    canary: bool
    tenants: list[RolloutTenantView]


class FailureView(_Out):
    tenant_id: str
    wave: int
    cause: str | None = None


class RolloutView(_Out):
    rollout_id: str
    target_version: str
    state: State
    wave: int = Field(description="the wave pinned last (0: none yet)")
    waves: list[WaveView]
    counts: dict[str, int]
    failures: list[FailureView]
    failure_tolerance: int
    tolerance_text: str
    wave_sizes: list[str]
    bake_s: int
    auto_rollback: bool
    has_canary: bool
    created_at: str
    created_by: str | None = None
    updated_at: str | None = None
    bake_until: str | None = None
    paused_from: State | None = None
    reason: str | None = None
    current_wave: int
    revision: int
    notes: list[str] | None = None


class RolloutSummary(_Out):
    rollout_id: str
    target_version: str
    state: State
    wave: int
    waves: int
    tenants: int
    failures: int
    created_at: str


class RolloutList(_Out):
    items: list[RolloutSummary]


def _service() -> RolloutService:
    from handlers.rollouts import rollout_service
    from handlers.runtime import runtime

    return rollout_service(runtime())


def _view(rollout: Rollout, notes: tuple[str, ...] | None = None) -> RolloutView:
    from handlers.rollouts import rollout_dict

    data = rollout_dict(rollout)
    if notes is not None:
        data["notes"] = list(notes)
    return RolloutView.model_validate(data)


NOT_FOUND = {404: "no such rollout"}


@router.get(
    "/rollouts",
    summary="List rollouts, newest first",
    tags=["rollouts"],
    responses=responses({200: ("every rollout", RolloutList)}, ADMIN_ERRORS),
)
def list_rollouts() -> Response[RolloutList]:
    return json_response(
        RolloutList(
            items=[
                RolloutSummary(
                    rollout_id=r.rollout_id,
                    target_version=r.target_version,
                    state=r.state.value,
                    wave=r.current_wave + 1,
                    waves=len(r.waves),
                    tenants=len(r.tenants),
                    failures=r.failures,
                    created_at=r.created_at,
                )
                for r in _service().list()
            ]
        )
    )


@router.post(
    "/rollouts",
    summary="Start a rollout of a template version",
    description="Computes the waves once (the canary first, then waves of the given sizes in tenant id order), "
    "stores them and pins the first wave. Later waves are pinned by the sweeps, after the bake time, while the "
    "failures stay within the tolerance.",
    tags=["rollouts"],
    responses=responses(
        {201: ("the started rollout", RolloutView)},
        {
            **ADMIN_ERRORS,
            **BODY_ERRORS,
            404: "a named tenant is not registered",
            409: "another active rollout holds some of these tenants",
        },
    ),
)
def start_rollout(body: Annotated[RolloutCreate, Body()]) -> Response[RolloutView]:
    identity = caller(router)
    rollout = _service().start(
        body.version,
        trail=request_trail(router, identity),
        tenants=body.tenants,
        canary=body.canary,
        wave_sizes=body.wave_size or ["1"],
        failure_tolerance=body.failure_tolerance,
        bake_s=body.bake_seconds,
        auto_rollback=body.auto_rollback,
    )
    logger.info("rollout started", rollout_id=rollout.rollout_id, version=body.version, by=identity.user)
    return json_response(_view(rollout), 201, {"Location": f"/rollouts/{rollout.rollout_id}"})


@router.get(
    "/rollouts/<rollout_id>",
    summary="Read a rollout: its state, waves, each tenant's outcome and every failure's cause",
    tags=["rollouts"],
    responses=responses({200: ("the rollout", RolloutView)}, {**ADMIN_ERRORS, **NOT_FOUND}),
)
def get_rollout(rollout_id: RolloutId) -> Response[RolloutView]:
    return json_response(_view(_service().get(rollout_id)))


def _action(name: str, summary: str, conflict: str) -> None:
    def route(rollout_id: RolloutId) -> Response[RolloutView]:
        identity = caller(router)
        result = getattr(_service(), name)(rollout_id, trail=request_trail(router, identity))
        rollout = getattr(result, "rollout", result)
        logger.info(f"rollout {name}", rollout_id=rollout_id, state=rollout.state.value, by=identity.user)
        return json_response(_view(rollout, getattr(result, "notes", None)))

    route.__name__ = f"{name}_rollout"
    router.post(
        f"/rollouts/<rollout_id>/{name}",
        summary=summary,
        tags=["rollouts"],
        responses=responses({200: ("the rollout after it", RolloutView)}, {**ADMIN_ERRORS, **NOT_FOUND, 409: conflict}),
    )(route)


_action("pause", "Pause a rollout: no wave starts until it is resumed", "the rollout is not running")
_action("resume", "Resume a paused rollout", "the rollout is not paused")
_action("abort", "Abort a rollout: nothing more is pinned; what is pinned stays", "the rollout has already ended")
_action(
    "rollback",
    "Roll a rollout back: every tenant it moved, and still on its version, is pinned back to its previous one",
    "the rollout changed meanwhile; retry",
)
