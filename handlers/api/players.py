"""The player routes (`/servers`): a player's own game servers, in the tenant named by their token.

Another player's server answers 404, never 403. Writes only change desired state; the reconciler
converges CloudFormation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from handlers.api.models import HistoryPage, ServerPage, ServerPatch, ServerPut, ServerView
from handlers.api.routing import (
    BODY_ERRORS,
    DEFAULT_PAGE,
    PLAYER_ERRORS,
    GameServerId,
    IfMatch,
    Limit,
    NextToken,
    StoredGameServerId,
    caller,
    decode_token,
    encode_token,
    json_response,
    own_server,
    parse_if_match,
    player_tenant,
    request_trail,
    responses,
    store,
    writes,
)
from handlers.api.views import player_history_entry, player_server_view
from models.records import DesiredServer, Tenant
from reconciler.desired import etag
from reconciler.reasons import redact
from reconciler.writes import TenantUnreadableError, UnreadableConflictError

router = Router()

RATE_LIMITED = (
    "too many changes (your limit or your tenant's), or a region move inside the cool-down: send it again after "
    "Retry-After seconds"
)


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
            429: RATE_LIMITED,
        },
    ),
)
def put_server(
    gameserver_id: GameServerId, body: Annotated[ServerPut, Body()], if_match: IfMatch = None
) -> Response[ServerView]:
    identity = caller(router)
    tenant = player_tenant(identity)
    with _player_refusals():
        result = writes().put_server(
            tenant,
            gameserver_id,
            identity.user,
            body.config.desired().model_dump(),
            trail=request_trail(router, identity),
            region=body.region,
            expected=parse_if_match(if_match),
            owner_sub=identity.sub,
        )
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
            429: RATE_LIMITED,
        },
    ),
)
def patch_server(
    gameserver_id: GameServerId, body: Annotated[ServerPatch, Body()], if_match: IfMatch = None
) -> Response[ServerView]:
    identity = caller(router)
    tenant = player_tenant(identity)
    changes = body.config.model_dump(exclude_unset=True) if body.config is not None else {}
    with _player_refusals():
        result = writes().put_server(
            tenant,
            gameserver_id,
            identity.user,
            changes,
            trail=request_trail(router, identity),
            merge=True,
            must_exist=True,
            region=body.region,
            expected=parse_if_match(if_match),
            owner_sub=identity.sub,
        )
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
    found = store().page_servers(
        tenant.tenant_id, username=identity.user, owner_sub=identity.sub, limit=limit, after=after
    )
    page = ServerPage(
        items=[player_server_view(s, tenant, *_hidden()) for s in found.servers],
        next_token=encode_token("servers", found.after) if found.after is not None else None,
    )
    return json_response(page)


@router.get(
    "/servers/<gameserver_id>",
    summary="Read one of your game servers: desired config, generation and status",
    tags=["servers"],
    responses=responses({200: ("the server", ServerView)}, {**PLAYER_ERRORS, 404: "no such server of yours"}),
)
def get_server(gameserver_id: StoredGameServerId) -> Response[ServerView]:
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
        {
            **PLAYER_ERRORS,
            404: "no such server of yours",
            412: "If-Match does not match the current generation",
            429: RATE_LIMITED,
        },
    ),
)
def delete_server(gameserver_id: StoredGameServerId, if_match: IfMatch = None) -> Response[ServerView]:
    identity = caller(router)
    tenant = player_tenant(identity)
    result = writes().delete_server(
        tenant,
        gameserver_id,
        trail=request_trail(router, identity),
        owner=identity.user,
        expected=parse_if_match(if_match),
        owner_sub=identity.sub,
    )
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
def get_history(
    gameserver_id: StoredGameServerId, limit: Limit = 50, next_token: NextToken = None
) -> Response[HistoryPage]:
    identity = caller(router)
    tenant = player_tenant(identity)
    server = own_server(tenant, identity, gameserver_id)
    after = decode_token("history", next_token)
    # Only this incarnation's entries: an id deleted and created again shows nothing of its predecessor.
    found = store().history(server.tenant_id, server.gameserver_id, server.incarnation, limit=limit, cursor=after)
    return json_response(
        HistoryPage(
            items=[player_history_entry(entry, *_hidden()) for entry in found.entries],
            next_token=encode_token("history", found.cursor) if found.cursor is not None else None,
        )
    )


def _server_response(server: DesiredServer, tenant: Tenant, status: int = 200) -> Response[ServerView]:
    headers = {"ETag": etag(server)}
    if status == 201:
        headers["Location"] = f"/servers/{server.gameserver_id}"
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=player_server_view(server, tenant, *_hidden()),
        headers=headers,
    )


def _hidden() -> tuple[str, ...]:
    """Names no player text may carry: the template bucket's."""
    from handlers.runtime import runtime

    return (runtime().settings.template_bucket,)


@contextmanager
def _player_refusals() -> Iterator[None]:
    """A write's refusals as a player may read them: the write service's messages quote stored text (why the
    tenant's item or the player's own item does not validate, which may quote whatever was written around
    stackherd): shown redacted, as the player's view of the item is."""
    try:
        yield
    except TenantUnreadableError as error:
        raise TenantUnreadableError(redact(str(error), *_hidden())) from None
    except UnreadableConflictError as error:
        raise UnreadableConflictError(redact(str(error), *_hidden())) from None
