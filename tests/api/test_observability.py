"""Every request is logged with its correlation id, tenant and user; metrics count requests and rejections
in the Stackherd namespace. And importing the handler stays cheap: no AWS SDK, PynamoDB or moto."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.api.conftest import ANON, ApiClient, put_config


@contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """The API logger's JSON lines while the block runs (its handler keeps the stdout it was created with)."""
    from handlers.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
        lines.extend(json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{"))


def emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_each_request_is_logged_with_correlation_id_tenant_and_user(
    api: ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    with captured_logs() as lines:
        created = api.put("/servers/alpha-1", put_config())
        refused = api.put("/servers/alpha-1", {"config": {"bogus": 1}})
    requests = [line for line in lines if line["message"] == "request"]
    assert [(r["status"], r["method"], r["path"]) for r in requests] == [
        (201, "PUT", "/servers/alpha-1"),
        (422, "PUT", "/servers/alpha-1"),
    ]
    for line, response in zip(requests, (created, refused), strict=True):
        assert line["correlation_id"] == response.event["requestContext"]["requestId"]
        assert (line["tenant_id"], line["user"], line["admin"]) == ("acme", "alice", False)
        assert (line["service"], line["function_name"]) == ("stackherd", "stackherd-api")
    rejected = [line for line in lines if line["message"] == "request rejected"]
    assert [(r["status"], r["code"]) for r in rejected] == [(422, "ValidationFailed")]

    metrics = emf(capsys.readouterr().out)
    assert len(metrics) == 2
    for blob in metrics:
        assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Stackherd"
        assert blob["Requests"] == [1.0]
    assert "Rejections" not in metrics[0]
    assert metrics[1]["Rejections"] == [1.0]
    assert metrics[1]["Rejections422"] == [1.0]


def test_state_does_not_leak_between_requests(api: ApiClient) -> None:
    with captured_logs() as lines:
        api.get("/servers")
        api.get("/servers", ANON)
    anonymous = [line for line in lines if line["message"] == "request"][-1]
    assert anonymous["status"] == 401
    assert "user" not in anonymous and "tenant_id" not in anonymous


def test_importing_the_handler_loads_no_aws_sdk_pynamodb_or_moto() -> None:
    code = (
        "import sys, handlers.api.app; "
        "print(sorted(m for m in ('boto3', 'botocore.session', 'pynamodb', 'moto', 'handlers.runtime', "
        "'reconciler.adapters.dynamo', 'aws_lambda_powertools.event_handler.openapi.models') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"
