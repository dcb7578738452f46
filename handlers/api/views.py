"""What the API shows of stored records: each view is the response model itself, built from a record.

A view never re-validates what it is given: a record is shown as it is stored (the store marks one that no
longer validates `unreadable`, with the reason), so one odd item cannot turn a listing into an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.api.models import (
    ConditionView,
    HistoryEntry,
    ServerView,
    StatusView,
    TenantView,
    TierView,
)
from models.config import TIERS

if TYPE_CHECKING:
    from models.records import ActivityEntry, DesiredServer, Tenant

#: The condition a view of an item that no longer validates carries, beside whatever the reconciler recorded.
READABLE = "Readable"


def server_view(server: DesiredServer, tenant: Tenant | None) -> ServerView:
    """Any record as a view: its values as stored, never re-validated, and a false `Readable` condition and
    `unreadable` saying why when it no longer validates (its config as stored in `stored_config` when that
    is what no longer validates)."""
    status = server.status
    region = server.region or (tenant.primary_region if tenant is not None and tenant.regions else "")
    unreadable = None
    conditions = [
        ConditionView(
            type=c.type,
            status=c.status,
            reason=c.reason,
            message=c.message,
            last_transition_time=c.last_transition_time or None,
        )
        for c in status.conditions
    ]
    if server.unreadable:
        unreadable = f"{server.unreadable}: correct the item in the table, or PUT a whole config if the server is yours"
        conditions = [c for c in conditions if c.type != READABLE]
        conditions.append(ConditionView(type=READABLE, status=False, reason="Unreadable", message=unreadable))
    return ServerView(
        tenant_id=server.tenant_id,
        gameserver_id=server.gameserver_id,
        username=server.username,
        config=server.config,
        stored_config=server.raw_config if server.config is None else None,
        region=region,
        generation=server.generation,
        incarnation=server.incarnation,
        created_at=server.created_at,
        updated_at=server.updated_at or server.created_at,
        deletion_requested=server.deletion_requested,
        status=StatusView(
            phase=status.phase.value,
            observed_generation=status.observed_generation,
            conditions=conditions,
            stack_id=status.stack_id,
            stack_status=status.stack_status,
            last_error=status.last_error,
            next_retry_at=status.next_retry_at,
            drift=status.drift,
            tries=status.tries or None,
            cause=status.cause,
        ),
        config_error=server.unreadable if server.config is None else None,
        unreadable=unreadable,
    )


def tenant_view(tenant: Tenant) -> TenantView:
    """Any tenant as a view: its values as stored, never re-validated; `unreadable` says what is wrong with
    one that no longer validates (an unknown tier has no limits to show)."""
    limits = TIERS.get(tenant.tier)
    return TenantView(
        tenant_id=tenant.tenant_id,
        account_id=tenant.account_id,
        regions=list(tenant.regions),
        role_arn=tenant.role_arn,
        external_id=tenant.external_id,
        tier=tenant.tier,
        limits=TierView(max_servers=limits.max_servers, max_player_count=limits.max_player_count) if limits else None,
        template_version=tenant.template_version,
        paused=tenant.paused,
        quarantined=tenant.quarantined,
        quarantined_at=tenant.quarantined_at,
        unreadable=f"{tenant.unreadable}: correct the item in the tenants table, or PATCH the tenant"
        if tenant.unreadable
        else None,
    )


def history_entry(entry: ActivityEntry) -> HistoryEntry:
    return HistoryEntry(
        at=entry.at,
        kind=entry.kind,
        message=entry.message,
        generation=entry.generation,
        actor=entry.actor,
        door=entry.door,
        correlation_id=entry.correlation_id,
    )
