"""The local event source mapping on a stream keeps Lambda's contract: batches in order, partial batch failures
retried from the first failed record, bounded retries ending on the on-failure destination, bisect on error."""

from __future__ import annotations

from typing import Any

from handlers.local.esm import StreamMapping


class ListReader:
    """A stream of one shard whose records are appended by the test."""

    stream_arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/local"

    def __init__(self) -> None:
        self.unread: list[dict[str, Any]] = []

    def add(self, *numbers: int) -> None:
        self.unread.extend(
            {"eventName": "INSERT", "dynamodb": {"SequenceNumber": str(n), "ApproximateCreationDateTime": 1.0e9}}
            for n in numbers
        )

    def read(self) -> dict[str, list[dict[str, Any]]]:
        found, self.unread = self.unread, []
        return {"shard-1": found} if found else {}


class Function:
    """A stream handler that records its batches and fails the sequence numbers it is told to."""

    def __init__(self, *, fail: set[int] | None = None, crash_on: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail or set()
        self.crash_on = crash_on or set()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in event["Records"]]
        self.batches.append(numbers)
        if self.crash_on & set(numbers):
            raise RuntimeError("boom")
        return {"batchItemFailures": [{"itemIdentifier": str(n)} for n in numbers if n in self.fail]}


def mapping(reader: ListReader, function: Function, **options: Any) -> StreamMapping:
    return StreamMapping(reader, function, **{"batch_size": 3, "maximum_retry_attempts": 2, **options})


def drain(stream: StreamMapping, polls: int = 10) -> None:
    for _ in range(polls):
        stream.poll()


def test_records_are_delivered_in_order_in_batches_of_at_most_the_batch_size() -> None:
    reader, function = ListReader(), Function()
    stream = mapping(reader, function)
    reader.add(1, 2, 3, 4, 5, 6, 7)
    stream.poll()
    assert function.batches == [[1, 2, 3], [4, 5, 6], [7]]
    stream.poll()
    assert len(function.batches) == 3, "nothing is delivered twice"


def test_a_partial_batch_failure_is_retried_from_the_first_failed_record() -> None:
    reader, function = ListReader(), Function(fail={2})
    stream = mapping(reader, function, maximum_retry_attempts=1)
    reader.add(1, 2, 3)
    stream.poll()
    assert function.batches == [[1, 2, 3]]
    function.fail = set()
    stream.poll()
    # 1 was checkpointed; the retry starts at 2 and carries 3 with it.
    assert function.batches == [[1, 2, 3], [2, 3]]
    assert stream.failures == []


def test_a_batch_failing_past_its_retries_goes_to_the_on_failure_destination_and_the_shard_moves_on() -> None:
    reader, function = ListReader(), Function(fail={2})
    sent: list[dict[str, Any]] = []
    stream = mapping(reader, function, maximum_retry_attempts=2, on_failure=sent.append)
    reader.add(1, 2, 3, 4, 5)
    drain(stream)
    # The first try, then two retries of a batch starting at 2; then the shard goes on with 5.
    assert function.batches == [[1, 2, 3], [2, 3, 4], [2, 3, 4], [5]]
    assert len(sent) == 1 and stream.failures == sent
    info = sent[0]["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("2", "4", 3)
    assert info["streamArn"] == reader.stream_arn and info["shardId"] == "shard-1"
    assert sent[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert sent[0]["requestContext"]["approximateInvokeCount"] == 3


def test_a_function_error_splits_the_batch_until_the_poison_record_is_alone() -> None:
    reader, function = ListReader(), Function(crash_on={3})
    sent: list[dict[str, Any]] = []
    stream = mapping(reader, function, batch_size=4, maximum_retry_attempts=1, on_failure=sent.append)
    reader.add(1, 2, 3, 4)
    drain(stream)
    assert function.batches[:3] == [[1, 2, 3, 4], [1, 2], [3, 4]]
    # 3 alone fails its try and its one retry and is sent on; 4 and everything else is delivered.
    assert [3] in function.batches and function.batches[-1] == [4]
    assert [r["DDBStreamBatchInfo"]["startSequenceNumber"] for r in sent] == ["3"]


def test_without_bisect_a_function_error_retries_the_whole_batch() -> None:
    reader, function = ListReader(), Function(crash_on={3})
    sent: list[dict[str, Any]] = []
    stream = mapping(reader, function, bisect_on_error=False, maximum_retry_attempts=1, on_failure=sent.append)
    reader.add(1, 2, 3)
    drain(stream)
    assert function.batches == [[1, 2, 3], [1, 2, 3]]
    assert sent[0]["DDBStreamBatchInfo"]["batchSize"] == 3


def test_a_response_naming_a_record_outside_the_batch_fails_the_whole_batch() -> None:
    reader = ListReader()
    calls: list[int] = []

    def confused(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(len(event["Records"]))
        return {"batchItemFailures": [{"itemIdentifier": "999"}]}

    sent: list[dict[str, Any]] = []
    stream = StreamMapping(
        reader, confused, batch_size=1, maximum_retry_attempts=0, bisect_on_error=False, on_failure=sent.append
    )
    reader.add(1)
    stream.poll()
    assert calls == [1] and len(sent) == 1


def test_the_handler_sees_a_context_with_a_deadline() -> None:
    reader = ListReader()
    seen: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        seen.append(context.get_remaining_time_in_millis())

    stream = StreamMapping(reader, handler, function_name="stream")
    reader.add(1)
    stream.poll()
    assert 0 < seen[0] <= 900_000
