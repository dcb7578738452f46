"""What the API shows of stored records: each view is the response model itself, built from a record.

A view never re-validates what it is given: a record is shown as it is stored (the planner and the store
decide what is valid), so one odd item cannot turn a listing into an error.
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


def server_view(server: DesiredServer, tenant: Tenant | None) -> ServerView:
    status = server.status
    region = server.region or (tenant.primary_region if tenant is not None and tenant.regions else "")
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
            conditions=[
                ConditionView(
                    type=c.type,
                    status=c.status,
                    reason=c.reason,
                    message=c.message,
                    last_transition_time=c.last_transition_time or None,
                )
                for c in status.conditions
            ],
            stack_id=status.stack_id,
            stack_status=status.stack_status,
            last_error=status.last_error,
            next_retry_at=status.next_retry_at,
            drift=status.drift,
        ),
        config_error=server.unreadable,
    )


def tenant_view(tenant: Tenant) -> TenantView:
    limits = TIERS.get(tenant.tier) or TIERS["standard"]
    return TenantView(
        tenant_id=tenant.tenant_id,
        account_id=tenant.account_id,
        regions=list(tenant.regions),
        role_arn=tenant.role_arn,
        external_id=tenant.external_id,
        tier=tenant.tier,
        limits=TierView(max_servers=limits.max_servers, max_player_count=limits.max_player_count),
        template_version=tenant.template_version,
        paused=tenant.paused,
        quarantined=tenant.quarantined,
        quarantined_at=tenant.quarantined_at,
        unreadable=tenant.unreadable,
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
