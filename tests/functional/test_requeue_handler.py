"""The requeue handler on the fake cloud: a delayed "look again" reconciles the servers it names; what
cannot be decoded is dropped (retrying cannot fix it), and only transient failures come back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers import requeue
from handlers.local.embedded import LocalContext
from reconciler.fakes.world import FakeWorld

# The handler flushes its metrics even when a batch had nothing to count.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ACCOUNT = "111111111111"


def sqs_record(body: Any, message_id: str = "m-1") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": body if isinstance(body, str) or body is None else json.dumps(body),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:stackherd-requeue",
        "awsRegion": "us-east-1",
    }


def test_a_message_reconciles_the_servers_it_names(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT)
    installed.put("alpha", "s0")
    installed.put("alpha", "s1")

    event = {"Records": [sqs_record({"tenant_id": "alpha", "gameserver_ids": ["s0"]})]}

    assert requeue.handler(event, context) == {"batchItemFailures": []}
    assert [s.name for s in installed.cloud.stacks(ACCOUNT)] == ["stackherd-alpha-s0"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[" * 100_000 + "]" * 100_000,
        None,
        json.dumps([1, 2]),
        {"tenant_id": "alpha"},
        {"tenant_id": "Alpha!", "gameserver_ids": ["s0"]},
        {"tenant_id": "alpha", "gameserver_ids": []},
        {"tenant_id": "alpha", "gameserver_ids": ["s0"], "extra": 1},
    ],
    ids=["not-json", "deeply-nested", "no-body", "a-list", "no-ids", "bad-tenant", "empty-ids", "extra-key"],
)
def test_a_message_that_cannot_be_decoded_is_dropped_not_retried(
    installed: FakeWorld, context: LocalContext, body: Any
) -> None:
    assert requeue.handler({"Records": [sqs_record(body)]}, context) == {"batchItemFailures": []}
    assert installed.cloud.calls == []


@pytest.mark.parametrize("event", [{}, None, {"Records": None}, {"Records": "x"}, {"Records": [1, None]}])
def test_malformed_events_return_an_empty_failure_list(installed: FakeWorld, context: LocalContext, event: Any) -> None:
    assert requeue.handler(event, context) == {"batchItemFailures": []}


def test_only_a_transient_failure_is_reported_for_retry(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT)
    installed.put("alpha", "s0")
    installed.cloud.throttle_next(ACCOUNT, times=1)
    event = {
        "Records": [
            sqs_record({"tenant_id": "alpha", "gameserver_ids": ["s0"]}, "m-1"),
            sqs_record("garbage", "m-2"),
        ]
    }

    assert requeue.handler(event, context) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
