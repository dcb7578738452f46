"""The API takes the types it documents: a number is a JSON number, a flag a JSON boolean, and each key is
given once. Nothing is coerced and no duplicate key silently wins."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ROOT, ApiClient, put_config


def _details(response: Any) -> list[tuple[str, str]]:
    return [(d["field"], d["rule"]) for d in response.json()["details"]]


@pytest.mark.parametrize("given", ["1_0", " 8 ", "8", "0x8", "8.0"])
def test_player_count_given_as_a_string_is_refused_not_coerced(api: ApiClient, given: str) -> None:
    created = api.put("/servers/alpha-1", {"config": {"player_count": given}})
    assert created.status == 422, created.text
    assert _details(created) == [("config.player_count", "int_type")]
    assert "JSON number" in created.json()["message"] and repr(given) in created.json()["message"]
    assert api.get("/servers/alpha-1").status == 404

    api.put("/servers/alpha-1", put_config(player_count=4))
    patched = api.patch("/servers/alpha-1", {"config": {"player_count": given}})
    assert patched.status == 422, patched.text
    assert _details(patched) == [("config.player_count", "int_type")]
    assert api.get("/servers/alpha-1").json()["config"]["player_count"] == 4


def test_json_numbers_are_still_taken(api: ApiClient) -> None:
    assert api.put("/servers/alpha-1", put_config(player_count=8)).json()["config"]["player_count"] == 8
    assert api.patch("/servers/alpha-1", {"config": {"player_count": 10}}).json()["config"]["player_count"] == 10


@pytest.mark.parametrize("given", ["yes", "true", "1", 1, 0])
def test_paused_given_as_anything_but_a_json_boolean_is_refused(api: ApiClient, given: Any) -> None:
    response = api.patch("/tenants/acme", {"paused": given}, ROOT)
    assert response.status == 422, response.text
    assert _details(response) == [("paused", "bool_type")]
    assert "true or false" in response.json()["message"]
    assert api.get("/tenants/acme", ROOT).json()["paused"] is False

    created = api.post("/tenants", {"tenant_id": "initech", "account_id": "333333333333", "paused": given})
    assert created.status == 422, created.text
    assert _details(created) == [("paused", "bool_type")]
    assert api.get("/tenants/initech", ROOT).status == 404


def test_paused_as_a_json_boolean_pauses(api: ApiClient) -> None:
    assert api.patch("/tenants/acme", {"paused": True}, ROOT).json()["paused"] is True


@pytest.mark.parametrize(
    ("method", "path", "raw", "key"),
    [
        ("PUT", "/servers/alpha-1", '{"config": {"player_count": 4, "player_count": 40}}', "player_count"),
        ("PUT", "/servers/alpha-1", '{"config": {}, "region": "us-east-1", "region": "eu-west-1"}', "region"),
        ("PATCH", "/servers/alpha-1", '{"config": {"seed": "a"}, "config": {"seed": "b"}}', "config"),
        ("PATCH", "/tenants/acme", '{"paused": false, "paused": true}', "paused"),
        ("POST", "/tenants", '{"tenant_id": "x-1", "tenant_id": "x-2", "account_id": "333333333333"}', "tenant_id"),
    ],
)
def test_duplicate_json_keys_are_refused_not_last_one_wins(
    api: ApiClient, method: str, path: str, raw: str, key: str
) -> None:
    api.put("/servers/alpha-1", put_config(seed="orig"))
    before = api.get("/servers/alpha-1").json()
    caller = ROOT if path.startswith("/tenants") else None
    kwargs: dict[str, Any] = {"raw_body": raw}
    response = api.request(method, path, caller, **kwargs) if caller else api.request(method, path, **kwargs)
    assert response.status == 400, response.text
    assert _details(response) == [(key, "json_duplicate_key")]
    assert f"{key!r} more than once" in response.json()["message"]
    assert api.get("/servers/alpha-1").json() == before
    assert api.get("/tenants/acme", ROOT).json()["paused"] is False
    assert api.get("/tenants/x-2", ROOT).status == 404


def test_a_number_of_thousands_of_digits_is_refused_saying_so(api: ApiClient) -> None:
    """A 5,001-digit player_count was refused with Python's own hint to call `sys.set_int_max_str_digits()`."""
    response = api.put("/servers/alpha-1", None, raw_body='{"config": {"player_count": 1' + "0" * 5000 + "}}")

    assert response.status == 400, response.text
    assert _details(response) == [("body", "json_number_too_long")]
    assert response.json()["message"] == "the body has a number of 5001 digits; no value takes more than 100"
    assert api.get("/servers/alpha-1").status == 404
