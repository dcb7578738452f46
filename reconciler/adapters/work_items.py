"""`WorkItems` on DynamoDB: the per-tenant coalescing item `work#<tenant id>` in the tenants table.

Each method is one conditional UpdateItem (two when a stale pending state is taken over), so two triggers racing
for one tenant never both send, and a requeue only replaces the live one when it is due earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.constants import ALL_NEW, ALL_OLD
from pynamodb.exceptions import PynamoDBException, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from models.tables import WorkModel, work_key
from reconciler.errors import StoreError
from reconciler.ports import PendingWork

#: A pending state no worker has claimed for this long lost its message (a send that failed after the write, a
#: message gone to the dead-letter queue): the next trigger takes it over and sends again.
STALE_AFTER = timedelta(minutes=15)
#: A live requeue this far past its due time lost its message: the next requeue replaces it.
OVERDUE_AFTER = timedelta(minutes=2)


def _conditional_failed(error: PynamoDBException) -> bool:
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"


def _epoch(at: datetime) -> float:
    return round(at.timestamp(), 3)


class DynamoWorkItems:
    def __init__(self, stale_after: timedelta = STALE_AFTER, overdue_after: timedelta = OVERDUE_AFTER) -> None:
        self.stale_after = stale_after
        self.overdue_after = overdue_after

    def _update(self, tenant_id: str, actions: Sequence[Action], condition: Condition | None, returns: str) -> Any:
        """The item after (ALL_NEW) or before (ALL_OLD) the update, or None when the condition failed."""
        try:
            data = WorkModel._get_connection().update_item(
                work_key(tenant_id), actions=actions, condition=condition, return_values=returns
            )
        except UpdateError as error:
            if _conditional_failed(error):
                return None
            raise StoreError(f"could not update the work item of tenant {tenant_id}: {error}") from error
        except PynamoDBException as error:
            raise StoreError(f"could not update the work item of tenant {tenant_id}: {error}") from error
        attributes = data.get("Attributes")
        return WorkModel.from_raw_data(attributes) if attributes else WorkModel(work_key(tenant_id))

    def mark_pending(
        self,
        tenant_id: str,
        scope: frozenset[str] | None,
        token: str,
        at: datetime,
        *,
        force: bool = False,
        confirm_deletions: bool = False,
    ) -> str | None:
        actions: list[Action] = [
            WorkModel.token.set(WorkModel.token | token),
            WorkModel.since.set(WorkModel.since | _epoch(at)),
        ]
        if scope is None:
            actions.append(WorkModel.full.set(True))
        elif scope:
            actions.append(WorkModel.scope.add(set(scope)))
        if force:
            actions.append(WorkModel.force.set(True))
        if confirm_deletions:
            actions.append(WorkModel.confirm_deletions.set(True))
        item = self._update(tenant_id, actions, None, ALL_NEW)
        if item.token == token:
            return token
        if item.since is not None and item.since < _epoch(at - self.stale_after):
            taken = self._update(
                tenant_id,
                [WorkModel.token.set(token), WorkModel.since.set(_epoch(at))],
                WorkModel.token == item.token,
                ALL_NEW,
            )
            if taken is not None:
                return token
        return None

    def release_pending(self, tenant_id: str, token: str) -> None:
        self._update(
            tenant_id,
            [WorkModel.token.remove(), WorkModel.since.remove()],
            WorkModel.token == token,
            ALL_NEW,
        )

    def claim(self, tenant_id: str) -> PendingWork | None:
        old = self._update(
            tenant_id,
            [
                WorkModel.token.remove(),
                WorkModel.since.remove(),
                WorkModel.scope.remove(),
                WorkModel.full.remove(),
                WorkModel.force.remove(),
                WorkModel.confirm_deletions.remove(),
            ],
            WorkModel.token.exists(),
            ALL_OLD,
        )
        if old is None or old.token is None:
            return None
        return PendingWork(
            scope=None if old.full else frozenset(old.scope or ()),
            token=old.token,
            force=bool(old.force),
            confirm_deletions=bool(old.confirm_deletions),
        )

    def record_requeue(self, tenant_id: str, scope: frozenset[str], due: datetime, token: str, at: datetime) -> bool:
        ids = [WorkModel.requeue_scope.add(set(scope))] if scope else []
        replaces = (
            WorkModel.requeue_due.does_not_exist()
            | (WorkModel.requeue_due > _epoch(due))
            | (WorkModel.requeue_due < _epoch(at - self.overdue_after))
        )
        live = [WorkModel.requeue_due.set(_epoch(due)), WorkModel.requeue_token.set(token), *ids]
        for _ in range(4):
            if self._update(tenant_id, live, replaces, ALL_NEW) is not None:
                return True
            if not ids or self._update(tenant_id, ids, WorkModel.requeue_due.exists(), ALL_NEW) is not None:
                return False
        raise StoreError(f"the requeue of tenant {tenant_id} kept changing under this write; try again")

    def claim_requeue(self, tenant_id: str, token: str) -> frozenset[str] | None:
        old = self._update(
            tenant_id,
            [WorkModel.requeue_due.remove(), WorkModel.requeue_token.remove(), WorkModel.requeue_scope.remove()],
            WorkModel.requeue_token == token,
            ALL_OLD,
        )
        return None if old is None else frozenset(old.requeue_scope or ())

    def release_requeue(self, tenant_id: str, token: str) -> None:
        self._update(
            tenant_id,
            [WorkModel.requeue_due.remove(), WorkModel.requeue_token.remove()],
            WorkModel.requeue_token == token,
            ALL_NEW,
        )
