"""Identity by the book: `cognito:groups` read exactly as API Gateway's JWT authorizer passes it, and game
servers owned by the immutable `sub`, with records written before that matched by name and claimed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.api.conftest import ON_BOTH_STORES, ApiClient, Caller, player

CONFIG = {"config": {"difficulty": "easy"}}


def _alice_again(sub: str) -> Caller:
    """A new Cognito user who was given the user name `alice` after the first alice was deleted."""
    claims: dict[str, Any] = dict(player("alice", "acme").claims or {})
    claims["sub"] = sub
    return Caller("alice-again", claims)


@pytest.mark.parametrize("groups", ["[players,admins]", "players,admins", '["players,admins"]', ["players,admins"]])
def test_group_named_players_comma_admins_is_not_admins(api: ApiClient, groups: Any) -> None:
    eve = Caller("eve", {"sub": "sub-eve", "cognito:username": "eve", "cognito:groups": groups})
    assert api.get("/tenants", eve).status == 403


def test_api_gateway_bracketed_group_list_names_each_group(api: ApiClient) -> None:
    eve = Caller("eve", {"sub": "sub-eve", "cognito:username": "eve", "cognito:groups": "[players admins]"})
    assert api.get("/tenants", eve).status == 200


@ON_BOTH_STORES
def test_recycled_username_does_not_own_the_previous_users_server(api: ApiClient) -> None:
    alice = player("alice", "acme")
    assert api.put("/servers/mine", CONFIG, alice).status == 201
    newcomer = _alice_again("sub-of-a-new-user")
    assert api.get("/servers/mine", newcomer).status == 404
    assert api.get("/servers", newcomer).json()["items"] == []
    assert api.patch("/servers/mine", {"config": {"seed": "x1"}}, newcomer).status == 404
    assert api.delete("/servers/mine", newcomer).status == 404
    assert api.get("/servers/mine/history", newcomer).status == 404
    # The owner still has it, shown under their user name.
    shown = api.get("/servers/mine", alice).json()
    assert shown["username"] == "alice"


@ON_BOTH_STORES
def test_record_without_owner_sub_is_matched_by_name_and_claimed_on_the_owners_next_write(api: ApiClient) -> None:
    from handlers.runtime import runtime

    alice = player("alice", "acme")
    assert api.put("/servers/old", CONFIG, alice).status == 201
    store = runtime().store
    stored = store.get_server("acme", "old")
    assert stored is not None and stored.owner_sub == "sub-alice"
    # An item written before ownership was keyed on the sub names only the user name.
    _forget_owner_sub(store, stored)
    legacy = store.get_server("acme", "old")
    assert legacy is not None and legacy.owner_sub is None

    assert api.get("/servers/old", alice).status == 200
    assert [s["gameserver_id"] for s in api.get("/servers", alice).json()["items"]] == ["old"]
    assert api.patch("/servers/old", {"config": {"seed": "claimed"}}, alice).status == 200
    claimed = store.get_server("acme", "old")
    assert claimed is not None and claimed.owner_sub == "sub-alice" and claimed.username == "alice"
    # Once claimed, the user name alone no longer matches it.
    newcomer = _alice_again("sub-of-a-new-user")
    assert api.get("/servers/old", newcomer).status == 404
    assert api.get("/servers", newcomer).json()["items"] == []


def test_player_token_without_sub_is_refused(api: ApiClient) -> None:
    no_sub = Caller("nosub", {"cognito:username": "alice", "custom:tenant_id": "acme", "cognito:groups": "[players]"})
    response = api.get("/servers", no_sub)
    assert response.status == 401
    assert "sub" in response.json()["message"]


def _forget_owner_sub(store: Any, server: Any) -> None:
    from reconciler.fakes.memory import MemoryStore

    if isinstance(store, MemoryStore):
        store.servers[(server.tenant_id, server.gameserver_id)] = replace(server, owner_sub=None)
        return
    from models.tables import GameServerModel

    item = GameServerModel.get(server.tenant_id, server.gameserver_id)
    item.update(actions=[GameServerModel.owner_sub.remove()])
