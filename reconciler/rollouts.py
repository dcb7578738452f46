"""Progressive rollouts, the pure part: the wave plan computed once at start, how a tenant is judged against the
target version, and `advance`, which turns a rollout and what the store says about its tenants into the next
rollout and the pins to make. Pure: no clock, no store, no AWS; `reconciler.rollout_service` reads, writes and
pins around it.

A rollout moves a fixed set of tenants to `target_version` in waves: the canary wave first, then waves of a
stable, deterministic order. A wave's tenants are pinned together; a tenant succeeds when every live server of
it is Ready at the target version, and fails when one is Held (or Failed for good) at it, or when it has not
succeeded within the timeout. The next wave starts after the bake time while the failures stay within the
tolerance (a failed canary always halts); beyond it the rollout halts at once (without waiting for the rest of
the wave) and, with auto-rollback, pins the failed and in-flight tenants back to the version each had before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from models.config import ConfigError
from models.records import Phase, now_iso


class RolloutState(StrEnum):
    IN_PROGRESS = "InProgress"
    BAKING = "Baking"
    PAUSED = "Paused"
    HALTED = "Halted"
    COMPLETED = "Completed"
    ABORTED = "Aborted"
    ROLLED_BACK = "RolledBack"


#: States in which a rollout still owns its tenants (a second rollout may not overlap them) and may pin more.
ACTIVE_STATES = frozenset({RolloutState.IN_PROGRESS, RolloutState.BAKING, RolloutState.PAUSED})


class TenantOutcome(StrEnum):
    WAITING = "waiting"  # its wave has not started
    IN_FLIGHT = "in-flight"  # pinned, not yet judged
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # paused, quarantined or removed: neither a success nor a failure
    ROLLED_BACK = "rolled-back"


class RolloutError(ConfigError):
    """An operation the rollout's state does not allow, or a rollout that cannot start: the message says why and
    what to do instead."""

    def __init__(self, message: str, *, rule: str = "rollout_state") -> None:
        super().__init__(message, field="rollout", rule=rule)


class RolloutConflictError(RolloutError):
    """The rollout's state does not allow the operation, or another active rollout holds some of the tenants
    (the API answers 409; a start with bad options is a plain RolloutError or ConfigError, 422)."""


@dataclass(frozen=True)
class TenantProgress:
    tenant_id: str
    wave: int
    previous_version: str
    outcome: TenantOutcome = TenantOutcome.WAITING
    pinned_at: str | None = None
    finished_at: str | None = None
    #: why it failed or was skipped: the server and CloudFormation's reason, or the timeout
    cause: str | None = None


@dataclass(frozen=True)
class Rollout:
    rollout_id: str
    target_version: str
    waves: tuple[tuple[str, ...], ...]
    tenants: tuple[TenantProgress, ...]
    failure_tolerance: int
    bake_s: int
    auto_rollback: bool
    created_at: str
    created_by: str = ""
    has_canary: bool = True
    state: RolloutState = RolloutState.IN_PROGRESS
    #: the wave pinned last (-1: none yet)
    current_wave: int = -1
    bake_until: str | None = None
    paused_from: RolloutState | None = None
    reason: str | None = None
    updated_at: str = ""
    #: what was asked for, as given (shown by `status`)
    wave_sizes: tuple[str, ...] = ()
    tolerance_text: str = "0"
    #: the stored item's version (conditional writes); 0 before it is first written
    revision: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def progress(self, tenant_id: str) -> TenantProgress | None:
        return next((t for t in self.tenants if t.tenant_id == tenant_id), None)

    @property
    def failures(self) -> int:
        """Tenants that failed, rolled back since or not."""
        return sum(
            1
            for t in self.tenants
            if t.outcome is TenantOutcome.FAILED
            or (t.outcome is TenantOutcome.ROLLED_BACK and (t.cause or "").startswith("failed: "))
        )

    def tenant_ids(self) -> frozenset[str]:
        return frozenset(t.tenant_id for t in self.tenants)

    def counts(self) -> dict[str, int]:
        counts = {outcome.value: 0 for outcome in TenantOutcome}
        for t in self.tenants:
            counts[t.outcome.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["paused_from"] = self.paused_from.value if self.paused_from else None
        data["waves"] = [list(w) for w in self.waves]
        data["wave_sizes"] = list(self.wave_sizes)
        data["tenants"] = [{**asdict(t), "outcome": t.outcome.value} for t in self.tenants]
        return data

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Rollout:
        return cls(
            rollout_id=str(raw["rollout_id"]),
            target_version=str(raw["target_version"]),
            waves=tuple(tuple(str(t) for t in wave) for wave in raw["waves"]),
            tenants=tuple(
                TenantProgress(
                    tenant_id=str(t["tenant_id"]),
                    wave=int(t["wave"]),
                    previous_version=str(t["previous_version"]),
                    outcome=TenantOutcome(t.get("outcome", TenantOutcome.WAITING.value)),
                    pinned_at=t.get("pinned_at"),
                    finished_at=t.get("finished_at"),
                    cause=t.get("cause"),
                )
                for t in raw["tenants"]
            ),
            failure_tolerance=int(raw["failure_tolerance"]),
            bake_s=int(raw["bake_s"]),
            auto_rollback=bool(raw["auto_rollback"]),
            created_at=str(raw["created_at"]),
            created_by=str(raw.get("created_by") or ""),
            has_canary=bool(raw.get("has_canary", True)),
            state=RolloutState(raw["state"]),
            current_wave=int(raw.get("current_wave", -1)),
            bake_until=raw.get("bake_until"),
            paused_from=RolloutState(raw["paused_from"]) if raw.get("paused_from") else None,
            reason=raw.get("reason"),
            updated_at=str(raw.get("updated_at") or ""),
            wave_sizes=tuple(str(s) for s in raw.get("wave_sizes", ())),
            tolerance_text=str(raw.get("tolerance_text", "0")),
            revision=int(raw.get("revision", 0)),
        )


# --- what a pass sees of a tenant ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServerView:
    gameserver_id: str
    phase: Phase
    #: the template version the reconciler last worked towards for it (None before that was recorded)
    template_version: str | None
    #: a permanent failure is Failed with no retry planned; a Failed server with a retry planned is still trying
    retrying: bool = False
    cause: str | None = None


@dataclass(frozen=True)
class TenantView:
    """One tenant as the store shows it now: `version` None when it is no longer registered; `stopped` the
    reason it may not be changed (paused, quarantined)."""

    tenant_id: str
    version: str | None
    stopped: str | None = None
    servers: tuple[ServerView, ...] = ()


class Verdict(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def judge(view: TenantView, target: str) -> tuple[Verdict, str | None]:
    """Has the tenant succeeded at `target` (every server Ready at it), failed (a server Held at it, or Failed
    with no retry left), or neither yet? The cause names the server and the reason."""
    failed = [
        s
        for s in view.servers
        if s.template_version == target and (s.phase is Phase.HELD or (s.phase is Phase.FAILED and not s.retrying))
    ]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return (
            Verdict.FAILED,
            f"server {first.gameserver_id} {first.phase.value}: {first.cause or 'no reason recorded'}{more}",
        )
    if all(s.phase is Phase.READY and s.template_version == target for s in view.servers):
        return Verdict.SUCCEEDED, None
    return Verdict.PENDING, None


def _not_ready(view: TenantView, target: str) -> str:
    waiting = [
        f"{s.gameserver_id} ({s.phase.value}{'' if s.template_version == target else ' at ' + str(s.template_version)})"
        for s in view.servers
        if not (s.phase is Phase.READY and s.template_version == target)
    ]
    shown = ", ".join(waiting[:5]) + (f" and {len(waiting) - 5} more" if len(waiting) > 5 else "")
    return shown or "no server reported"


# --- starting ---------------------------------------------------------------------------------------

_COUNT_RE = re.compile(r"^\s*(\d{1,6})\s*(%?)\s*$")


#: The longest bake between waves (the admin API's bound too); a longer hold is a pause.
MAX_BAKE_S = 7 * 24 * 3600


def parse_count(text: str, total: int, *, what: str, minimum: int = 0) -> int:
    """`N` or `P%` of `total` (a percentage of tenants rounds up for a wave, down for a tolerance: `minimum`
    1 for a wave size). Raises ConfigError naming the option."""
    match = _COUNT_RE.match(str(text))
    if match is None:
        raise ConfigError(
            f"{what} must be a count like 5 or a percentage like 10%, not {text!r}", field=what, rule="count"
        )
    number, percent = int(match.group(1)), bool(match.group(2))
    if percent:
        if number > 100:
            raise ConfigError(f"{what} must be at most 100%, not {text!r}", field=what, rule="count")
        value = number * total / 100
        count = math.ceil(value) if minimum else math.floor(value)
    else:
        count = number
    if count < minimum:
        raise ConfigError(f"{what} must be at least {minimum}, not {text!r}", field=what, rule="count")
    return count


def plan_waves(
    tenant_ids: Iterable[str], canary: Sequence[str] | None, wave_sizes: Sequence[str]
) -> tuple[tuple[str, ...], ...]:
    """The waves, once: the canary tenants first (default: the first tenant in id order), then the rest in id
    order, in waves of the given sizes (`5%,25%`: the first wave 5 % of the tenants, every later one 25 %).
    Sizes in percent are of all the rollout's tenants. Deterministic: the same input gives the same waves."""
    ordered = sorted(set(tenant_ids))
    if not ordered:
        return ()
    if canary is None:
        first: list[str] = ordered[:1]
    else:
        first = sorted(set(canary))
    sizes = [parse_count(s, len(ordered), what="--wave-size", minimum=1) for s in (wave_sizes or ("1",))]
    chosen = set(first)
    rest = [t for t in ordered if t not in chosen]
    waves: list[tuple[str, ...]] = [tuple(first)] if first else []
    index = 0
    while rest:
        size = sizes[min(index, len(sizes) - 1)]
        waves.append(tuple(rest[:size]))
        rest = rest[size:]
        index += 1
    return tuple(waves)


def new_rollout(
    rollout_id: str,
    target_version: str,
    current_versions: Mapping[str, str],
    *,
    canary: Sequence[str] | None,
    wave_sizes: Sequence[str],
    failure_tolerance: str,
    bake_s: int,
    auto_rollback: bool,
    now: datetime,
    created_by: str = "",
) -> Rollout:
    """A rollout of `current_versions` (tenant -> the version it is pinned to now), not yet advanced."""
    if not current_versions:
        raise RolloutError(
            f"no tenant to move to {target_version}: every tenant is paused, quarantined or already on it; "
            "name tenants with --tenants",
            rule="rollout_empty",
        )
    if canary is not None:
        unknown = sorted(set(canary) - set(current_versions))
        if unknown:
            raise RolloutError(
                f"canary tenant(s) {', '.join(unknown)} are not among the rollout's tenants; "
                "name them in --tenants too (or leave --canary out)",
                rule="canary_outside",
            )
    if bake_s < 0:
        raise ConfigError("--bake must be 0 or more seconds", field="bake", rule="bake")
    if bake_s > MAX_BAKE_S:
        raise ConfigError(
            f"--bake must be at most {MAX_BAKE_S} seconds (a week), not {bake_s}; pause the rollout to hold it longer",
            field="bake",
            rule="bake",
        )
    tolerance = parse_count(failure_tolerance, len(current_versions), what="--failure-tolerance")
    waves = plan_waves(current_versions, canary, wave_sizes)
    wave_of = {t: index for index, wave in enumerate(waves) for t in wave}
    stamp = now_iso(now)
    return Rollout(
        rollout_id=rollout_id,
        target_version=target_version,
        waves=waves,
        tenants=tuple(
            TenantProgress(tenant_id, wave_of[tenant_id], current_versions[tenant_id])
            for wave in waves
            for tenant_id in wave
        ),
        failure_tolerance=tolerance,
        bake_s=bake_s,
        auto_rollback=auto_rollback,
        created_at=stamp,
        updated_at=stamp,
        created_by=created_by,
        has_canary=canary is None or bool(canary),
        wave_sizes=tuple(wave_sizes),
        tolerance_text=str(failure_tolerance),
    )


# --- advancing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    """Pin `tenant_id` to `version`: forward (the rollout's target, in `wave`) or back (its previous version)."""

    tenant_id: str
    version: str
    wave: int
    back: bool = False
    #: the version it is pinned from (shown in the activity log)
    from_version: str = ""


@dataclass(frozen=True)
class Step:
    rollout: Rollout
    pins: tuple[Pin, ...] = ()
    #: waves started in this step (for metrics and logs)
    waves_started: tuple[int, ...] = ()
    halted: bool = False
    rolled_back: bool = False
    completed: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.pins or self.waves_started or self.halted or self.rolled_back or self.completed)


def advance(rollout: Rollout, views: Mapping[str, TenantView], now: datetime, *, timeout_s: int) -> Step:
    """The next state of an active, unpaused rollout and the pins to make, from what the store shows of its
    tenants now. Judges the in-flight tenants; when the wave is done starts the next one (at once with no bake
    time, else after it), completes, or halts (and rolls back with auto-rollback). Pins a tenant again when its
    pin was lost (a pass that stopped between saving the rollout and pinning). Pure and deterministic."""
    if rollout.state not in (RolloutState.IN_PROGRESS, RolloutState.BAKING):
        return Step(rollout)
    progress = {t.tenant_id: t for t in rollout.tenants}
    pins: list[Pin] = []
    started: list[int] = []
    stamp = now_iso(now)
    state: RolloutState = rollout.state
    wave, bake_until = rollout.current_wave, rollout.bake_until
    halted = completed = rolled_back = False
    reason = rollout.reason

    def view_of(tenant_id: str) -> TenantView:
        return views.get(tenant_id) or TenantView(tenant_id, None)

    def start_wave(index: int) -> None:
        started.append(index)
        for tenant_id in rollout.waves[index]:
            view = view_of(tenant_id)
            current = progress[tenant_id]
            if view.version is None:
                progress[tenant_id] = replace(
                    current, outcome=TenantOutcome.SKIPPED, finished_at=stamp, cause="no longer registered"
                )
            elif view.stopped:
                progress[tenant_id] = replace(
                    current, outcome=TenantOutcome.SKIPPED, finished_at=stamp, cause=f"not pinned: {view.stopped}"
                )
            else:
                progress[tenant_id] = replace(
                    current, outcome=TenantOutcome.IN_FLIGHT, pinned_at=stamp, previous_version=view.version
                )
                pins.append(Pin(tenant_id, rollout.target_version, index, from_version=view.version))

    for _ in range(len(rollout.waves) + 2):
        if state is RolloutState.BAKING:
            if bake_until is not None and now < datetime.fromisoformat(bake_until.replace("Z", "+00:00")):
                break
            state, bake_until = RolloutState.IN_PROGRESS, None
            wave += 1
            start_wave(wave)
        if wave < 0:
            wave = 0
            start_wave(0)
        # Judge the wave's in-flight tenants.
        for tenant_id in rollout.waves[wave]:
            current = progress[tenant_id]
            if current.outcome is not TenantOutcome.IN_FLIGHT:
                continue
            view = view_of(tenant_id)
            if view.version is None:
                progress[tenant_id] = replace(
                    current, outcome=TenantOutcome.SKIPPED, finished_at=stamp, cause="removed during the rollout"
                )
                continue
            if view.stopped:
                progress[tenant_id] = replace(
                    current,
                    outcome=TenantOutcome.SKIPPED,
                    finished_at=stamp,
                    cause=f"{view.stopped} during the rollout; it stays pinned to {rollout.target_version}",
                )
                continue
            if view.version != rollout.target_version:
                if tenant_id not in {p.tenant_id for p in pins}:
                    pins.append(Pin(tenant_id, rollout.target_version, wave, from_version=view.version))
                continue
            verdict, cause = judge(view, rollout.target_version)
            if verdict is Verdict.SUCCEEDED:
                progress[tenant_id] = replace(current, outcome=TenantOutcome.SUCCEEDED, finished_at=stamp)
            elif verdict is Verdict.FAILED:
                progress[tenant_id] = replace(current, outcome=TenantOutcome.FAILED, finished_at=stamp, cause=cause)
            elif current.pinned_at is not None and now - _parse(current.pinned_at) > timedelta(seconds=timeout_s):
                progress[tenant_id] = replace(
                    current,
                    outcome=TenantOutcome.FAILED,
                    finished_at=stamp,
                    cause=(
                        f"not Ready at {rollout.target_version} within {timeout_s}s: "
                        + _not_ready(view, rollout.target_version)
                    ),
                )
        # Beyond the tolerance (or a failed canary) the rollout halts at once, not when the wave is done: the
        # wave is already pinned, but a rollback of its in-flight tenants should not wait for their timeouts.
        failures = sum(1 for t in progress.values() if t.outcome is TenantOutcome.FAILED)
        canary_failed = (
            wave == 0
            and rollout.has_canary
            and any(progress[t].outcome is TenantOutcome.FAILED for t in rollout.waves[0])
        )
        if canary_failed or failures > rollout.failure_tolerance:
            halted = True
            reason = (
                f"the canary failed ({failures} failure(s))"
                if canary_failed
                else f"{failures} tenant(s) failed, more than the tolerance of {rollout.failure_tolerance}"
            )
            state = RolloutState.HALTED
            if rollout.auto_rollback:
                rolled_back = True
                state = RolloutState.ROLLED_BACK
                for tenant_id, current in list(progress.items()):
                    if current.outcome in (TenantOutcome.FAILED, TenantOutcome.IN_FLIGHT):
                        pins.append(_back(rollout, current, view_of(tenant_id)))
                        progress[tenant_id] = replace(
                            current,
                            outcome=TenantOutcome.ROLLED_BACK,
                            finished_at=stamp,
                            cause=f"failed: {current.cause}"
                            if current.outcome is TenantOutcome.FAILED
                            else current.cause,
                        )
            break
        if any(progress[t].outcome is TenantOutcome.IN_FLIGHT for t in rollout.waves[wave]):
            break
        if wave + 1 >= len(rollout.waves):
            state, completed = RolloutState.COMPLETED, True
            break
        if rollout.bake_s > 0:
            state, bake_until = RolloutState.BAKING, now_iso(now + timedelta(seconds=rollout.bake_s))
            break
        state = RolloutState.BAKING  # with no bake time the next wave starts in this same step
        bake_until = None

    tenants = tuple(progress[t.tenant_id] for t in rollout.tenants)
    updated = replace(
        rollout,
        tenants=tenants,
        state=state,
        current_wave=wave,
        bake_until=bake_until,
        reason=reason,
    )
    if updated == rollout:
        return Step(rollout, pins=tuple(pins))
    return Step(
        replace(updated, updated_at=stamp),
        pins=tuple(pins),
        waves_started=tuple(started),
        halted=halted,
        rolled_back=rolled_back,
        completed=completed,
    )


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _back(rollout: Rollout, current: TenantProgress, view: TenantView) -> Pin:
    return Pin(
        current.tenant_id,
        current.previous_version,
        current.wave,
        back=True,
        from_version=view.version or rollout.target_version,
    )


# --- operator actions -----------------------------------------------------------------------------------


def pause(rollout: Rollout, now: datetime) -> Rollout:
    if rollout.state is RolloutState.PAUSED:
        return rollout
    if rollout.state not in (RolloutState.IN_PROGRESS, RolloutState.BAKING):
        raise RolloutConflictError(
            f"rollout {rollout.rollout_id} is {rollout.state.value}: only a running rollout can be paused"
        )
    return replace(rollout, state=RolloutState.PAUSED, paused_from=rollout.state, updated_at=now_iso(now))


def resume(rollout: Rollout, now: datetime) -> Rollout:
    if rollout.state in (RolloutState.IN_PROGRESS, RolloutState.BAKING):
        return rollout
    if rollout.state is not RolloutState.PAUSED:
        raise RolloutConflictError(
            f"rollout {rollout.rollout_id} is {rollout.state.value}: only a paused rollout can be resumed"
            + ("; start a new rollout to go on" if rollout.state is RolloutState.HALTED else "")
        )
    return replace(
        rollout, state=rollout.paused_from or RolloutState.IN_PROGRESS, paused_from=None, updated_at=now_iso(now)
    )


def abort(rollout: Rollout, now: datetime) -> Rollout:
    """Stop pinning; what is pinned stays."""
    if rollout.state is RolloutState.ABORTED:
        return rollout
    if not rollout.active:
        raise RolloutConflictError(
            f"rollout {rollout.rollout_id} is {rollout.state.value} and pins nothing more; "
            f"`stackherd rollout rollback {rollout.rollout_id}` pins its tenants back"
        )
    return replace(rollout, state=RolloutState.ABORTED, paused_from=None, reason="aborted", updated_at=now_iso(now))


def rollback(rollout: Rollout, views: Mapping[str, TenantView], now: datetime) -> Step:
    """Pin every tenant the rollout pinned, and that is still on its target, back to its previous version. A
    tenant moved elsewhere since is left where it is (with a note). Repeating it pins only what is left."""
    stamp = now_iso(now)
    pins: list[Pin] = []
    notes: list[str] = []
    tenants: list[TenantProgress] = []
    for current in rollout.tenants:
        view = views.get(current.tenant_id) or TenantView(current.tenant_id, None)
        if current.pinned_at is None or current.previous_version == rollout.target_version:
            tenants.append(current)
            continue
        if view.version is None:
            notes.append(f"{current.tenant_id}: no longer registered")
            tenants.append(current)
            continue
        if view.version != rollout.target_version:
            if current.outcome is not TenantOutcome.ROLLED_BACK:
                notes.append(f"{current.tenant_id}: left on {view.version} (changed since the rollout pinned it)")
            tenants.append(current)
            continue
        pins.append(_back(rollout, current, view))
        cause = current.cause
        if current.outcome is TenantOutcome.FAILED:
            cause = f"failed: {current.cause}"
        tenants.append(replace(current, outcome=TenantOutcome.ROLLED_BACK, finished_at=stamp, cause=cause))
    if rollout.state is RolloutState.ROLLED_BACK and not pins:
        return Step(rollout, notes=tuple(notes))
    updated = replace(
        rollout,
        tenants=tuple(tenants),
        state=RolloutState.ROLLED_BACK,
        paused_from=None,
        reason=rollout.reason if rollout.state is RolloutState.HALTED else "rolled back by an operator",
        updated_at=stamp,
    )
    return Step(updated, pins=tuple(pins), rolled_back=True, notes=tuple(notes))


def overlapping(rollout_tenants: frozenset[str], others: Iterable[Rollout]) -> list[tuple[str, list[str]]]:
    """The active rollouts that share tenants with `rollout_tenants`, with the shared ones."""
    found = []
    for other in others:
        if other.active:
            shared = sorted(rollout_tenants & other.tenant_ids())
            if shared:
                found.append((other.rollout_id, shared))
    return found
