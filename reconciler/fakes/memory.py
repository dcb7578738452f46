"""An in-memory `DesiredStore` with the same write semantics as the DynamoDB one (generation bumps,
optimistic concurrency, status-only writes), for the functional tests, the property test and the benchmark."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from models.config import GameServerConfig
from models.records import DesiredServer, OrphanAttempts, Phase, ServerStatus, Tenant, now_iso
from reconciler.ports import DesiredRead
from reconciler.writes import ConflictError, NotFoundError, PreconditionFailedError, WriteResult


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


class MemoryStore:
    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.servers = _ServerTable()
        self.activity: list[tuple[str, str, str, str, int | None, str]] = []
        self.status_writes = 0
        self.fail_reads: set[str] = set()  # tenant ids whose next reads come back incomplete
        self.orphans: dict[str, dict[str, OrphanAttempts]] = {}
        self._lock = threading.RLock()

    # --- tenants ---------------------------------------------------------------------------------

    def put_tenant(self, tenant: Tenant, at: datetime | None = None) -> None:
        with self._lock:
            self.tenants[tenant.tenant_id] = tenant

    def list_tenants(self) -> list[Tenant]:
        with self._lock:
            return sorted(self.tenants.values(), key=lambda t: t.tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        with self._lock:
            return self.tenants.get(tenant_id)

    def set_quarantine(self, tenant_id: str, reason: str | None, at: datetime) -> None:
        with self._lock:
            tenant = self.tenants.get(tenant_id)
            if tenant is not None:
                self.tenants[tenant_id] = replace(
                    tenant, quarantined=reason, quarantined_at=now_iso(at) if reason else None
                )

    def orphan_attempts(self, tenant_id: str) -> dict[str, OrphanAttempts]:
        with self._lock:
            return dict(self.orphans.get(tenant_id, {}))

    def save_orphan_attempts(self, tenant_id: str, attempts: Mapping[str, OrphanAttempts], at: datetime) -> None:
        with self._lock:
            if attempts:
                self.orphans[tenant_id] = dict(attempts)
            else:
                self.orphans.pop(tenant_id, None)

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

    def write_status(self, server: DesiredServer, status: ServerStatus) -> bool:
        with self._lock:
            key = (server.tenant_id, server.gameserver_id)
            current = self.servers.get(key)
            if current is None or current.generation != server.generation:
                return False
            self.servers[key] = replace(current, status=status)
            self.status_writes += 1
            return True

    def finalize(self, server: DesiredServer) -> bool:
        with self._lock:
            key = (server.tenant_id, server.gameserver_id)
            current = self.servers.get(key)
            if current is None or current.generation != server.generation or not current.deletion_requested:
                return False
            del self.servers[key]
            return True

    def append_activity(
        self,
        tenant_id: str,
        gameserver_id: str,
        kind: str,
        message: str,
        generation: int | None,
        at: datetime,
    ) -> None:
        with self._lock:
            self.activity.append((tenant_id, gameserver_id, kind, message, generation, now_iso(at)))

    # --- writers (the API, the CLI) ---------------------------------------------------------------

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
    ) -> WriteResult:
        with self._lock:
            key = (tenant_id, gameserver_id)
            current = self.servers.get(key)
            if expected_generation is not None and (current is None or current.generation != expected_generation):
                raise PreconditionFailedError(tenant_id, gameserver_id, current.generation if current else None)
            if current is None:
                server = DesiredServer(
                    tenant_id,
                    gameserver_id,
                    username,
                    config,
                    generation=1,
                    created_at=now_iso(at),
                    updated_at=now_iso(at),
                    region=region,
                )
                self.servers[key] = server
                return WriteResult(server, created=True, changed=True)
            if current.username != username:
                raise ConflictError(f"game server {gameserver_id} belongs to another player")
            if current.config == config and current.region == region and not current.deletion_requested:
                return WriteResult(current, created=False, changed=False)
            server = replace(
                current,
                config=config,
                region=region,
                generation=current.generation + 1,
                updated_at=now_iso(at),
                deletion_requested=False,
                config_error=None,
            )
            self.servers[key] = server
            return WriteResult(server, created=False, changed=True)

    def request_deletion(
        self, tenant_id: str, gameserver_id: str, at: datetime, *, expected_generation: int | None = None
    ) -> WriteResult:
        with self._lock:
            key = (tenant_id, gameserver_id)
            current = self.servers.get(key)
            if current is None:
                raise NotFoundError(tenant_id, gameserver_id)
            if expected_generation is not None and current.generation != expected_generation:
                raise PreconditionFailedError(tenant_id, gameserver_id, current.generation)
            if current.deletion_requested:
                return WriteResult(current, created=False, changed=False)
            server = replace(
                current,
                deletion_requested=True,
                generation=current.generation + 1,
                updated_at=now_iso(at),
                status=replace(current.status, phase=Phase.DELETING),
            )
            self.servers[key] = server
            return WriteResult(server, created=False, changed=True)
