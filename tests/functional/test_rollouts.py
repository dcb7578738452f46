"""Rollouts on the fake cloud, end to end: stored waves pinned through the write path, tenants judged by their
servers' status at the new version, halts beyond the tolerance, automatic and manual rollback, pause, resume and
abort, tenants that change mid-rollout, and two passes advancing one rollout at once."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import pytest

from models.config import ConfigError
from models.records import Phase
from reconciler import naming
from reconciler.desired import DesiredWrites, trail
from reconciler.fakes.cloud import FailureCause
from reconciler.fakes.world import FakeWorld
from reconciler.planner import PlanSettings
from reconciler.rollout_service import RolloutNotFoundError, RolloutService
from reconciler.rollouts import Rollout, RolloutError, RolloutState, TenantOutcome
from reconciler.writes import NotFoundError

TRAIL = trail("operator", "test")
SERVERS = ("a", "b")
CAUSE = FailureCause("Server", "AWS::EC2::Instance", "v2 asks for an instance type this account cannot launch")
TERMINAL = {RolloutState.COMPLETED, RolloutState.HALTED, RolloutState.ABORTED, RolloutState.ROLLED_BACK}


def account(index: int) -> str:
    return f"{100000000000 + index}"


def fleet(count: int, *, timeout_s: int = 3600) -> tuple[FakeWorld, RolloutService]:
    """`count` tenants t00.. on v1 with two Ready servers each, and v2 published."""
    world = FakeWorld(settings=PlanSettings(failure_budget=1))
    world.templates.add("v2")
    for index in range(count):
        tenant_id = f"t{index:02d}"
        world.add_tenant(tenant_id, account(index))
        for server in SERVERS:
            world.put(tenant_id, server)
        world.converge(tenant_id)
    writes = DesiredWrites(world.store, clock=world.clock, templates=world.templates)
    return world, RolloutService(world.store, writes, clock=world.clock, timeout_s=timeout_s)


def break_v2(world: FakeWorld, tenant_id: str) -> None:
    """Every update of the tenant's stacks (to v2) rolls back."""
    index = int(tenant_id[1:])
    for server in SERVERS:
        name = naming.stack_name(world.settings.installation, tenant_id, server)
        world.cloud.set_outcome(account(index), name, "update", "UPDATE_ROLLBACK_COMPLETE", always=True, cause=CAUSE)


def heal(world: FakeWorld) -> None:
    world.cloud.clear_faults()


def drive(world: FakeWorld, service: RolloutService, rollout_id: str, rounds: int = 40) -> Rollout:
    """Sweeps over time, each advancing the rollouts first (what the scheduled sweep does)."""
    for _ in range(rounds):
        service.advance_all(TRAIL)
        rollout = service.get(rollout_id)
        if rollout.state in TERMINAL or rollout.state is RolloutState.PAUSED:
            return rollout
        world.engine.sweep()
        world.cloud.settle_all()
    return service.get(rollout_id)


def versions(world: FakeWorld) -> dict[str, str]:
    return {t.tenant_id: t.template_version for t in world.store.list_tenants()}


def stack_versions(world: FakeWorld, tenant_id: str) -> set[str | None]:
    index = int(tenant_id[1:])
    return {s.tags.get(naming.TAG_TEMPLATE_VERSION) for s in world.cloud.stacks(account(index))}


def outcomes(rollout: Rollout) -> dict[str, str]:
    return {t.tenant_id: t.outcome.value for t in rollout.tenants}


def pinned_by(world: FakeWorld, rollout_id: str) -> set[str]:
    return {t for t, _g, kind, message, *_ in world.store.activity if kind == "rollout" and rollout_id in message}


# --- the outcome tables ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenants", "waves", "tolerance", "broken", "state", "wave_count", "on_v2"),
    [
        pytest.param(5, ["1"], "0", [], RolloutState.COMPLETED, 5, 5, id="all-succeed-canary-then-waves-of-1"),
        pytest.param(7, ["2"], "0", [], RolloutState.COMPLETED, 4, 7, id="all-succeed-waves-of-2"),
        pytest.param(10, ["20%", "50%"], "0", [], RolloutState.COMPLETED, 4, 10, id="all-succeed-growing-waves"),
        pytest.param(5, ["2"], "0", ["t00"], RolloutState.HALTED, 1, 1, id="canary-fails-nothing-else-pinned"),
        pytest.param(5, ["2"], "1", ["t00"], RolloutState.HALTED, 1, 1, id="canary-fails-even-within-tolerance"),
        pytest.param(7, ["2"], "1", ["t02"], RolloutState.COMPLETED, 4, 7, id="wave-2-failure-within-tolerance"),
        pytest.param(7, ["2"], "1", ["t01", "t02"], RolloutState.HALTED, 2, 3, id="wave-2-failures-beyond-tolerance"),
        pytest.param(10, ["3"], "20%", ["t01", "t04"], RolloutState.COMPLETED, 4, 10, id="percent-tolerance-holds"),
    ],
)
def test_rollout_outcomes(
    tenants: int,
    waves: Sequence[str],
    tolerance: str,
    broken: Sequence[str],
    state: RolloutState,
    wave_count: int,
    on_v2: int,
) -> None:
    world, service = fleet(tenants)
    for tenant_id in broken:
        break_v2(world, tenant_id)
    started = service.start("v2", trail=TRAIL, wave_sizes=waves, failure_tolerance=tolerance)
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is state, rollout.reason
    assert rollout.current_wave + 1 == wave_count
    assert sum(1 for v in versions(world).values() if v == "v2") == on_v2
    failed = {t.tenant_id for t in rollout.tenants if t.outcome is TenantOutcome.FAILED}
    assert failed == set(broken)
    for progress in rollout.tenants:
        if progress.outcome is TenantOutcome.SUCCEEDED:
            assert stack_versions(world, progress.tenant_id) == {"v2"}
        if progress.outcome is TenantOutcome.WAITING:
            assert versions(world)[progress.tenant_id] == "v1" and progress.pinned_at is None
    # Every failure names its server and CloudFormation's reason.
    for progress in rollout.tenants:
        if progress.outcome is TenantOutcome.FAILED:
            assert progress.cause and "server a" in progress.cause and "cannot launch" in progress.cause


def test_canary_failure_halts_with_nothing_but_the_canary_pinned() -> None:
    world, service = fleet(4)
    break_v2(world, "t02")
    started = service.start("v2", trail=TRAIL, canary=["t02"], wave_sizes=["3"], failure_tolerance="3")
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.HALTED and rollout.reason and "canary" in rollout.reason
    assert rollout.waves[0] == ("t02",)
    assert versions(world) == {"t00": "v1", "t01": "v1", "t02": "v2", "t03": "v1"}
    assert pinned_by(world, rollout.rollout_id) == {"t02"}


def test_auto_rollback_puts_every_moved_tenant_back_on_its_previous_version_and_ready() -> None:
    world, service = fleet(6)
    world.store.update_tenant("t05", template_version="v0")  # a tenant not on v1 goes back to its own
    world.templates.add("v0")
    world.converge("t05")
    break_v2(world, "t02")
    break_v2(world, "t03")
    started = service.start("v2", trail=TRAIL, wave_sizes=["5"], failure_tolerance="1", auto_rollback=True)
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.ROLLED_BACK
    moved = {t.tenant_id for t in rollout.tenants if t.pinned_at}
    assert moved == {"t00", "t01", "t02", "t03", "t04", "t05"}
    # The failed and in-flight tenants are back; the ones that already succeeded stay on v2.
    back = {t.tenant_id for t in rollout.tenants if t.outcome is TenantOutcome.ROLLED_BACK}
    assert {"t02", "t03"} <= back
    heal(world)
    for tenant_id in back:
        world.converge(tenant_id)
        expected = "v0" if tenant_id == "t05" else "v1"
        assert versions(world)[tenant_id] == expected
        assert stack_versions(world, tenant_id) == {expected}
        for server in SERVERS:
            found = world.server(tenant_id, server)
            assert found is not None and found.status.phase is Phase.READY
    # A rollout that was pinned back says so in each server's history.
    messages = [m for t, _g, kind, m, *_ in world.store.activity if t == "t02" and kind == "rollout"]
    assert any(m.startswith("pinned to v2 (from v1) by rollout") for m in messages)
    assert any(m.startswith("pinned back to v1 (from v2) by rollout") for m in messages)


def test_a_tenant_that_never_becomes_ready_fails_on_the_timeout() -> None:
    world, service = fleet(3, timeout_s=600)
    index = 1
    for server in SERVERS:
        name = naming.stack_name(world.settings.installation, "t01", server)
        world.cloud.set_outcome(account(index), name, "update", "UPDATE_IN_PROGRESS", always=True)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"], failure_tolerance="0")
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.HALTED
    failed = rollout.progress("t01")
    assert failed is not None and failed.outcome is TenantOutcome.FAILED
    assert failed.cause and "not Ready at v2 within 600s" in failed.cause


def test_bake_time_holds_the_next_wave() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"], bake_s=3600)
    rollout = started
    for _ in range(4):
        world.engine.sweep()
        world.cloud.settle_all()
        service.advance_all(TRAIL)
    rollout = service.get(started.rollout_id)
    assert rollout.state is RolloutState.BAKING and rollout.current_wave == 0
    assert versions(world)["t01"] == "v1"
    world.clock.advance(3600)
    service.advance_all(TRAIL)
    rollout = service.get(started.rollout_id)
    assert rollout.state is RolloutState.IN_PROGRESS and rollout.current_wave == 1
    assert versions(world)["t01"] == "v2"


# --- starting is refused with a reason --------------------------------------------------------------


def test_start_refuses_an_unpublished_version() -> None:
    _, service = fleet(2)
    with pytest.raises(ConfigError, match="not published"):
        service.start("v9", trail=TRAIL)


def test_start_refuses_an_unknown_tenant() -> None:
    _, service = fleet(2)
    with pytest.raises(NotFoundError, match="'nope'"):
        service.start("v2", trail=TRAIL, tenants=["t00", "nope"])


def test_start_refuses_a_canary_outside_the_tenants() -> None:
    _, service = fleet(3)
    with pytest.raises(RolloutError, match="t02"):
        service.start("v2", trail=TRAIL, tenants=["t00", "t01"], canary=["t02"])


@pytest.mark.parametrize("size", ["0", "-1", "abc", "150%", "0%"])
def test_start_refuses_a_bad_wave_size(size: str) -> None:
    _, service = fleet(2)
    with pytest.raises(ConfigError, match="--wave-size"):
        service.start("v2", trail=TRAIL, wave_sizes=[size])


def test_start_refuses_a_second_active_rollout_over_the_same_tenants() -> None:
    _, service = fleet(4)
    first = service.start("v2", trail=TRAIL, tenants=["t00", "t01"])
    with pytest.raises(RolloutError, match=f"rollout {first.rollout_id} is still active on t01"):
        service.start("v2", trail=TRAIL, tenants=["t01", "t02"])
    other = service.start("v2", trail=TRAIL, tenants=["t02", "t03"])
    assert other.rollout_id != first.rollout_id
    service.abort(first.rollout_id, trail=TRAIL)
    service.start("v2", trail=TRAIL, tenants=["t01"])


def test_without_tenants_a_rollout_takes_every_active_tenant_not_yet_on_the_version() -> None:
    world, service = fleet(5)
    world.store.update_tenant("t01", paused=True)
    world.store.set_quarantine("t02", "AccessDenied", world.clock())
    world.store.update_tenant("t03", template_version="v2")
    rollout = service.start("v2", trail=TRAIL)
    assert sorted(rollout.tenant_ids()) == ["t00", "t04"]


def test_unknown_rollout_ids_are_not_found() -> None:
    _, service = fleet(1)
    with pytest.raises(RolloutNotFoundError, match="rollout 'ro-nope' not found"):
        service.get("ro-nope")


# --- operator actions in every state ---------------------------------------------------------------


def _at(state: str) -> tuple[FakeWorld, RolloutService, Rollout]:
    """A rollout of four tenants (waves of 1) brought into `state`."""
    world, service = fleet(4)
    if state == "Halted":
        break_v2(world, "t01")
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"], bake_s=600 if state == "Baking" else 0)
    if state == "InProgress":
        return world, service, service.get(started.rollout_id)
    if state == "Baking":
        for _ in range(3):
            world.engine.sweep()
            world.cloud.settle_all()
            service.advance_all(TRAIL)
        rollout = service.get(started.rollout_id)
        assert rollout.state is RolloutState.BAKING
        return world, service, rollout
    if state == "Paused":
        return world, service, service.pause(started.rollout_id, trail=TRAIL)
    if state == "Aborted":
        return world, service, service.abort(started.rollout_id, trail=TRAIL)
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state.value == state
    return world, service, rollout


ALLOWED = {
    # state -> operations that change it (the others are refused, or repeat harmlessly)
    "InProgress": {"pause", "abort", "rollback"},
    "Baking": {"pause", "abort", "rollback"},
    "Paused": {"resume", "abort", "rollback"},
    "Halted": {"rollback"},
    "Completed": {"rollback"},
    "Aborted": {"rollback"},
}
RESULT = {"pause": "Paused", "abort": "Aborted", "rollback": "RolledBack"}


@pytest.mark.parametrize("operation", ["pause", "resume", "abort", "rollback"])
@pytest.mark.parametrize("state", sorted(ALLOWED))
def test_operator_actions_in_every_state(state: str, operation: str) -> None:
    world, service, rollout = _at(state)
    run = getattr(service, operation)
    repeat_ok = (state, operation) in {("Paused", "pause"), ("Aborted", "abort")} or (
        operation == "resume" and state in ("InProgress", "Baking")
    )
    if operation not in ALLOWED[state] and not repeat_ok:
        with pytest.raises(RolloutError, match=f"is {state}"):
            run(rollout.rollout_id, trail=TRAIL)
        assert service.get(rollout.rollout_id).state.value == state
        return
    run(rollout.rollout_id, trail=TRAIL)
    after = service.get(rollout.rollout_id)
    if repeat_ok:
        assert after.state.value == state
    elif operation == "resume":
        assert after.state in (RolloutState.IN_PROGRESS, RolloutState.BAKING)
    else:
        assert after.state.value == RESULT[operation]
    if operation == "rollback":
        for progress in after.tenants:
            if progress.pinned_at is not None:
                assert versions(world)[progress.tenant_id] == "v1", progress
    if after.state in (RolloutState.PAUSED, RolloutState.ABORTED):
        pinned = dict(versions(world))
        drive(world, service, rollout.rollout_id, rounds=4)
        assert versions(world) == pinned  # nothing more is pinned


def test_resume_goes_on_where_the_pause_stopped() -> None:
    world, service, rollout = _at("Paused")
    for _ in range(3):
        world.engine.sweep()
        world.cloud.settle_all()
        service.advance_all(TRAIL)
    assert service.get(rollout.rollout_id).current_wave == 0
    service.resume(rollout.rollout_id, trail=TRAIL)
    finished = drive(world, service, rollout.rollout_id)
    assert finished.state is RolloutState.COMPLETED
    assert set(versions(world).values()) == {"v2"}


def test_abort_keeps_what_is_pinned_and_pins_nothing_more() -> None:
    world, service = fleet(4)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    for _ in range(3):
        world.engine.sweep()
        world.cloud.settle_all()
        service.advance_all(TRAIL)
    service.abort(started.rollout_id, trail=TRAIL)
    pinned = versions(world)
    assert pinned["t00"] == "v2" and pinned["t03"] == "v1"
    drive(world, service, started.rollout_id, rounds=5)
    assert versions(world) == pinned


def test_rollback_leaves_a_tenant_moved_elsewhere_since() -> None:
    world, service = fleet(2)
    world.templates.add("v3")
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    drive(world, service, started.rollout_id)
    world.store.update_tenant("t01", template_version="v3")
    step = service.rollback(started.rollout_id, trail=TRAIL)
    assert versions(world) == {"t00": "v1", "t01": "v3"}
    assert any("t01: left on v3" in note for note in step.notes)


# --- tenants that change during a rollout -------------------------------------------------------------


def test_a_tenant_added_mid_rollout_is_not_pinned_by_it() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    world.add_tenant("t09", account(9))
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.COMPLETED
    assert versions(world)["t09"] == "v1"
    assert "t09" not in pinned_by(world, rollout.rollout_id)


def test_a_tenant_paused_before_its_wave_is_skipped_not_pinned() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    world.store.update_tenant("t02", paused=True)
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.COMPLETED
    skipped = rollout.progress("t02")
    assert skipped is not None and skipped.outcome is TenantOutcome.SKIPPED
    assert skipped.cause and "paused" in skipped.cause
    assert versions(world)["t02"] == "v1"


def test_a_tenant_quarantined_in_flight_is_skipped_and_does_not_halt() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, canary=["t00"], wave_sizes=["2"])
    drive(world, service, started.rollout_id, rounds=3)  # the canary succeeds, wave 2 is pinned
    world.store.set_quarantine("t01", "AccessDenied: the role is gone", world.clock())
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.COMPLETED
    quarantined = rollout.progress("t01")
    assert quarantined is not None and quarantined.outcome is TenantOutcome.SKIPPED
    assert quarantined.cause and "quarantined" in quarantined.cause


def test_a_tenant_removed_mid_rollout_is_skipped() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    world.store.tenants.pop("t02")
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.COMPLETED
    removed = rollout.progress("t02")
    assert removed is not None and removed.outcome is TenantOutcome.SKIPPED


# --- concurrency and idempotence ------------------------------------------------------------------


def test_two_sweeps_advancing_the_same_rollout_at_once_pin_each_tenant_once() -> None:
    world, service = fleet(6)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def advancer() -> None:
        try:
            for _ in range(30):
                barrier.wait(timeout=10)
                service.advance_all(TRAIL)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=advancer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(30):
        world.engine.sweep()
        world.cloud.settle_all()
        if service.get(started.rollout_id).state is RolloutState.COMPLETED:
            break
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.COMPLETED
    # One pin per tenant: one history line per server, never two.
    lines = [(t, g) for t, g, kind, *_ in world.store.activity if kind == "rollout"]
    assert len(lines) == len(set(lines)) == 6 * len(SERVERS)


def test_two_advances_from_the_same_revision_pin_once() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    world.engine.sweep()
    world.cloud.settle_all()
    world.engine.sweep()
    stale = service.get(started.rollout_id)
    first = service._advance_one(stale, TRAIL)
    second = service._advance_one(stale, TRAIL)
    assert first is not None and first.waves_started == (1,)
    assert second is None  # lost: the other pass saved first, and this one pinned nothing
    lines = [t for t, _g, kind, *_ in world.store.activity if kind == "rollout"]
    assert lines.count("t01") == len(SERVERS)


def test_a_pin_lost_between_save_and_write_is_made_by_the_next_advance() -> None:
    world, service = fleet(2)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    world.engine.sweep()
    world.cloud.settle_all()
    world.engine.sweep()
    original = service._pin
    service._pin = lambda *args, **kwargs: None  # type: ignore[method-assign]
    service.advance_all(TRAIL)  # saves wave 2, then stops before pinning
    service._pin = original  # type: ignore[method-assign]
    assert service.get(started.rollout_id).current_wave == 1 and versions(world)["t01"] == "v1"
    rollout = drive(world, service, started.rollout_id)
    assert rollout.state is RolloutState.COMPLETED and versions(world)["t01"] == "v2"


def test_a_stale_advance_does_not_pin_again_a_tenant_rolled_back_meanwhile() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])  # the canary t00 is pinned, in flight
    stale = service.get(started.rollout_id)  # a sweep reads the rollout ...
    service.rollback(started.rollout_id, trail=TRAIL)  # ... an operator rolls it back ...
    assert versions(world)["t00"] == "v1"
    step = service._advance_one(stale, TRAIL)  # ... and the sweep advances what it read

    assert step is None  # it lost to the rollback: it pins nothing
    assert versions(world)["t00"] == "v1"
    assert service.get(started.rollout_id).state is RolloutState.ROLLED_BACK


def test_a_stale_advance_does_not_pin_again_a_tenant_moved_after_an_abort() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    stale = service.get(started.rollout_id)
    service.abort(started.rollout_id, trail=TRAIL)
    world.store.update_tenant("t00", template_version="v1")  # the operator moves the canary back by hand
    service._advance_one(stale, TRAIL)

    assert versions(world)["t00"] == "v1"


def test_one_rollout_whose_advance_breaks_never_stops_the_others() -> None:
    world, service = fleet(4)
    broken = service.start("v2", trail=TRAIL, tenants=["t00", "t01"], wave_sizes=["1"])
    healthy = service.start("v2", trail=TRAIL, tenants=["t02", "t03"], wave_sizes=["1"])
    # Stored before a week's bound existed: finishing its canary wave asks for a date no datetime can hold.
    assert world.store.save_rollout(replace(service.get(broken.rollout_id), bake_s=10**22)) is not None
    world.engine.sweep()
    world.cloud.settle_all()
    world.engine.sweep()

    report = service.advance_all(TRAIL)

    assert broken.rollout_id in report.errors
    assert service.get(healthy.rollout_id).current_wave == 1 and versions(world)["t03"] == "v2"


def test_a_wave_pinned_just_after_a_rollback_is_rolled_back_too() -> None:
    world, service = fleet(3)
    started = service.start("v2", trail=TRAIL, wave_sizes=["1"])
    world.engine.sweep()
    world.cloud.settle_all()
    world.engine.sweep()  # the canary t00 succeeds
    original = service._pin

    def rolled_back_between_save_and_pins(*args: object, **kwargs: object) -> None:
        # A sweep has saved the start of wave 2; before it pins t01, an operator rolls the rollout back.
        service._pin = original  # type: ignore[method-assign]
        service.rollback(started.rollout_id, trail=TRAIL)
        original(*args, **kwargs)  # type: ignore[arg-type]

    service._pin = rolled_back_between_save_and_pins  # type: ignore[method-assign]
    service.advance_all(TRAIL)

    assert service.get(started.rollout_id).state is RolloutState.ROLLED_BACK
    assert versions(world) == {"t00": "v1", "t01": "v1", "t02": "v1"}
