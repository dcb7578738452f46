"""Desired-state writes with every rule a writer must apply (ids, config schema, tier limits, quotas,
ownership, optimistic concurrency). The CLI and the HTTP API both write through here, so a config
accepted by one is accepted by the other. Writers never call CloudFormation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from models.config import ConfigError, GameServerConfig, tier_limits, validate_config, validate_id, validate_owner
from models.records import DesiredServer, Tenant
from reconciler.ports import DesiredRead
from reconciler.writes import ConflictError, WriteResult


class QuotaExceededError(ConflictError):
    """The tenant's tier allows no more game servers."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class DesiredReader(Protocol):
    def read_servers(self, tenant_id: str) -> DesiredRead: ...


class DesiredWriter(DesiredReader, Protocol):
    def get_server(self, tenant_id: str, gameserver_id: str) -> DesiredServer | None: ...

    def put_server(
        self,
        tenant_id: str,
        gameserver_id: str,
        username: str,
        config: GameServerConfig,
        at: datetime,
        *,
        region: str | None = None,
        expected_generation: int | None = None,
    ) -> WriteResult: ...


def put_server(
    store: DesiredWriter,
    tenant: Tenant,
    gameserver_id: str,
    owner: str,
    raw_config: dict[str, Any],
    at: datetime,
    *,
    merge: bool = False,
    region: str | None = None,
    expected_generation: int | None = None,
) -> WriteResult:
    """Create or change a game server's desired config.

    `merge=True` changes only the given keys of an existing config (PATCH, `servers put --set`).
    """
    validate_id(gameserver_id, "gameserver id")
    validate_owner(owner)
    current = store.get_server(tenant.tenant_id, gameserver_id)
    if current is not None and current.username != owner:
        raise ConflictError(f"game server {gameserver_id!r} belongs to another player")
    raw = dict(raw_config)
    if merge and current is not None and current.config_error is None:
        raw = {**current.config.model_dump(), **raw}
    config = validate_config(raw, tenant.tier)
    check_region(tenant, region)
    if current is None:
        check_server_quota(store, tenant)
    return store.put_server(
        tenant.tenant_id,
        gameserver_id,
        owner,
        config,
        at,
        # A new server is placed in the tenant's primary region of today, and stays there: a later change to
        # the order of the tenant's regions must not move (delete and recreate) running servers.
        region=region if region is not None else (current.region if current else tenant.primary_region),
        expected_generation=expected_generation,
    )


def check_region(tenant: Tenant, region: str | None) -> None:
    """A server may only be placed in one of its tenant's regions (None: the tenant's first)."""
    if region is not None and region not in tenant.regions:
        raise ConfigError(
            f"region {region!r} is not one of the tenant's regions ({', '.join(tenant.regions)})",
            field="region",
            rule="tenant_region",
        )


def check_server_quota(store: DesiredReader, tenant: Tenant) -> None:
    """Room for one more server under the tier's maximum; servers being deleted no longer count."""
    limits = tier_limits(tenant.tier)
    live = sum(1 for s in store.read_servers(tenant.tenant_id).servers if not s.deletion_requested)
    if live >= limits.max_servers:
        raise QuotaExceededError(
            f"tenant {tenant.tenant_id!r} already has {live} game servers, the {tenant.tier} tier's maximum of "
            f"{limits.max_servers}; delete one first, or move the tenant to a larger tier",
            limit=limits.max_servers,
        )


class AccountTakenError(ConflictError):
    """The account already belongs to another tenant."""


class TenantRegistry(Protocol):
    def list_tenants(self) -> list[Tenant]: ...


def check_account_free(store: TenantRegistry, tenant: Tenant) -> None:
    """Every tenant has an AWS account of its own: two tenants in one account could reach each other's stacks
    and their stack names could collide (`a` + `b-c` and `a-b` + `c`)."""
    for other in store.list_tenants():
        if other.account_id == tenant.account_id and other.tenant_id != tenant.tenant_id:
            raise AccountTakenError(
                f"account {tenant.account_id} is already tenant {other.tenant_id!r}'s; every tenant needs an "
                "AWS account of its own"
            )


class RegionInUseError(ConflictError):
    """A region the tenant's game servers still live in cannot be dropped from the tenant."""


def check_regions_removable(store: DesiredReader, tenant: Tenant, regions: tuple[str, ...] | list[str]) -> None:
    """Dropping a region from a tenant must not strand servers there (they would fail, their stacks left
    running): move or delete them first. A server without a region of its own lives in the primary one."""
    stranded = sorted(
        s.gameserver_id
        for s in store.read_servers(tenant.tenant_id).servers
        if (s.region or tenant.primary_region) not in regions
    )
    if stranded:
        shown = ", ".join(stranded[:10]) + (f" and {len(stranded) - 10} more" if len(stranded) > 10 else "")
        raise RegionInUseError(
            f"game servers {shown} of tenant {tenant.tenant_id!r} are in a region this change drops; move them "
            "to a remaining region or delete them (and wait until their stacks are gone) first"
        )


def check_regions_usable(regions: tuple[str, ...] | list[str], role_arn: str) -> None:
    """Every region of a tenant must exist in its role's partition, as botocore's endpoint data knows it:
    `us-gov-west-1` or `cn-north-1` with an `arn:aws:` role, or a made-up name, would fail every pass."""
    from reconciler.regions import check_regions

    problem = check_regions(regions, role_arn)
    if problem:
        raise ConfigError(problem, field="regions", rule="region_unknown")
