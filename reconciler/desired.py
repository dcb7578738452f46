"""The one writer of desired state. The API, the CLI and the demo (through the CLI) call `DesiredWrites` for
every put, patch, delete, retry and tenant change, and keep no rule of their own; so a write refused by one
door is refused by every door, with the same error.

The rules, all here: ids, owner, the config schema and the tier's limits, the tenant's quota, the region
(one of the tenant's, and pinned once chosen), the owner of a game server, refusal while a deletion is
pending, If-Match (generation and incarnation), idempotent no-op writes, one tenant per AWS account, and
regions that servers still live in. Rules that span items are kept atomically by the store (a transaction
on DynamoDB, its lock in memory): this module decides, the store's conditional write makes it hold under
any concurrency. Every write records who made it, through which door and under which correlation id, on
the record and in the server's history. Writers never call CloudFormation.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from models.config import (
    DEFAULT_TENANT_ROLE_NAME,
    ConfigError,
    GameServerConfig,
    TenantSpec,
    check_external_id,
    tier_limits,
    validate_config,
    validate_id,
    validate_owner,
    validate_stored_id,
)
from models.records import DesiredServer, Tenant, WriteTrail, now_iso, tenant_from_spec, tenant_problem
from reconciler.credentials import utcnow
from reconciler.errors import StoreError, TemplateNotFoundError, TransientError
from reconciler.ports import DesiredStore, TemplateCatalog
from reconciler.writes import (
    AccountTakenError,
    ConcurrentWriteError,
    DeletionPendingError,
    ExternalIdTakenError,
    NotFoundError,
    NotOwnedError,
    PreconditionFailedError,
    QuotaExceededError,
    RateLimitedError,
    RegionInUseError,
    TenantExistsError,
    TenantUnreadableError,
    UnreadableConflictError,
    WriteResult,
)

log = logging.getLogger("stackherd.desired")

#: How many hex digits of the incarnation an ETag carries: enough that two incarnations of one id never share it.
ETAG_INCARNATION_DIGITS = 12


def new_correlation_id() -> str:
    """For a write that arrives without one (the CLI, the demo)."""
    return uuid.uuid4().hex


def trail(actor: str, door: str, correlation_id: str | None = None) -> WriteTrail:
    return WriteTrail(actor=actor, door=door, correlation_id=correlation_id or new_correlation_id())


# --- versions (ETags) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """What an ETag names: a generation of one incarnation (a prefix of its id)."""

    generation: int
    incarnation: str

    def matches(self, server: DesiredServer) -> bool:
        return (
            self.generation == server.generation
            and len(self.incarnation) >= 8
            and server.incarnation.startswith(self.incarnation)
        )


#: If-Match: None (no condition), "*" (any existing record), or the versions the caller read.
Expected = Literal["*"] | frozenset[Version] | None

_ETAG_RE = re.compile(r'^(?:W/)?(?:"([0-9]{1,12})-([0-9a-f]{8,32})"|([0-9]{1,12})-([0-9a-f]{8,32}))$')


def etag(server: DesiredServer) -> str:
    """`"<generation>-<incarnation prefix>"`: a record created again under the same id restarts at generation
    1, and its ETags still never match its predecessor's."""
    return f'"{server.generation}-{server.incarnation[:ETAG_INCARNATION_DIGITS]}"'


def parse_if_match(value: str | None) -> Expected:
    """`*`, or one or more ETags of reads (`"3-1a2b3c4d5e6f"`, weak or unquoted ones too). Raises ConfigError
    otherwise: an ETag of the older form (`"3"`, a generation alone) could match another incarnation."""
    if value is None:
        return None
    text = value.strip()
    if text == "*":
        return "*"
    found: set[Version] = set()
    for part in text.split(","):
        match = _ETAG_RE.match(part.strip())
        if match is None:
            raise ConfigError(
                'If-Match must be "*" or the ETag of a read, for example "3-1a2b3c4d5e6f"',
                field="If-Match",
                rule="etag_format",
            )
        generation, incarnation = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
        found.add(Version(int(generation), incarnation))
    return frozenset(found)


def check_expected(expected: Expected, current: DesiredServer | None, gameserver_id: str) -> None:
    if expected is None:
        return
    if current is None:
        raise PreconditionFailedError(gameserver_id, None)
    if expected != "*" and not any(v.matches(current) for v in expected):
        raise PreconditionFailedError(gameserver_id, current)


# --- rules shared with the stores -------------------------------------------------------------------


def quota_exceeded(tenant: Tenant, live: int) -> QuotaExceededError:
    limits = tier_limits(tenant.tier)
    return QuotaExceededError(
        f"tenant {tenant.tenant_id!r} already has {live} game servers, the {tenant.tier} tier's maximum of "
        f"{limits.max_servers}; delete one first, or move the tenant to a larger tier",
        limit=limits.max_servers,
    )


#: The refusal of an external id another tenant uses (without naming that tenant or echoing the secret).
EXTERNAL_ID_TAKEN = (
    "that external id is already another tenant's; every tenant's role needs an external id of its own: leave "
    "external_id out and one is generated"
)

_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::([0-9]{12}):role/(.+)$")


def check_tenant_role(role_arn: str, account_id: str, role_name: str) -> None:
    """The platform may only assume `role/<TenantRoleName>` (no path) in the tenant's own account: any other
    role would be refused by IAM on the first pass and the tenant quarantined."""
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None or match.group(2) != account_id or match.group(3) != role_name:
        raise ConfigError(
            f"role {role_arn} is not one stackherd may assume: it must be exactly "
            f"arn:<partition>:iam::{account_id}:role/{role_name} (the deployment's TenantRoleName, no path); "
            f"leave role out to get it, and create the role with infra/sam/tenant-role.yaml",
            field="role",
            rule="tenant_role_name",
        )


def account_taken_message(account_id: str, owner: str) -> str:
    return f"account {account_id} is already tenant {owner!r}'s; every tenant needs an AWS account of its own"


def check_region(tenant: Tenant, region: str | None) -> None:
    """A server may only be placed in one of its tenant's regions (None: the tenant's first)."""
    if region is not None and region not in tenant.regions:
        raise ConfigError(
            f"region {region!r} is not one of the tenant's regions ({', '.join(tenant.regions)})",
            field="region",
            rule="tenant_region",
        )


def check_regions_removable(store: DesiredStore, tenant: Tenant, regions: tuple[str, ...] | list[str]) -> None:
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


def config_text(config: GameServerConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.model_dump().items())


# --- rate limits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteLimits:
    """How fast players may change desired state: a token bucket per player and one per tenant (each write a
    token), and a cool-down between two region moves of one server (each move is a new stack and a deletion).
    Only a player's writes (those that name the player's `owner_sub`) are limited; an operator's are not."""

    player_per_minute: float = 6
    player_burst: int = 10
    tenant_per_minute: float = 60
    tenant_burst: int = 100
    move_cooldown_s: int = 600


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


# --- the service ------------------------------------------------------------------------------------


class DesiredWrites:
    """Every desired-state write, with every rule, over any `DesiredStore`."""

    def __init__(
        self,
        store: DesiredStore,
        clock: Callable[[], datetime] = utcnow,
        templates: TemplateCatalog | None = None,
        tenant_role_name: str = DEFAULT_TENANT_ROLE_NAME,
        limits: WriteLimits | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        #: The deployment's TenantRoleName: the one role a tenant may be registered with.
        self.tenant_role_name = tenant_role_name
        #: Rate limits on players' writes (None: none, for store-only tests and tools).
        self.limits = limits
        #: Where a tenant's template version must be published (None: not checked, for store-only tests).
        self.templates = templates

    def _check_rates(self, tenant: Tenant, owner_sub: str | None) -> None:
        """A player's write takes a token of their bucket, then of their tenant's; RateLimitedError (with the
        wait) when either is empty."""
        limits = self.limits
        if limits is None or owner_sub is None:
            return
        at = self.clock()
        wait = self.store.take_token(
            f"player#{tenant.tenant_id}#{owner_sub}",
            rate_per_s=limits.player_per_minute / 60,
            burst=limits.player_burst,
            at=at,
        )
        if wait > 0:
            raise RateLimitedError(
                f"too many changes: a player may make {limits.player_burst} at once and "
                f"{limits.player_per_minute:g} a minute; send this one again in {_seconds(wait)} s",
                retry_after_s=wait,
                scope="player",
            )
        wait = self.store.take_token(
            f"tenant#{tenant.tenant_id}",
            rate_per_s=limits.tenant_per_minute / 60,
            burst=limits.tenant_burst,
            at=at,
        )
        if wait > 0:
            raise RateLimitedError(
                f"too many changes in tenant {tenant.tenant_id!r}: its players together may make "
                f"{limits.tenant_burst} at once and {limits.tenant_per_minute:g} a minute; send this one again "
                f"in {_seconds(wait)} s",
                retry_after_s=wait,
                scope="tenant",
            )

    def _check_move(self, current: DesiredServer, region: str, owner_sub: str | None) -> None:
        """A player's region move takes the server's one move token, which comes back `move_cooldown_s` later."""
        limits = self.limits
        if limits is None or owner_sub is None or not limits.move_cooldown_s:
            return
        wait = self.store.take_token(
            f"move#{current.tenant_id}#{current.gameserver_id}#{current.incarnation}",
            rate_per_s=1 / limits.move_cooldown_s,
            burst=1,
            at=self.clock(),
        )
        if wait > 0:
            raise RateLimitedError(
                f"game server {current.gameserver_id!r} moved region less than {limits.move_cooldown_s} s ago (each "
                f"move replaces it); it can move to {region} in {_seconds(wait)} s",
                retry_after_s=wait,
                scope="region_move",
            )

    def check_published(self, version: str) -> None:
        """ConfigError unless `version` is published (a rollout checks its version before it pins anything)."""
        self._check_template(version)

    def _check_template(self, version: str) -> None:
        """A tenant pinned to a version that is not published fails every server in every pass."""
        if self.templates is None:
            return
        try:
            self.templates.url_for(version)
        except TemplateNotFoundError as error:
            raise ConfigError(str(error), field="template_version", rule="template_published") from None
        except TransientError as error:
            raise StoreError(f"could not look up template version {version!r}: {error}") from error

    # --- game servers ------------------------------------------------------------------------------

    def put_server(
        self,
        tenant: Tenant,
        gameserver_id: str,
        owner: str,
        raw_config: dict[str, Any],
        *,
        trail: WriteTrail,
        merge: bool = False,
        must_exist: bool = False,
        region: str | None = None,
        expected: Expected = None,
        owner_sub: str | None = None,
    ) -> WriteResult:
        """Create a game server, or replace (`merge=False`: PUT) or change (`merge=True`: PATCH, `servers put
        --set`) its desired config and region. Writing what is already there changes nothing. `must_exist`:
        only change one (PATCH), NotFoundError otherwise. `owner` is the player's display name; `owner_sub`
        (the API's callers) their immutable id, which ownership is keyed on (`DesiredServer.owned_by`); an
        older record without one gets it with its owner's next change."""
        validate_id(gameserver_id, "gameserver id")
        validate_owner(owner)
        _refuse_if_tenant_unreadable(tenant)
        self._check_rates(tenant, owner_sub)
        current = self.store.get_server(tenant.tenant_id, gameserver_id)
        if current is None and must_exist:
            raise NotFoundError(tenant.tenant_id, gameserver_id)
        if current is not None and not _owns(current, owner, owner_sub):
            raise NotOwnedError(gameserver_id)
        check_expected(expected, current, gameserver_id)
        if current is not None:
            _refuse_if_deleting(current)
        raw = dict(raw_config)
        if merge and current is not None:
            if current.config is None or current.unreadable is not None:
                # A merge that names every key is a whole config: it replaces the unreadable one (the CLI has
                # no other way to, and the refusal below tells the user to do exactly this).
                if not set(GameServerConfig.model_fields) <= set(raw):
                    raise UnreadableConflictError(
                        f"game server {gameserver_id!r} has a stored config that no longer validates "
                        f"({current.unreadable}); changing some keys would keep the rest unknown: replace the "
                        f"whole config (PUT, or give every key: {', '.join(GameServerConfig.model_fields)}) or "
                        "delete the server"
                    )
            else:
                raw = {**current.config.model_dump(), **raw}
        config = validate_config(raw, tenant.tier)
        check_region(tenant, region)
        if current is None:
            return self._create(tenant, gameserver_id, owner, config, region, trail, owner_sub)
        # A change that names no region leaves the server where it is: reordering the tenant's regions, or a
        # PUT without one, must never move (delete and recreate) a running server.
        where = region if region is not None else current.region
        if current.config == config and current.region == where and current.unreadable is None:
            return WriteResult(current, created=False, changed=False)
        if current.region is not None and where is not None and where != current.region:
            self._check_move(current, where, owner_sub)
        claim = owner_sub if owner_sub is not None and current.owner_sub is None else None
        try:
            server = self.store.replace_server(
                current, config=config, region=where, trail=trail, at=self.clock(), owner_sub=claim
            )
        except PreconditionFailedError as lost:
            raise self._lost(gameserver_id, lost, expected) from None
        self._history(server, f"{'changed' if merge else 'replaced'}: {config_text(config)}", trail)
        return WriteResult(server, created=False, changed=True)

    def _create(
        self,
        tenant: Tenant,
        gameserver_id: str,
        owner: str,
        config: GameServerConfig,
        region: str | None,
        trail: WriteTrail,
        owner_sub: str | None = None,
    ) -> WriteResult:
        stamp = now_iso(self.clock())
        server = DesiredServer(
            tenant_id=tenant.tenant_id,
            gameserver_id=gameserver_id,
            username=owner,
            config=config,
            generation=1,
            created_at=stamp,
            updated_at=stamp,
            # A new server is placed in the tenant's primary region of today, and stays there.
            region=region if region is not None else tenant.primary_region,
            raw_config=config.model_dump(),
            incarnation=uuid.uuid4().hex,
            trail=trail,
            owner_sub=owner_sub,
        )
        limits = tier_limits(tenant.tier)
        server = self.store.create_server(server, tier=tenant.tier, max_servers=limits.max_servers)
        self._history(server, f"created: {config_text(config)}", trail)
        return WriteResult(server, created=True, changed=True)

    def delete_server(
        self,
        tenant: Tenant,
        gameserver_id: str,
        *,
        trail: WriteTrail,
        owner: str | None = None,
        expected: Expected = None,
        owner_sub: str | None = None,
    ) -> WriteResult:
        """Ask for a game server's deletion (`owner`: only the player's own, `owner_sub` their immutable id;
        None: an admin's, any owner). Asking again changes nothing."""
        validate_stored_id(gameserver_id, "gameserver id")
        self._check_rates(tenant, owner_sub)
        current = self.store.get_server(tenant.tenant_id, gameserver_id)
        if current is None:
            raise NotFoundError(tenant.tenant_id, gameserver_id)
        if owner is not None and not _owns(current, owner, owner_sub):
            raise NotOwnedError(gameserver_id)
        check_expected(expected, current, gameserver_id)
        if current.deletion_requested:
            return WriteResult(current, created=False, changed=False)
        try:
            server = self.store.request_deletion(current, trail=trail, at=self.clock())
        except PreconditionFailedError as lost:
            raise self._lost(gameserver_id, lost, expected) from None
        self._history(server, "deletion requested", trail)
        return WriteResult(server, created=False, changed=True)

    def retry_server(self, tenant: Tenant, gameserver_id: str, *, trail: WriteTrail) -> DesiredServer:
        """Give a server a fresh failure budget and no backoff (an operator fixed what made it fail), so the
        next pass tries again."""
        validate_stored_id(gameserver_id, "gameserver id")
        current = self.store.get_server(tenant.tenant_id, gameserver_id)
        if current is None:
            raise NotFoundError(tenant.tenant_id, gameserver_id)
        reset = replace(current.status, attempts=0, next_retry_at=None, tries=0, operation=None)
        if not self.store.write_status(current, reset):
            raise ConcurrentWriteError(
                f"game server {gameserver_id!r} changed while resetting its retries; run it again"
            )
        self._history(current, "retries reset", trail, kind="retry")
        return replace(current, status=reset)

    def retry_orphan(self, tenant: Tenant, stack_name: str) -> bool:
        """Give the tenant's orphan stacks of this name (one per region at most) a fresh failure budget; False
        when none of them had one. An orphan has no record to keep its budget on: it is kept with the tenant."""
        orphans = self.store.orphan_attempts(tenant.tenant_id)
        kept = {stack_id: state for stack_id, state in orphans.items() if state.stack_name != stack_name}
        if len(kept) == len(orphans):
            return False
        self.store.save_orphan_attempts(tenant.tenant_id, kept, self.clock())
        return True

    def _lost(self, gameserver_id: str, lost: PreconditionFailedError, expected: Expected) -> Exception:
        """Another writer got between our read and our conditional write. With If-Match the caller's
        precondition no longer holds (412); without, they are asked to read again and retry (409)."""
        if expected is not None:
            return PreconditionFailedError(gameserver_id, lost.current)
        return ConcurrentWriteError(str(lost))

    def _history(self, server: DesiredServer, message: str, trail: WriteTrail, *, kind: str = "desired") -> None:
        """Best effort: the write has happened; a missing history line must not turn it into an error."""
        try:
            self.store.append_activity(
                server.tenant_id,
                server.gameserver_id,
                kind,
                message,
                server.generation,
                self.clock(),
                incarnation=server.incarnation,
                trail=trail,
            )
        except Exception:
            log.exception("could not append to the activity log", extra={"gameserver_id": server.gameserver_id})

    # --- tenants -----------------------------------------------------------------------------------

    def register_tenant(self, spec: TenantSpec, *, trail: WriteTrail, repeat_ok: bool = False) -> tuple[Tenant, bool]:
        """Register a tenant and claim its AWS account for it, atomically. Returns the tenant and whether it
        was created. `repeat_ok`: registering the same tenant again with the same settings is no error (the
        CLI's `tenants add` is repeatable); other settings are, and so is another tenant in the account."""
        existing = self.store.get_tenant(spec.tenant_id)
        if existing is None and spec.external_id is not None:
            check_external_id(spec.external_id)
        tenant = tenant_from_spec(
            spec, external_id=existing.external_id if existing else None, role_name=self.tenant_role_name
        )
        check_tenant_role(tenant.role_arn, tenant.account_id, self.tenant_role_name)
        check_regions_usable(tenant.regions, tenant.role_arn)
        self._check_template(tenant.template_version)
        if existing is None:
            # Tenants registered before accounts and external ids were claimed have no claim items: look at
            # them too.
            for other in self.store.list_tenants():
                if other.account_id == tenant.account_id and other.tenant_id != tenant.tenant_id:
                    raise AccountTakenError(account_taken_message(tenant.account_id, other.tenant_id))
                if other.external_id == tenant.external_id and other.tenant_id != tenant.tenant_id:
                    raise ExternalIdTakenError(EXTERNAL_ID_TAKEN)
            try:
                self.store.create_tenant(tenant, self.clock())
            except TenantExistsError:
                existing = self.store.get_tenant(spec.tenant_id)  # registered since we looked
                if existing is None:
                    raise
                tenant = tenant_from_spec(spec, external_id=existing.external_id, role_name=self.tenant_role_name)
            else:
                log.info("tenant registered", extra={"tenant_id": tenant.tenant_id, **_trail_fields(trail)})
                return tenant, True
        if repeat_ok and _registration(existing) == _registration(tenant):
            return existing, False
        raise TenantExistsError(
            f"tenant {spec.tenant_id!r} is already registered"
            + ("" if not repeat_ok else " with other settings")
            + f"; change it with an update (PATCH /tenants/{spec.tenant_id}, `stackherd tenants update`)"
        )

    def update_tenant(
        self,
        tenant_id: str,
        *,
        trail: WriteTrail,
        tier: str | None = None,
        template_version: str | None = None,
        regions: tuple[str, ...] | list[str] | None = None,
        paused: bool | None = None,
    ) -> Tenant:
        """Change a tenant's tier, template version, regions or paused flag. Only the fields that change are
        written, in one conditional update, so a quarantine written meanwhile stays."""
        validate_id(tenant_id, "tenant id")
        tenant = self.store.get_tenant(tenant_id)
        if tenant is None:
            raise NotFoundError(tenant_id)
        from models.config import validate_tenant

        changes: dict[str, Any] = {
            key: value
            for key, value in (
                ("regions", list(regions) if regions is not None else None),
                ("tier", tier),
                ("template_version", template_version),
                ("paused", paused),
            )
            if value is not None
        }
        stored = {
            "tenant_id": tenant.tenant_id,
            "account_id": tenant.account_id,
            "regions": list(tenant.regions),
            "role": tenant.role_arn,
            "external_id": tenant.external_id,
            "tier": tenant.tier,
            "template_version": tenant.template_version,
            "paused": tenant.paused,
        }
        if tenant.unreadable is None and tenant_problem(tenant) is None:
            spec = validate_tenant({**stored, **changes})
        else:
            # The stored item no longer validates (a tier that no longer exists, no regions): the change is
            # checked on its own, and only what it names is written, so an admin can still pause the tenant
            # or correct it field by field; what it leaves out stays as stored.
            given = validate_tenant({"tenant_id": tenant_id, "account_id": "000000000000", **changes})
            spec = TenantSpec.model_construct(**{**stored, **{k: getattr(given, k) for k in changes}})
        if spec.template_version != tenant.template_version:
            self._check_template(spec.template_version)
        new_regions = tuple(spec.regions)
        if new_regions != tenant.regions:
            check_regions_usable(new_regions, tenant.role_arn)
            check_regions_removable(self.store, tenant, new_regions)
        updated = self.store.update_tenant(
            tenant_id,
            tier=spec.tier if spec.tier != tenant.tier else None,
            template_version=spec.template_version if spec.template_version != tenant.template_version else None,
            regions=new_regions if new_regions != tenant.regions else None,
            paused=spec.paused if spec.paused != tenant.paused else None,
        )
        if updated is None:
            raise NotFoundError(tenant_id)
        log.info("tenant changed", extra={"tenant_id": tenant_id, **_trail_fields(trail)})
        return updated

    def pin_template_version(self, tenant_id: str, version: str, *, trail: WriteTrail, note: str) -> Tenant:
        """Pin a tenant to a template version (a rollout's wave, or its way back), as `update_tenant` does, and
        record `note` in the history of each of its live servers, where their owners and operators look."""
        tenant = self.update_tenant(tenant_id, trail=trail, template_version=version)
        for server in self.store.read_servers(tenant_id).servers:
            if not server.deletion_requested:
                self._history(server, note, trail, kind="rollout")
        return tenant

    def pause_tenant(self, tenant_id: str, *, trail: WriteTrail) -> Tenant:
        return self.update_tenant(tenant_id, trail=trail, paused=True)

    def resume_tenant(self, tenant_id: str, *, trail: WriteTrail) -> Tenant:
        return self.update_tenant(tenant_id, trail=trail, paused=False)


def _owns(server: DesiredServer, owner: str, owner_sub: str | None) -> bool:
    """With the caller's sub (the API): by sub, an older record without one by name. Without (the CLI and the
    demo, which name players by user name): by name."""
    if owner_sub is None:
        return server.username == owner
    return server.owned_by(owner_sub, owner)


def _refuse_if_deleting(server: DesiredServer) -> None:
    if server.deletion_requested:
        raise DeletionPendingError(
            f"game server {server.gameserver_id!r} is being deleted; create it again once it is gone"
        )


def _refuse_if_tenant_unreadable(tenant: Tenant) -> None:
    problem = tenant.unreadable or tenant_problem(tenant)
    if problem is not None:
        raise TenantUnreadableError(
            f"tenant {tenant.tenant_id!r} cannot be read ({problem}); its game servers cannot be created or "
            f"changed until an admin corrects it (PATCH /tenants/{tenant.tenant_id}, `stackherd tenants update`)"
        )


def _registration(tenant: Tenant) -> Tenant:
    """What registering sets: a repeated registration compares this, not the state the reconciler keeps."""
    return replace(tenant, paused=False, quarantined=None, quarantined_at=None)


def _trail_fields(trail: WriteTrail) -> dict[str, str]:
    return {"actor": trail.actor, "door": trail.door, "correlation_id": trail.correlation_id}
