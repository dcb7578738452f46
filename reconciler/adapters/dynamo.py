"""`DesiredStore` on DynamoDB through the PynamoDB models: consistent reads, status-only writes,
conditional (optimistic) desired-state writes, and the activity log."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta

from pynamodb.exceptions import DeleteError, PutError, PynamoDBException, UpdateError
from pynamodb.expressions.update import Action

from models.config import ConfigError, GameServerConfig
from models.records import DesiredServer, OrphanAttempts, Phase, ServerStatus, Tenant, now_iso
from models.tables import (
    ActivityModel,
    GameServerModel,
    TenantModel,
    config_from_map,
    config_to_map,
    server_from_item,
    status_from_map,
    status_to_map,
    tenant_from_item,
    tenant_to_item,
)
from reconciler.errors import StoreError, UnreadableItemError
from reconciler.ports import DesiredRead
from reconciler.writes import ConflictError, NotFoundError, PreconditionFailedError, WriteResult

ACTIVITY_TTL = timedelta(days=30)

#: What reading an item written around the models raises: PynamoDB's AttributeDeserializationError (a
#: TypeError) for a value of the wrong DynamoDB type, ValueError for one the record cannot hold (an unknown
#: phase, a generation that is not a number).
_UNREADABLE = (TypeError, ValueError)

log = logging.getLogger("stackherd.engine")

#: The tenant's orphan budgets live in one small item of the activity table, beside the servers' logs:
#: orphans have no record to keep them on. "#" never occurs in a game-server id, so no log collides.
ORPHANS_KEY = "#orphans"
ORPHANS_SORT = "#state"


def _conditional_failed(error: PynamoDBException) -> bool:
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"


def record_from_item(item: GameServerModel) -> DesiredServer:
    """Like `server_from_item`, but a stored config that no longer validates yields a record that the
    planner fails (with the reason) instead of one that silently disappears and orphans its stack."""
    try:
        return server_from_item(item)
    except ConfigError as error:
        return DesiredServer(
            tenant_id=item.tenant_id,
            gameserver_id=item.gameserver_id,
            username=item.username,
            config=GameServerConfig(),
            generation=int(item.generation or 1),
            created_at=item.created_at,
            updated_at=item.updated_at or item.created_at,
            deletion_requested=bool(item.deletion_requested),
            region=item.region,
            status=status_from_map(item.status),
            config_error=str(error),
        )


def unreadable_record(tenant_id: str, gameserver_id: str, error: Exception) -> DesiredServer:
    """Stands in for an item that cannot be read at all: the planner fails it with the reason and keeps its
    stack (it is no orphan), and no status write can land on it (generation 0 matches no stored item)."""
    return DesiredServer(
        tenant_id=tenant_id,
        gameserver_id=gameserver_id,
        username="",
        config=GameServerConfig(),
        generation=0,
        config_error=f"the stored record cannot be read ({error}); correct or delete the item in the table",
    )


class DynamoStore:
    def __init__(self, activity_ttl: timedelta = ACTIVITY_TTL) -> None:
        self.activity_ttl = activity_ttl

    # --- tenants ---------------------------------------------------------------------------------

    def list_tenants(self) -> list[Tenant]:
        """Every registered tenant. An item that cannot be read is logged and left out, so one bad item
        never stops the sweep of every other tenant."""
        try:
            try:
                tenants = [tenant_from_item(i) for i in TenantModel.scan()]
            except _UNREADABLE:
                tenants = []
                for key in TenantModel.scan(attributes_to_get=["tenant_id"]):
                    try:
                        tenant = self.get_tenant(key.tenant_id)
                    except (StoreError, UnreadableItemError) as error:
                        log.error("tenant item cannot be read; skipped", extra={"error": str(error)})
                        continue
                    if tenant is not None:
                        tenants.append(tenant)
        except PynamoDBException as error:
            raise StoreError(f"could not list tenants: {error}") from error
        return sorted(tenants, key=lambda t: t.tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        try:
            return tenant_from_item(TenantModel.get(tenant_id, consistent_read=True))
        except TenantModel.DoesNotExist:
            return None
        except PynamoDBException as error:
            raise StoreError(f"could not read tenant {tenant_id}: {error}") from error
        except _UNREADABLE as error:
            raise UnreadableItemError(
                f"the stored item of tenant {tenant_id} cannot be read ({error}); correct it in the tenants table"
            ) from error

    def put_tenant(self, tenant: Tenant, at: datetime) -> None:
        tenant_to_item(tenant, created_at=now_iso(at)).save()

    def set_quarantine(self, tenant_id: str, reason: str | None, at: datetime) -> None:
        item = TenantModel(tenant_id)
        try:
            item.update(
                actions=[
                    TenantModel.quarantined.set(reason) if reason else TenantModel.quarantined.remove(),
                    TenantModel.quarantined_at.set(now_iso(at)) if reason else TenantModel.quarantined_at.remove(),
                ],
                condition=TenantModel.tenant_id.exists(),
            )
        except UpdateError as error:
            if not _conditional_failed(error):
                raise StoreError(f"could not update tenant {tenant_id}: {error}") from error

    # --- desired records -------------------------------------------------------------------------

    def read_servers(self, tenant_id: str) -> DesiredRead:
        """All of a tenant's records, strongly consistent, following every page."""
        records, _ = self._records(tenant_id, {"consistent_read": True})
        return DesiredRead(tuple(records), complete=True)

    def _records(self, tenant_id: str, query: dict[str, object]) -> tuple[list[DesiredServer], list[str]]:
        """The records a query finds, and their ids. Only when some item cannot be read, it goes again by
        key: ids first (keys only), then one record at a time, an unreadable one standing in as failed."""
        try:
            try:
                items = list(GameServerModel.query(tenant_id, **query))  # type: ignore[arg-type]
                return [record_from_item(i) for i in items], [i.gameserver_id for i in items]
            except _UNREADABLE:
                keys = GameServerModel.query(
                    tenant_id,
                    **{**query, "attributes_to_get": ["tenant_id", "gameserver_id"]},  # type: ignore[arg-type]
                )
                ids = [k.gameserver_id for k in keys]
        except PynamoDBException as error:
            raise StoreError(f"could not read the desired records of {tenant_id}: {error}") from error
        records = [r for r in (self.get_server(tenant_id, i) for i in ids) if r is not None]
        return records, ids

    def get_server(self, tenant_id: str, gameserver_id: str) -> DesiredServer | None:
        if not gameserver_id:
            return None  # no record has an empty id, and DynamoDB refuses one as a key
        try:
            return record_from_item(GameServerModel.get(tenant_id, gameserver_id, consistent_read=True))
        except GameServerModel.DoesNotExist:
            return None
        except _UNREADABLE as error:
            log.error(
                "desired record cannot be read",
                extra={"tenant_id": tenant_id, "gameserver_id": gameserver_id, "error": str(error)},
            )
            return unreadable_record(tenant_id, gameserver_id, error)
        except PynamoDBException as error:
            raise StoreError(f"could not read {tenant_id}/{gameserver_id}: {error}") from error

    def write_status(self, server: DesiredServer, status: ServerStatus) -> bool:
        """Update only the `status` attribute, and only while the record is at the generation the status is
        about: desired fields and `generation` are never touched."""
        item = GameServerModel(server.tenant_id, server.gameserver_id)
        try:
            item.update(
                actions=[GameServerModel.status.set(status_to_map(status))],
                condition=GameServerModel.generation == server.generation,
            )
        except UpdateError as error:
            if _conditional_failed(error):
                return False
            raise StoreError(f"could not write status of {server.gameserver_id}: {error}") from error
        return True

    def finalize(self, server: DesiredServer) -> bool:
        item = GameServerModel(server.tenant_id, server.gameserver_id)
        try:
            item.delete(
                condition=(GameServerModel.generation == server.generation)
                & (GameServerModel.deletion_requested == True)  # noqa: E712 (a PynamoDB condition)
            )
        except DeleteError as error:
            if _conditional_failed(error):
                return False
            raise StoreError(f"could not remove {server.gameserver_id}: {error}") from error
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
        ActivityModel(
            f"{tenant_id}/{gameserver_id}",
            f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{uuid.uuid4().hex[:8]}",
            kind=kind,
            message=message[:1000],
            generation=generation,
            actor=actor,
            expires_at=at + self.activity_ttl,
        ).save()

    def orphan_attempts(self, tenant_id: str) -> dict[str, OrphanAttempts]:
        try:
            item = ActivityModel.get(f"{tenant_id}/{ORPHANS_KEY}", ORPHANS_SORT, consistent_read=True)
        except ActivityModel.DoesNotExist:
            return {}
        except PynamoDBException as error:
            raise StoreError(f"could not read the orphan budgets of tenant {tenant_id}: {error}") from error
        try:
            raw = json.loads(item.message)
            states = [OrphanAttempts(**entry) for entry in raw]
        except (ValueError, TypeError) as error:
            # Forgetting budgets re-spends them at worst; a pass must never stop on this item.
            log.warning("unreadable orphan budgets of tenant %s: %s", tenant_id, error)
            return {}
        return {state.stack_id: state for state in states}

    def save_orphan_attempts(self, tenant_id: str, attempts: Mapping[str, OrphanAttempts], at: datetime) -> None:
        key = f"{tenant_id}/{ORPHANS_KEY}"
        try:
            if not attempts:
                ActivityModel(key, ORPHANS_SORT).delete()
                return
            ActivityModel(
                key,
                ORPHANS_SORT,
                kind="orphans",
                message=json.dumps([asdict(a) for a in sorted(attempts.values(), key=lambda a: a.stack_id)]),
            ).save()
        except PynamoDBException as error:
            raise StoreError(f"could not save the orphan budgets of tenant {tenant_id}: {error}") from error

    def history(
        self, tenant_id: str, gameserver_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[ActivityModel], str | None]:
        """Newest first; `cursor` is the sort key to continue after."""
        kwargs: dict[str, object] = {"scan_index_forward": False, "limit": limit}
        if cursor:
            kwargs["last_evaluated_key"] = {
                "server_key": {"S": f"{tenant_id}/{gameserver_id}"},
                "at": {"S": cursor},
            }
        result = ActivityModel.query(f"{tenant_id}/{gameserver_id}", **kwargs)  # type: ignore[arg-type]
        items = list(result)
        last = result.last_evaluated_key
        return items, (last["at"]["S"] if last else None)

    def list_servers(self, tenant_id: str) -> list[DesiredServer]:
        return list(self.read_servers(tenant_id).servers)

    # --- writers ---------------------------------------------------------------------------------

    def _lost_race(self, tenant_id: str, gameserver_id: str) -> PreconditionFailedError:
        """Another writer changed the record between our read and our conditional write: report the
        generation it is at now (None would tell the caller the record does not exist)."""
        latest = self.get_server(tenant_id, gameserver_id)
        return PreconditionFailedError(tenant_id, gameserver_id, latest.generation if latest else None)

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
        """Create or replace the desired config. Bumps `generation` only when something desired changes."""
        current = self.get_server(tenant_id, gameserver_id)
        if expected_generation is not None and (current is None or current.generation != expected_generation):
            raise PreconditionFailedError(tenant_id, gameserver_id, current.generation if current else None)
        stamp = now_iso(at)
        if current is None:
            item = GameServerModel(
                tenant_id,
                gameserver_id,
                username=username,
                config=config_to_map(config),
                created_at=stamp,
                updated_at=stamp,
                generation=1,
                deletion_requested=False,
                region=region,
                status=status_to_map(ServerStatus()),
            )
            try:
                item.save(condition=GameServerModel.tenant_id.does_not_exist())
            except PutError as error:
                if _conditional_failed(error):
                    raise ConflictError(
                        f"game server {gameserver_id!r} was created concurrently; read it and retry"
                    ) from error
                raise StoreError(f"could not write {gameserver_id}: {error}") from error
            return WriteResult(record_from_item(item), created=True, changed=True)
        if current.username != username:
            raise ConflictError(f"game server {gameserver_id!r} belongs to another player")
        if (
            current.config == config
            and current.region == region
            and not current.deletion_requested
            and current.config_error is None
        ):
            return WriteResult(current, created=False, changed=False)
        item = GameServerModel(tenant_id, gameserver_id)
        try:
            item.update(
                actions=[
                    GameServerModel.config.set(config_to_map(config)),
                    GameServerModel.region.set(region) if region else GameServerModel.region.remove(),
                    GameServerModel.generation.add(1),
                    GameServerModel.updated_at.set(stamp),
                    GameServerModel.deletion_requested.set(False),
                ],
                condition=GameServerModel.generation == current.generation,
            )
        except UpdateError as error:
            if _conditional_failed(error):
                raise self._lost_race(tenant_id, gameserver_id) from error
            raise StoreError(f"could not write {gameserver_id}: {error}") from error
        return WriteResult(record_from_item(item), created=False, changed=True)

    def request_deletion(
        self, tenant_id: str, gameserver_id: str, at: datetime, *, expected_generation: int | None = None
    ) -> WriteResult:
        current = self.get_server(tenant_id, gameserver_id)
        if current is None:
            raise NotFoundError(tenant_id, gameserver_id)
        if expected_generation is not None and current.generation != expected_generation:
            raise PreconditionFailedError(tenant_id, gameserver_id, current.generation)
        if current.deletion_requested:
            return WriteResult(current, created=False, changed=False)
        item = GameServerModel(tenant_id, gameserver_id)
        deleting = ServerStatus(**{**current.status.__dict__, "phase": Phase.DELETING})
        try:
            item.update(
                actions=[
                    GameServerModel.deletion_requested.set(True),
                    GameServerModel.generation.add(1),
                    GameServerModel.updated_at.set(now_iso(at)),
                    GameServerModel.status.set(status_to_map(deleting)),
                ],
                condition=GameServerModel.generation == current.generation,
            )
        except UpdateError as error:
            if _conditional_failed(error):
                raise self._lost_race(tenant_id, gameserver_id) from error
            raise StoreError(f"could not request deletion of {gameserver_id}: {error}") from error
        return WriteResult(record_from_item(item), created=False, changed=True)

    # --- API pages and admin tenant writes ---------------------------------------------------------

    def page_servers(
        self, tenant_id: str, *, username: str | None = None, limit: int = 25, after: str | None = None
    ) -> tuple[list[DesiredServer], str | None]:
        """One page of a tenant's records in id order (only `username`'s when given), strongly consistent.

        Returns the page and the id to continue after, or None at the end (one extra item is read to know).
        """
        kwargs: dict[str, object] = {"consistent_read": True, "limit": limit + 1, "page_size": 100}
        if username is not None:
            kwargs["filter_condition"] = GameServerModel.username == username
        if after:
            kwargs["last_evaluated_key"] = {"tenant_id": {"S": tenant_id}, "gameserver_id": {"S": after}}
        records, ids = self._records(tenant_id, kwargs)
        return records[:limit], (ids[limit - 1] if len(ids) > limit else None)

    def create_tenant(self, tenant: Tenant, at: datetime) -> bool:
        """Register a tenant; False (and nothing written) when one with that id exists."""
        try:
            tenant_to_item(tenant, created_at=now_iso(at)).save(condition=TenantModel.tenant_id.does_not_exist())
        except PutError as error:
            if _conditional_failed(error):
                return False
            raise StoreError(f"could not register tenant {tenant.tenant_id}: {error}") from error
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
        actions: list[Action] = []
        if tier is not None:
            actions.append(TenantModel.tier.set(tier))
        if template_version is not None:
            actions.append(TenantModel.template_version.set(template_version))
        if regions is not None:
            actions.append(TenantModel.regions.set(list(regions)))  # type: ignore[arg-type]  # a list of str
        if paused is not None:
            actions.append(TenantModel.paused.set(paused))
        if not actions:
            return self.get_tenant(tenant_id)
        item = TenantModel(tenant_id)
        try:
            item.update(actions=actions, condition=TenantModel.tenant_id.exists())
        except UpdateError as error:
            if _conditional_failed(error):
                return None
            raise StoreError(f"could not update tenant {tenant_id}: {error}") from error
        return tenant_from_item(item)


__all__ = ["DynamoStore", "config_from_map", "record_from_item"]
