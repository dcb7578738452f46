"""What a desired-state write returns, and the errors the write service raises: each door maps them to its
own answer (an HTTP status, an exit code) and keeps no rule of its own."""

from __future__ import annotations

from dataclasses import dataclass

from models.records import DesiredServer


@dataclass(frozen=True)
class WriteResult:
    server: DesiredServer
    created: bool
    changed: bool


class WriteError(Exception):
    """Base of the errors a writer reports to its caller."""


class NotFoundError(WriteError):
    def __init__(self, tenant_id: str, gameserver_id: str | None = None) -> None:
        what = f"game server {gameserver_id!r}" if gameserver_id else f"tenant {tenant_id!r}"
        super().__init__(f"{what} not found")
        self.tenant_id = tenant_id
        self.gameserver_id = gameserver_id


class PreconditionFailedError(WriteError):
    """The record is not the one the writer read (If-Match, or another writer got there first).

    `current` is the record as it is now (None: there is none), so a caller can hand back its ETag.
    """

    def __init__(self, gameserver_id: str, current: DesiredServer | None, *, given: bool = True) -> None:
        if current is None:
            message = f"game server {gameserver_id!r} does not exist; drop If-Match to create it"
        elif given:
            message = (
                f"game server {gameserver_id!r} is at generation {current.generation}, not the one given in "
                "If-Match; read it again and retry"
            )
        else:
            message = f"game server {gameserver_id!r} was changed by another request; read it again and retry"
        super().__init__(message)
        self.current = current
        #: True when the caller named the version it expected (If-Match); False when it lost a race it
        #: did not know about.
        self.given = given


class ConflictError(WriteError):
    """The write conflicts with the current state (quota, ownership, a concurrent writer)."""

    rule = "conflict"
    field = "gameserver_id"


class QuotaExceededError(ConflictError):
    """The tenant's tier allows no more game servers."""

    rule = "tier_max_servers"
    field = "tier"

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class DeletionPendingError(ConflictError):
    """The server's deletion was requested: it cannot be changed, only created again once it is gone."""

    rule = "deleting"


class UnreadableConflictError(ConflictError):
    """A merge-write (PATCH, `servers put --set`) on a record whose stored config no longer validates: there
    is nothing valid to merge into, so only a whole config may replace it."""

    rule = "unreadable"
    field = "config"


class TenantUnreadableError(ConflictError):
    """A game-server write in a tenant whose stored item no longer validates (a tier that does not exist, no
    regions): its limits and regions are unknown, so nothing may be created or changed until an admin corrects
    it. Deleting stays possible."""

    rule = "tenant_unreadable"
    field = "tenant"


class AccountTakenError(ConflictError):
    """The account already belongs to another tenant."""

    rule = "account_taken"
    field = "account_id"


class ExternalIdTakenError(ConflictError):
    """Another tenant's role already expects that external id (a secret: it must be unique per tenant)."""

    rule = "external_id_taken"
    field = "external_id"


class RateLimitedError(WriteError):
    """Too many desired-state writes too fast (a player's, a tenant's), or a region move inside the cool-down:
    the write is refused, and may be sent again after `retry_after_s` seconds."""

    def __init__(self, message: str, *, retry_after_s: float, scope: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        #: "player", "tenant" or "region_move"
        self.scope = scope


class TenantExistsError(ConflictError):
    """A tenant of that id is already registered."""

    rule = "unique"
    field = "tenant_id"


class RegionInUseError(ConflictError):
    """A region the tenant's game servers still live in cannot be dropped from the tenant."""

    rule = "region_in_use"
    field = "regions"


class NotOwnedError(ConflictError):
    """The game server belongs to another player (the API answers this like a missing server)."""

    rule = "owner"

    def __init__(self, gameserver_id: str) -> None:
        super().__init__(f"game server {gameserver_id!r} belongs to another player")
        self.gameserver_id = gameserver_id


class ConcurrentWriteError(ConflictError):
    """Another writer changed the record between this write's read and its conditional write."""

    rule = "concurrent_write"
