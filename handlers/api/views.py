"""What the API shows of stored records: each view is the response model itself, built from a record.

A view never re-validates what it is given: a record is shown as it is stored (the planner and the store
decide what is valid), so one odd item cannot turn a listing into an error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

from handlers.api.models import (
    ConditionView,
    HistoryEntry,
    ServerView,
    StatusView,
    TenantView,
    TierView,
)
from models.config import ACCOUNT_PATTERN, ID_PATTERN, TIERS

if TYPE_CHECKING:
    from models.records import DesiredServer, Tenant


class ActivityEntry(Protocol):
    """One line of a server's activity log, as the store returns it."""

    @property
    def at(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def generation(self) -> float | None: ...
    @property
    def actor(self) -> str | None: ...


_ID_RE = re.compile(ID_PATTERN)
_ACCOUNT_RE = re.compile(ACCOUNT_PATTERN)
#: The condition a view of an item that no longer validates carries, beside whatever the reconciler recorded.
READABLE = "Readable"


def _invalid_id(what: str, value: str) -> str | None:
    if _ID_RE.fullmatch(value):
        return None
    return f"the stored {what} {value!r} is not 1-40 lowercase letters, digits or inner hyphens"


def server_problems(server: DesiredServer) -> list[str]:
    """What is wrong with a stored record, in words; empty when it is readable as it is."""
    problems = [
        p
        for p in (
            _invalid_id("tenant_id", server.tenant_id),
            _invalid_id("gameserver_id", server.gameserver_id),
        )
        if p
    ]
    if server.config_error:
        problems.append(server.config_error)
    return problems


def server_view(server: DesiredServer, tenant: Tenant | None) -> ServerView:
    """Any record as a view: its values as stored, never re-validated, and a false `Readable` condition and
    `unreadable` saying why when it no longer validates."""
    status = server.status
    region = server.region or (tenant.primary_region if tenant is not None and tenant.regions else "")
    problems = server_problems(server)
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
    if problems:
        unreadable = "; ".join(problems) + ": correct the item in the table, or PUT the server again if it is yours"
        conditions = [c for c in conditions if c.type != READABLE]
        conditions.append(ConditionView(type=READABLE, status=False, reason="Unreadable", message=unreadable))
    return ServerView(
        tenant_id=server.tenant_id,
        gameserver_id=server.gameserver_id,
        username=server.username,
        config=server.config,
        region=region,
        generation=server.generation,
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
        ),
        config_error=server.config_error,
        unreadable=unreadable,
    )


def tenant_problems(tenant: Tenant) -> list[str]:
    """What is wrong with a stored tenant, in words; empty when it is readable as it is."""
    problems = [p for p in (_invalid_id("tenant_id", tenant.tenant_id),) if p]
    if not _ACCOUNT_RE.fullmatch(tenant.account_id or ""):
        problems.append(f"the stored account_id {tenant.account_id!r} is not a 12-digit AWS account id")
    if tenant.tier not in TIERS:
        problems.append(f"the stored tier {tenant.tier!r} is not one of {', '.join(TIERS)}")
    if not tenant.regions:
        problems.append("the stored tenant has no regions")
    return problems


def tenant_view(tenant: Tenant) -> TenantView:
    """Any tenant as a view: its values as stored, never re-validated; `unreadable` says what is wrong with
    one that no longer validates (an unknown tier has no limits to show)."""
    limits = TIERS.get(tenant.tier)
    problems = tenant_problems(tenant)
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
        unreadable="; ".join(problems) + ": correct the item in the tenants table, or PATCH the tenant"
        if problems
        else None,
    )


def history_entry(item: ActivityEntry) -> HistoryEntry:
    return HistoryEntry(
        at=item.at.split("#", 1)[0],
        kind=item.kind,
        message=item.message,
        generation=int(item.generation) if item.generation is not None else None,
        actor=item.actor,
    )
