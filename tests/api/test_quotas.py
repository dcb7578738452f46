"""Tier quotas: the number of servers per tenant (409) and the player count per server (422), each naming
its limit. globex is on the free tier (3 servers, 8 players); acme on standard (25 servers, 32 players)."""

from __future__ import annotations

import pytest

from models.config import TIERS
from tests.api.conftest import CAROL, ON_BOTH_STORES, ROOT, ApiClient, player, put_config

DAN = player("dan", "globex")  # a second player of globex: the quota is the tenant's, not the player's


@ON_BOTH_STORES
def test_the_server_quota_counts_every_player_of_the_tenant(api: ApiClient) -> None:
    assert api.put("/servers/c-1", put_config(), CAROL).status == 201
    assert api.put("/servers/c-2", put_config(), CAROL).status == 201
    assert api.put("/servers/d-1", put_config(), DAN).status == 201
    refused = api.put("/servers/d-2", put_config(), DAN)
    assert refused.status == 409
    error = refused.json()
    assert error["code"] == "QuotaExceeded"
    assert "maximum of 3" in error["message"]
    assert error["details"] == [
        {
            "field": "tier",
            "location": "tenant",
            "rule": "tier_max_servers",
            "message": error["message"],
            "limit": TIERS["free"].max_servers,
        }
    ]
    assert api.get("/servers/d-2", DAN).status == 404  # nothing was written


def test_replacing_or_changing_a_server_at_the_quota_is_allowed(api: ApiClient) -> None:
    for server_id in ("c-1", "c-2", "c-3"):
        api.put(f"/servers/{server_id}", put_config(), CAROL)
    assert api.put("/servers/c-1", put_config(seed="new"), CAROL).status == 200
    assert api.patch("/servers/c-2", {"config": {"player_count": 8}}, CAROL).status == 200


@ON_BOTH_STORES
def test_a_server_being_deleted_frees_its_slot(api: ApiClient) -> None:
    for server_id in ("c-1", "c-2", "c-3"):
        api.put(f"/servers/{server_id}", put_config(), CAROL)
    assert api.put("/servers/c-4", put_config(), CAROL).status == 409
    assert api.delete("/servers/c-1", CAROL).status == 202
    assert api.put("/servers/c-4", put_config(), CAROL).status == 201


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_player_count_above_the_tiers_maximum_is_422_naming_the_limit(api: ApiClient, method: str) -> None:
    api.put("/servers/c-1", put_config(player_count=8), CAROL)
    body = put_config(player_count=9) if method == "PUT" else {"config": {"player_count": 9}}
    refused = api.request(method, "/servers/c-1", CAROL, body=body)
    assert refused.status == 422
    detail = refused.json()["details"][0]
    assert detail["field"] == "config.player_count"
    assert detail["rule"] == "tier_max_player_count"
    assert detail["limit"] == 8
    assert "free tier's maximum of 8" in detail["message"]
    assert api.get("/servers/c-1", CAROL).json()["config"]["player_count"] == 8


def test_a_bigger_tier_raises_both_limits(api: ApiClient) -> None:
    assert api.put("/servers/c-1", put_config(player_count=20), CAROL).status == 422
    assert api.patch("/tenants/globex", {"tier": "premium"}, ROOT).status == 200
    assert api.put("/servers/c-1", put_config(player_count=100), CAROL).status == 201
    for index in range(2, 6):
        assert api.put(f"/servers/c-{index}", put_config(), CAROL).status == 201


def test_player_count_above_every_tier_is_a_schema_error(api: ApiClient) -> None:
    api.patch("/tenants/globex", {"tier": "premium"}, ROOT)
    refused = api.put("/servers/c-1", put_config(player_count=129), CAROL)
    assert refused.status == 422
    assert refused.json()["details"][0]["rule"] == "less_than_equal"


def test_standard_tier_limits(api: ApiClient) -> None:
    limit = TIERS["standard"].max_player_count
    assert api.put("/servers/a-1", put_config(player_count=limit)).status == 201
    refused = api.put("/servers/a-2", put_config(player_count=limit + 1))
    assert refused.status == 422
    assert refused.json()["details"][0]["limit"] == limit
