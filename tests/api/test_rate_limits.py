"""Rate limits on players' desired-state writes: a token bucket per player and one per tenant, kept in the store
(`rate#` items in the tenants table on DynamoDB), answered 429 with Retry-After; and a cool-down between two
region moves of one server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from freezegun import freeze_time

from tests.api.conftest import (
    ALICE,
    BOB,
    ON_BOTH_STORES,
    REGION,
    ROOT,
    TEMPLATE_BUCKET,
    ApiClient,
    ApiResponse,
    put_config,
)

START = "2026-11-30T12:00:00Z"


def _assert_429(response: ApiResponse, scope: str) -> int:
    assert response.status == 429, response.text
    body = response.json()
    assert body["code"] == "TooManyRequests"
    assert body["details"][0]["rule"] == f"rate_limit_{scope}"
    retry_after = response.header("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1
    assert f"in {retry_after} s" in body["message"]
    return int(retry_after)


@ON_BOTH_STORES
def test_a_player_writing_faster_than_the_limit_gets_429_with_retry_after(api: ApiClient) -> None:
    """A player PATCHing a server again and again used to be answered 200 every time."""
    assert api.put("/servers/alpha-1", put_config()).status == 201
    answers = [api.patch("/servers/alpha-1", {"config": {"seed": f"s{i}"}}) for i in range(12)]
    statuses = [r.status for r in answers]
    assert statuses[:9] == [200] * 9  # the default burst: 10 writes, the PUT included
    assert 429 in statuses
    _assert_429(answers[statuses.index(429)], "player")
    # Another player of the tenant is not held back by alice's bucket, nor is an admin reading.
    assert api.put("/servers/bravo-1", put_config(), BOB).status == 201
    assert api.get("/tenants/acme/servers", ROOT).status == 200
    # The bucket items are no tenants.
    assert [t["tenant_id"] for t in api.get("/tenants", ROOT).json()["items"]] == ["acme", "globex"]


@pytest.fixture
def frozen_api(memory_world: Any) -> Iterator[tuple[ApiClient, Any]]:
    with freeze_time(START) as frozen:
        yield ApiClient(), frozen


def test_a_player_patching_every_two_seconds_is_held_to_the_rate(frozen_api: tuple[ApiClient, Any]) -> None:
    api, frozen = frozen_api
    assert api.put("/servers/alpha-1", put_config()).status == 201
    refused = None
    for i in range(30):
        frozen.tick(2)
        response = api.patch("/servers/alpha-1", {"config": {"seed": f"s{i}"}})
        if response.status == 429:
            refused = response
            break
        assert response.status == 200
    assert refused is not None, "every second PATCH for a minute was accepted"
    wait = _assert_429(refused, "player")
    frozen.tick(wait)
    assert api.patch("/servers/alpha-1", {"config": {"seed": "after"}}).status == 200


def test_the_players_of_a_tenant_share_the_tenants_limit(memory_world: Any) -> None:
    from handlers.local.embedded import fake_runtime
    from handlers.runtime import install_runtime

    install_runtime(
        fake_runtime(
            memory_world,
            template_bucket=TEMPLATE_BUCKET,
            installation="stackherd",
            region=REGION,
            tenant_write_burst=3,
        )
    )
    api = ApiClient()
    with freeze_time(START):
        assert api.put("/servers/alpha-1", put_config(), ALICE).status == 201
        assert api.put("/servers/alpha-2", put_config(), ALICE).status == 201
        assert api.put("/servers/bravo-1", put_config(), BOB).status == 201
        _assert_429(api.put("/servers/bravo-2", put_config(), BOB), "tenant")
        assert api.get("/servers/bravo-2", BOB).status == 404
        # The other tenant's players have a bucket of their own.
        from tests.api.conftest import CAROL

        assert api.put("/servers/gamma-1", put_config(), CAROL).status == 201


def test_a_server_cannot_move_region_again_inside_the_cool_down(frozen_api: tuple[ApiClient, Any]) -> None:
    """Flipping a server's region back and forth used to be accepted every time: each flip a new stack and a
    deletion."""
    api, frozen = frozen_api
    assert api.put("/servers/alpha-1", put_config()).status == 201
    assert api.patch("/servers/alpha-1", {"region": "eu-west-1"}).status == 200
    frozen.tick(60)
    back = api.patch("/servers/alpha-1", {"region": "us-east-1"})
    wait = _assert_429(back, "region_move")
    assert back.json()["details"][0]["field"] == "region"
    assert 530 <= wait <= 540  # the 600 s default, less the minute gone
    assert api.get("/servers/alpha-1").json()["region"] == "eu-west-1"
    # Other changes go on meanwhile.
    assert api.patch("/servers/alpha-1", {"config": {"seed": "meanwhile"}}).status == 200
    frozen.tick(wait)
    assert api.patch("/servers/alpha-1", {"region": "us-east-1"}).status == 200


def test_operators_writes_through_the_cli_are_not_limited(memory_world: Any) -> None:
    from handlers.runtime import runtime
    from reconciler.desired import trail

    writes = runtime().writes
    tenant = memory_world.store.get_tenant("acme")
    for i in range(15):  # past a player's burst: an operator's writes name no player
        result = writes.put_server(tenant, "ops-1", "ops", {"seed": f"s{i}"}, trail=trail("ops", "cli"))
        assert result.changed
