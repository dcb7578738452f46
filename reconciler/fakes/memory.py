"""An in-memory `DesiredStore` with the same semantics as the DynamoDB one (generation bumps, optimistic
concurrency, status-only writes, pages, the activity log, tenant registration), for the functional and API
tests, the property test and the benchmark."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from models.config import GameServerConfig
from models.records import DesiredServer, Phase, ServerStatus, Tenant, now_iso
from reconciler.ports import DesiredRead
from reconciler.writes import ConflictError, NotFoundError, PreconditionFailedError, WriteResult


@dataclass(frozen=True)
class ActivityEntry:
    """One line of a server's activity log, keyed like the DynamoDB one (`at` sorts by time)."""

    tenant_id: str
    gameserver_id: str
    at: str
    kind: str
    message: str
    generation: int | None = None
    actor: str | None = None


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
        self.activity: list[ActivityEntry] = []
        self.status_writes = 0
        self.fail_reads: set[str] = set()  # tenant ids whose next reads come back incomplete
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
        actor: str | None = None,
    ) -> None:
        with self._lock:
            self.activity.append(
                ActivityEntry(
                    tenant_id,
                    gameserver_id,
                    f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{uuid.uuid4().hex[:8]}",
                    kind,
                    message[:1000],
                    generation,
                    actor,
                )
            )

    def history(
        self, tenant_id: str, gameserver_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[ActivityEntry], str | None]:
        """Newest first; `cursor` is the `at` to continue after. Like a DynamoDB query with a limit, a full
        page returns its last `at` even when nothing follows."""
        with self._lock:
            entries = sorted(
                (e for e in self.activity if (e.tenant_id, e.gameserver_id) == (tenant_id, gameserver_id)),
                key=lambda e: e.at,
                reverse=True,
            )
        if cursor:
            entries = [e for e in entries if e.at < cursor]
        page = entries[:limit]
        return page, (page[-1].at if len(page) == limit else None)

    def list_servers(self, tenant_id: str) -> list[DesiredServer]:
        return list(self.read_servers(tenant_id).servers)

    def page_servers(
        self, tenant_id: str, *, username: str | None = None, limit: int = 25, after: str | None = None
    ) -> tuple[list[DesiredServer], str | None]:
        """One page of a tenant's records in id order (only `username`'s when given), and the id to continue
        after, or None at the end."""
        with self._lock:
            matching = [
                s
                for s in self.servers.tenant(tenant_id)
                if (after is None or s.gameserver_id > after) and (username is None or s.username == username)
            ][: limit + 1]
        return matching[:limit], (matching[limit - 1].gameserver_id if len(matching) > limit else None)

    def create_tenant(self, tenant: Tenant, at: datetime) -> bool:
        """Register a tenant; False (and nothing written) when one with that id exists."""
        with self._lock:
            if tenant.tenant_id in self.tenants:
                return False
            self.tenants[tenant.tenant_id] = tenant
            return True

    def update_tenant(
        self,
        tenant_id: str,
        *,
        tier: str | None = None,
        template_version: str | None = None,
        regions: tuple[str, ...] | list[str] | None = None,
        paused: bool | None = None,
    ) -> Tenant | None:
        """Change the given fields of a registered tenant; None when it is not registered."""
        with self._lock:
            current = self.tenants.get(tenant_id)
            if current is None:
                return None
            changed = replace(
                current,
                tier=current.tier if tier is None else tier,
                template_version=current.template_version if template_version is None else template_version,
                regions=current.regions if regions is None else tuple(regions),
                paused=current.paused if paused is None else paused,
            )
            self.tenants[tenant_id] = changed
            return changed

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
                raise ConflictError(f"game server {gameserver_id!r} belongs to another player")
            if (
                current.config == config
                and current.region == region
                and not current.deletion_requested
                and current.config_error is None
            ):
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
