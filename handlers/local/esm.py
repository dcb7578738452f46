"""Lambda's triggers, emulated on one machine: event source mappings for a DynamoDB stream and an SQS queue,
and a schedule.

Each mapping reads its source (moto in the local runtime, any boto3 endpoint in general) and invokes a real
handler with the event Lambda would send, honouring the parts of Lambda's contract the handlers rely on:

- stream (`StreamMapping`): batches of at most `batch_size` records per shard, in order; a partial batch
  response (`batchItemFailures` naming sequence numbers) checkpoints the records before the first failed one
  and retries from it; a function error splits the batch in two (`bisect_on_error`) until one record is left;
  a batch that fails more than `maximum_retry_attempts` times is sent to the on-failure destination (its
  `DDBStreamBatchInfo`, as Lambda writes it) and skipped, so one poison record never blocks the shard;
- queue (`SqsMapping`): batches of at most `batch_size` messages; the messages a partial batch response names
  (or the whole batch on a function error) are left on the queue, to come back after the visibility timeout
  and end in the dead-letter queue through the queue's own RedrivePolicy; the others are deleted. FIFO queues
  need nothing more: the queue itself never hands out a message of a group while another one is in flight;
- schedule (`Schedule`): an EventBridge "Scheduled Event" every `every_s` seconds.

Each mapping invokes its function one batch at a time, like a function with a reserved concurrency of one per
mapping; `Poller` runs a mapping on a thread until stopped.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

Handler = Callable[[dict[str, Any], Any], Any]
Report = Callable[[str], None]


def load_handler(dotted: str) -> Handler:
    """`handlers.stream.handler` -> the function (imported on first use, as Lambda does)."""
    module, _, name = dotted.rpartition(".")
    function: Handler = getattr(importlib.import_module(module), name)
    return function


@dataclass
class InvocationContext:
    """What a handler reads from Lambda's context object, with a real deadline."""

    function_name: str
    timeout_s: float = 900.0
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    log_group_name: str = "/local/stackherd"
    log_stream_name: str = "local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def _failed_ids(response: Any, valid: set[str]) -> list[str] | None:
    """The item identifiers of a partial batch response, or None when the response fails the whole batch.

    Lambda treats a response it cannot read (an identifier that is empty or not in the batch) as a failure of
    the whole batch; a response without `batchItemFailures` is a success."""
    if not isinstance(response, dict) or "batchItemFailures" not in response:
        return []
    failures = response["batchItemFailures"]
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    ids: list[str] = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in valid:
            return None
        ids.append(identifier)
    return ids


# --- DynamoDB streams ---------------------------------------------------------------------------------


class ShardReader(Protocol):
    """A stream's shards and the records each has received since the last read."""

    stream_arn: str

    def read(self) -> dict[str, list[dict[str, Any]]]: ...


class DynamoStreamReader:
    """Reads every shard of a table's stream through `dynamodbstreams`, from the oldest record on."""

    def __init__(self, streams: Any, stream_arn: str, region: str) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.region = region
        self._iterators: dict[str, str | None] = {}

    def read(self) -> dict[str, list[dict[str, Any]]]:
        from handlers.local.embedded import _jsonable

        found: dict[str, list[dict[str, Any]]] = {}
        paginator_args: dict[str, Any] = {"StreamArn": self.stream_arn}
        shards: list[dict[str, Any]] = []
        while True:
            description = self.streams.describe_stream(**paginator_args)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            paginator_args["ExclusiveStartShardId"] = last
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self._iterators[shard_id]
            if iterator is None:
                continue  # a closed shard, read to its end
            response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self._iterators[shard_id] = response.get("NextShardIterator")
            records = []
            for record in response.get("Records", []):
                event = dict(record)
                event.setdefault("eventSource", "aws:dynamodb")
                event["eventSourceARN"] = self.stream_arn
                event["awsRegion"] = self.region
                records.append(_jsonable(event))
            if records:
                found[shard_id] = records
        return found


@dataclass
class _ShardState:
    pending: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0  # failed invocations of the batch at the head
    limit: int | None = None  # the batch size while bisecting


@dataclass
class StreamMapping:
    """An event source mapping on a DynamoDB stream (see the module docstring for the semantics kept)."""

    reader: ShardReader
    handler: Handler
    function_name: str = "stream"
    batch_size: int = 100
    maximum_retry_attempts: int = 3
    bisect_on_error: bool = True
    #: receives the on-failure record of every batch given up on (the runtime sends it to an SQS queue)
    on_failure: Callable[[dict[str, Any]], None] | None = None
    report: Report | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    _shards: dict[str, _ShardState] = field(default_factory=dict)

    def poll(self) -> int:
        """Read what arrived, then deliver until every shard is empty or waits for a retry. Returns the number
        of invocations made."""
        for shard_id, records in self.reader.read().items():
            self._shards.setdefault(shard_id, _ShardState()).pending.extend(records)
        invocations = 0
        for shard_id, state in self._shards.items():
            while state.pending:
                invocations += 1
                if not self._deliver(shard_id, state):
                    break  # the head batch failed: retried on the next poll, like Lambda's retry backoff
        return invocations

    def _deliver(self, shard_id: str, state: _ShardState) -> bool:
        """Invoke the function with the head batch; True when the shard may go on at once."""
        size = min(self.batch_size, state.limit or self.batch_size)
        batch = state.pending[:size]
        sequence_numbers = [str(r.get("dynamodb", {}).get("SequenceNumber", "")) for r in batch]
        try:
            response = self.handler({"Records": batch}, InvocationContext(self.function_name))
            failed = _failed_ids(response, set(sequence_numbers))
            error = None if failed is not None else "the partial batch response names no record of the batch"
        except Exception as exc:
            failed, error = None, f"{type(exc).__name__}: {exc}"
        if failed == []:
            del state.pending[:size]
            state.attempts, state.limit = 0, None
            return True
        if failed is None and self.bisect_on_error and len(batch) > 1:
            # Splitting is not a retry: the halves are tried with the batch's remaining attempts.
            state.limit = max(1, len(batch) // 2)
            self._say(f"stream: function error on {len(batch)} records ({error}); splitting the batch")
            return True
        # Records before the first failed one are done (checkpointed); the retry starts at that one.
        first = 0 if failed is None else min(sequence_numbers.index(i) for i in failed)
        if first:
            del state.pending[:first]
            batch = batch[first:]
            state.attempts = 0
        state.attempts += 1
        if state.attempts <= self.maximum_retry_attempts:
            self._say(f"stream: {len(batch)} record(s) to retry (attempt {state.attempts}): {error or 'reported'}")
            return False
        self._give_up(shard_id, batch, error or "the function reported the records as failed", state.attempts)
        del state.pending[: len(batch)]
        state.attempts, state.limit = 0, None
        return True

    def _give_up(self, shard_id: str, batch: list[dict[str, Any]], error: str, invocations: int) -> None:
        def arrival(record: dict[str, Any]) -> str:
            stamp = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
            moment = datetime.fromtimestamp(float(stamp), UTC) if isinstance(stamp, int | float) else datetime.now(UTC)
            return moment.isoformat()

        sequence = [str(r.get("dynamodb", {}).get("SequenceNumber", "")) for r in batch]
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": InvocationContext(self.function_name).invoked_function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": error},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": sequence[0],
                "endSequenceNumber": sequence[-1],
                "approximateArrivalOfFirstRecord": arrival(batch[0]),
                "approximateArrivalOfLastRecord": arrival(batch[-1]),
                "batchSize": len(batch),
                "streamArn": self.reader.stream_arn,
            },
        }
        self.failures.append(record)
        self._say(f"stream: gave up on {len(batch)} record(s) after {invocations} attempts: {error}")
        if self.on_failure is not None:
            self.on_failure(record)

    def _say(self, text: str) -> None:
        if self.report is not None:
            self.report(text)


# --- SQS -----------------------------------------------------------------------------------------------


@dataclass
class SqsMapping:
    """An event source mapping on an SQS queue (standard or FIFO) with ReportBatchItemFailures."""

    sqs: Any
    queue_url: str
    handler: Handler
    function_name: str = "queue"
    batch_size: int = 10
    wait_s: int = 1
    region: str = "us-east-1"
    report: Report | None = None
    _arn: str | None = None

    def queue_arn(self) -> str:
        if self._arn is None:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
            self._arn = str(attributes["Attributes"]["QueueArn"])
        return self._arn

    def poll(self) -> int:
        """Receive one batch (waiting up to `wait_s`), invoke, delete what succeeded. Returns the messages read."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        records = [self._record(m) for m in messages]
        try:
            result = self.handler({"Records": records}, InvocationContext(self.function_name))
            failed = _failed_ids(result, {m["MessageId"] for m in messages})
            error = None if failed is not None else "the partial batch response names no message of the batch"
        except Exception as exc:
            failed, error = None, f"{type(exc).__name__}: {exc}"
        keep = {m["MessageId"] for m in messages} if failed is None else set(failed)
        done = [m for m in messages if m["MessageId"] not in keep]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        if keep and self.report is not None:
            self.report(
                f"{self.function_name}: {len(keep)} message(s) left for retry after the visibility timeout"
                + (f" ({error})" if error else "")
            )
        return len(messages)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": {k: str(v) for k, v in message.get("Attributes", {}).items()},
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value.get("DataType", "String"),
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn(),
            "awsRegion": self.region,
        }


# --- the schedule --------------------------------------------------------------------------------------


@dataclass
class Schedule:
    """An EventBridge schedule: one "Scheduled Event" per tick (the Poller's interval)."""

    handler: Handler
    function_name: str = "sweep"
    report: Report | None = None

    def poll(self) -> int:
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "000000000000",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [f"arn:aws:events:us-east-1:000000000000:rule/{self.function_name}"],
            "detail": {},
        }
        try:
            self.handler(event, InvocationContext(self.function_name))
        except Exception as exc:  # a scheduled invocation that fails is not retried here: the next tick comes
            if self.report is not None:
                self.report(f"{self.function_name}: failed: {type(exc).__name__}: {exc}")
        return 0


class Source(Protocol):
    def poll(self) -> int: ...


class Poller:
    """Runs `source.poll()` on a daemon thread: again at once while it finds work, else after `interval_s`."""

    def __init__(self, name: str, source: Source, interval_s: float, report: Report | None = None) -> None:
        self.name = name
        self.source = source
        self.interval_s = interval_s
        self.report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"esm-{name}", daemon=True)

    def start(self, *, first_after: float = 0.0) -> None:
        self._first_after = first_after
        self._thread.start()

    def _run(self) -> None:
        if self._stop.wait(self._first_after):
            return
        while not self._stop.is_set():
            try:
                busy = self.source.poll()
            except Exception as exc:  # the source went away (shutdown) or answered badly: try again later
                busy = 0
                if not self._stop.is_set() and self.report is not None:
                    self.report(f"{self.name}: cannot poll: {type(exc).__name__}: {exc}")
            if not busy and self._stop.wait(self.interval_s):
                return

    def signal(self) -> None:
        """Ask the thread to stop after the poll in hand."""
        self._stop.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


def on_failure_to_sqs(sqs: Any, queue_url: str) -> Callable[[dict[str, Any]], None]:
    """An on-failure destination: each record as one message on an SQS queue (list it with receive-message)."""

    def send(record: dict[str, Any]) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))

    return send
