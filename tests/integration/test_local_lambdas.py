"""The local Lambda Invoke endpoint answers boto3's `invoke` the way Lambda does: synchronous results, function
errors, asynchronous events, unknown functions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from handlers.local.lambdas import LambdaEndpoint, function_name

pytestmark = pytest.mark.integration

SEEN: list[Any] = []
DONE = threading.Event()


def echo(event: Any, context: Any) -> Any:
    return {"got": event, "function": context.function_name}


def crash(event: Any, context: Any) -> Any:
    raise ValueError("no such plan")


def record(event: Any, context: Any) -> None:
    SEEN.append(event)
    DONE.set()


@pytest.fixture
def lambda_client() -> Iterator[Any]:
    import boto3

    endpoint = LambdaEndpoint(
        ("127.0.0.1", 0),
        "stackherd",
        {"worker": f"{__name__}.echo", "admin": f"{__name__}.crash", "sweep": f"{__name__}.record"},
    )
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    yield boto3.client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{endpoint.server_address[1]}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    endpoint.shutdown()
    endpoint.server_close()


def test_a_synchronous_invoke_returns_the_handlers_result(lambda_client: Any) -> None:
    answer = lambda_client.invoke(FunctionName="stackherd-worker", Payload=json.dumps({"action": "plan"}))
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"got": {"action": "plan"}, "function": "stackherd-worker"}


def test_a_handlers_exception_is_a_function_error(lambda_client: Any) -> None:
    answer = lambda_client.invoke(FunctionName="arn:aws:lambda:us-east-1:000000000000:function:stackherd-admin:live")
    assert answer["FunctionError"] == "Unhandled"
    body = json.loads(answer["Payload"].read())
    assert (body["errorType"], body["errorMessage"]) == ("ValueError", "no such plan")


def test_an_event_invoke_runs_on_its_own_and_answers_202(lambda_client: Any) -> None:
    DONE.clear()
    answer = lambda_client.invoke(FunctionName="sweep", InvocationType="Event", Payload=b'{"cursor": "b"}')
    assert answer["StatusCode"] == 202
    assert DONE.wait(10) and SEEN[-1] == {"cursor": "b"}


def test_an_unknown_function_is_resource_not_found(lambda_client: Any) -> None:
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.invoke(FunctionName="stackherd-nothing")


def test_function_names_come_out_of_arns_and_qualifiers() -> None:
    assert function_name("arn:aws:lambda:us-east-1:1:function:stackherd-worker:3") == "stackherd-worker"
    assert function_name("function:worker") == "worker"
    assert function_name("stackherd-worker") == "stackherd-worker"
