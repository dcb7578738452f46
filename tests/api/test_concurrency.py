"""ETag = generation; If-Match on PUT, PATCH and DELETE makes a write conditional (412 on mismatch)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from models.config import GameServerConfig
from reconciler.writes import WriteResult
from tests.api.conftest import ON_BOTH_STORES, ApiClient, put_config


@pytest.fixture
def server(api: ApiClient) -> ApiClient:
    assert api.put("/servers/alpha-1", put_config()).etag == '"1"'
    return api


@pytest.mark.parametrize("if_match", ['"1"', 'W/"1"', "1", '"7", "1"', "*"])
def test_a_matching_if_match_lets_the_write_through(server: ApiClient, if_match: str) -> None:
    response = server.patch("/servers/alpha-1", {"config": {"seed": "new"}}, headers={"if-match": if_match})
    assert response.status == 200
    assert response.etag == '"2"'


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_a_stale_if_match_is_412_with_the_current_etag(server: ApiClient, method: str) -> None:
    server.patch("/servers/alpha-1", {"config": {"seed": "movedon"}})  # now at generation 2
    body = {"PUT": put_config(seed="mine"), "PATCH": {"config": {"seed": "mine"}}, "DELETE": None}[method]
    kwargs: dict[str, Any] = {} if body is None else {"body": body}
    response = server.request(method, "/servers/alpha-1", headers={"If-Match": '"1"'}, **kwargs)
    assert response.status == 412
    assert response.etag == '"2"'
    error = response.json()
    assert error["code"] == "PreconditionFailed"
    assert error["details"][0]["field"] == "If-Match"
    assert "generation 2" in error["message"]
    after = server.get("/servers/alpha-1").json()
    assert (after["generation"], after["config"]["seed"], after["deletion_requested"]) == (2, "movedon", False)


@ON_BOTH_STORES
def test_two_writers_from_the_same_read_the_second_loses(server: ApiClient) -> None:
    etag = server.get("/servers/alpha-1").etag
    assert etag is not None
    first = server.patch("/servers/alpha-1", {"config": {"player_count": 10}}, headers={"If-Match": etag})
    second = server.patch("/servers/alpha-1", {"config": {"difficulty": "hard"}}, headers={"If-Match": etag})
    assert (first.status, second.status) == (200, 412)
    assert server.get("/servers/alpha-1").json()["config"]["difficulty"] == "easy"  # the loser changed nothing


def test_if_match_on_a_missing_server_is_412(api: ApiClient) -> None:
    for if_match in ('"1"', "*"):
        response = api.put("/servers/new-1", put_config(), headers={"If-Match": if_match})
        assert response.status == 412
    assert api.get("/servers/new-1").status == 404  # nothing was created


def test_a_repeated_put_with_if_match_keeps_the_generation(server: ApiClient) -> None:
    response = server.put("/servers/alpha-1", put_config(), headers={"If-Match": '"1"'})
    assert response.status == 200
    assert response.etag == '"1"'


def test_delete_with_the_current_etag(server: ApiClient) -> None:
    assert server.delete("/servers/alpha-1", headers={"If-Match": '"1"'}).status == 202


@pytest.mark.parametrize("if_match", ["banana", '"1', "W/", '"-1"', '"1.5"', "", '"1",,', '"9999999999999"'])
def test_a_malformed_if_match_is_400(server: ApiClient, if_match: str) -> None:
    response = server.patch("/servers/alpha-1", {"config": {"seed": "x"}}, headers={"If-Match": if_match})
    assert response.status == 400, if_match
    assert response.json()["details"][0] == {
        "field": "If-Match",
        "location": "header",
        "rule": "etag_format",
        "message": 'If-Match must be "*" or the ETag of a read, for example "3"',
    }


@ON_BOTH_STORES
@pytest.mark.parametrize(
    ("headers", "status"), [({}, 409), ({"If-Match": '"1"'}, 412)], ids=["no If-Match", "If-Match"]
)
def test_a_write_that_loses_a_race_is_refused(
    server: ApiClient, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], status: int
) -> None:
    """Another writer commits between our read and our conditional write: no lost update. Without If-Match
    the caller is asked to read again and retry (409); with it, their precondition failed (412)."""
    from handlers.runtime import runtime

    store = runtime().store
    original = store.put_server

    def racing_put(
        tenant_id: str, gameserver_id: str, username: str, config: GameServerConfig, at: datetime, **kwargs: Any
    ) -> WriteResult:
        original(tenant_id, gameserver_id, username, config.model_copy(update={"seed": "sneaky"}), at)  # wins
        return original(tenant_id, gameserver_id, username, config, at, **kwargs)

    monkeypatch.setattr(store, "put_server", racing_put)
    response = server.patch("/servers/alpha-1", {"config": {"seed": "mine"}}, headers=headers)
    assert response.status == status
    assert response.json()["details"][0]["rule"] == ("concurrent_write" if status == 409 else "etag_mismatch")
    assert server.get("/servers/alpha-1").json()["config"]["seed"] == "sneaky"
