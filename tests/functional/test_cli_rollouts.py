"""`stackherd rollout ...` on the fake world: start, status (text, --json, --watch), list, pause, resume, abort,
rollback, and the refusals, each one line and exit 1."""

from __future__ import annotations

import io
import json

import pytest

from handlers.local import cli
from reconciler.fakes.world import FakeWorld


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


@pytest.fixture
def fleet(installed: FakeWorld) -> FakeWorld:
    installed.templates.add("v2")
    for index in range(3):
        tenant_id = f"t{index}"
        installed.add_tenant(tenant_id, f"{200000000000 + index}")
        installed.put(tenant_id, "a")
        installed.converge(tenant_id)
    return installed


def sweep_until_done(world: FakeWorld, rollout_id: str, rounds: int = 20) -> dict[str, object]:
    for _ in range(rounds):
        code, _ = run("sweep", "--json")
        assert code == cli.EXIT_OK
        world.cloud.settle_all()
        data = json.loads(run("rollout", "status", rollout_id, "--json")[1])
        if data["state"] != "InProgress":
            return data  # type: ignore[no-any-return]
    raise AssertionError("the rollout did not finish")


def test_start_prints_the_id_and_sweeps_complete_it(fleet: FakeWorld) -> None:
    code, out = run("rollout", "start", "v2", "--canary", "t1", "--wave-size", "1")
    assert code == cli.EXIT_OK
    rollout_id = out.strip()
    assert rollout_id.startswith("ro-")
    assert fleet.store.get_tenant("t1") is not None and fleet.store.get_tenant("t1").template_version == "v2"  # type: ignore[union-attr]
    data = sweep_until_done(fleet, rollout_id)
    assert data["state"] == "Completed"
    assert [w["tenants"][0]["tenant_id"] for w in data["waves"]] == ["t1", "t0", "t2"]  # type: ignore[index]
    assert data["counts"]["succeeded"] == 3  # type: ignore[index]
    code, text = run("rollout", "status", rollout_id)
    assert code == cli.EXIT_OK
    assert f"rollout {rollout_id}: v2 Completed, wave 3 of 3" in text
    assert "wave 1 (canary): t1 succeeded" in text
    code, listed = run("rollout", "list", "--json")
    assert json.loads(listed)[0]["rollout_id"] == rollout_id


def test_status_without_an_id_shows_the_active_rollout_and_watch_stops_when_it_ends(fleet: FakeWorld) -> None:
    _, out = run("rollout", "start", "v2", "--json")
    rollout_id = json.loads(out)["rollout_id"]
    assert json.loads(run("rollout", "status", "--json")[1])["rollout_id"] == rollout_id
    sweep_until_done(fleet, rollout_id)
    code, watched = run("rollout", "status", "--watch", "--json", "--interval", "0.01")
    assert code == cli.EXIT_OK
    assert [json.loads(line)["state"] for line in watched.splitlines()] == ["Completed"]


def test_pause_resume_abort_and_rollback(fleet: FakeWorld) -> None:
    rollout_id = run("rollout", "start", "v2")[1].strip()
    assert run("rollout", "pause", rollout_id) == (cli.EXIT_OK, f"rollout {rollout_id}: Paused\n")
    assert run("rollout", "resume", rollout_id)[0] == cli.EXIT_OK
    code, out = run("rollout", "abort", rollout_id, "--json")
    assert code == cli.EXIT_OK and json.loads(out)["state"] == "Aborted"
    code, out = run("rollout", "rollback", rollout_id)
    assert code == cli.EXIT_OK and out.startswith(f"rollout {rollout_id}: RolledBack")
    assert {t.template_version for t in fleet.store.list_tenants()} == {"v1"}
    code, _ = run("rollout", "status", rollout_id)
    assert code == cli.EXIT_ERROR  # a rolled-back rollout did not reach its version


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("rollout", "start", "v9"), "template version 'v9' is not published"),
        (("rollout", "start", "v2", "--tenants", "t0,ghost"), "tenant 'ghost' not found"),
        (("rollout", "start", "v2", "--wave-size", "lots"), "--wave-size must be a count like 5"),
        (("rollout", "start", "v2", "--failure-tolerance", "200%"), "--failure-tolerance must be at most 100%"),
        (("rollout", "start", "v2", "--bake", "-5"), "--bake must be 0 or more seconds"),
        (("rollout", "start", "v2", "--tenants", ","), "--tenants needs at least one name"),
        (("rollout", "status", "ro-missing"), "rollout 'ro-missing' not found"),
        (("rollout", "pause", "ro-missing"), "rollout 'ro-missing' not found"),
        (("rollout", "status"), "no rollout yet"),
    ],
)
def test_refusals_are_one_line_and_exit_1(
    fleet: FakeWorld, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _ = run(*argv)
    assert code == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_an_overlapping_start_is_refused_with_the_other_rollout_named(
    fleet: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run("rollout", "start", "v2", "--tenants", "t0,t1")[1].strip()
    code, out = run("rollout", "start", "v2", "--tenants", "t1,t2", "--json")
    assert code == cli.EXIT_ERROR
    assert f"rollout {first} is still active on t1" in json.loads(out)["error"]
    code, _ = run("rollout", "resume", first)
    assert code == cli.EXIT_OK
    code, _ = run("rollout", "rollback", first)
    code, _ = run("rollout", "resume", first)
    assert code == cli.EXIT_ERROR
    assert "only a paused rollout can be resumed" in capsys.readouterr().err


def test_the_scheduled_sweep_advances_rollouts_and_counts_waves_halts_and_rollbacks(
    fleet: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    from handlers import sweep
    from handlers.local.embedded import LocalContext
    from reconciler import naming

    for index in (1, 2):  # v2 fails in t1 and t2
        name = naming.stack_name(fleet.settings.installation, f"t{index}", "a")
        fleet.cloud.set_outcome(f"{200000000000 + index}", name, "update", "UPDATE_ROLLBACK_COMPLETE", always=True)
    rollout_id = run("rollout", "start", "v2", "--wave-size", "2", "--auto-rollback", "--failure-tolerance", "1")[1]
    capsys.readouterr()
    metrics: dict[str, float] = {}
    for _ in range(12):
        sweep.handler({"source": "aws.events"}, LocalContext())
        fleet.cloud.settle_all()
        fleet.clock.advance(300)
        for line in capsys.readouterr().out.splitlines():
            if line.startswith('{"_aws"'):
                data = json.loads(line)
                for name in ("RolloutWavesStarted", "RolloutsHalted", "RolloutsRolledBack"):
                    if name in data:
                        metrics[name] = metrics.get(name, 0) + sum(
                            data[name] if isinstance(data[name], list) else [data[name]]
                        )
    state = json.loads(run("rollout", "status", rollout_id.strip(), "--json")[1])
    assert state["state"] == "RolledBack", state
    assert metrics == {"RolloutWavesStarted": 1, "RolloutsHalted": 1, "RolloutsRolledBack": 1}
    assert {t.tenant_id: t.template_version for t in fleet.store.list_tenants()} == {"t0": "v2", "t1": "v1", "t2": "v1"}


def test_a_sweep_goes_on_when_rollouts_cannot_advance(fleet: FakeWorld) -> None:
    def broken() -> tuple[int, list[object]]:
        raise RuntimeError("the tenants table is unreachable")

    fleet.store.active_rollouts = broken  # type: ignore[method-assign]
    code, out = run("sweep", "--json")
    assert code == cli.EXIT_OK and json.loads(out)["tenants"] == 3
