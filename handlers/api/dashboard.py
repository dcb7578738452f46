"""The dashboard: its page (`GET /dashboard`, one static HTML file shipped in the package) and the read-only admin
routes it reads beyond the existing ones: the fleet at a glance (`GET /fleet`) and one server's activity
timeline (`GET /tenants/{tenant_id}/servers/{gameserver_id}/history`).

The page carries no data: it reads these routes (and `/tenants/...`, and `/rollouts` where that route answers)
with the admin's bearer token, which it takes from the address's fragment (`#token=...`, never sent to the
server) or asks for. Every route here only reads DynamoDB.
"""

from __future__ import annotations

import functools
from importlib import resources

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import Field

from handlers.api.errors import ApiNotFoundError
from handlers.api.models import HistoryPage, TenantView, _Out
from handlers.api.routing import (
    ADMIN_ERRORS,
    Limit,
    NextToken,
    StoredGameServerId,
    TenantId,
    admin_tenant,
    decode_token,
    encode_token,
    json_response,
    responses,
    store,
)
from handlers.api.views import history_entry, tenant_view
from models.records import Phase
from reconciler.errors import UnreadableItemError

router = Router()


class ServerProblem(_Out):
    gameserver_id: str
    phase: str
    message: str | None = Field(default=None, description="the cause, or the last error")


class TenantSummary(_Out):
    tenant: TenantView
    servers: int
    phases: dict[str, int] = Field(description="servers per phase")
    drifted: list[str] = Field(description="servers whose stack differs from what was asked")
    failures: list[ServerProblem] = Field(description="servers Failed or Held, with why")
    incomplete: bool = Field(default=False, description="some records could not be read")


class FleetView(_Out):
    tenants: list[TenantSummary]
    phases: dict[str, int] = Field(description="servers per phase, across the fleet")
    servers: int
    drifted: int
    failed: int
    held_deletions: int
    quarantined: list[str] = Field(description="tenants quarantined")


@functools.cache
def page() -> str | None:
    try:
        return resources.files("handlers.api").joinpath("dashboard.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


@router.get("/dashboard", include_in_schema=False)
def get_dashboard() -> Response[str]:
    html = page()
    if html is None:
        # A package built without its data files: say so rather than fail.
        raise ApiNotFoundError("the dashboard page (handlers/api/dashboard.html) is not in this deployment's package")
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=html,
        headers={
            # The page loads nothing from elsewhere and is never framed.
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def tenant_summary(tenant_id: str) -> TenantSummary:
    tenant = admin_tenant(tenant_id)
    state_problem = None
    try:
        state = store().get_tenant_state(tenant_id)
    except UnreadableItemError as error:
        state, state_problem = None, str(error)
    read = store().read_servers(tenant_id)
    phases: dict[str, int] = {}
    drifted, failures = [], []
    for server in read.servers:
        status = server.status
        phases[status.phase.value] = phases.get(status.phase.value, 0) + 1
        if status.drift:
            drifted.append(server.gameserver_id)
        if status.phase in (Phase.FAILED, Phase.HELD):
            failures.append(
                ServerProblem(
                    gameserver_id=server.gameserver_id,
                    phase=status.phase.value,
                    message=status.cause or status.last_error or server.unreadable,
                )
            )
    return TenantSummary(
        tenant=tenant_view(tenant, state, state_unreadable=state_problem),
        servers=len(read.servers),
        phases=phases,
        drifted=drifted,
        failures=failures,
        incomplete=not read.complete,
    )


@router.get(
    "/fleet",
    summary="The fleet at a glance: every tenant's servers by phase, drift, failures, held deletions, quarantine",
    description="Reads every tenant's records (one query per tenant); meant for the dashboard and for scripts.",
    tags=["tenants"],
    responses=responses({200: ("the fleet", FleetView)}, ADMIN_ERRORS),
)
def get_fleet() -> Response[FleetView]:
    summaries = [tenant_summary(t.tenant_id) for t in store().list_tenants()]
    phases: dict[str, int] = {}
    for summary in summaries:
        for phase, count in summary.phases.items():
            phases[phase] = phases.get(phase, 0) + count
    return json_response(
        FleetView(
            tenants=summaries,
            phases=phases,
            servers=sum(s.servers for s in summaries),
            drifted=sum(len(s.drifted) for s in summaries),
            failed=sum(len(s.failures) for s in summaries),
            held_deletions=sum(s.tenant.deletion_brake.held for s in summaries if s.tenant.deletion_brake),
            quarantined=[s.tenant.tenant_id for s in summaries if s.tenant.quarantined],
        )
    )


@router.get(
    "/tenants/<tenant_id>/servers/<gameserver_id>/history",
    summary="What happened to one of a tenant's game servers, newest first (any player's)",
    tags=["tenants"],
    responses=responses(
        {200: ("one page of history, newest first", HistoryPage)},
        {**ADMIN_ERRORS, 400: "next_token is not one this listing returned", 404: "no such tenant or server"},
    ),
)
def get_server_history(
    tenant_id: TenantId, gameserver_id: StoredGameServerId, limit: Limit = 50, next_token: NextToken = None
) -> Response[HistoryPage]:
    admin_tenant(tenant_id)
    server = store().get_server(tenant_id, gameserver_id)
    if server is None:
        raise ApiNotFoundError(f"tenant {tenant_id!r} has no server {gameserver_id!r}")
    after = decode_token("history", next_token)
    # The current incarnation's entries, as the player sees them.
    found = store().history(tenant_id, gameserver_id, server.incarnation, limit=limit, cursor=after)
    return json_response(
        HistoryPage(
            items=[history_entry(entry) for entry in found.entries],
            next_token=encode_token("history", found.cursor) if found.cursor is not None else None,
        )
    )
