"""Rollouts on DynamoDB (a mixin of `DynamoStore`): `rollout#<id>` items in the tenants table, every save
conditional on the revision read (PynamoDB's version attribute), and a start made atomic with the index of
active rollouts (`rollout#!active`) in one transaction."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, PynamoDBException, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from models.tables import ROLLOUT_INDEX_KEY, ROLLOUT_PREFIX, RolloutIndexModel, RolloutModel
from reconciler.errors import StoreError, UnreadableItemError
from reconciler.rollouts import Rollout


def _item(rollout: Rollout, revision: int | None) -> RolloutModel:
    body = rollout.to_dict()
    body.pop("revision", None)
    item = RolloutModel(
        f"{ROLLOUT_PREFIX}{rollout.rollout_id}",
        state=rollout.state.value,
        target_version=rollout.target_version,
        created_at=rollout.created_at,
        body=zlib.compress(json.dumps(body, separators=(",", ":")).encode()),
    )
    if revision:
        item.revision = revision
    return item


def _rollout(item: RolloutModel) -> Rollout:
    try:
        raw = json.loads(zlib.decompress(item.body))
        return replace(Rollout.from_dict(raw), revision=int(item.revision or 0))
    except (ValueError, KeyError, TypeError, zlib.error) as error:
        raise UnreadableItemError(
            f"the stored rollout {item.tenant_id} cannot be read ({error}); delete the item from the tenants table"
        ) from error


def _conditional_failed(error: PynamoDBException) -> bool:
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"


class DynamoRollouts:
    def list_rollouts(self) -> list[Rollout]:
        try:
            items = RolloutModel.scan(
                filter_condition=RolloutModel.tenant_id.startswith(ROLLOUT_PREFIX)
                & (RolloutModel.tenant_id != ROLLOUT_INDEX_KEY)
            )
            rollouts = [_rollout(item) for item in items]
        except PynamoDBException as error:
            raise StoreError(f"could not list rollouts: {error}") from error
        return sorted(rollouts, key=lambda r: (r.created_at, r.rollout_id), reverse=True)

    def get_rollout(self, rollout_id: str) -> Rollout | None:
        try:
            return _rollout(RolloutModel.get(f"{ROLLOUT_PREFIX}{rollout_id}", consistent_read=True))
        except RolloutModel.DoesNotExist:
            return None
        except PynamoDBException as error:
            raise StoreError(f"could not read rollout {rollout_id}: {error}") from error

    def _index(self) -> RolloutIndexModel:
        try:
            return RolloutIndexModel.get(ROLLOUT_INDEX_KEY, consistent_read=True)
        except RolloutIndexModel.DoesNotExist:
            return RolloutIndexModel(ROLLOUT_INDEX_KEY)

    def active_rollouts(self) -> tuple[int, list[Rollout]]:
        try:
            index = self._index()
        except PynamoDBException as error:
            raise StoreError(f"could not read the active rollouts: {error}") from error
        found = [self.get_rollout(rollout_id) for rollout_id in sorted(index.active or ())]
        return int(index.revision or 0), [r for r in found if r is not None]

    def create_rollout(self, rollout: Rollout, index_revision: int) -> Rollout | None:
        index = RolloutIndexModel(ROLLOUT_INDEX_KEY)
        if index_revision:
            index.revision = index_revision
        item = _item(rollout, None)
        try:
            with TransactWrite(connection=Connection(region=RolloutModel.Meta.region)) as transaction:
                transaction.save(item, condition=RolloutModel.tenant_id.does_not_exist())
                # The version attribute makes this conditional on the revision read, and bumps it.
                transaction.update(index, actions=[RolloutIndexModel.active.add({rollout.rollout_id})])
        except TransactWriteError as error:
            reasons = [getattr(r, "code", None) for r in (error.cancellation_reasons or []) if r is not None]
            if "ConditionalCheckFailed" in reasons:
                return None
            raise StoreError(f"could not store rollout {rollout.rollout_id}: {error}") from error
        return replace(rollout, revision=1)

    def save_rollout(self, rollout: Rollout) -> Rollout | None:
        item = _item(rollout, rollout.revision)
        try:
            item.save()
        except PutError as error:
            if _conditional_failed(error):
                return None
            raise StoreError(f"could not save rollout {rollout.rollout_id}: {error}") from error
        saved = replace(rollout, revision=int(item.revision or 0))
        if not saved.active:
            self._leave_index(rollout.rollout_id)
        return saved

    def _leave_index(self, rollout_id: str) -> None:
        """Best effort: the rollout item already says it is no longer active, and a start reading the index
        checks that too; a stale id only costs that start one read."""
        for _ in range(5):
            try:
                index = self._index()
                if rollout_id not in (index.active or ()):
                    return
                index.update(actions=[RolloutIndexModel.active.delete({rollout_id})])
                return
            except UpdateError as error:
                if not _conditional_failed(error):
                    return
            except PynamoDBException:
                return
