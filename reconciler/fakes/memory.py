"""An in-memory `DesiredStore` with the same semantics as the DynamoDB one (conditional writes on generation
and incarnation, the quota counter, account claims, status-only writes, history per incarnation), for the
functional and API tests, the property test and the benchmark; the store contract suite holds both to it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from models.config import GameServerConfig
from models.records import (
    ActivityEntry,
    DeletionBrake,
    DesiredServer,
    OrphanAttempts,
    Phase,
    ServerStatus,
    Tenant,
    TenantState,
    WriteTrail,
    now_iso,
    tenant_problem,
)
from reconciler.desired import EXTERNAL_ID_TAKEN, account_taken_message, quota_exceeded
from reconciler.fakes.rollouts import MemoryRollouts
from reconciler.ports import DesiredRead, HistoryPage, ServerPage, stop_reason
from reconciler.writes import (
    AccountTakenError,
    ConcurrentWriteError,
    ConflictError,
    ExternalIdTakenError,
    NotFoundError,
    PreconditionFailedError,
    TenantExistsError,
)


class _ServerTable(dict[tuple[str, str], DesiredServer]):
    """Records keyed by (tenant, server), with a per-tenant index so a tenant's read does not scan every
    tenant's records (the benchmark holds tens of thousands). Tests may assign and delete keys directly."""

    def __init__(self) -> None:
        super().__init__()
        self.by_tenant: dict[str, dict[str, DesiredServer]] = {}

    def __setitem__(self, key: tuple[str, str], value: DesiredServer) -> None:
        super().__setitem__(key, value)
        self.by_tenant.setdefault(key[0], {})[key[1]] = value

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        self.by_tenant.get(key[0], {}).pop(key[1], None)

    # dict's own pop, popitem, clear, setdefault and update do not go through the two methods above, so
    # without these a record removed with `servers.pop(key)` would still be read by `tenant()`.
    def pop(self, key: tuple[str, str], *default: Any) -> Any:
        value = super().pop(key, *default)
        self.by_tenant.get(key[0], {}).pop(key[1], None)
        return value

    def popitem(self) -> tuple[tuple[str, str], DesiredServer]:
        key, value = super().popitem()
        self.by_tenant.get(key[0], {}).pop(key[1], None)
        return key, value

    def clear(self) -> None:
        super().clear()
        self.by_tenant.clear()

    def setdefault(self, key: tuple[str, str], default: DesiredServer) -> DesiredServer:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def tenant(self, tenant_id: str) -> list[DesiredServer]:
        servers = self.by_tenant.get(tenant_id, {})
        return [servers[k] for k in sorted(servers)]


class MemoryStore(MemoryRollouts):
    """Every `DesiredStore` operation under one lock, which makes each write as atomic as its DynamoDB
    transaction: the quota counter, the account claims and the record change together or not at all."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.servers = _ServerTable()
        self.activity: list[tuple[str, str, str, str, int | None, str]] = []
        #: Every activity entry as stored (the tuples above are the short form the engine tests read).
        self.entries: list[tuple[str, str, ActivityEntry]] = []
        self.accounts: dict[str, str] = {}  # account id -> tenant id
        self.external_ids: dict[str, str] = {}  # external id -> tenant id (DynamoDB keeps a digest)
        self.buckets: dict[str, tuple[float, float]] = {}  # rate key -> (tokens, epoch seconds)
        self.counts: dict[str, int] = {}  # tenant id -> live game servers
        self.status_writes = 0
        self.fail_reads: set[str] = set()  # tenant ids whose next reads come back incomplete
        self.states: dict[str, TenantState] = {}
        self.state_reads = 0
        self._lock = threading.RLock()

    # --- tenants ---------------------------------------------------------------------------------

    def put_tenant(self, tenant: Tenant, at: datetime | None = None) -> None:
        """Seed a tenant directly (tests, the benchmark): no rule is checked."""
        with self._lock:
            self.tenants[tenant.tenant_id] = tenant
            self.accounts.setdefault(tenant.account_id, tenant.tenant_id)
            self.external_ids.setdefault(tenant.external_id, tenant.tenant_id)

    def take_token(self, key: str, *, rate_per_s: float, burst: int, at: datetime) -> float:
        now = at.timestamp()
        with self._lock:
            tokens, last = self.buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + max(0.0, now - last) * rate_per_s)
            if tokens < 1.0:
                return (1.0 - tokens) / rate_per_s
            self.buckets[key] = (tokens - 1.0, now)
            return 0.0

    def list_tenants(self) -> list[Tenant]:
        with self._lock:
            return sorted(self.tenants.values(), key=lambda t: t.tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        with self._lock:
            return self.tenants.get(tenant_id)

    def create_tenant(self, tenant: Tenant, at: datetime) -> None:
        with self._lock:
            if tenant.tenant_id in self.tenants:
                raise TenantExistsError(f"tenant {tenant.tenant_id!r} is already registered; change it with an update")
            owner = self.accounts.get(tenant.account_id)
            if owner is not None and owner != tenant.tenant_id:
                raise AccountTakenError(account_taken_message(tenant.account_id, owner))
            if self.external_ids.get(tenant.external_id, tenant.tenant_id) != tenant.tenant_id:
                raise ExternalIdTakenError(EXTERNAL_ID_TAKEN)
            self.tenants[tenant.tenant_id] = tenant
            self.accounts[tenant.account_id] = tenant.tenant_id
            self.external_ids[tenant.external_id] = tenant.tenant_id
            self.counts[tenant.tenant_id] = 0

    def update_tenant(
        self,
        tenant_id: str,
        *,
        tier: str | None = None,
        template_version: str | None = None,
        regions: tuple[str, ...] | list[str] | None = None,
        paused: bool | None = None,
    ) -> Tenant | None:
        with self._lock:
            tenant = self.tenants.get(tenant_id)
            if tenant is None:
                return None
            changes: dict[str, Any] = {}
            if tier is not None:
                changes["tier"] = tier
            if template_version is not None:
                changes["template_version"] = template_version
            if regions is not None:
                changes["regions"] = tuple(regions)
            if paused is not None:
                changes["paused"] = paused
            updated = replace(tenant, **changes, unreadable=None)
            updated = replace(updated, unreadable=tenant_problem(updated))
            self.tenants[tenant_id] = updated
            return updated

    def set_quarantine(self, tenant_id: str, reason: str | None, at: datetime) -> None:
        with self._lock:
            tenant = self.tenants.get(tenant_id)
            if tenant is not None:
                self.tenants[tenant_id] = replace(
                    tenant, quarantined=reason, quarantined_at=now_iso(at) if reason else None
                )

    def live_server_count(self, tenant_id: str) -> int | None:
        with self._lock:
            return self.counts.get(tenant_id)

    # --- what the reconciler keeps per tenant ------------------------------------------------------

    def get_tenant_state(self, tenant_id: str) -> TenantState:
        with self._lock:
            self.state_reads += 1
            return self.states.get(tenant_id, TenantState())

    def put_deletion_brake(self, tenant_id: str, brake: DeletionBrake, expected_version: int) -> bool:
        with self._lock:
            if tenant_id not in self.tenants:
                return False
            state = self.states.get(tenant_id, TenantState())
            if state.deletion_brake.version != expected_version:
                return False
            self.states[tenant_id] = replace(state, deletion_brake=replace(brake, version=expected_version + 1))
            return True

    def set_region_quarantine(self, tenant_id: str, region: str, reason: str | None, at: datetime) -> None:
        with self._lock:
            if tenant_id not in self.tenants:
                return
            state = self.states.get(tenant_id, TenantState())
            kept = tuple(q for q in state.region_quarantine if q[0] != region)
            if reason:
                kept = (*kept, (region, reason, now_iso(at)))
            self.states[tenant_id] = replace(state, region_quarantine=tuple(sorted(kept)))

    def clear_region_quarantine(self, tenant_id: str) -> None:
        with self._lock:
            state = self.states.get(tenant_id)
            if state is not None:
                self.states[tenant_id] = replace(state, region_quarantine=())

    def orphan_attempts(self, tenant_id: str) -> dict[str, OrphanAttempts]:
        with self._lock:
            state = self.states.get(tenant_id, TenantState())
            return {a.stack_id: a for a in state.orphan_budgets}

    def save_orphan_attempts(self, tenant_id: str, attempts: Mapping[str, OrphanAttempts], at: datetime) -> None:
        with self._lock:
            if tenant_id not in self.tenants:
                return
            state = self.states.get(tenant_id, TenantState())
            kept = tuple(sorted(attempts.values(), key=lambda a: a.stack_id))
            self.states[tenant_id] = replace(state, orphan_budgets=kept)

    def tenant_stop_reason(self, tenant_id: str) -> str | None:
        with self._lock:
            return stop_reason(self.tenants.get(tenant_id))

    # --- desired records -------------------------------------------------------------------------

    def read_servers(self, tenant_id: str) -> DesiredRead:
        with self._lock:
            servers = tuple(self.servers.tenant(tenant_id))
            if tenant_id in self.fail_reads:
                return DesiredRead(servers[: len(servers) // 2], complete=False)
            return DesiredRead(servers)

    def get_server(self, tenant_id: str, gameserver_id: str) -> DesiredServer | None:
        with self._lock:
            return self.servers.get((tenant_id, gameserver_id))

    def page_servers(
        self,
        tenant_id: str,
        *,
        username: str | None = None,
        limit: int = 25,
        after: str | None = None,
        owner_sub: str | None = None,
    ) -> ServerPage:
        def wanted(s: DesiredServer) -> bool:
            if owner_sub is not None:
                return s.owned_by(owner_sub, username or "")
            return username is None or s.username == username

        with self._lock:
            servers = [
                s for s in self.servers.tenant(tenant_id) if (after is None or s.gameserver_id > after) and wanted(s)
            ]
        page = tuple(servers[:limit])
        return ServerPage(page, page[-1].gameserver_id if len(servers) > limit else None)

    def _count(self, tenant_id: str) -> int:
        """The tenant's counter; a tenant seeded without one starts from its live records."""
        if tenant_id not in self.counts:
            self.counts[tenant_id] = sum(1 for s in self.servers.tenant(tenant_id) if not s.deletion_requested)
        return self.counts[tenant_id]

    def create_server(self, server: DesiredServer, *, tier: str, max_servers: int) -> DesiredServer:
        with self._lock:
            key = (server.tenant_id, server.gameserver_id)
            if key in self.servers:
                raise ConflictError(f"game server {server.gameserver_id!r} was created concurrently; read it again")
            tenant = self.tenants.get(server.tenant_id)
            if tenant is None:
                raise NotFoundError(server.tenant_id)
            live = self._count(server.tenant_id)
            if tenant.tier != tier:
                raise ConcurrentWriteError(f"tenant {tenant.tenant_id!r} changed tier meanwhile; retry")
            if live >= max_servers:
                # Records removed around the store leave the counter high: count them before refusing.
                live = self.counts[server.tenant_id] = sum(
                    1 for s in self.servers.tenant(server.tenant_id) if not s.deletion_requested
                )
                if live >= max_servers:
                    raise quota_exceeded(tenant, live)
            self.servers[key] = server
            self.counts[server.tenant_id] = live + 1
            return server

    def _still(self, current: DesiredServer) -> DesiredServer:
        """The stored record, if it is still `current` (same generation, same incarnation)."""
        stored = self.servers.get((current.tenant_id, current.gameserver_id))
        if stored is None or (stored.generation, stored.incarnation) != (current.generation, current.incarnation):
            raise PreconditionFailedError(current.gameserver_id, stored, given=False)
        return stored

    def replace_server(
        self,
        current: DesiredServer,
        *,
        config: GameServerConfig,
        region: str | None,
        trail: WriteTrail,
        at: datetime,
        owner_sub: str | None = None,
    ) -> DesiredServer:
        with self._lock:
            stored = self._still(current)
            server = replace(
                stored,
                owner_sub=owner_sub or stored.owner_sub,
                config=config,
                raw_config=config.model_dump(),
                unreadable=None,
                region=region,
                generation=stored.generation + 1,
                updated_at=now_iso(at),
                trail=trail,
            )
            self.servers[(current.tenant_id, current.gameserver_id)] = server
            return server

    def request_deletion(self, current: DesiredServer, *, trail: WriteTrail, at: datetime) -> DesiredServer:
        with self._lock:
            stored = self._still(current)
            server = replace(
                stored,
                deletion_requested=True,
                generation=stored.generation + 1,
                updated_at=now_iso(at),
                status=replace(stored.status, phase=Phase.DELETING),
                trail=trail,
            )
            live = self._count(current.tenant_id)
            self.servers[(current.tenant_id, current.gameserver_id)] = server
            self.counts[current.tenant_id] = max(0, live - 1)
            return server

    def write_status(self, server: DesiredServer, status: ServerStatus) -> bool:
        with self._lock:
            key = (server.tenant_id, server.gameserver_id)
            current = self.servers.get(key)
            if current is None or (current.generation, current.incarnation) != (server.generation, server.incarnation):
                return False
            self.servers[key] = replace(current, status=status)
            self.status_writes += 1
            return True

    def finalize(self, server: DesiredServer) -> bool:
        with self._lock:
            key = (server.tenant_id, server.gameserver_id)
            current = self.servers.get(key)
            if (
                current is None
                or (current.generation, current.incarnation) != (server.generation, server.incarnation)
                or not current.deletion_requested
            ):
                return False
            # Its slot was given back when its deletion was requested.
            del self.servers[key]
            return True

    # --- history ---------------------------------------------------------------------------------

    def append_activity(
        self,
        tenant_id: str,
        gameserver_id: str,
        kind: str,
        message: str,
        generation: int | None,
        at: datetime,
        *,
        incarnation: str | None = None,
        trail: WriteTrail | None = None,
    ) -> None:
        with self._lock:
            stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            entry = ActivityEntry(
                at=stamp,
                kind=kind,
                message=message[:1000],
                generation=generation,
                actor=trail.actor if trail else None,
                door=trail.door if trail else None,
                correlation_id=trail.correlation_id if trail else None,
                incarnation=incarnation,
                cursor=f"{stamp}#{len(self.entries):08x}",
            )
            self.activity.append((tenant_id, gameserver_id, kind, message, generation, now_iso(at)))
            self.entries.append((tenant_id, gameserver_id, entry))

    def history(
        self, tenant_id: str, gameserver_id: str, incarnation: str, *, limit: int = 50, cursor: str | None = None
    ) -> HistoryPage:
        with self._lock:
            mine = sorted(
                (
                    e
                    for t, g, e in self.entries
                    if (t, g) == (tenant_id, gameserver_id) and e.incarnation == incarnation
                ),
                key=lambda e: e.cursor,
                reverse=True,
            )
        if cursor is not None:
            mine = [e for e in mine if e.cursor < cursor]
        page = tuple(mine[:limit])
        return HistoryPage(page, page[-1].cursor if len(mine) > limit else None)
