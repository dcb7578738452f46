"""From the API to a stack and back: PUT -> the table's stream -> the stream handler -> the reconciler ->
CloudFormation (moto) -> GET shows phase Ready with the stack id. Then DELETE the same way until it is gone.

The stream records are read from moto's DynamoDB Streams, the way Lambda's event source mapping reads them.
`test_round_trip_through_the_engine` drives the same loop by calling the engine directly, as the sweep and
the admin do.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import ACME_ACCOUNT, REGION, ROOT, ApiClient, LambdaContext, put_config

pytestmark = pytest.mark.integration  # through the real adapters: DynamoDB streams, SQS, CloudFormation on moto

MOTO_ACCOUNT = "123456789012"  # moto's default account, where the control plane's own tables live


class StreamReader:
    """Reads the game-server table's stream from its current end, like an event source mapping.

    It talks to moto's DynamoDB Streams backend directly: in-process, moto answers boto3's DescribeStream
    with "Not yet implemented" (the server mode does implement it).
    """

    def __init__(self) -> None:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        from models.tables import GameServerModel

        self.backend = dynamodbstreams_backends[MOTO_ACCOUNT][REGION]
        (found,) = self.backend.list_streams(GameServerModel.Meta.table_name)
        self.arn = found["StreamArn"]
        shard = self.backend.describe_stream(self.arn)["Shards"][-1]["ShardId"]
        self.iterator = self.backend.get_shard_iterator(self.arn, shard, "LATEST").arn

    def event(self) -> dict[str, Any]:
        """The records since the last call, as the Lambda event a stream trigger would receive."""
        page = self.backend.get_records(self.iterator, 1000)
        self.iterator = page["NextShardIterator"]
        records = json.loads(json.dumps(page["Records"], default=str))
        return {"Records": [{**record, "eventSourceARN": self.arn} for record in records]}


class RequeueQueue:
    """The requeue queue in moto's SQS, drained into the requeue handler the way its SQS trigger would."""

    def __init__(self) -> None:
        import boto3

        self.sqs = boto3.client("sqs", region_name=REGION)
        self.url = self.sqs.create_queue(QueueName="stackherd-api-requeue")["QueueUrl"]
        self.arn = f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:stackherd-api-requeue"

    def deliver(self) -> int:
        """Wait out the messages' delay, then hand them to the requeue handler; returns how many."""
        from handlers.requeue import handler

        page = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
        messages = page.get("Messages", [])
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": self.arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
        if records:
            assert handler({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
            for m in messages:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return len(records)


@pytest.fixture
def stream(api: ApiClient) -> StreamReader:
    return StreamReader()


@pytest.fixture
def requeue(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> RequeueQueue:
    """The engine asks to look again after 1 s through this queue (what catches a stack that finished)."""
    from handlers.runtime import reset_runtime

    queue = RequeueQueue()
    monkeypatch.setenv("STACKHERD_REQUEUE_QUEUE_URL", queue.url)
    monkeypatch.setenv("STACKHERD_REQUEUE_AFTER_SECONDS", "1")
    reset_runtime()
    return queue


def stack(name: str) -> dict[str, Any] | None:
    """The stack as CloudFormation in the tenant's account reports it."""
    import boto3
    from botocore.exceptions import ClientError

    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{ACME_ACCOUNT}:role/StackherdExecution", RoleSessionName="test"
    )["Credentials"]
    cloudformation = boto3.client(
        "cloudformation",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    try:
        found: dict[str, Any] = dict(cloudformation.describe_stacks(StackName=name)["Stacks"][0])
    except ClientError:
        return None
    return found if found["StackStatus"] != "DELETE_COMPLETE" else None


def parameters(found: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in found["Parameters"]}


def deliver(stream: StreamReader) -> list[str]:
    """Hand the new stream records to the stream handler; none may be reported back as failed."""
    from handlers.stream import handler

    event = stream.event()
    if event["Records"]:
        assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    return [r["eventName"] for r in event["Records"]]


# The stream and requeue handlers flush their metrics even when a batch had nothing to count.
@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
def test_round_trip_through_the_stream_handler(api: ApiClient, stream: StreamReader, requeue: RequeueQueue) -> None:
    name = "stackherd-acme-alpha-1"
    created = api.put("/servers/alpha-1", put_config(difficulty="hard", player_count=16))
    assert created.status == 201
    assert created.json()["status"]["phase"] == "Pending"

    # INSERT -> the stream handler creates the stack and asks to look again; the second look sees it done.
    assert deliver(stream) == ["INSERT"]
    assert api.get("/servers/alpha-1").json()["status"]["phase"] == "Creating"
    assert requeue.deliver() == 1
    server = api.get("/servers/alpha-1").json()
    assert server["status"]["phase"] == "Ready"
    assert server["status"]["observed_generation"] == 1
    assert server["status"]["stack_status"] == "CREATE_COMPLETE"
    found = stack(name)
    assert found is not None
    assert "stack_id" not in server["status"]  # players never see the stack's ARN (it names the account)
    (seen,) = api.get("/tenants/acme/servers", ROOT).json()["items"]
    assert seen["status"]["stack_id"] == found["StackId"]
    assert parameters(found) == {"Difficulty": "hard", "PlayerCount": "16", "Seed": "abc"}
    # The reconciler's status writes are on the stream too, and trigger nothing.
    assert set(deliver(stream)) == {"MODIFY"}

    # A change goes the same way.
    assert api.patch("/servers/alpha-1", {"config": {"player_count": 24}}).status == 200
    assert deliver(stream) == ["MODIFY"]
    requeue.deliver()
    changed = api.get("/servers/alpha-1").json()
    assert (changed["status"]["phase"], changed["status"]["observed_generation"]) == ("Ready", 2)
    found = stack(name)
    assert found is not None
    assert parameters(found)["PlayerCount"] == "24"
    deliver(stream)

    # So does a deletion: the record shows Deleting until the stack, and then the record, are gone.
    assert api.delete("/servers/alpha-1").json()["status"]["phase"] == "Deleting"
    assert deliver(stream) == ["MODIFY"]
    assert stack(name) is None
    for _ in range(3):
        response = api.get("/servers/alpha-1")
        if response.status == 404:
            break
        assert response.json()["status"]["phase"] == "Deleting"
        requeue.deliver()
    assert response.status == 404
    assert "REMOVE" in deliver(stream)
    assert api.get("/tenants/acme/servers", ROOT).json()["items"] == []


def test_round_trip_through_the_engine(api: ApiClient) -> None:
    """The same loop with the engine called directly (what the sweep and `POST /tenants/{id}/reconcile` do)."""
    from handlers.runtime import runtime

    api.put("/servers/alpha-1", put_config())
    for _ in range(2):  # create, then observe it complete
        result = runtime().engine.reconcile_tenant("acme")
        assert result.ok, result.to_dict()
    server = api.get("/servers/alpha-1").json()
    assert server["status"]["phase"] == "Ready"
    found = stack("stackherd-acme-alpha-1")
    assert found is not None
    assert "stack_id" not in server["status"]  # players never see the stack's ARN (it names the account)
    (seen,) = api.get("/tenants/acme/servers", ROOT).json()["items"]
    assert seen["status"]["stack_id"] == found["StackId"]
    kinds = [h["kind"] for h in api.get("/servers/alpha-1/history").json()["items"]]
    assert kinds[-1] == "desired"
    assert "create" in kinds
