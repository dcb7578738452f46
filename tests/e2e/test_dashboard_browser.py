"""The dashboard in a real headless Chromium (the system's, from Debian's `chromium` package), driven by
Playwright against `stackherd local`: a server created over the API goes from Creating to Ready, a drift made
by hand in the tenant's account appears once a pass finds it and goes, a failed server shows its cause.
Screenshots are saved under `test-artifacts/dashboard/` (git-ignored)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.local_runtime import Running, local_runtime, wait_for
from tests.e2e.moto_server import ROOT

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
ALPHA = "111111111111"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEMPLATE = ROOT / "infra" / "sam" / "gameserver.yaml"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    # A change is looked at again 5 s later (the requeue), and the sweep is rare: each state a change passes
    # through lasts long enough to be seen on a busy machine, by a page refreshing every 300 ms.
    with local_runtime(
        tmp_path_factory.mktemp("dashboard"),
        "--tenants",
        "2",
        "--sweep-every",
        "120",
        env={"STACKHERD_REQUEUE_AFTER_SECONDS": "5"},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        # Under CI the browser is part of the run (.ci/run installs it): a missing one is a failure, not a skip.
        missing = f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, local: Running) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(local.dashboard + "&tenant=alpha&refresh=300")
    yield tab
    context.close()
    assert errors == [], f"the page raised: {errors}"


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def cell(page: Any, server: str, column: str) -> str:
    locator = page.locator(f'#servers tr[data-server="{server}"] td.{column}')
    return str(locator.inner_text()) if locator.count() else ""


def watch_phases(page: Any, server: str, until: str, timeout_s: float) -> list[str]:
    """The phases the page shows for `server`, in order, until it shows `until`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        phase = cell(page, server, "phase")
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)
        if phase == until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{server} never showed {until}; saw {seen}")


def test_the_fleet_and_the_tenants_show_without_typing_a_token(page: Any) -> None:
    page.wait_for_selector('#tenants tr[data-tenant="alpha"]')
    page.wait_for_selector('#tenants tr[data-tenant="bravo"]')
    assert "token=" not in page.url, "the token leaves the address bar once read"
    assert page.locator('[data-card="tenants"] b').inner_text() == "2"
    shot(page, "fleet")


def test_a_server_created_over_the_api_goes_from_creating_to_ready(page: Any, local: Running) -> None:
    ana = local.token("--tenant", "alpha", "--user", "ana")
    page.wait_for_selector("#servers")
    assert local.request("PUT", "/servers/arena", ana, {"config": {"difficulty": "hard"}})[0] == 201
    page.wait_for_selector('#servers tr[data-server="arena"]', timeout=30_000)
    seen = watch_phases(page, "arena", "Ready", 30)
    assert "Creating" in seen and seen[-1] == "Ready", seen
    assert cell(page, "arena", "generation") == cell(page, "arena", "observed") == "1"
    page.click('#servers tr[data-server="arena"]')
    page.wait_for_selector("#timeline tbody tr")
    kinds = page.locator("#timeline td.kind").all_inner_texts()
    assert kinds, "the timeline lists what happened"
    shot(page, "ready")


def test_a_drift_made_by_hand_appears_and_goes(page: Any, local: Running) -> None:
    ana = local.token("--tenant", "alpha", "--user", "ana")
    local.request("PUT", "/servers/castle", ana, {"config": {"difficulty": "easy"}})
    wait_for(lambda: cell(page, "castle", "phase") == "Ready", 30, "castle Ready")
    cfn = local.boto3("cloudformation", ALPHA)
    stack = cfn.describe_stacks(StackName="stackherd-alpha-castle")["Stacks"][0]
    cfn.update_stack(
        StackName="stackherd-alpha-castle",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": "Difficulty", "ParameterValue": "hard"},
            {"ParameterKey": "PlayerCount", "ParameterValue": "4"},
            {"ParameterKey": "Seed", "ParameterValue": "default"},
        ],
        Tags=stack["Tags"],
    )
    # An admin forces a pass (as the sweep would): the work queue's worker updates the stack back, recording the
    # drift; the requeued pass after that finds the stack as asked and clears it.
    admin = local.token("--user", "ops", "--admin")
    status, queued = local.request("POST", "/tenants/alpha/reconcile", admin)
    assert status == 202 and queued["queued"], queued
    drift = wait_for(lambda: cell(page, "castle", "drift").strip("-"), 30, "the drift shown", interval_s=0.05)
    shot(page, "drift")
    assert "Difficulty" in drift and "hard" in drift, drift
    wait_for(lambda: cell(page, "castle", "drift") == "-", 30, "the drift gone")
    wait_for(lambda: cell(page, "castle", "phase") == "Ready", 30, "castle Ready again")
    shot(page, "drift-repaired")


def test_a_failed_server_shows_its_cause(page: Any, local: Running) -> None:
    cfn = local.boto3("cloudformation", ALPHA)
    cfn.create_stack(
        StackName="stackherd-alpha-taken",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {"Difficulty": "easy", "PlayerCount": "2", "Seed": "mine"}.items()
        ],
    )
    ana = local.token("--tenant", "alpha", "--user", "ana")
    assert local.request("PUT", "/servers/taken", ana, {"config": {}})[0] == 201
    wait_for(lambda: cell(page, "taken", "phase") == "Failed", 30, "taken Failed")
    assert "not this tenant's" in cell(page, "taken", "cause")
    # The fleet table comes from its own read, made just before the servers' one.
    wait_for(
        lambda: "taken" in page.locator('#tenants tr[data-tenant="alpha"] td.failures').inner_text(),
        30,
        "taken among alpha's failures",
    )
    shot(page, "failed")


def teardown_module() -> None:
    # Keep the artifacts of this run only.
    for stale in ARTIFACTS.glob("*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
