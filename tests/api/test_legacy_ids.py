"""A record stored with an id outside today's creation pattern (an older version's `Legacy_1`) is still read,
deleted and its history shown through the API; creating a new server still takes today's pattern."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.api.conftest import ApiClient, put_config, server_path


def _store_legacy_server(world: Any, gameserver_id: str, owner: str = "alice") -> None:
    """The record as an older version stored it: the same fields, an id today's pattern refuses."""
    created = world.put("acme", "legacy-template", owner, difficulty="easy", player_count=4, seed="abc").server
    del world.store.servers[("acme", "legacy-template")]
    world.store.servers[("acme", gameserver_id)] = replace(
        created,
        gameserver_id=gameserver_id,
        unreadable=f"the stored gameserver_id {gameserver_id!r} is not 1-40 lowercase letters, digits or inner hyphens",
    )


def test_a_server_with_a_legacy_id_can_be_read_and_deleted_through_the_api(api: ApiClient, memory_world: Any) -> None:
    _store_legacy_server(memory_world, "Legacy_1")

    read = api.get(server_path("Legacy_1"))
    assert read.status == 200, read.text
    assert read.json()["gameserver_id"] == "Legacy_1"
    assert "Legacy_1" in read.json()["unreadable"]

    history = api.get(server_path("Legacy_1") + "/history")
    assert history.status == 200, history.text

    deleted = api.delete(server_path("Legacy_1"), headers={"If-Match": read.etag})
    assert deleted.status == 202, deleted.text
    assert deleted.json()["deletion_requested"] is True
    stored = memory_world.store.get_server("acme", "Legacy_1")
    assert stored is not None and stored.deletion_requested


def test_a_legacy_id_is_never_accepted_for_creating_a_server(api: ApiClient, memory_world: Any) -> None:
    _store_legacy_server(memory_world, "Legacy_1")

    for gameserver_id in ("Legacy_1", "Legacy_2"):
        refused = api.put(server_path(gameserver_id), put_config())
        assert refused.status == 422, refused.text
        assert refused.json()["details"][0]["field"] == "gameserver_id"


def test_an_id_no_record_could_carry_is_refused_on_read_and_delete(api: ApiClient) -> None:
    too_long = "a" * 256
    for method in ("get", "delete"):
        refused = getattr(api, method)(server_path(too_long))
        assert refused.status == 422, refused.text
        assert refused.json()["details"][0]["field"] == "gameserver_id"


def test_another_players_legacy_server_is_not_found(api: ApiClient, memory_world: Any) -> None:
    from tests.api.conftest import BOB

    _store_legacy_server(memory_world, "Legacy_1", owner="alice")
    assert api.get(server_path("Legacy_1"), BOB).status == 404
    assert api.delete(server_path("Legacy_1"), BOB).status == 404
