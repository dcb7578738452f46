"""The rollout service: starts, advances, pauses, resumes, aborts and rolls back rollouts. It reads the store,
lets the pure `reconciler.rollouts` decide, saves the rollout conditionally on the revision it read, and only then
pins tenants, through `DesiredWrites` (the one write path) so the normal triggers reconcile them. Two passes
advancing one rollout at once: one save wins and pins; the other's save fails and it pins nothing. A pass that
stops between its save and its pins leaves tenants in flight but unpinned; the next advance pins them again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from models.config import ConfigError, validate_id, validate_stored_id
from models.records import Phase, WriteTrail
from reconciler.desired import DesiredWrites
from reconciler.errors import ReconcileError
from reconciler.ports import DesiredStore, stop_reason
from reconciler.rollouts import (
    Pin,
    Rollout,
    RolloutConflictError,
    RolloutState,
    ServerView,
    Step,
    TenantView,
    abort,
    advance,
    new_rollout,
    overlapping,
    pause,
    resume,
    rollback,
)
from reconciler.writes import ConcurrentWriteError, NotFoundError, WriteError

log = logging.getLogger("stackherd.rollouts")

#: How often one call retries a write another writer beat it to, before asking the caller to run it again.
_SAVE_TRIES = 5


class RolloutNotFoundError(NotFoundError):
    def __init__(self, rollout_id: str) -> None:
        super().__init__(rollout_id)
        self.args = (f"rollout {rollout_id!r} not found; `stackherd rollout list` shows the rollouts",)
        self.rollout_id = rollout_id


def new_rollout_id() -> str:
    return f"ro-{uuid.uuid4().hex[:12]}"


class _Views(Mapping[str, TenantView]):
    """What the store shows of each tenant, read on first use: an advance reads only the tenants it judges
    or pins (the current wave and the next), not the whole fleet."""

    def __init__(self, store: DesiredStore) -> None:
        self.store = store
        self.cache: dict[str, TenantView] = {}

    def __getitem__(self, tenant_id: str) -> TenantView:
        if tenant_id not in self.cache:
            self.cache[tenant_id] = tenant_view(self.store, tenant_id)
        return self.cache[tenant_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache)

    def __len__(self) -> int:
        return len(self.cache)


def tenant_view(store: DesiredStore, tenant_id: str) -> TenantView:
    tenant = store.get_tenant(tenant_id)
    if tenant is None:
        return TenantView(tenant_id, None)
    servers = tuple(
        ServerView(
            s.gameserver_id,
            s.status.phase,
            s.status.template_version,
            retrying=s.status.phase is Phase.FAILED and s.status.next_retry_at is not None,
            cause=s.status.cause or s.status.last_error or _ready_message(s.status.conditions),
        )
        for s in store.read_servers(tenant_id).servers
        if not s.deletion_requested
    )
    return TenantView(tenant_id, tenant.template_version, stop_reason(tenant), servers)


def _ready_message(conditions: Sequence[object]) -> str | None:
    for condition in conditions:
        if getattr(condition, "type", None) == "Ready" and not getattr(condition, "status", True):
            return str(getattr(condition, "message", "")) or None
    return None


@dataclass
class AdvanceReport:
    """What one advance of every active rollout did (for metrics and logs)."""

    advanced: list[Step] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # rollouts another pass advanced meanwhile
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def waves_started(self) -> int:
        return sum(len(s.waves_started) for s in self.advanced)

    @property
    def halted(self) -> int:
        return sum(1 for s in self.advanced if s.halted)

    @property
    def rolled_back(self) -> int:
        return sum(1 for s in self.advanced if s.rolled_back)

    def to_dict(self) -> dict[str, object]:
        return {
            "rollouts": {s.rollout.rollout_id: s.rollout.state.value for s in self.advanced},
            "waves_started": self.waves_started,
            "halted": self.halted,
            "rolled_back": self.rolled_back,
            "lost": self.lost,
            "errors": self.errors,
        }


class RolloutService:
    def __init__(
        self,
        store: DesiredStore,
        writes: DesiredWrites,
        *,
        clock: Callable[[], datetime],
        timeout_s: int = 3600,
    ) -> None:
        self.store = store
        self.writes = writes
        self.clock = clock
        self.timeout_s = timeout_s

    # --- reading -----------------------------------------------------------------------------------

    def get(self, rollout_id: str) -> Rollout:
        validate_stored_id(rollout_id, "rollout id")
        found = self.store.get_rollout(rollout_id)
        if found is None:
            raise RolloutNotFoundError(rollout_id)
        return found

    def list(self) -> list[Rollout]:
        return self.store.list_rollouts()

    # --- starting ----------------------------------------------------------------------------------

    def start(
        self,
        version: str,
        *,
        trail: WriteTrail,
        tenants: Sequence[str] | None = None,
        canary: Sequence[str] | None = None,
        wave_sizes: Sequence[str] = ("1",),
        failure_tolerance: str = "0",
        bake_s: int = 0,
        auto_rollback: bool = False,
    ) -> Rollout:
        """Store a rollout of `version` (refused: an unpublished version, an unknown tenant, an overlap with an
        active rollout) and pin its first wave at once."""
        self.writes.check_published(version)
        if tenants is not None:
            chosen: dict[str, str] = {}
            for tenant_id in tenants:
                validate_id(tenant_id, "tenant id")
                tenant = self.store.get_tenant(tenant_id)
                if tenant is None:
                    raise NotFoundError(tenant_id)
                chosen[tenant_id] = tenant.template_version
        else:
            chosen = {
                t.tenant_id: t.template_version
                for t in self.store.list_tenants()
                if not t.paused and not t.quarantined and t.unreadable is None and t.template_version != version
            }
        for tenant_id in canary or ():
            validate_id(tenant_id, "canary tenant id")
        rollout = new_rollout(
            new_rollout_id(),
            version,
            chosen,
            canary=canary,
            wave_sizes=wave_sizes,
            failure_tolerance=failure_tolerance,
            bake_s=bake_s,
            auto_rollback=auto_rollback,
            now=self.clock(),
            created_by=trail.actor,
        )
        for _ in range(_SAVE_TRIES):
            revision, active = self.store.active_rollouts()
            clashes = overlapping(rollout.tenant_ids(), active)
            if clashes:
                other, shared = clashes[0]
                shown = ", ".join(shared[:5]) + (f" and {len(shared) - 5} more" if len(shared) > 5 else "")
                raise RolloutConflictError(
                    f"rollout {other} is still active on {shown}; wait for it, or abort it "
                    f"(`stackherd rollout abort {other}`), or leave those tenants out with --tenants",
                    rule="rollout_overlap",
                )
            stored = self.store.create_rollout(rollout, revision)
            if stored is not None:
                log.info(
                    "rollout started",
                    extra={"rollout_id": stored.rollout_id, "version": version, "tenants": len(stored.tenants)},
                )
                step = self._advance_one(stored, trail)
                return step.rollout if step is not None else self.get(stored.rollout_id)
        raise ConcurrentWriteError("other rollouts were started at the same time; run it again")

    # --- advancing ---------------------------------------------------------------------------------

    def advance_all(self, trail: WriteTrail) -> AdvanceReport:
        """Advance every active rollout once. Idempotent; one rollout's error never stops the others."""
        report = AdvanceReport()
        _, active = self.store.active_rollouts()
        for rollout in active:
            if not rollout.active:
                continue
            try:
                step = self._advance_one(rollout, trail)
            except (ReconcileError, WriteError, ConfigError) as error:
                log.warning("rollout could not advance", extra={"rollout_id": rollout.rollout_id, "error": str(error)})
                report.errors[rollout.rollout_id] = str(error)
                continue
            except Exception as error:  # a stored rollout this code cannot advance must not hold up the others
                log.exception("rollout could not advance", extra={"rollout_id": rollout.rollout_id})
                report.errors[rollout.rollout_id] = f"{type(error).__name__}: {error}"
                continue
            if step is None:
                report.lost.append(rollout.rollout_id)
            elif step.changed:
                report.advanced.append(step)
        return report

    def _advance_one(self, rollout: Rollout, trail: WriteTrail) -> Step | None:
        """One advance of `rollout` as read; None when another pass saved it first (this one then pins
        nothing)."""
        step = advance(rollout, _Views(self.store), self.clock(), timeout_s=self.timeout_s)
        if step.rollout is rollout:
            if not step.pins:
                return step
            # Pins lost by an earlier pass. `rollout` may be stale (halted, rolled back or aborted since it was
            # read, the tenant pinned back): claim its revision first, so a pass that lost to such a change
            # pins nothing.
            claimed = self.store.save_rollout(rollout)
            if claimed is None:
                return None
            self._pin(claimed, step.pins, trail)
            self._undo_if_rolled_back_meanwhile(claimed, step.pins, trail)
            return Step(claimed, pins=step.pins)
        saved = self.store.save_rollout(step.rollout)
        if saved is None:
            return None  # another pass advanced it from the same revision: it pins, this one must not
        self._pin(saved, step.pins, trail)
        self._undo_if_rolled_back_meanwhile(saved, step.pins, trail)
        self._log_step(saved, step)
        return Step(
            saved,
            pins=step.pins,
            waves_started=step.waves_started,
            halted=step.halted,
            rolled_back=step.rolled_back,
            completed=step.completed,
        )

    def _undo_if_rolled_back_meanwhile(self, saved: Rollout, pins: Sequence[Pin], trail: WriteTrail) -> None:
        """A rollback that read the rollout between this pass's save and its pins did not see them: when the
        rollout is rolled back now, roll back again (idempotent: only what is still on the target moves)."""
        if not any(not pin.back for pin in pins):
            return
        current = self.store.get_rollout(saved.rollout_id)
        if current is None or current.revision == saved.revision or current.state is not RolloutState.ROLLED_BACK:
            return
        log.warning(
            "rollout rolled back while this pass pinned; pinning those tenants back",
            extra={"rollout_id": saved.rollout_id},
        )
        self.rollback(saved.rollout_id, trail=trail)

    def _log_step(self, rollout: Rollout, step: Step) -> None:
        fields = {"rollout_id": rollout.rollout_id, "version": rollout.target_version, "state": rollout.state.value}
        for wave in step.waves_started:
            log.info("rollout wave started", extra={**fields, "wave": wave + 1, "tenants": len(rollout.waves[wave])})
        if step.halted:
            log.warning("rollout halted", extra={**fields, "reason": rollout.reason, "failures": rollout.failures})
        if step.rolled_back:
            log.warning("rollout rolled back", extra={**fields, "reason": rollout.reason})
        if step.completed:
            log.info("rollout completed", extra=fields)

    def _pin(self, rollout: Rollout, pins: Sequence[Pin], trail: WriteTrail) -> None:
        for pin in pins:
            if pin.back:
                note = (
                    f"pinned back to {pin.version} (from {pin.from_version}) by rollout {rollout.rollout_id}, "
                    f"wave {pin.wave + 1}"
                )
            else:
                note = (
                    f"pinned to {pin.version} (from {pin.from_version}) by rollout {rollout.rollout_id}, "
                    f"wave {pin.wave + 1}"
                )
            try:
                self.writes.pin_template_version(pin.tenant_id, pin.version, trail=trail, note=note)
            except (WriteError, ConfigError, ReconcileError) as error:
                # Forward: the next advance pins it again (or its timeout fails it). Back: `rollout rollback`
                # tries again. Either way it is in the log, with the reason.
                log.warning(
                    "rollout could not pin a tenant",
                    extra={"rollout_id": rollout.rollout_id, "tenant_id": pin.tenant_id, "error": str(error)},
                )

    # --- operator actions --------------------------------------------------------------------------

    def _change(self, rollout_id: str, change: Callable[[Rollout], Step], trail: WriteTrail) -> Step:
        for _ in range(_SAVE_TRIES):
            current = self.get(rollout_id)
            step = change(current)
            if step.rollout == current:
                return step
            saved = self.store.save_rollout(step.rollout)
            if saved is not None:
                self._pin(saved, step.pins, trail)
                self._log_step(saved, step)
                log.info(
                    "rollout changed",
                    extra={"rollout_id": rollout_id, "state": saved.state.value, "actor": trail.actor},
                )
                return Step(saved, pins=step.pins, rolled_back=step.rolled_back, notes=step.notes)
        raise ConcurrentWriteError(f"rollout {rollout_id} kept changing meanwhile; run it again")

    def pause(self, rollout_id: str, *, trail: WriteTrail) -> Rollout:
        return self._change(rollout_id, lambda r: Step(pause(r, self.clock())), trail).rollout

    def resume(self, rollout_id: str, *, trail: WriteTrail) -> Rollout:
        resumed = self._change(rollout_id, lambda r: Step(resume(r, self.clock())), trail).rollout
        # Go on at once (it may have baked long enough while paused).
        step = self._advance_one(resumed, trail)
        return step.rollout if step is not None else self.get(rollout_id)

    def abort(self, rollout_id: str, *, trail: WriteTrail) -> Rollout:
        return self._change(rollout_id, lambda r: Step(abort(r, self.clock())), trail).rollout

    def rollback(self, rollout_id: str, *, trail: WriteTrail) -> Step:
        return self._change(rollout_id, lambda r: rollback(r, _Views(self.store), self.clock()), trail)
