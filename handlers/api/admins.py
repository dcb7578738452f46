"""The admin routes (`/tenants`): register and change tenants, list any tenant's servers, and plan or force a
reconcile. A plan is asked of the tenant worker and a reconcile is queued for it when a work queue is configured
(the API's role never assumes tenant roles); without one they call the engine here. Every other route only
reads or writes DynamoDB."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from handlers.api.errors import ServiceUnavailableError
from handlers.api.models import PlanView, QueuedView, ServerPage, TenantCreate, TenantList, TenantPatch, TenantView
from handlers.api.routing import (
    ADMIN_ERRORS,
    BODY_ERRORS,
    DEFAULT_PAGE,
    ConfirmDeletions,
    Force,
    Limit,
    NextToken,
    TenantId,
    admin_tenant,
    caller,
    decode_token,
    encode_token,
    json_response,
    request_trail,
    responses,
    store,
    writes,
)
from handlers.api.views import server_view, tenant_view
from handlers.observability import logger
from reconciler.errors import UnreadableItemError

router = Router()


@router.get(
    "/tenants",
    summary="List tenants",
    tags=["tenants"],
    responses=responses({200: ("every tenant", TenantList)}, ADMIN_ERRORS),
)
def list_tenants() -> Response[TenantList]:
    return json_response(TenantList(items=[tenant_view(t) for t in store().list_tenants()]))


@router.post(
    "/tenants",
    summary="Register a tenant",
    description="201 with the tenant, including the external id its execution role must require.",
    tags=["tenants"],
    responses=responses(
        {201: ("registered", TenantView)},
        {**ADMIN_ERRORS, **BODY_ERRORS, 409: "the tenant is already registered, or its account is another tenant's"},
    ),
)
def create_tenant(body: Annotated[TenantCreate, Body()]) -> Response[TenantView]:
    identity = caller(router)
    tenant, _ = writes().register_tenant(body.spec(), trail=request_trail(router, identity))
    return json_response(tenant_view(tenant), 201, {"Location": f"/tenants/{tenant.tenant_id}"})


@router.get(
    "/tenants/<tenant_id>",
    summary="Read a tenant",
    tags=["tenants"],
    responses=responses({200: ("the tenant", TenantView)}, {**ADMIN_ERRORS, 404: "no such tenant"}),
)
def get_tenant(tenant_id: TenantId) -> Response[TenantView]:
    tenant = admin_tenant(tenant_id)
    try:
        state = store().get_tenant_state(tenant_id)
    except UnreadableItemError as error:  # shown, like any item that no longer validates, not a 500
        return json_response(tenant_view(tenant, state_unreadable=str(error)))
    return json_response(tenant_view(tenant, state))


@router.patch(
    "/tenants/<tenant_id>",
    summary="Change a tenant's tier, template version, regions or paused flag",
    tags=["tenants"],
    responses=responses(
        {200: ("the changed tenant", TenantView)},
        {
            **ADMIN_ERRORS,
            **BODY_ERRORS,
            404: "no such tenant",
            409: "the new regions drop one that some of the tenant's game servers are in",
        },
    ),
)
def patch_tenant(tenant_id: TenantId, body: Annotated[TenantPatch, Body()]) -> Response[TenantView]:
    identity = caller(router)
    changes = body.model_dump(exclude_unset=True)
    tenant = writes().update_tenant(tenant_id, trail=request_trail(router, identity), **changes)
    logger.info("tenant changed", changed_tenant=tenant_id, changes=changes, by=identity.user)
    return json_response(tenant_view(tenant))


@router.get(
    "/tenants/<tenant_id>/servers",
    summary="List a tenant's game servers (every player's)",
    tags=["tenants"],
    responses=responses(
        {200: ("one page of the tenant's servers, in id order", ServerPage)},
        {**ADMIN_ERRORS, 400: "next_token is not one this listing returned", 404: "no such tenant"},
    ),
)
def list_tenant_servers(
    tenant_id: TenantId, limit: Limit = DEFAULT_PAGE, next_token: NextToken = None
) -> Response[ServerPage]:
    tenant = admin_tenant(tenant_id)
    after = decode_token("servers", next_token)
    found = store().page_servers(tenant.tenant_id, limit=limit, after=after)
    page = ServerPage(
        items=[server_view(s, tenant) for s in found.servers],
        next_token=encode_token("servers", found.after) if found.after is not None else None,
    )
    return json_response(page)


@router.get(
    "/tenants/<tenant_id>/plan",
    summary="Dry run: what a reconcile of this tenant would do now",
    description="Observes the tenant's stacks and plans; changes nothing. An unreachable account is reported in "
    "`error`, not as an HTTP error.",
    tags=["tenants"],
    responses=responses({200: ("the plan: actions and diffs", PlanView)}, {**ADMIN_ERRORS, 404: "no such tenant"}),
)
def plan_tenant(tenant_id: TenantId, confirm_deletions: ConfirmDeletions = False) -> Response[PlanView]:
    from handlers.runtime import WorkerUnavailableError, runtime

    admin_tenant(tenant_id)
    try:
        # Through the tenant worker when one is configured: the API's own role cannot assume tenant roles.
        answer = runtime().plan(tenant_id, confirm_deletions=confirm_deletions)
    except WorkerUnavailableError as error:
        raise ServiceUnavailableError(f"{error}; try again", headers={"Retry-After": "2"}) from error
    answer.pop("ok", None)
    return json_response(PlanView.model_validate(answer))


@router.post(
    "/tenants/<tenant_id>/reconcile",
    summary="Reconcile this tenant now and return the actions taken",
    description="`force=true` acts now on servers waiting out a failed attempt's backoff, like `stackherd "
    "reconcile --force`; a server whose failure budget is spent stays held.",
    tags=["tenants"],
    responses=responses(
        {
            200: ("the actions taken (a deployment without a work queue)", PlanView),
            202: ("the pass is queued for the tenant worker (`coalesced`: it joined one already pending)", QueuedView),
        },
        {**ADMIN_ERRORS, 404: "no such tenant", 503: "the work queue could not be reached; try again"},
    ),
)
def reconcile_tenant(
    tenant_id: TenantId, confirm_deletions: ConfirmDeletions = False, force: Force = False
) -> Response[PlanView | QueuedView]:
    from handlers.runtime import runtime
    from reconciler.work import WorkQueueError

    identity = caller(router)
    admin_tenant(tenant_id)
    rt = runtime()
    if rt.work_queue is not None:
        try:
            sent = rt.work_queue.enqueue(tenant_id, None, "admin", force=force, confirm_deletions=confirm_deletions)
        except WorkQueueError as error:
            raise ServiceUnavailableError(f"{error}; try again", headers={"Retry-After": "2"}) from error
        logger.info("tenant pass queued by an admin", reconciled_tenant=tenant_id, by=identity.user, force=force)
        return json_response(QueuedView(tenant_id=tenant_id, queued=True, coalesced=not sent), status=202)
    result = rt.engine.reconcile_tenant(tenant_id, confirm_deletions=confirm_deletions, force=force)
    logger.info(
        "tenant reconciled by an admin", reconciled_tenant=tenant_id, by=identity.user, ok=result.ok, force=force
    )
    return json_response(PlanView.model_validate({**result.to_dict(), "requeued": result.requeued}))
