"""The work queue end to end on moto: SQS FIFO (one message group per tenant, a dead-letter queue after bounded
receives), the standard delay queue, the work items in DynamoDB, and the real engine assuming roles into moto
accounts. Lambda's event source mapping is played by pollers that receive, call the handler with the event Lambda
would build, and delete what the handler did not report as failed. moto holds back a FIFO group while a message of
it is in flight, as SQS does: that, not anything in the pollers, is what keeps one tenant in one pass at a time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from handlers import admin, requeue, stream, sweep, worker
from handlers.local.embedded import LocalContext
from handlers.runtime import Runtime, Settings, install_runtime
from models.records import Phase, Tenant, role_arn_for
from reconciler.desired import DesiredWrites, trail
from tests.conftest import REGION
from tests.functional.conftest import image, stream_record
from tests.moto_atomic import serialized_moto_dynamodb

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("dynamo_tables")]

MAX_RECEIVES = 2


def account_of(index: int) -> str:
    return f"{100000000000 + index}"


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event Lambda hands a function for messages received from SQS."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType", "String")}
                    for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


@dataclass
class Deployment:
    sqs: Any
    work_url: str
    dlq_url: str
    delay_url: str
    runtime: Runtime
    writes: DesiredWrites
    context: LocalContext = field(default_factory=LocalContext)
    passes: list[str] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)
    _running: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_tenant(self, tenant_id: str, account: str) -> None:
        tenant = Tenant(tenant_id, account, (REGION,), role_arn_for(account, "StackherdExecution"), f"ext-{tenant_id}")
        self.runtime.store.put_tenant(tenant, datetime.now(UTC))  # type: ignore[attr-defined]

    def put(self, tenant_id: str, server: str, **config: Any) -> None:
        tenant = self.runtime.store.get_tenant(tenant_id)
        assert tenant is not None
        self.writes.put_server(tenant, server, "steve", config or {"player_count": 4}, trail=trail("steve", "api"))

    def poll(self, url: str, handler: Callable[[dict[str, Any], Any], Any], *, retry_now: bool = False) -> int:
        """One receive and one handler call; a failed message is made visible again at once with `retry_now`
        (standing in for the end of its visibility timeout)."""
        messages = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return 0
        response = handler(sqs_event(messages), self.context)
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            elif retry_now:
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        return len(messages)

    def drain(self, workers: int = 1, *, retry_now: bool = False) -> None:
        """Pollers on the work queue until it stays empty."""

        def run() -> None:
            idle = 0
            while idle < 3:
                if self.poll(self.work_url, worker.handler, retry_now=retry_now):
                    idle = 0
                else:
                    idle += 1
                    time.sleep(0.02)

        threads = [threading.Thread(target=run) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def count(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def deployment(template_catalog: Any) -> Iterator[Deployment]:
    import json

    import boto3

    from reconciler.adapters.aws import AwsConnector
    from reconciler.adapters.dynamo import DynamoStore
    from reconciler.adapters.sqs import SqsDelaySender, SqsWorkSender
    from reconciler.adapters.work_items import DynamoWorkItems
    from reconciler.engine import Engine
    from reconciler.work import CoalescingWorkQueue

    sqs = boto3.client("sqs", region_name=REGION)
    dlq_url = sqs.create_queue(QueueName="stackherd-work-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    work_url = sqs.create_queue(
        QueueName="stackherd-work.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
        },
    )["QueueUrl"]
    delay_url = sqs.create_queue(QueueName="stackherd-requeue")["QueueUrl"]
    store = DynamoStore()
    queue = CoalescingWorkQueue(
        DynamoWorkItems(),
        SqsWorkSender(work_url, region=REGION, client=sqs),
        SqsDelaySender(delay_url, region=REGION, client=sqs),
    )
    engine = Engine(store, AwsConnector(boto3.Session(region_name=REGION)), template_catalog, requeuer=queue)
    settings = Settings(work_queue_url=work_url, requeue_queue_url=delay_url)
    rt = Runtime(settings, store, engine.connector, template_catalog, engine, work_queue=queue)
    found = Deployment(sqs, work_url, dlq_url, delay_url, rt, DesiredWrites(store, templates=template_catalog))
    original = engine.reconcile_tenant

    def recorded(tenant_id: str, **kwargs: Any) -> Any:
        with found._lock:
            if found._running[tenant_id]:
                found.overlaps.append(tenant_id)
            found._running[tenant_id] += 1
            found.passes.append(tenant_id)
        try:
            time.sleep(0.01)  # a pass takes a while: gives a second worker every chance to overlap
            return original(tenant_id, **kwargs)
        finally:
            with found._lock:
                found._running[tenant_id] -= 1

    engine.reconcile_tenant = recorded  # type: ignore[method-assign]
    install_runtime(rt)
    try:
        with serialized_moto_dynamodb():
            yield found
    finally:
        install_runtime(None)


def phase(deployment: Deployment, tenant_id: str, server: str) -> Phase:
    record = deployment.runtime.store.get_server(tenant_id, server)
    assert record is not None
    return record.status.phase


def test_a_scheduled_event_for_fifty_tenants_dispatches_and_every_tenant_converges(deployment: Deployment) -> None:
    tenants = [f"t{index:02d}" for index in range(50)]
    for index, tenant in enumerate(tenants):
        deployment.add_tenant(tenant, account_of(index))
        deployment.put(tenant, "arena")

    dispatched = sweep.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, deployment.context)
    assert dispatched["dispatched"] == 50 and dispatched["failed"] == []
    deployment.drain(workers=4)
    sweep.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, deployment.context)
    deployment.drain(workers=4)

    assert [t for t in tenants if phase(deployment, t, "arena") is not Phase.READY] == []
    assert deployment.overlaps == []
    assert deployment.count(deployment.dlq_url) == 0


def test_a_stream_batch_goes_through_the_queue_to_the_worker_and_converges(deployment: Deployment) -> None:
    deployment.add_tenant("alpha", account_of(1))
    deployment.add_tenant("bravo", account_of(2))
    records = []
    for sequence, (tenant, server) in enumerate((("alpha", "a"), ("alpha", "b"), ("bravo", "x"))):
        deployment.put(tenant, server)
        records.append(stream_record("INSERT", tenant, server, str(sequence), new=image(tenant, server)))

    assert stream.handler({"Records": records}, deployment.context) == {"batchItemFailures": []}
    assert deployment.count(deployment.work_url) == 2  # one message per tenant
    deployment.drain()
    deployment.runtime.engine.reconcile_tenant("alpha")  # CloudFormation on moto is done at once: look again
    deployment.runtime.engine.reconcile_tenant("bravo")

    assert {phase(deployment, t, s) for t, s in (("alpha", "a"), ("alpha", "b"), ("bravo", "x"))} == {Phase.READY}


def test_a_tenant_is_never_reconciled_by_two_workers_at_once_across_all_triggers(deployment: Deployment) -> None:
    for index, tenant in enumerate(("alpha", "bravo")):
        deployment.add_tenant(tenant, account_of(index))
        deployment.put(tenant, "arena")
    stop = threading.Event()

    def produce() -> None:
        for round_ in range(6):
            for tenant in ("alpha", "bravo"):
                event = {"Records": [stream_record("MODIFY", tenant, "arena", f"{round_}", new=image(tenant, "arena"))]}
                stream.handler(event, deployment.context)
                admin.handler({"tenant_id": tenant, "dry_run": False, "force": True}, deployment.context)
                deployment.runtime.work_queue.requeue_after(tenant, {"arena"}, 0)  # type: ignore[union-attr]
                deployment.poll(deployment.delay_url, requeue.handler)
            sweep.handler({}, deployment.context)
        stop.set()

    def consume() -> None:
        while not stop.is_set():
            if not deployment.poll(deployment.work_url, worker.handler):
                time.sleep(0.01)

    threads = [threading.Thread(target=produce)] + [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deployment.drain(workers=4)

    assert deployment.overlaps == []
    assert {"alpha", "bravo"} <= set(deployment.passes)


def test_two_triggers_for_one_tenant_at_once_give_one_pass_at_a_time(deployment: Deployment) -> None:
    deployment.add_tenant("alpha", account_of(1))
    deployment.put("alpha", "arena")
    barrier = threading.Barrier(2)

    def trigger(kind: str) -> None:
        barrier.wait()
        if kind == "stream":
            event = {"Records": [stream_record("INSERT", "alpha", "arena", "1", new=image("alpha", "arena"))]}
            stream.handler(event, deployment.context)
        else:
            admin.handler({"tenant_id": "alpha", "dry_run": False}, deployment.context)

    threads = [threading.Thread(target=trigger, args=(kind,)) for kind in ("stream", "admin")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert deployment.count(deployment.work_url) == 1  # the second trigger coalesced into the first's message
    deployment.drain(workers=3)

    assert deployment.passes == ["alpha"] and deployment.overlaps == []


def test_a_requeue_arrives_after_its_delay_and_is_forwarded_once(deployment: Deployment) -> None:
    deployment.add_tenant("alpha", account_of(1))
    queue = deployment.runtime.work_queue
    assert queue is not None
    assert queue.requeue_after("alpha", {"arena"}, 1) is True
    assert queue.requeue_after("alpha", {"lobby"}, 5) is False  # later: carried by the live one

    assert deployment.poll(deployment.delay_url, requeue.handler) == 0  # not yet due
    time.sleep(1.1)
    assert deployment.poll(deployment.delay_url, requeue.handler) == 1
    assert deployment.count(deployment.work_url) == 1
    deployment.drain()
    assert deployment.passes == ["alpha"]


def test_a_poison_message_ends_in_the_dead_letter_queue_and_never_blocks_other_tenants(
    deployment: Deployment,
) -> None:
    deployment.add_tenant("bravo", account_of(2))
    deployment.put("bravo", "x")
    deployment.sqs.send_message(
        QueueUrl=deployment.work_url, MessageBody="{not json", MessageGroupId="alpha", MessageDeduplicationId="p1"
    )
    deployment.runtime.work_queue.enqueue("ghost", None, "sweep")  # type: ignore[union-attr]
    deployment.runtime.work_queue.enqueue("bravo", {"x"}, "stream")  # type: ignore[union-attr]

    deployment.drain(retry_now=True)

    assert deployment.passes.count("bravo") == 1
    assert deployment.count(deployment.work_url) == 0
    assert deployment.count(deployment.dlq_url) == 2
