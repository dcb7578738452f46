"""What the API shows of stored records: each view is the response model itself, built from a record.

A view never re-validates what it is given: a record is shown as it is stored (the store marks one that no
longer validates `unreadable`, with the reason), so one odd item cannot turn a listing into an error.

Admins see what the reconciler recorded as it is. Players see their own servers through `player_server_view`
and `player_history_entry`: reason codes and messages of the player table (`reconciler.reasons`), never raw
AWS text, account ids, ARNs or the template bucket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.api.models import (
    ConditionView,
    HeldDeletionsView,
    HistoryEntry,
    ServerView,
    StatusView,
    TenantView,
    TierView,
)
from models.config import TIERS
from reconciler.reasons import player_error, player_history_message, player_reason, redact

if TYPE_CHECKING:
    from models.records import ActivityEntry, DesiredServer, Tenant, TenantState

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


def tenant_view(
    tenant: Tenant,
    state: TenantState | None = None,
    *,
    state_unreadable: str | None = None,
    with_external_id: bool = False,
) -> TenantView:
    """Any tenant as a view: its values as stored, never re-validated; `unreadable` says what is wrong with
    one that no longer validates (an unknown tier has no limits to show). With the reconciler's `state`
    (single reads): the deletions the brake holds and the regions quarantined alone, when there are any;
    `state_unreadable`: why that state could not be read (and how to repair it)."""
    limits = TIERS.get(tenant.tier)
    brake = state.deletion_brake if state is not None else None
    problems = []
    if tenant.unreadable:
        problems.append(f"{tenant.unreadable}: correct the item in the tenants table, or PATCH the tenant")
    if state_unreadable:
        problems.append(state_unreadable)
    return TenantView(
        tenant_id=tenant.tenant_id,
        account_id=tenant.account_id,
        regions=list(tenant.regions),
        role_arn=tenant.role_arn,
        # A secret: shown when the tenant is registered and on the explicit read, never in a listing or a read.
        external_id=tenant.external_id if with_external_id else None,
        tier=tenant.tier,
        limits=TierView(max_servers=limits.max_servers, max_player_count=limits.max_player_count) if limits else None,
        template_version=tenant.template_version,
        paused=tenant.paused,
        quarantined=tenant.quarantined,
        quarantined_at=tenant.quarantined_at,
        unreadable="; ".join(problems) or None,
        deletion_brake=HeldDeletionsView(
            held=len(brake.held),
            held_since=brake.held_since,
            held_servers=sorted(h.gameserver_id for h in brake.held),
        )
        if brake is not None and brake.held
        else None,
        quarantined_regions=state.quarantined_regions() if state is not None and state.region_quarantine else None,
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


def player_server_view(server: DesiredServer, tenant: Tenant | None, *names: str) -> ServerView:
    """What a player sees of their server: each condition as its player reason and message, the last error as
    the message of the Ready condition's reason; no stack id, no raw cause. `names`: words no player text may
    carry (the template bucket's name)."""
    view = server_view(server, tenant)
    status = view.status
    conditions = [
        # Why the player's own item does not validate is theirs to read (and to correct with a PUT).
        c.model_copy(update={"message": redact(c.message, *names)})
        if c.type == READABLE
        else c.model_copy(update={"reason": player_reason(c.reason).code, "message": player_reason(c.reason).message})
        for c in status.conditions
    ]
    ready = next((c.reason for c in status.conditions if c.type == "Ready" and not c.status), None)
    last_error = player_error(status.last_error, ready).message if status.last_error is not None else None
    shown = status.model_copy(
        update={
            "conditions": conditions,
            "stack_id": None,
            "last_error": last_error,
            "cause": None,
            "drift": redact(status.drift, *names) if status.drift else None,
        }
    )
    return view.model_copy(
        update={
            "status": shown,
            "unreadable": redact(view.unreadable, *names) if view.unreadable else None,
            "config_error": redact(view.config_error, *names) if view.config_error else None,
        }
    )


def player_history_entry(entry: ActivityEntry, *names: str) -> HistoryEntry:
    """A history line as a player sees it: the reconciler's lines by their kind's fixed message (their raw
    text, with AWS's messages, is for admins), a kind without one by a general message; the desired writes'
    own lines redacted."""
    shown = history_entry(entry)
    return shown.model_copy(update={"message": player_history_message(entry.kind, entry.message, *names)})
