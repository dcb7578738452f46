"""What a desired-state write returns, and the errors writers map to HTTP statuses or exit codes."""

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
    def __init__(self, tenant_id: str, gameserver_id: str, current: int | None) -> None:
        super().__init__(
            f"game server {gameserver_id!r} is at generation {current}, not the one given in If-Match; "
            "read it again and retry"
            if current is not None
            else f"game server {gameserver_id!r} does not exist yet; drop If-Match to create it"
        )
        self.current = current


class ConflictError(WriteError):
    """The write conflicts with the current state (quota, ownership, a concurrent writer)."""
