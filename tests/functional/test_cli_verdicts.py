"""`plan` and `reconcile` exit codes and verdicts, on the fake cloud: 0 only when converged, 2 while changes
are pending (a paused tenant's included), 1 when a server is Failed or Held or the tenant errored."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from handlers.local import cli
from handlers.local.embedded import fake_runtime
from handlers.runtime import install_runtime
from reconciler.errors import PermanentError, RegionUnavailableError
from reconciler.fakes.world import FakeWorld
from reconciler.planner import PlanSettings

ACCOUNT = "111111111111"


@pytest.fixture
def world() -> Iterator[FakeWorld]:
    world = FakeWorld()
    install_runtime(fake_runtime(world))
    yield world
    install_runtime(None)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


def run_json(*argv: str) -> tuple[int, dict[str, Any]]:
    code, text = run(*argv, "--json")
    return code, json.loads(text)


def test_plan_of_a_converged_tenant_exits_0(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")
    world.converge("alpha")
    assert run("plan", "alpha") == (
        0,
        "  no-op              arena                    stack matches its rendering\nin sync\n",
    )
    code, data = run_json("plan", "alpha")
    assert (code, data["verdict"], data["exit_code"]) == (0, "in_sync", 0)


def test_paused_tenant_with_a_missing_stack_is_pending_and_says_paused(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT, paused=True)
    world.put("alpha", "arena")
    code, text = run("plan", "alpha")
    assert code == cli.EXIT_PENDING
    assert "would create" in text and "tenant alpha is paused" in text
    code, data = run_json("plan", "alpha")
    assert (code, data["verdict"], data["paused"]) == (2, "pending", True)
    assert data["actions"][0]["would"] == "create"


def test_paused_converged_tenant_is_in_sync(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")
    world.converge("alpha")
    world.store.tenants["alpha"] = replace(world.store.tenants["alpha"], paused=True)
    assert run("plan", "alpha")[0] == cli.EXIT_OK


def test_stack_name_taken_is_failed_not_pending_for_ever(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.cloud.put_stack(ACCOUNT, "us-east-1", "stackherd-alpha-arena", tags={"owner": "someone else"})
    world.put("alpha", "arena")
    for _ in range(2):
        code, text = run("plan", "alpha")
        assert code == cli.EXIT_ERROR and "changes pending" not in text
        assert "not converging: arena failed or held" in text
    code, text = run("reconcile", "alpha")
    assert code == cli.EXIT_ERROR
    assert "[failed]" in text and "[done]" not in text


def test_invalid_config_is_failed_not_pending(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")
    server = world.server("alpha", "arena")
    assert server is not None
    world.store.servers[("alpha", "arena")] = replace(server, region="eu-west-3")  # not one of the tenant's
    assert run("plan", "alpha")[0] == cli.EXIT_ERROR
    code, data = run_json("reconcile", "alpha")
    assert (code, data["verdict"]) == (1, "failed")
    assert [(a["kind"], a["outcome"]) for a in data["actions"]] == [("fail", "failed")]


def test_template_not_found_is_failed_not_pending(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT, template_version="v9")
    world.put("alpha", "arena")
    code, data = run_json("plan", "alpha")
    assert (code, data["verdict"]) == (1, "failed")
    assert data["actions"][0]["code"] == "TemplateNotFound"


def test_a_server_failed_permanently_at_its_generation_makes_plan_exit_1(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")
    world.cloud.fail_next(ACCOUNT, "create", lambda: PermanentError("ValidationError: Template format error"))
    code, text = run("reconcile", "alpha")
    assert code == cli.EXIT_ERROR and "[failed]" in text
    code, data = run_json("plan", "alpha")
    assert (code, data["verdict"], data["failing"]) == (1, "failed", ["arena"])


def test_a_deletion_held_by_the_brake_makes_plan_exit_1_and_is_shown() -> None:
    world = FakeWorld(settings=PlanSettings(max_deletions=1))
    install_runtime(fake_runtime(world))
    try:
        world.add_tenant("alpha", ACCOUNT)
        for name in ("a", "b", "c"):
            world.put("alpha", name)
        world.converge("alpha")
        world.store.servers.clear()
        assert run("reconcile", "alpha")[0] == cli.EXIT_ERROR
        code, text = run("plan", "alpha")
        assert code == cli.EXIT_ERROR
        assert "deletion brake: 2 deletions held since" in text
        assert "--confirm-deletions" in text
        code, data = run_json("reconcile", "alpha", "--confirm-deletions")
        assert code == cli.EXIT_OK
        assert sorted(a["gameserver_id"] for a in data["actions"] if a["kind"] == "delete") == ["b", "c"]
        assert run("plan", "alpha")[0] == cli.EXIT_PENDING  # the deletions are under way
    finally:
        install_runtime(None)


def test_json_error_is_a_json_object_on_stdout(world: FakeWorld, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run("plan", "nobody", "--json")
    assert code == cli.EXIT_ERROR
    error = json.loads(text)
    assert error["exit_code"] == 1 and "not found" in error["error"] and error["error_code"]
    assert "not found" in capsys.readouterr().err


def test_reconcile_of_an_unreachable_tenant_exits_1_with_the_error(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")
    world.cloud.deny(ACCOUNT)
    code, data = run_json("reconcile", "alpha")
    assert (code, data["verdict"]) == (1, "failed") and data["error"]


def test_tenant_status_shows_the_held_deletions() -> None:
    world = FakeWorld(settings=PlanSettings(max_deletions=0))
    install_runtime(fake_runtime(world))
    try:
        world.add_tenant("alpha", ACCOUNT)
        world.put("alpha", "arena")
        world.converge("alpha")
        world.store.servers.clear()
        run("reconcile", "alpha")
        code, text = run("tenants", "list")
        assert code == 0 and "HELD DELETIONS" in text and "1 since 2026-" in text
        code, text = run("tenants", "list", "--json")
        (tenant,) = json.loads(text)
        assert tenant["deletion_brake"]["held_servers"] == ["arena"]
    finally:
        install_runtime(None)


@pytest.mark.parametrize(
    ("region", "says"),
    [("us-gov-west-1", "aws-us-gov partition"), ("cn-north-1", "aws-cn partition"), ("xx-fake-1", "not a known")],
)
def test_tenants_add_and_update_refuse_a_region_outside_the_roles_partition(
    world: FakeWorld, capsys: pytest.CaptureFixture[str], region: str, says: str
) -> None:
    code, _ = run("tenants", "add", "beta", "--account", "222222222222", "--region", region)
    assert code == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert says in err and region in err and "Traceback" not in err
    world.add_tenant("alpha", ACCOUNT)
    code, _ = run("tenants", "update", "alpha", "--region", "us-east-1", "--region", region)
    assert code == cli.EXIT_ERROR and says in capsys.readouterr().err
    assert world.store.tenants["alpha"].regions == ("us-east-1",)


def test_unquarantine_releases_a_region_quarantined_alone(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT, regions=("us-east-1", "eu-west-1"))
    world.store.set_region_quarantine("alpha", "eu-west-1", "AccessDenied: an SCP", world.clock())
    code, text = run("tenants", "list")
    assert code == cli.EXIT_OK and "eu-west-1 quarantined: AccessDenied: an SCP" in text
    assert run("tenants", "unquarantine", "alpha")[0] == cli.EXIT_OK
    assert world.store.get_tenant_state("alpha").quarantined_regions() == {}


def test_plan_of_a_tenant_whose_region_botocore_refuses_exits_1_with_a_clear_message(
    world: FakeWorld, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from botocore.exceptions import InvalidRegionError

    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")

    def refuse(tenant: Any, region: str) -> Any:
        raise InvalidRegionError(region_name=region)

    world.engine.connector.gateway = refuse  # type: ignore[method-assign]
    code, text = run("plan", "alpha")
    assert code == cli.EXIT_ERROR
    assert "Provided region_name 'us-east-1' doesn't match a supported format" in text
    assert "internal error" not in text and "Traceback" not in capsys.readouterr().err
    assert not any(record.exc_info for record in caplog.records)


def test_sweep_exits_1_and_names_a_server_held_by_its_failure_budget(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")
    world.converge("alpha")
    world.cloud.set_outcome(ACCOUNT, "stackherd-alpha-arena", "update", "UPDATE_ROLLBACK_COMPLETE", always=True)
    world.put("alpha", "arena", seed="changed")
    for _ in range(12):
        run("sweep")
        world.cloud.settle_all()
        world.clock.advance(300)
    assert world.server("alpha", "arena").status.phase.value == "Held"  # type: ignore[union-attr]
    code, text = run("sweep")
    assert code == cli.EXIT_ERROR and "not converging alpha: arena" in text
    code, data = run_json("sweep")
    assert (code, data["not_converging"]) == (cli.EXIT_ERROR, {"alpha": ["arena"]})


def test_plan_reconcile_and_sweep_do_not_call_a_tenant_with_an_unlisted_region_in_sync(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT, regions=("us-east-1", "eu-west-1"))
    world.put("alpha", "arena")
    world.converge("alpha")
    world.cloud.break_region(ACCOUNT, "eu-west-1", lambda: RegionUnavailableError("Could not connect to the endpoint"))
    for command in ("plan", "reconcile"):
        code, text = run(command, "alpha")
        assert code == cli.EXIT_ERROR, text
        assert "region eu-west-1 not observed: region eu-west-1 could not be listed" in text
        assert "in sync" not in text
        code, data = run_json(command, "alpha")
        assert (code, data["verdict"]) == (cli.EXIT_ERROR, "failed")
    code, text = run("sweep")
    assert code == cli.EXIT_ERROR and "not converging alpha: region:eu-west-1" in text


def test_plan_of_a_quarantined_tenant_exits_1_and_says_it_is_quarantined(world: FakeWorld) -> None:
    world.add_tenant("alpha", ACCOUNT)
    world.put("alpha", "arena")
    world.converge("alpha")
    world.cloud.deny(ACCOUNT)
    run("sweep")  # access denied: quarantined
    world.cloud.allow(ACCOUNT)  # fixed, but no sweep looks at it again
    world.put("alpha", "arena", seed="changed")
    code, text = run("plan", "alpha")
    assert code == cli.EXIT_ERROR and "changes pending" not in text
    assert "tenant alpha is quarantined: access to account" in text and "tenants unquarantine alpha" in text
    code, data = run_json("plan", "alpha")
    assert (code, data["verdict"]) == (cli.EXIT_ERROR, "failed") and "denied" in data["quarantined"]
    code, text = run("sweep")
    assert code == cli.EXIT_ERROR and "skipped alpha: quarantined" in text
    assert world.server("alpha", "arena").status.observed_generation == 1  # type: ignore[union-attr]
