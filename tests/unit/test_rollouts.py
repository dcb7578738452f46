"""The pure rollout core as tables: the wave plan, counts and percentages, how a tenant is judged, and what one
advance decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.config import ConfigError
from models.records import Phase
from reconciler.rollouts import (
    Rollout,
    RolloutError,
    RolloutState,
    ServerView,
    TenantOutcome,
    TenantView,
    Verdict,
    advance,
    judge,
    new_rollout,
    parse_count,
    plan_waves,
    rollback,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TENANTS = [f"t{i}" for i in range(10)]


@pytest.mark.parametrize(
    ("canary", "sizes", "expected"),
    [
        pytest.param(None, ["1"], [["t0"], *[[f"t{i}"] for i in range(1, 10)]], id="default-canary-waves-of-1"),
        pytest.param(
            None, ["3"], [["t0"], ["t1", "t2", "t3"], ["t4", "t5", "t6"], ["t7", "t8", "t9"]], id="waves-of-3"
        ),
        pytest.param(["t5"], ["4"], [["t5"], ["t0", "t1", "t2", "t3"], ["t4", "t6", "t7", "t8"], ["t9"]], id="canary"),
        pytest.param(
            ["t2", "t1"], ["50%"], [["t1", "t2"], ["t0", "t3", "t4", "t5", "t6"], ["t7", "t8", "t9"]], id="two-canaries"
        ),
        pytest.param(
            None, ["10%", "40%"], [["t0"], ["t1"], ["t2", "t3", "t4", "t5"], ["t6", "t7", "t8", "t9"]], id="growing"
        ),
        pytest.param([], ["5"], [["t0", "t1", "t2", "t3", "t4"], ["t5", "t6", "t7", "t8", "t9"]], id="no-canary"),
    ],
)
def test_plan_waves(canary: list[str] | None, sizes: list[str], expected: list[list[str]]) -> None:
    assert plan_waves(reversed(TENANTS), canary, sizes) == tuple(tuple(w) for w in expected)
    assert plan_waves(TENANTS, canary, sizes) == plan_waves(sorted(TENANTS, reverse=True), canary, sizes)


@pytest.mark.parametrize(
    ("text", "total", "minimum", "expected"),
    [
        ("3", 10, 1, 3),
        ("5%", 1000, 1, 50),
        ("5%", 10, 1, 1),  # a wave rounds up
        ("1%", 1000, 0, 10),
        ("1%", 50, 0, 0),  # a tolerance rounds down
        ("0", 10, 0, 0),
        (" 25 % ", 1000, 1, 250),
    ],
)
def test_parse_count(text: str, total: int, minimum: int, expected: int) -> None:
    assert parse_count(text, total, what="--x", minimum=minimum) == expected


@pytest.mark.parametrize("text", ["", "x", "-1", "1.5", "101%", "5 %%"])
def test_parse_count_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="--x"):
        parse_count(text, 10, what="--x", minimum=1)


def server(phase: Phase, version: str | None = "v2", *, retrying: bool = False, cause: str | None = None) -> ServerView:
    return ServerView("s", phase, version, retrying=retrying, cause=cause)


@pytest.mark.parametrize(
    ("servers", "verdict"),
    [
        pytest.param((), Verdict.SUCCEEDED, id="no-servers"),
        pytest.param((server(Phase.READY), server(Phase.READY)), Verdict.SUCCEEDED, id="all-ready-at-v2"),
        pytest.param((server(Phase.READY, "v1"),), Verdict.PENDING, id="ready-at-the-old-version-is-not-success"),
        pytest.param((server(Phase.READY, None),), Verdict.PENDING, id="ready-before-versions-were-kept"),
        pytest.param((server(Phase.READY), server(Phase.UPDATING)), Verdict.PENDING, id="one-updating"),
        pytest.param((server(Phase.READY), server(Phase.HELD, cause="x")), Verdict.FAILED, id="held-at-v2"),
        pytest.param((server(Phase.FAILED),), Verdict.FAILED, id="failed-for-good-at-v2"),
        pytest.param((server(Phase.FAILED, retrying=True),), Verdict.PENDING, id="failed-with-a-retry-left"),
        pytest.param((server(Phase.HELD, "v1"),), Verdict.PENDING, id="held-at-the-old-version-is-not-failure"),
    ],
)
def test_judge(servers: tuple[ServerView, ...], verdict: Verdict) -> None:
    assert judge(TenantView("t", "v2", None, servers), "v2")[0] is verdict


def rollout(count: int = 4, *, sizes: tuple[str, ...] = ("1",), tolerance: str = "0", auto: bool = False) -> Rollout:
    return new_rollout(
        "ro-1",
        "v2",
        {f"t{i}": "v1" for i in range(count)},
        canary=None,
        wave_sizes=sizes,
        failure_tolerance=tolerance,
        bake_s=0,
        auto_rollback=auto,
        now=NOW,
    )


def views(
    on_v2: set[str],
    ready: set[str] = frozenset(),
    held: set[str] = frozenset(),
    count: int = 4,  # type: ignore[assignment]
) -> dict[str, TenantView]:
    found = {}
    for i in range(count):
        t = f"t{i}"
        phase = Phase.READY if t in ready else Phase.HELD if t in held else Phase.UPDATING
        version = "v2" if t in on_v2 else "v1"
        found[t] = TenantView(t, version, None, (ServerView("a", phase, version, cause="boom"),))
    return found


def test_the_first_advance_pins_only_the_canary() -> None:
    step = advance(rollout(), {}, NOW, timeout_s=60)
    assert [p.tenant_id for p in step.pins] == []  # no view: the tenant is gone, skipped
    step = advance(rollout(), views(set()), NOW, timeout_s=60)
    assert [(p.tenant_id, p.version, p.wave) for p in step.pins] == [("t0", "v2", 0)]
    assert step.rollout.current_wave == 0 and step.waves_started == (0,)


def test_a_succeeded_wave_with_no_bake_starts_the_next_in_the_same_step() -> None:
    started = advance(rollout(), views(set()), NOW, timeout_s=60).rollout
    step = advance(started, views({"t0"}, ready={"t0"}), NOW, timeout_s=60)
    assert [p.tenant_id for p in step.pins] == ["t1"]
    assert step.rollout.progress("t0").outcome is TenantOutcome.SUCCEEDED  # type: ignore[union-attr]


def test_nothing_changes_while_the_wave_is_in_flight() -> None:
    started = advance(rollout(), views(set()), NOW, timeout_s=60).rollout
    step = advance(started, views({"t0"}), NOW + timedelta(seconds=30), timeout_s=60)
    assert step.rollout is started and not step.pins


def test_an_unpinned_in_flight_tenant_is_pinned_again() -> None:
    started = advance(rollout(), views(set()), NOW, timeout_s=60).rollout
    step = advance(started, views(set()), NOW, timeout_s=60)
    assert [p.tenant_id for p in step.pins] == ["t0"]


def test_the_timeout_fails_a_tenant() -> None:
    started = advance(rollout(), views(set()), NOW, timeout_s=60).rollout
    step = advance(started, views({"t0"}), NOW + timedelta(seconds=61), timeout_s=60)
    assert step.halted and step.rollout.state is RolloutState.HALTED
    assert "not Ready at v2 within 60s: a (Updating)" in (step.rollout.progress("t0").cause or "")  # type: ignore[union-attr]


def test_a_halt_with_auto_rollback_pins_failed_and_in_flight_tenants_back() -> None:
    r = rollout(5, sizes=("2",), tolerance="1", auto=True)
    r = advance(r, views(set(), count=5), NOW, timeout_s=600).rollout
    r = advance(r, views({"t0"}, ready={"t0"}, count=5), NOW, timeout_s=600).rollout
    step = advance(r, views({"t0", "t1", "t2"}, ready={"t0"}, held={"t1"}, count=5), NOW, timeout_s=600)
    assert not step.halted  # one failure, within the tolerance; t2 still in flight
    step = advance(
        step.rollout, views({"t0", "t1", "t2"}, ready={"t0"}, held={"t1", "t2"}, count=5), NOW, timeout_s=600
    )
    assert step.halted and step.rolled_back and step.rollout.state is RolloutState.ROLLED_BACK
    assert sorted((p.tenant_id, p.version, p.back) for p in step.pins) == [("t1", "v1", True), ("t2", "v1", True)]
    assert step.rollout.failures == 2


def test_rollback_pins_back_only_what_is_still_on_the_target() -> None:
    r = advance(rollout(), views(set()), NOW, timeout_s=60).rollout
    r = advance(r, views({"t0"}, ready={"t0"}), NOW, timeout_s=60).rollout
    step = rollback(r, {"t0": TenantView("t0", "v2"), "t1": TenantView("t1", "v3")}, NOW)
    assert [(p.tenant_id, p.version) for p in step.pins] == [("t0", "v1")]
    assert step.notes == ("t1: left on v3 (changed since the rollout pinned it)",)


def test_an_empty_rollout_is_refused() -> None:
    with pytest.raises(RolloutError, match="no tenant to move"):
        new_rollout(
            "r", "v2", {}, canary=None, wave_sizes=("1",), failure_tolerance="0", bake_s=0, auto_rollback=False, now=NOW
        )


def test_a_rollout_round_trips_through_its_stored_form() -> None:
    r = advance(rollout(), views(set()), NOW, timeout_s=60).rollout
    assert Rollout.from_dict(r.to_dict()) == r


def test_failures_beyond_the_tolerance_halt_before_the_wave_is_done() -> None:
    r = rollout(5, sizes=("4",), tolerance="0", auto=True)
    r = advance(r, views(set(), count=5), NOW, timeout_s=600).rollout
    r = advance(r, views({"t0"}, ready={"t0"}, count=5), NOW, timeout_s=600).rollout
    step = advance(r, views({"t0", "t1", "t2", "t3", "t4"}, ready={"t0"}, held={"t2"}, count=5), NOW, timeout_s=600)
    assert step.halted and step.rollout.state is RolloutState.ROLLED_BACK
    # The failed tenant and the three still in flight go back at once.
    assert sorted(p.tenant_id for p in step.pins if p.back) == ["t1", "t2", "t3", "t4"]


@pytest.mark.parametrize("bake_s", [7 * 24 * 3600 + 1, 10**22])
def test_a_bake_longer_than_a_week_is_refused_at_start(bake_s: int) -> None:
    # A bake past what a date can hold used to be stored, and then broke every later advance of the rollout.
    with pytest.raises(ConfigError, match="--bake must be at most 604800 seconds"):
        new_rollout(
            "r",
            "v2",
            {"t0": "v1", "t1": "v1"},
            canary=None,
            wave_sizes=("1",),
            failure_tolerance="0",
            bake_s=bake_s,
            auto_rollback=False,
            now=NOW,
        )
