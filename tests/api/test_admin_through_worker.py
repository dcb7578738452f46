"""With a work queue and a worker function configured (as on AWS), the admin routes never reconcile in the API's
own process: a reconcile is queued for the tenant worker (202), a plan is asked of the worker by a synchronous
invocation. The API's role therefore needs no sts:AssumeRole."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handlers import worker
from handlers.local.embedded import LocalContext
from handlers.runtime import install_runtime, runtime
from tests.api.conftest import ACME_ACCOUNT, ROOT, ApiClient
from tests.functional.fleet import Fleet


class WorkerLambda:
    """A Lambda client whose `invoke` runs the worker handler in this process, as Lambda would run it."""

    def __init__(self, *, broken: bool = False) -> None:
        self.invocations: list[dict[str, Any]] = []
        self.broken = broken

    def invoke(self, FunctionName: str, InvocationType: str, Payload: str) -> dict[str, Any]:  # noqa: N803
        if self.broken:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke")
        request = json.loads(Payload)
        self.invocations.append({"function": FunctionName, "type": InvocationType, **request})
        answer = worker.handler(request, LocalContext())
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}


@pytest.fixture
def fleet(memory_world: Any) -> Iterator[Fleet]:
    running = Fleet(memory_world)
    running.runtime = replace(
        runtime(),
        settings=runtime().settings.model_copy(update={"worker_function": "stackherd-worker"}),
        work_queue=running.mq.queue,
        worker_client=WorkerLambda(),
    )
    install_runtime(running.runtime)
    yield running
    install_runtime(None)


def test_an_admin_reconcile_is_queued_for_the_worker_and_never_run_by_the_api(fleet: Fleet) -> None:
    fleet.world.put("acme", "arena")
    api = ApiClient()

    first = api.post("/tenants/acme/reconcile", query={"force": "true"})
    second = api.post("/tenants/acme/reconcile")

    assert (first.status, first.json()) == (202, {"tenant_id": "acme", "queued": True, "coalesced": False})
    assert (second.status, second.json()["coalesced"]) == (202, True)
    assert fleet.world.cloud.count() == 0  # no AssumeRole, no CloudFormation call from the API
    fleet.pump()
    assert fleet.passes == [("acme", None)]
    assert [s.name for s in fleet.world.cloud.stacks(ACME_ACCOUNT)] == ["stackherd-acme-arena"]


def test_an_admin_plan_is_asked_of_the_worker(fleet: Fleet) -> None:
    fleet.world.put("acme", "arena")

    response = ApiClient().get("/tenants/acme/plan", ROOT, query={"confirm_deletions": "true"})

    assert response.status == 200
    assert [a["kind"] for a in response.json()["actions"]] == ["create"]
    assert fleet.runtime.worker_client.invocations == [
        {
            "function": "stackherd-worker",
            "type": "RequestResponse",
            "action": "plan",
            "tenant_id": "acme",
            "confirm_deletions": True,
        }
    ]
    assert fleet.world.cloud.stacks(ACME_ACCOUNT) == []


def test_a_worker_that_cannot_be_invoked_is_a_clear_503(fleet: Fleet) -> None:
    install_runtime(replace(fleet.runtime, worker_client=WorkerLambda(broken=True)))

    response = ApiClient().get("/tenants/acme/plan", ROOT)

    assert response.status == 503
    assert "tenant worker could not be invoked" in response.json()["message"]
