"""Rollouts in memory (a mixin of `MemoryStore`), with the DynamoDB store's semantics: conditional writes on
the rollout's revision, and an index of active rollouts whose revision guards a start against an overlapping
one started meanwhile."""

from __future__ import annotations

import threading
from dataclasses import replace

from reconciler.rollouts import Rollout


class MemoryRollouts:
    _rollouts_lock = threading.RLock()

    @property
    def rollouts(self) -> dict[str, Rollout]:
        # A mixin has no __init__ of its own: its state is made on first use.
        found: dict[str, Rollout] | None = self.__dict__.get("_rollouts")
        if found is None:
            found = self.__dict__.setdefault("_rollouts", {})
            self.__dict__.setdefault("_rollout_index", (0, frozenset()))
        return found

    def list_rollouts(self) -> list[Rollout]:
        with self._rollouts_lock:
            return sorted(self.rollouts.values(), key=lambda r: (r.created_at, r.rollout_id), reverse=True)

    def get_rollout(self, rollout_id: str) -> Rollout | None:
        with self._rollouts_lock:
            return self.rollouts.get(rollout_id)

    def active_rollouts(self) -> tuple[int, list[Rollout]]:
        with self._rollouts_lock:
            rollouts = self.rollouts
            revision, ids = self.__dict__["_rollout_index"]
            return revision, [rollouts[i] for i in sorted(ids) if i in rollouts]

    def create_rollout(self, rollout: Rollout, index_revision: int) -> Rollout | None:
        with self._rollouts_lock:
            rollouts = self.rollouts
            revision, ids = self.__dict__["_rollout_index"]
            if revision != index_revision or rollout.rollout_id in rollouts:
                return None
            stored = replace(rollout, revision=1)
            rollouts[rollout.rollout_id] = stored
            self.__dict__["_rollout_index"] = (revision + 1, ids | {rollout.rollout_id})
            return stored

    def save_rollout(self, rollout: Rollout) -> Rollout | None:
        with self._rollouts_lock:
            rollouts = self.rollouts
            current = rollouts.get(rollout.rollout_id)
            if current is None or current.revision != rollout.revision:
                return None
            stored = replace(rollout, revision=rollout.revision + 1)
            rollouts[rollout.rollout_id] = stored
            if not stored.active:
                revision, ids = self.__dict__["_rollout_index"]
                self.__dict__["_rollout_index"] = (revision, ids - {rollout.rollout_id})
            return stored
