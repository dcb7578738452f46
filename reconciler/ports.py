"""The ports the engine talks through, with their contracts.

Every gateway call is non-blocking (it starts an operation and returns) and idempotent when retried
with the same request token; observing never mutates. Implementations: `reconciler.adapters.aws` (boto3) and
`reconciler.fakes.cloud` (in memory). The contract suite in tests/ runs against both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from models.records import DesiredServer, OrphanAttempts, ServerStatus, Tenant
from reconciler.stacks import ObservedStack, StackEvent, StackSpec, TemplateVersion


class StackGateway(Protocol):
    """CloudFormation in one tenant account and region, through that tenant's assumed role."""

    account_id: str
    region: str

    def list_stacks(self) -> list[ObservedStack]:
        """Every live stack in the account and region (owned or not), with parameters and tags; one paged walk."""

    def describe(self, name: str) -> ObservedStack | None:
        """One stack by name or id, or None when it does not exist."""

    def create(self, spec: StackSpec, token: str) -> str:
        """Start creating; returns the stack id. Raises AlreadyExistsError when the name is taken."""

    def update(self, spec: StackSpec, token: str) -> str:
        """Start updating; raises NoUpdatesError when the stack already matches."""

    def delete(self, name: str, token: str) -> None:
        """Start deleting; deleting a stack that does not exist succeeds."""

    def continue_update_rollback(self, name: str, token: str) -> None:
        """Resume a rollback that failed (UPDATE_ROLLBACK_FAILED)."""

    def failure_cause(self, name: str) -> StackEvent | None:
        """Why the stack's latest operation failed: its first failed resource event (else the stack-level
        failure), read from the stack's events back to the event that opened the operation; None when the
        operation did not fail or the stack is gone."""


class AccountConnector(Protocol):
    """Tenant -> gateway bound to credentials assumed in the tenant's account."""

    def gateway(self, tenant: Tenant, region: str) -> StackGateway:
        """A gateway for the tenant's account in `region`; credentials come from a shared cache."""

    def invalidate(self, tenant: Tenant) -> None:
        """Forget the tenant's credentials (after expired-token or access-denied)."""


class TemplateCatalog(Protocol):
    def url_for(self, version: str) -> str:
        """The template URL of a published version; raises TemplateNotFoundError otherwise."""

    def describe(self, version: str) -> TemplateVersion:
        """A published version with the parameters it declares (and their defaults) and the capabilities it
        requires, as stored with it when it was published; raises TemplateNotFoundError otherwise."""


@dataclass(frozen=True)
class DesiredRead:
    """The records of one tenant and whether the read was complete (the deletion brake needs to know)."""

    servers: tuple[DesiredServer, ...]
    complete: bool = True


class DesiredStore(Protocol):
    """The desired-state tables. Reads used for decisions are strongly consistent."""

    def list_tenants(self) -> list[Tenant]: ...

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def read_servers(self, tenant_id: str) -> DesiredRead: ...

    def get_server(self, tenant_id: str, gameserver_id: str) -> DesiredServer | None: ...

    def write_status(self, server: DesiredServer, status: ServerStatus) -> bool:
        """Write only the status of a record still at `server.generation`, atomically; False when the record
        is gone or a desired write has moved it on (a status about an older generation must not overwrite
        what the newer generation's pass may already have written)."""

    def finalize(self, server: DesiredServer) -> bool:
        """Remove a record whose deletion was requested, if its generation is unchanged."""

    def set_quarantine(self, tenant_id: str, reason: str | None, at: datetime) -> None: ...

    def orphan_attempts(self, tenant_id: str) -> dict[str, OrphanAttempts]:
        """The failure budget of the tenant's orphan stacks, by stack id (orphans have no record to hold it)."""

    def save_orphan_attempts(self, tenant_id: str, attempts: Mapping[str, OrphanAttempts], at: datetime) -> None:
        """Replace the tenant's orphan budgets (an empty mapping forgets them)."""

    def append_activity(
        self,
        tenant_id: str,
        gameserver_id: str,
        kind: str,
        message: str,
        generation: int | None,
        at: datetime,
    ) -> None: ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...


def servers_by_id(servers: Sequence[DesiredServer]) -> dict[str, DesiredServer]:
    return {s.gameserver_id: s for s in servers}
