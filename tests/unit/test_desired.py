"""The write rules every writer shares (`reconciler.desired`), on the in-memory store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from models.config import ConfigError
from models.records import Tenant, role_arn_for
from reconciler.desired import QuotaExceededError, RegionInUseError, check_regions_removable, put_server
from reconciler.fakes.memory import MemoryStore

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


def test_a_region_can_be_dropped_only_once_no_server_is_in_it() -> None:
    store = MemoryStore()
    put_server(store, TENANT, "s0", "ana", {}, T0)  # the primary region, us-east-1
    put_server(store, TENANT, "s1", "ana", {}, T0, region="eu-west-1")
    store.put_server("alpha", "legacy", "ana", put_server(store, TENANT, "tmp", "ana", {}, T0).server.config, T0)

    with pytest.raises(RegionInUseError, match="s1"):
        check_regions_removable(store, TENANT, ("us-east-1",))
    with pytest.raises(RegionInUseError, match="legacy, s0, tmp"):  # no region of its own: the primary one
        check_regions_removable(store, TENANT, ("eu-west-1",))
    check_regions_removable(store, TENANT, ("eu-west-1", "us-east-1"))  # reordering drops nothing
