"""Client-side pacing over any connector: every call of the stack-gateway port takes a token of its account."""

from __future__ import annotations

import inspect

from reconciler.fakes.world import FakeWorld
from reconciler.pacing import AccountRateLimiter, PacedConnector, PacedGateway
from reconciler.ports import StackGateway


class Counting(AccountRateLimiter):
    def __init__(self) -> None:
        super().__init__(1000.0)
        self.taken: list[str] = []

    def acquire(self, account_id: str) -> None:
        self.taken.append(account_id)


def test_a_paced_gateway_answers_every_call_of_the_stack_gateway_port() -> None:
    port = {name for name, _ in inspect.getmembers(StackGateway, inspect.isfunction) if not name.startswith("_")}

    assert port <= {name for name, _ in inspect.getmembers(PacedGateway, inspect.isfunction)}


def test_a_paced_template_summary_read_takes_a_token_of_the_tenants_account() -> None:
    # It was missing: a pass that asks CloudFormation for a template's defaults through a paced connector
    # ended in an internal error (AttributeError) instead of reading the summary.
    world = FakeWorld()
    tenant = world.add_tenant("acme", "111111111111")
    url = world.templates.url_for("v1")
    world.cloud.register_template(url, {"Difficulty": "normal", "PlayerCount": "4", "Seed": None})
    limiter = Counting()

    summary = PacedConnector(world.connector, limiter).gateway(tenant, "us-east-1").template_summary(url)

    assert summary.parameters == {"Difficulty": "normal", "PlayerCount": "4", "Seed": None}
    assert limiter.taken == ["111111111111"]


def test_a_drifted_pass_through_a_paced_connector_reads_the_template_summary_and_repairs() -> None:
    world = FakeWorld()
    world.engine.connector = PacedConnector(world.connector, Counting())
    world.add_tenant("acme", "111111111111")
    world.put("acme", "s1", seed="abc")
    world.converge("acme")
    name = "stackherd-acme-s1"
    world.cloud.tamper("111111111111", "us-east-1", name, {"Seed": "drifted"})

    result = world.engine.reconcile_tenant("acme")

    assert result.error is None, result.error
    assert [r.action.kind.value for r in result.results] == ["update"]
