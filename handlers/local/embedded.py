"""The local runtime: stackherd on one machine, with moto as the embedded AWS.

`embedded_aws()` starts moto in-process with a clean environment; `StreamPoller` reads the desired
table's real DynamoDB stream (moto implements it) and hands the records to the stream handler in the
shape Lambda would; `LocalContext` stands in for Lambda's context object.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
_CLEARED = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@dataclass
class LocalContext:
    """What Powertools reads from a Lambda context."""

    function_name: str = "stackherd-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:stackherd-local"
    aws_request_id: str = "local"
    log_group_name: str = "/local/stackherd"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@contextmanager
def embedded_aws(extra_env: dict[str, str] | None = None) -> Iterator[None]:
    """Run the body against moto in-process, with fake credentials and no real endpoint or profile."""
    from moto import mock_aws

    from handlers.runtime import reset_runtime

    saved = {k: os.environ.get(k) for k in (*_ENV, *_CLEARED, *(extra_env or {}))}
    os.environ.update(_ENV)
    os.environ.update(extra_env or {})
    for key in _CLEARED:
        os.environ.pop(key, None)
    reset_runtime()
    try:
        with mock_aws():
            yield
    finally:
        reset_runtime()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class StreamPoller:
    """Reads every shard of a table's stream from where it last stopped."""

    def __init__(self, table_name: str, region: str = "us-east-1") -> None:
        import boto3

        # Recent botocore resolves account-based stream endpoints (<account>.streams-ddb...) that moto's
        # in-process router does not know; the regional endpoint works for both AWS and moto.
        endpoint = None if os.environ.get("AWS_ENDPOINT_URL") else f"https://streams.dynamodb.{region}.amazonaws.com"
        self.streams = boto3.client("dynamodbstreams", region_name=region, endpoint_url=endpoint)
        description = boto3.client("dynamodb", region_name=region).describe_table(TableName=table_name)
        self.stream_arn: str = description["Table"]["LatestStreamArn"]
        self.region = region
        self._iterators: dict[str, str | None] = {}

    def poll(self) -> list[dict[str, Any]]:
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        records: list[dict[str, Any]] = []
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self._iterators[shard_id]
            if iterator is None:
                continue
            response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = response.get("NextShardIterator")
            for record in response["Records"]:
                event = dict(record)
                event.setdefault("eventSource", "aws:dynamodb")
                event["eventSourceARN"] = self.stream_arn
                event["awsRegion"] = self.region
                records.append(_jsonable(event))
        return records

    def events(self, batch_size: int = 100) -> list[dict[str, Any]]:
        """The pending records as Lambda stream events of at most `batch_size` records."""
        records = self.poll()
        return [{"Records": records[i : i + batch_size]} for i in range(0, len(records), batch_size)]


def _jsonable(value: Any) -> Any:
    """boto3 returns datetimes and Decimals that Lambda's JSON event would carry as numbers."""
    from datetime import datetime
    from decimal import Decimal

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def tenant_cloudformation(account_id: str, region: str = "us-east-1") -> Any:
    """A CloudFormation client acting inside a tenant account (moto maps assumed roles to accounts),
    for making changes "by hand" in the demo and the tests."""
    import boto3

    creds = boto3.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OperatorByHand", RoleSessionName="by-hand"
    )["Credentials"]
    return boto3.client(
        "cloudformation",
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def fake_runtime(world: Any, **settings: Any) -> Any:
    """A `Runtime` over a `reconciler.fakes.world.FakeWorld`, for handler tests and the benchmark."""
    from handlers.runtime import Runtime, Settings

    return Runtime(
        settings=Settings(**settings),
        store=world.store,
        connector=world.connector,
        templates=world.templates,
        engine=world.engine,
    )
