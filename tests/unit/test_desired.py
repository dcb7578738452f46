"""The write rules every writer shares (`reconciler.desired`), on the in-memory store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from models.config import ConfigError
from models.records import Tenant, role_arn_for
from reconciler.desired import QuotaExceededError, put_server
from reconciler.memory import MemoryStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TENANT = Tenant(
    tenant_id="alpha",
    account_id="111111111111",
    regions=("us-east-1", "eu-west-1"),
    role_arn=role_arn_for("111111111111", "StackherdExecution"),
    external_id="ext-alpha",
    tier="free",
)


def test_a_new_server_is_pinned_to_the_primary_region_and_stays_there() -> None:
    store = MemoryStore()
    assert put_server(store, TENANT, "s0", "ana", {}, T0).server.region == "us-east-1"

    reordered = replace(TENANT, regions=("eu-west-1", "us-east-1"))
    assert put_server(store, reordered, "s0", "ana", {"seed": "new"}, T0, merge=True).server.region == "us-east-1"
    assert put_server(store, reordered, "s1", "ana", {}, T0).server.region == "eu-west-1"


def test_a_region_outside_the_tenants_is_refused_naming_the_rule() -> None:
    with pytest.raises(ConfigError) as caught:
        put_server(MemoryStore(), TENANT, "s0", "ana", {}, T0, region="ap-south-1")
    assert (caught.value.field, caught.value.rule) == ("region", "tenant_region")


def test_the_tiers_limits_name_themselves() -> None:
    store = MemoryStore()
    with pytest.raises(ConfigError) as too_many_players:
        put_server(store, TENANT, "s0", "ana", {"player_count": 9}, T0)
    assert (too_many_players.value.rule, too_many_players.value.limit) == ("tier_max_player_count", 8)

    for index in range(3):
        put_server(store, TENANT, f"s{index}", "ana", {}, T0)
    with pytest.raises(QuotaExceededError, match="maximum of 3") as over_quota:
        put_server(store, TENANT, "s3", "ana", {}, T0)
    assert over_quota.value.limit == 3
