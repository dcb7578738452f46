"""`DesiredStore` on DynamoDB through the PynamoDB models: consistent reads, status-only writes, conditional
desired-state writes (generation and incarnation), the quota counter and account claims in transactions, and
the activity log. Every method returns plain records (`models.records`), never PynamoDB items."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, PynamoDBException, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from models.config import GameServerConfig
from models.records import (
    DeletionBrake,
    DesiredServer,
    OrphanAttempts,
    Phase,
    ServerStatus,
    Tenant,
    TenantState,
    WriteTrail,
    now_iso,
)
from models.tables import (
    BRAKE_SECTION,
    ITEM_PREFIX_MARK,
    ORPHANS_SECTION,
    REGIONS_SECTION,
    AccountModel,
    ActivityModel,
    GameServerModel,
    RateModel,
    TenantModel,
    account_key,
    activity_from_item,
    config_to_map,
    external_id_key,
    server_from_item,
    status_to_map,
    tenant_from_item,
    tenant_state_from_map,
    tenant_to_item,
)
from reconciler.adapters.dynamo_rollouts import DynamoRollouts
from reconciler.desired import EXTERNAL_ID_TAKEN, account_taken_message, quota_exceeded
from reconciler.errors import StoreError, UnreadableItemError
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

ACTIVITY_TTL = timedelta(days=30)

#: What reading an item written around the models raises: PynamoDB's AttributeDeserializationError (a
#: TypeError) for a value of the wrong DynamoDB type, ValueError for one the record cannot hold (an unknown
#: phase, a generation that is not a number).
_UNREADABLE = (TypeError, ValueError)

#: Transactions on one tenant's counter that collide (TransactionConflict) are tried again this many times.
_TRANSACTION_TRIES = 8

log = logging.getLogger("stackherd.store")
T = TypeVar("T")


def _conditional_failed(error: PynamoDBException) -> bool:
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"


def unreadable_record(tenant_id: str, gameserver_id: str, error: Exception) -> DesiredServer:
    """Stands in for an item that cannot be decoded at all: the planner fails it with the reason and keeps its
    stack (it is no orphan), and no status write can land on it (generation 0 matches no stored item)."""
    return DesiredServer(
        tenant_id=tenant_id,
        gameserver_id=gameserver_id,
        username="",
        config=None,
        generation=0,
        unreadable=f"the stored record cannot be read ({error}); correct or delete the item in the table",
    )


def _same_record(server: DesiredServer) -> Condition:
    """The item is still the one read: same generation of the same incarnation. A record stored before
    incarnations were kept has none; its derived one stands for its creation time."""
    same: Condition = (GameServerModel.generation == server.generation) & (
        (GameServerModel.incarnation == server.incarnation)
        | (GameServerModel.incarnation.does_not_exist() & (GameServerModel.created_at == server.created_at))
    )
    return same


def _trail_actions(trail: WriteTrail) -> list[Action]:
    return [
        GameServerModel.actor.set(trail.actor),
        GameServerModel.door.set(trail.door),
        GameServerModel.correlation_id.set(trail.correlation_id),
    ]


class DynamoStore(DynamoRollouts):
    def __init__(self, activity_ttl: timedelta = ACTIVITY_TTL) -> None:
        self.activity_ttl = activity_ttl

    def _transaction(self) -> TransactWrite:
        return TransactWrite(connection=Connection(region=GameServerModel.Meta.region))

    # --- tenants ---------------------------------------------------------------------------------

    def list_tenants(self) -> list[Tenant]:
        """Every registered tenant. One whose item no longer validates is listed marked unreadable; one that
        cannot even be decoded is listed by its id with the reason, so one bad item never fails the listing
        (and the sweep skips it with a visible error, never silently)."""
        # Claims (`account#`, `external#`), rate buckets (`rate#`), work items (`work#`), rollouts: `<prefix>#` keys.
        not_a_tenant = TenantModel.tenant_id.contains(ITEM_PREFIX_MARK)
        try:
            try:
                tenants = [tenant_from_item(i) for i in TenantModel.scan(filter_condition=~not_a_tenant)]
            except _UNREADABLE:
                tenants = []
                for key in TenantModel.scan(filter_condition=~not_a_tenant, attributes_to_get=["tenant_id"]):
                    try:
                        tenant = self.get_tenant(key.tenant_id)
                    except UnreadableItemError as error:
                        log.error("tenant item cannot be read", extra={"error": str(error)})
                        tenant = Tenant(key.tenant_id, "", (), "", "", tier="", unreadable=str(error))
                    if tenant is not None:
                        tenants.append(tenant)
        except PynamoDBException as error:
            raise StoreError(f"could not list tenants: {error}") from error
        return sorted(tenants, key=lambda t: t.tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        if not tenant_id or ITEM_PREFIX_MARK in tenant_id:
            return None
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
        """Seed a tenant directly (tests): no rule is checked, and no account is claimed."""
        tenant_to_item(tenant, created_at=now_iso(at)).save()

    def create_tenant(self, tenant: Tenant, at: datetime) -> None:
        item = tenant_to_item(tenant, created_at=now_iso(at))
        item.server_count = 0
        claim = AccountModel(account_key(tenant.account_id), owner=tenant.tenant_id)
        secret = AccountModel(external_id_key(tenant.external_id), owner=tenant.tenant_id)
        try:
            with self._transaction() as tx:
                tx.save(item, condition=TenantModel.tenant_id.does_not_exist())
                tx.save(claim, condition=AccountModel.tenant_id.does_not_exist())
                tx.save(secret, condition=AccountModel.tenant_id.does_not_exist())
        except TransactWriteError as error:
            if self.get_tenant(tenant.tenant_id) is not None:
                raise TenantExistsError(f"tenant {tenant.tenant_id!r} is already registered") from error
            owner = self._claim_owner(account_key(tenant.account_id))
            if owner is not None:
                raise AccountTakenError(account_taken_message(tenant.account_id, owner)) from error
            if self._claim_owner(external_id_key(tenant.external_id)) is not None:
                raise ExternalIdTakenError(EXTERNAL_ID_TAKEN) from error
            raise StoreError(f"could not register tenant {tenant.tenant_id}: {error}") from error

    def take_token(self, key: str, *, rate_per_s: float, burst: int, at: datetime) -> float:
        """One token of the bucket `rate#<key>`, refilled at `rate_per_s` up to `burst`: 0.0 when taken, or the
        seconds until one will be there. A conditional UpdateItem on the bucket's last state, so every
        instance of the API draws from the one bucket; a writer that lost the race reads again."""
        now = at.timestamp()
        item_key = f"rate#{key}"
        for _ in range(_TRANSACTION_TRIES):
            try:
                item = RateModel.get(item_key, consistent_read=True)
                tokens, last = float(item.tokens), float(item.at)
                condition = (RateModel.at == item.at) & (RateModel.tokens == item.tokens)
            except RateModel.DoesNotExist:
                item = RateModel(item_key)
                tokens, last = float(burst), now
                condition = RateModel.tenant_id.does_not_exist()
            except PynamoDBException as error:
                raise StoreError(f"could not read the write budget {item_key}: {error}") from error
            tokens = min(float(burst), tokens + max(0.0, now - last) * rate_per_s)
            if tokens < 1.0:
                return (1.0 - tokens) / rate_per_s
            try:
                item.update(actions=[RateModel.tokens.set(tokens - 1.0), RateModel.at.set(now)], condition=condition)
                return 0.0
            except UpdateError as error:
                if not _conditional_failed(error):
                    raise StoreError(f"could not write the write budget {item_key}: {error}") from error
        raise StoreError(f"the write budget {item_key} is contended; retry shortly")

    def _claim_owner(self, key: str) -> str | None:
        try:
            return str(AccountModel.get(key, consistent_read=True).owner)
        except AccountModel.DoesNotExist:
            return None

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

    def live_server_count(self, tenant_id: str) -> int | None:
        try:
            item = TenantModel.get(tenant_id, consistent_read=True, attributes_to_get=["server_count"])
        except TenantModel.DoesNotExist:
            return None
        except PynamoDBException as error:
            raise StoreError(f"could not read tenant {tenant_id}: {error}") from error
        return None if item.server_count is None else int(item.server_count)

    # --- what the reconciler keeps per tenant ------------------------------------------------------

    def get_tenant_state(self, tenant_id: str) -> TenantState:
        try:
            item = TenantModel.get(tenant_id, consistent_read=True, attributes_to_get=["reconciler_state"])
        except TenantModel.DoesNotExist:
            return TenantState()
        except PynamoDBException as error:
            raise StoreError(f"could not read the state of tenant {tenant_id}: {error}") from error
        try:
            return tenant_state_from_map(item.reconciler_state)
        except _UNREADABLE as error:
            raise UnreadableItemError(
                f"the reconciler state of tenant {tenant_id} cannot be read ({error}); remove its "
                "reconciler_state attribute in the tenants table (held deletions must then be held again)"
            ) from error

    def _set_section(self, tenant_id: str, section: str, value: Any, condition: Any) -> bool:
        """Set one section of the state map under `condition`; the map itself is created on first use.
        False when the condition (or the tenant's existence) does not hold."""
        state = TenantModel.reconciler_state
        item = TenantModel(tenant_id)
        try:
            item.update(
                actions=[state[section].set(value)],
                condition=TenantModel.tenant_id.exists() & state.exists() & condition,
            )
            return True
        except UpdateError as error:
            if not _conditional_failed(error):
                raise StoreError(f"could not write the state of tenant {tenant_id}: {error}") from error
        try:  # no state map yet: create it, unless another writer just did
            item.update(
                actions=[state.set({section: value})],
                condition=TenantModel.tenant_id.exists() & state.does_not_exist(),
            )
            return True
        except UpdateError as error:
            if _conditional_failed(error):
                return False
            raise StoreError(f"could not write the state of tenant {tenant_id}: {error}") from error

    def put_deletion_brake(self, tenant_id: str, brake: DeletionBrake, expected_version: int) -> bool:
        version = TenantModel.reconciler_state[BRAKE_SECTION]["version"]
        condition = version.does_not_exist() if expected_version == 0 else version == expected_version
        if expected_version == 0:
            condition = condition | (version == 0)
        stored = {**brake.to_dict(), "version": expected_version + 1}
        return self._set_section(tenant_id, BRAKE_SECTION, stored, condition)

    def set_region_quarantine(self, tenant_id: str, region: str, reason: str | None, at: datetime) -> None:
        state = self.get_tenant_state(tenant_id)
        current = {r: {"reason": why, "at": since} for r, why, since in state.region_quarantine}
        if reason:
            current[region] = {"reason": reason, "at": now_iso(at)}
        else:
            current.pop(region, None)
        self._set_section(tenant_id, REGIONS_SECTION, current, TenantModel.tenant_id.exists())

    def clear_region_quarantine(self, tenant_id: str) -> None:
        if self.get_tenant_state(tenant_id).region_quarantine:
            self._set_section(tenant_id, REGIONS_SECTION, {}, TenantModel.tenant_id.exists())

    def orphan_attempts(self, tenant_id: str) -> dict[str, OrphanAttempts]:
        try:
            item = TenantModel.get(tenant_id, consistent_read=True, attributes_to_get=["reconciler_state"])
        except TenantModel.DoesNotExist:
            return {}
        except PynamoDBException as error:
            raise StoreError(f"could not read the orphan budgets of tenant {tenant_id}: {error}") from error
        try:
            states = tenant_state_from_map(item.reconciler_state).orphan_budgets
        except _UNREADABLE as error:
            # Forgetting budgets re-spends them at worst; a pass must never stop on this section.
            log.warning("unreadable orphan budgets of tenant %s: %s", tenant_id, error)
            return {}
        return {state.stack_id: state for state in states}

    def save_orphan_attempts(self, tenant_id: str, attempts: Mapping[str, OrphanAttempts], at: datetime) -> None:
        """Kept in the tenant's reconciler state beside the brake: an orphan has no record of its own. A tenant
        that no longer exists keeps nothing."""
        value = [asdict(a) for a in sorted(attempts.values(), key=lambda a: a.stack_id)]
        self._set_section(tenant_id, ORPHANS_SECTION, value, TenantModel.tenant_id.exists())

    def tenant_stop_reason(self, tenant_id: str) -> str | None:
        try:
            item = TenantModel.get(
                tenant_id, consistent_read=True, attributes_to_get=["tenant_id", "paused", "quarantined"]
            )
        except TenantModel.DoesNotExist:
            return stop_reason(None)
        except PynamoDBException as error:
            # Not knowing is not permission: a pass that cannot check stops changing the tenant.
            return f"the tenant's state could not be checked ({error})"
        if item.paused:
            return "the tenant was paused"
        if item.quarantined:
            return f"the tenant was quarantined: {item.quarantined}"
        return None

    # --- desired records -------------------------------------------------------------------------

    def read_servers(self, tenant_id: str) -> DesiredRead:
        """All of a tenant's records, strongly consistent, following every page. A page that fails after
        others were read gives what was read with `complete=False` (the engine then deletes nothing); a
        read that gets nothing at all raises StoreError."""
        records, _, complete = self._records(tenant_id, {"consistent_read": True})
        return DesiredRead(tuple(records), complete=complete)

    def _query(self, tenant_id: str, query: dict[str, Any]) -> Iterator[GameServerModel]:
        return GameServerModel.query(tenant_id, **query)

    def _records(self, tenant_id: str, query: dict[str, Any]) -> tuple[list[DesiredServer], list[str], bool]:
        """The records a query finds, their ids, and whether every page was read. Only when some item cannot
        be decoded, it goes again by key: ids first (keys only), then one record at a time, an undecodable one
        standing in as failed."""
        items: list[GameServerModel] = []
        try:
            for item in self._query(tenant_id, query):
                items.append(item)
            return [server_from_item(i) for i in items], [i.gameserver_id for i in items], True
        except _UNREADABLE:
            pass
        except PynamoDBException as error:
            if not items:
                raise StoreError(f"could not read the desired records of {tenant_id}: {error}") from error
            log.error(
                "desired records read only in part",
                extra={"tenant_id": tenant_id, "read": len(items), "error": str(error)},
            )
            return [server_from_item(i) for i in items], [i.gameserver_id for i in items], False
        ids: list[str] = []
        complete = True
        try:
            for key in self._query(tenant_id, {**query, "attributes_to_get": ["tenant_id", "gameserver_id"]}):
                ids.append(key.gameserver_id)
        except PynamoDBException as error:
            if not ids:
                raise StoreError(f"could not read the desired records of {tenant_id}: {error}") from error
            complete = False
        records: list[DesiredServer] = []
        for gameserver_id in ids:
            try:
                record = self.get_server(tenant_id, gameserver_id)
            except StoreError:
                complete = False
                continue
            if record is not None:
                records.append(record)
        return records, ids, complete

    def get_server(self, tenant_id: str, gameserver_id: str) -> DesiredServer | None:
        if not gameserver_id:
            return None  # no record has an empty id, and DynamoDB refuses one as a key
        try:
            return server_from_item(GameServerModel.get(tenant_id, gameserver_id, consistent_read=True))
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

    def page_servers(
        self,
        tenant_id: str,
        *,
        username: str | None = None,
        limit: int = 25,
        after: str | None = None,
        owner_sub: str | None = None,
    ) -> ServerPage:
        """One page of a tenant's records in id order (only `username`'s when given; with `owner_sub`, only
        the records of that sub and the older ones without a sub that name `username`), strongly consistent.
        One extra item is read to know whether there is more. A page that cannot be read raises StoreError."""
        kwargs: dict[str, Any] = {"consistent_read": True, "limit": limit + 1, "page_size": 100}
        if owner_sub is not None:
            kwargs["filter_condition"] = (GameServerModel.owner_sub == owner_sub) | (
                GameServerModel.owner_sub.does_not_exist() & (GameServerModel.username == (username or ""))
            )
        elif username is not None:
            kwargs["filter_condition"] = GameServerModel.username == username
        if after:
            kwargs["last_evaluated_key"] = {"tenant_id": {"S": tenant_id}, "gameserver_id": {"S": after}}
        records, ids, complete = self._records(tenant_id, kwargs)
        if not complete:
            raise StoreError(f"could not read a page of the desired records of {tenant_id}")
        return ServerPage(tuple(records[:limit]), ids[limit - 1] if len(ids) > limit else None)

    def create_server(self, server: DesiredServer, *, tier: str, max_servers: int) -> DesiredServer:
        """The record and the tenant's counter in one transaction: the record must not exist, the tenant must
        still be of `tier` and under `max_servers`. Transactions that collide on the counter are tried again."""
        assert server.config is not None and server.trail is not None
        item = GameServerModel(
            server.tenant_id,
            server.gameserver_id,
            username=server.username,
            owner_sub=server.owner_sub,
            config=config_to_map(server.config),
            created_at=server.created_at,
            updated_at=server.updated_at,
            generation=1,
            deletion_requested=False,
            region=server.region,
            status=status_to_map(server.status),
            incarnation=server.incarnation,
            actor=server.trail.actor,
            door=server.trail.door,
            correlation_id=server.trail.correlation_id,
        )
        for attempt in range(_TRANSACTION_TRIES):
            tenant = self.get_tenant(server.tenant_id)
            if tenant is None:
                raise NotFoundError(server.tenant_id)
            count = self.live_server_count(server.tenant_id)
            counter: list[Action]
            guard: Condition
            if count is None:
                # Registered before counters were kept: start it from the records, in this same transaction.
                count = sum(1 for s in self.read_servers(server.tenant_id).servers if not s.deletion_requested)
                counter = [TenantModel.server_count.set(count + 1)]
                guard = TenantModel.server_count.does_not_exist()
            else:
                counter = [TenantModel.server_count.add(1)]
                guard = TenantModel.server_count < max_servers
            if tenant.tier != tier:
                raise ConcurrentWriteError(f"tenant {tenant.tenant_id!r} changed tier meanwhile; retry")
            if count >= max_servers:
                # Records removed around the store (a script, a restore) leave the counter high, and nothing
                # else would ever lower it: count the records before refusing, and correct the counter in the
                # same transaction, on condition that no other writer moved it since it was read.
                read = self.read_servers(server.tenant_id)
                live = sum(1 for s in read.servers if not s.deletion_requested)
                if not read.complete or live >= max_servers:
                    raise quota_exceeded(tenant, count if not read.complete else live)
                counter = [TenantModel.server_count.set(live + 1)]
                guard = TenantModel.server_count == count
            try:
                with self._transaction() as tx:
                    tx.save(item, condition=GameServerModel.tenant_id.does_not_exist())
                    tx.update(
                        TenantModel(server.tenant_id),
                        actions=counter,
                        condition=TenantModel.tenant_id.exists() & (TenantModel.tier == tier) & guard,
                    )
            except TransactWriteError as error:
                if self.get_server(server.tenant_id, server.gameserver_id) is not None:
                    raise ConflictError(
                        f"game server {server.gameserver_id!r} was created concurrently; read it again"
                    ) from error
                if not _cancelled(error):
                    raise StoreError(f"could not write {server.gameserver_id}: {error}") from error
                _pause(attempt)  # the counter moved (or another transaction held it): look again
                continue
            return server
        raise ConcurrentWriteError(
            f"tenant {server.tenant_id!r} is taking many writes at once; retry game server {server.gameserver_id!r}"
        )

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
        item = GameServerModel(current.tenant_id, current.gameserver_id)
        try:
            item.update(
                actions=[
                    *([GameServerModel.owner_sub.set(owner_sub)] if owner_sub else []),
                    GameServerModel.config.set(config_to_map(config)),
                    GameServerModel.region.set(region) if region else GameServerModel.region.remove(),
                    GameServerModel.generation.add(1),
                    GameServerModel.updated_at.set(now_iso(at)),
                    GameServerModel.incarnation.set(current.incarnation),
                    *_trail_actions(trail),
                ],
                condition=_same_record(current),
            )
        except UpdateError as error:
            if _conditional_failed(error):
                raise self._lost_race(current) from error
            raise StoreError(f"could not write {current.gameserver_id}: {error}") from error
        return server_from_item(item)

    def request_deletion(self, current: DesiredServer, *, trail: WriteTrail, at: datetime) -> DesiredServer:
        """Mark for deletion and give the tenant's slot back, in one transaction (a tenant registered before
        counters were kept has none to give back)."""
        deleting = status_to_map(ServerStatus(**{**current.status.__dict__, "phase": Phase.DELETING}))
        actions = [
            GameServerModel.deletion_requested.set(True),
            GameServerModel.generation.add(1),
            GameServerModel.updated_at.set(now_iso(at)),
            GameServerModel.status.set(deleting),
            GameServerModel.incarnation.set(current.incarnation),
            *_trail_actions(trail),
        ]
        try:
            with self._transaction() as tx:
                tx.update(
                    GameServerModel(current.tenant_id, current.gameserver_id),
                    actions=actions,
                    condition=_same_record(current),
                )
                if self.live_server_count(current.tenant_id):
                    tx.update(
                        TenantModel(current.tenant_id),
                        actions=[TenantModel.server_count.add(-1)],
                        condition=TenantModel.server_count > 0,
                    )
        except TransactWriteError as error:
            if _cancelled(error):
                raise self._lost_race(current) from error
            raise StoreError(f"could not request deletion of {current.gameserver_id}: {error}") from error
        written = self.get_server(current.tenant_id, current.gameserver_id)
        if written is None:  # finalized at once by a pass that saw the deletion
            raise NotFoundError(current.tenant_id, current.gameserver_id)
        return written

    def _lost_race(self, current: DesiredServer) -> PreconditionFailedError:
        """Another writer changed the record between our read and our conditional write."""
        return PreconditionFailedError(
            current.gameserver_id, self.get_server(current.tenant_id, current.gameserver_id), given=False
        )

    def write_status(self, server: DesiredServer, status: ServerStatus) -> bool:
        """Update only the `status` attribute, and only while the record is at the generation (and
        incarnation) the status is about: desired fields and `generation` are never touched."""
        item = GameServerModel(server.tenant_id, server.gameserver_id)
        try:
            item.update(actions=[GameServerModel.status.set(status_to_map(status))], condition=_same_record(server))
        except UpdateError as error:
            if _conditional_failed(error):
                return False
            raise StoreError(f"could not write status of {server.gameserver_id}: {error}") from error
        return True

    def finalize(self, server: DesiredServer) -> bool:
        """Remove a record whose deletion was requested (its slot was given back then)."""
        item = GameServerModel(server.tenant_id, server.gameserver_id)
        try:
            item.delete(
                condition=_same_record(server) & (GameServerModel.deletion_requested == True)  # noqa: E712
            )
        except DeleteError as error:
            if _conditional_failed(error):
                return False
            raise StoreError(f"could not remove {server.gameserver_id}: {error}") from error
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
        ActivityModel(
            f"{tenant_id}/{gameserver_id}",
            f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{uuid.uuid4().hex[:8]}",
            kind=kind,
            message=message[:1000],
            generation=generation,
            actor=trail.actor if trail else None,
            door=trail.door if trail else None,
            correlation_id=trail.correlation_id if trail else None,
            incarnation=incarnation,
            expires_at=at + self.activity_ttl,
        ).save()

    def history(
        self, tenant_id: str, gameserver_id: str, incarnation: str, *, limit: int = 50, cursor: str | None = None
    ) -> HistoryPage:
        """Newest first, one incarnation's entries only; `cursor` is the sort key to continue after."""
        kwargs: dict[str, Any] = {
            "scan_index_forward": False,
            "limit": limit + 1,
            "filter_condition": ActivityModel.incarnation == incarnation,
        }
        if cursor:
            kwargs["range_key_condition"] = ActivityModel.at < cursor
        try:
            items = list(ActivityModel.query(f"{tenant_id}/{gameserver_id}", **kwargs))
        except PynamoDBException as error:
            raise StoreError(f"could not read the history of {tenant_id}/{gameserver_id}: {error}") from error
        entries = tuple(activity_from_item(i) for i in items[:limit])
        return HistoryPage(entries, entries[-1].cursor if len(items) > limit else None)


def _cancelled(error: TransactWriteError) -> bool:
    return getattr(error, "cause_response_code", None) == "TransactionCanceledException"


def _pause(attempt: int) -> None:
    """A short, jittered wait before trying a collided transaction again."""
    time.sleep(random.uniform(0, 0.02 * (2**attempt)))


__all__ = ["DynamoStore", "unreadable_record"]
