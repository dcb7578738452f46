"""The local event source mapping on SQS, against moto's queues: messages a partial batch response names stay
on the queue and reach the dead-letter queue through its RedrivePolicy; the others are deleted; a FIFO group
is held while one of its messages is in flight."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from handlers.local.esm import SqsMapping

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        yield boto3.client("sqs", region_name="us-east-1")


def queue_with_dlq(sqs: Any, name: str, *, fifo: bool = False, visibility: int = 0) -> tuple[str, str]:
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=extra)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=f"{name}{suffix}",
        Attributes={
            **extra,
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    return url, dlq


def bodies(sqs: Any, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(m["Body"] for m in messages)


class Function:
    def __init__(self, fail: set[str]) -> None:
        self.fail = fail
        self.seen: list[list[str]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event["Records"]
        assert all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"].startswith("arn:aws:sqs:") for r in records)
        self.seen.append([r["body"] for r in records])
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"] in self.fail]}


def test_a_message_reported_failed_stays_and_ends_in_the_dead_letter_queue(sqs: Any) -> None:
    url, dlq = queue_with_dlq(sqs, "work")
    for body in ("a", "b", "poison"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    function = Function(fail={"poison"})
    mapping = SqsMapping(sqs, url, function, wait_s=0)
    assert mapping.poll() == 3
    assert sorted(function.seen[0]) == ["a", "b", "poison"]
    assert mapping.poll() == 1, "only the failed message comes back"
    assert function.seen[1] == ["poison"]
    # Received twice (maxReceiveCount 2): moto's redrive moves it on the next receive.
    assert mapping.poll() == 0
    assert bodies(sqs, dlq) == ["poison"]


def test_a_function_error_leaves_the_whole_batch(sqs: Any) -> None:
    url, _ = queue_with_dlq(sqs, "work", visibility=0)
    sqs.send_message(QueueUrl=url, MessageBody="a")

    def crash(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    assert SqsMapping(sqs, url, crash, wait_s=0).poll() == 1
    assert bodies(sqs, url) == ["a"]


def test_a_fifo_group_waits_while_one_of_its_messages_is_in_flight(sqs: Any) -> None:
    url, _ = queue_with_dlq(sqs, "work", fifo=True, visibility=30)
    for group, body in (("alpha", "alpha-1"), ("alpha", "alpha-2"), ("bravo", "bravo-1")):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)
    function = Function(fail={"alpha-1", "alpha-2"})
    mapping = SqsMapping(sqs, url, function, batch_size=1, wait_s=0)
    mapping.poll()
    mapping.poll()
    mapping.poll()
    delivered = [body for batch in function.seen for body in batch]
    # alpha-1 failed and stays in flight for 30 s: alpha-2 is not handed out before it, bravo goes on.
    assert delivered == ["alpha-1", "bravo-1"]
