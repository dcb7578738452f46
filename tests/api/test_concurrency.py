"""ETag = `"<generation>-<incarnation prefix>"`; If-Match on PUT, PATCH and DELETE makes a write conditional
(412 on mismatch), and an ETag of a deleted server never matches the server created again under its id."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import ON_BOTH_STORES, ApiClient, put_config

ETAG = re.compile(r'^"([0-9]+)-([0-9a-f]{12})"$')


def etag_for(body: dict[str, Any], generation: int | None = None) -> str:
    """The ETag the API sends for a server's body (at `generation`, default the body's own)."""
    return f'"{body["generation"] if generation is None else generation}-{body["incarnation"][:12]}"'


@pytest.fixture
def server(api: ApiClient) -> ApiClient:
    created = api.put("/servers/alpha-1", put_config())
    assert created.etag == etag_for(created.json(), 1)
    assert ETAG.match(created.etag)
    return api


@pytest.mark.parametrize("if_match", ["{etag}", "W/{etag}", "{bare}", '"7-{inc}", {etag}', "*"])
def test_a_matching_if_match_lets_the_write_through(server: ApiClient, if_match: str) -> None:
    read = server.get("/servers/alpha-1").json()
    etag = etag_for(read)
    header = if_match.format(etag=etag, bare=etag.strip('"'), inc=read["incarnation"][:12])
    response = server.patch("/servers/alpha-1", {"config": {"seed": "new"}}, headers={"if-match": header})
    assert response.status == 200, response.text
    assert response.etag == etag_for(read, 2)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_a_stale_if_match_is_412_with_the_current_etag(server: ApiClient, method: str) -> None:
    first = etag_for(server.get("/servers/alpha-1").json())
    server.patch("/servers/alpha-1", {"config": {"seed": "movedon"}})  # now at generation 2
    body = {"PUT": put_config(seed="mine"), "PATCH": {"config": {"seed": "mine"}}, "DELETE": None}[method]
    kwargs: dict[str, Any] = {} if body is None else {"body": body}
    response = server.request(method, "/servers/alpha-1", headers={"If-Match": first}, **kwargs)
    assert response.status == 412
    after = server.get("/servers/alpha-1").json()
    assert response.etag == etag_for(after, 2)
    error = response.json()
    assert error["code"] == "PreconditionFailed"
    assert error["details"][0]["field"] == "If-Match"
    assert "generation 2" in error["message"]
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
    for if_match in ('"1-0123456789ab"', "*"):
        response = api.put("/servers/new-1", put_config(), headers={"If-Match": if_match})
        assert response.status == 412
    assert api.get("/servers/new-1").status == 404  # nothing was created


def test_a_repeated_put_with_if_match_keeps_the_generation(server: ApiClient) -> None:
    etag = server.get("/servers/alpha-1").etag
    assert etag is not None
    response = server.put("/servers/alpha-1", put_config(), headers={"If-Match": etag})
    assert response.status == 200
    assert response.etag == etag


def test_delete_with_the_current_etag(server: ApiClient) -> None:
    etag = server.get("/servers/alpha-1").etag
    assert etag is not None
    assert server.delete("/servers/alpha-1", headers={"If-Match": etag}).status == 202


@pytest.mark.parametrize(
    "if_match",
    ["banana", '"1', "W/", '"-1"', '"1.5"', "", '"1",,', '"9999999999999"', '"1"', "1", '"1-xyz"', '"1-0123"'],
)
def test_a_malformed_if_match_is_400(server: ApiClient, if_match: str) -> None:
    response = server.patch("/servers/alpha-1", {"config": {"seed": "x"}}, headers={"If-Match": if_match})
    assert response.status == 400, if_match
    assert response.json()["details"][0] == {
        "field": "If-Match",
        "location": "header",
        "rule": "etag_format",
        "message": 'If-Match must be "*" or the ETag of a read, for example "3-1a2b3c4d5e6f"',
    }


@ON_BOTH_STORES
def test_an_etag_of_a_deleted_server_never_matches_the_server_created_again_under_its_id(api: ApiClient) -> None:
    """Alice's `arena` is deleted and Bob's is created: the generation restarts at 1, and Alice's old ETag
    (`"1"` before incarnations) passed If-Match on Bob's server."""
    from handlers.runtime import runtime
    from tests.api.conftest import BOB

    old = api.put("/servers/arena", put_config(seed="alices"))
    deleting = api.delete("/servers/arena")
    store = runtime().store
    record = store.get_server("acme", "arena")
    assert record is not None and deleting.status == 202
    assert store.finalize(record)  # the reconciler removed the stack and the record
    new = api.put("/servers/arena", put_config(seed="bobs"), BOB)
    assert (new.status, new.json()["generation"]) == (201, 1)

    assert new.etag != old.etag
    stale = api.patch("/servers/arena", {"config": {"seed": "mine"}}, BOB, headers={"If-Match": old.etag or ""})
    assert stale.status == 412
    assert api.get("/servers/arena", BOB).json()["config"]["seed"] == "bobs"


@ON_BOTH_STORES
@pytest.mark.parametrize(("if_match", "status"), [(False, 409), (True, 412)], ids=["no If-Match", "If-Match"])
def test_a_write_that_loses_a_race_is_refused(
    server: ApiClient, monkeypatch: pytest.MonkeyPatch, if_match: bool, status: int
) -> None:
    """Another writer commits between our read and our conditional write: no lost update. Without If-Match
    the caller is asked to read again and retry (409); with it, their precondition failed (412)."""
    from handlers.runtime import runtime

    store = runtime().store
    original = store.replace_server

    def racing_replace(current: Any, **kwargs: Any) -> Any:
        sneaky = current.config.model_copy(update={"seed": "sneaky"})
        original(current, **{**kwargs, "config": sneaky})  # the other writer wins
        return original(current, **kwargs)

    monkeypatch.setattr(store, "replace_server", racing_replace)
    headers = {"If-Match": server.get("/servers/alpha-1").etag or ""} if if_match else {}
    response = server.patch("/servers/alpha-1", {"config": {"seed": "mine"}}, headers=headers)
    assert response.status == status
    assert response.json()["details"][0]["rule"] == ("concurrent_write" if status == 409 else "etag_mismatch")
    assert server.get("/servers/alpha-1").json()["config"]["seed"] == "sneaky"
