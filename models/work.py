"""The work queue's message: "reconcile tenant T (optionally: these servers)", validated at both ends.

Every trigger (the stream, the scheduled dispatch, an admin's force, a due requeue) ends as one of these on the
work queue; `gameserver_ids: null` asks for a full pass of the tenant, a list for a scoped pass.
"""

from __future__ import annotations

import json
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from models.config import ID_PATTERN

#: The most server ids one message names; a larger scope is sent as a full pass (it costs one listing anyway).
MAX_SCOPE = 500


class Trigger(StrEnum):
    STREAM = "stream"
    SWEEP = "sweep"
    ADMIN = "admin"
    REQUEUE = "requeue"


class WorkMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str = Field(pattern=ID_PATTERN)
    gameserver_ids: list[str] | None = Field(default=None, max_length=MAX_SCOPE)
    trigger: Trigger

    @classmethod
    def of(cls, tenant_id: str, scope: frozenset[str] | set[str] | None, trigger: Trigger | str) -> WorkMessage:
        """A message for `scope` (None: a full pass); a scope too large for one message becomes a full pass."""
        ids = None if scope is None or len(scope) > MAX_SCOPE else sorted(scope)
        return cls(tenant_id=tenant_id, gameserver_ids=ids, trigger=Trigger(trigger))

    @property
    def scope(self) -> frozenset[str] | None:
        return None if self.gameserver_ids is None else frozenset(self.gameserver_ids)

    def body(self) -> str:
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)
