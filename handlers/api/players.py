"""The player routes (`/servers`): a player's own game servers, in the tenant named by their token.

Another player's server answers 404, never 403. Writes only change desired state; the reconciler
converges CloudFormation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from handlers.api.errors import ApiConflictError, ApiNotFoundError, etag
from handlers.api.models import HistoryPage, ServerPage, ServerPatch, ServerPut, ServerView
from handlers.api.routing import (
    BODY_ERRORS,
    DEFAULT_PAGE,
    PLAYER_ERRORS,
    GameServerId,
    IfMatch,
    Limit,
    NextToken,
    caller,
    check_if_match,
    decode_token,
    encode_token,
    json_response,
    now,
    own_server,
    parse_if_match,
    player_tenant,
    responses,
    store,
)
from handlers.api.views import history_entry, server_view
from handlers.observability import logger
from models.config import GameServerConfig, check_tier
from models.records import DesiredServer, Tenant
from reconciler.desired import check_region, check_server_quota
from reconciler.writes import PreconditionFailedError, WriteResult

router = Router()


@router.put(
    "/servers/<gameserver_id>",
    summary="Create or replace a game server",
    description=(
        "201 when created, 200 when replaced. Repeating the same PUT changes nothing (the generation stays). "
        "With If-Match, the write happens only at that generation (412 otherwise)."
    ),
    tags=["servers"],
    responses=responses(
        {200: ("replaced (or unchanged)", ServerView), 201: ("created", ServerView)},
        {
            **PLAYER_ERRORS,
            **BODY_ERRORS,
            404: "the id belongs to another player's server",
            409: "the tenant's tier allows no more servers, or the server is being deleted",
            412: "If-Match does not match the current generation",
        },
    ),
)
def put_server(
    gameserver_id: GameServerId, body: Annotated[ServerPut, Body()], if_match: IfMatch = None
) -> Response[ServerView]:
    identity = caller(router)
    tenant = player_tenant(identity)
    expected = parse_if_match(if_match)
    current = store().get_server(tenant.tenant_id, gameserver_id)
    if current is not None and current.username != identity.user:
        raise ApiNotFoundError(f"game server {gameserver_id!r} not found")
    check_if_match(expected, current, gameserver_id)
    if current is not None:
        _refuse_if_deleting(current)
    config = body.config.desired()
    check_region(tenant, body.region)
    check_tier(config, tenant.tier)
    if current is None:
        check_server_quota(store(), tenant)
    result = _write(
        lambda: store().put_server(
            tenant.tenant_id,
            gameserver_id,
            identity.user,
            config,
            now(),
            # Left out: where the server is (a replace does not move it), or the primary region for a new one,
            # pinned so that reordering the tenant's regions never moves a running server.
            region=body.region or (current.region if current is not None else tenant.primary_region),
            expected_generation=current.generation if current is not None else None,
        ),
        gameserver_id,
        if_match,
    )
    if result.changed:
        verb = "created" if result.created else "replaced"
        _log_activity(result.server, "desired", f"{verb}: {_config_text(result.server.config)}", identity.user)
    return _server_response(result.server, tenant, 201 if result.created else 200)


@router.patch(
    "/servers/<gameserver_id>",
    summary="Change some config keys or the region of a game server",
    tags=["servers"],
    responses=responses(
        {200: ("changed (or unchanged)", ServerView)},
        {
            **PLAYER_ERRORS,
            **BODY_ERRORS,
            404: "no such server of yours",
            409: "the server is being deleted, or changed concurrently",
            412: "If-Match does not match the current generation",
        },
    ),
)
def patch_server(
    gameserver_id: GameServerId, body: Annotated[ServerPatch, Body()], if_match: IfMatch = None
) -> Response[ServerView]:
    identity = caller(router)
    tenant = player_tenant(identity)
    expected = parse_if_match(if_match)
    current = own_server(tenant, identity, gameserver_id)
    check_if_match(expected, current, gameserver_id)
    _refuse_if_deleting(current)
    changes = body.config.model_dump(exclude_unset=True) if body.config is not None else {}
    config = GameServerConfig.model_validate({**current.config.model_dump(), **changes})
    region = body.region if body.region is not None else current.region
    check_region(tenant, body.region)
    check_tier(config, tenant.tier)
    result = _write(
        lambda: store().put_server(
            tenant.tenant_id,
            gameserver_id,
            identity.user,
            config,
            now(),
            region=region,
            expected_generation=current.generation,
        ),
        gameserver_id,
        if_match,
    )
    if result.changed:
        _log_activity(result.server, "desired", f"changed: {_config_text(result.server.config)}", identity.user)
    return _server_response(result.server, tenant)


@router.get(
    "/servers",
    summary="List your game servers",
    tags=["servers"],
    responses=responses(
        {200: ("one page of your servers, in id order", ServerPage)},
        {**PLAYER_ERRORS, 400: "next_token is not one this listing returned"},
    ),
)
def list_servers(limit: Limit = DEFAULT_PAGE, next_token: NextToken = None) -> Response[ServerPage]:
    identity = caller(router)
    tenant = player_tenant(identity)
    after = decode_token("servers", next_token)
    servers, last = store().page_servers(tenant.tenant_id, username=identity.user, limit=limit, after=after)
    page = ServerPage(
        items=[server_view(s, tenant) for s in servers],
        next_token=encode_token("servers", last) if last is not None else None,
    )
    return json_response(page)


@router.get(
    "/servers/<gameserver_id>",
    summary="Read one of your game servers: desired config, generation and status",
    tags=["servers"],
    responses=responses({200: ("the server", ServerView)}, {**PLAYER_ERRORS, 404: "no such server of yours"}),
)
def get_server(gameserver_id: GameServerId) -> Response[ServerView]:
    identity = caller(router)
    tenant = player_tenant(identity)
    return _server_response(own_server(tenant, identity, gameserver_id), tenant)


@router.delete(
    "/servers/<gameserver_id>",
    summary="Ask for a game server to be deleted",
    description="202: the record shows phase Deleting until the reconciler has deleted the stack and the record.",
    tags=["servers"],
    responses=responses(
        {202: ("deletion requested; the record shows phase Deleting", ServerView)},
        {**PLAYER_ERRORS, 404: "no such server of yours", 412: "If-Match does not match the current generation"},
    ),
)
def delete_server(gameserver_id: GameServerId, if_match: IfMatch = None) -> Response[ServerView]:
    identity = caller(router)
    tenant = player_tenant(identity)
    expected = parse_if_match(if_match)
    current = own_server(tenant, identity, gameserver_id)
    check_if_match(expected, current, gameserver_id)
    result = _write(
        lambda: store().request_deletion(
            tenant.tenant_id, gameserver_id, now(), expected_generation=current.generation
        ),
        gameserver_id,
        if_match,
    )
    if result.changed:
        _log_activity(result.server, "desired", "deletion requested", identity.user)
    return _server_response(result.server, tenant, 202)


@router.get(
    "/servers/<gameserver_id>/history",
    summary="What happened to one of your game servers, newest first",
    tags=["servers"],
    responses=responses(
        {200: ("one page of history, newest first", HistoryPage)},
        {**PLAYER_ERRORS, 400: "next_token is not one this listing returned", 404: "no such server of yours"},
    ),
)
def get_history(gameserver_id: GameServerId, limit: Limit = 50, next_token: NextToken = None) -> Response[HistoryPage]:
    identity = caller(router)
    tenant = player_tenant(identity)
    server = own_server(tenant, identity, gameserver_id)
    after = decode_token("history", next_token)
    items, _ = store().history(server.tenant_id, server.gameserver_id, limit=limit + 1, cursor=after)
    page = items[:limit]
    return json_response(
        HistoryPage(
            items=[history_entry(item) for item in page],
            next_token=encode_token("history", page[-1].at) if len(items) > limit else None,
        )
    )


def _write(fn: Callable[[], WriteResult], gameserver_id: str, if_match: str | None) -> WriteResult:
    """Run a conditional write. Losing a race to another writer is a 412 when the caller gave If-Match (their
    precondition no longer holds), otherwise a 409 asking them to read again and retry."""
    try:
        return fn()
    except PreconditionFailedError:
        if if_match is not None:
            raise
        raise ApiConflictError(
            f"game server {gameserver_id!r} was changed by another request; read it again and retry",
            field="gameserver_id",
            location="path",
            rule="concurrent_write",
        ) from None


def _refuse_if_deleting(server: DesiredServer) -> None:
    if server.deletion_requested:
        raise ApiConflictError(
            f"game server {server.gameserver_id!r} is being deleted; create it again once it is gone",
            field="gameserver_id",
            location="path",
            rule="deleting",
        )


def _log_activity(server: DesiredServer, kind: str, message: str, actor: str) -> None:
    """Best effort: the write has happened; a missing history line must not turn it into an error."""
    try:
        store().append_activity(
            server.tenant_id, server.gameserver_id, kind, message, server.generation, now(), actor=actor
        )
    except Exception:
        logger.exception("could not append to the activity log")


def _config_text(config: GameServerConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.model_dump().items())


def _server_response(server: DesiredServer, tenant: Tenant, status: int = 200) -> Response[ServerView]:
    headers = {"ETag": etag(server.generation)}
    if status == 201:
        headers["Location"] = f"/servers/{server.gameserver_id}"
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=server_view(server, tenant),
        headers=headers,
    )
