"""The Lambda handlers on the fake cloud: what they reconcile, acknowledge and report for retry."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import admin, stream, sweep
from handlers.local.embedded import LocalContext, fake_runtime
from handlers.runtime import install_runtime
from models.records import Phase
from reconciler.errors import ThrottledError
from reconciler.fakes.world import FakeWorld
from tests.functional.conftest import image, load_event, stream_record

ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_insert_reconciles_the_changed_server(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "arena", owner="ana", difficulty="hard", player_count=8, seed="lava42")

    response = stream.handler(load_event("stream/insert.json"), context)

    assert response == {"batchItemFailures": []}
    (stack,) = installed.cloud.stacks(ACCOUNT_A)
    assert stack.parameters == {"Difficulty": "hard", "PlayerCount": "8", "Seed": "lava42"}


def test_status_only_modify_triggers_nothing(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "arena", owner="ana")
    response = stream.handler(load_event("stream/status_only_modify.json"), context)
    assert response == {"batchItemFailures": []}
    assert installed.cloud.calls == []


def test_records_are_grouped_by_tenant_one_pass_per_tenant(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.add_tenant("bravo", ACCOUNT_B)
    records = []
    for index in range(6):
        tenant = "alpha" if index % 2 else "bravo"
        installed.put(tenant, f"s{index}")
        records.append(stream_record("INSERT", tenant, f"s{index}", str(100 + index), new=image(tenant, f"s{index}")))

    response = stream.handler({"Records": records}, context)

    assert response == {"batchItemFailures": []}
    assert installed.cloud.count("AssumeRole") == 2
    # One scoped pass per tenant: its three servers' stacks are read by name, the account is not listed.
    assert installed.cloud.count("DescribeStack", ACCOUNT_A) == 3
    assert installed.cloud.count("DescribeStack", ACCOUNT_B) == 3
    assert installed.cloud.count("ListStacks") == 0
    assert installed.cloud.count("CreateStack") == 6


def test_a_stream_batch_only_touches_the_servers_it_names(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "named")
    installed.put("alpha", "other")
    stream.handler({"Records": [stream_record("INSERT", "alpha", "named", "1", new=image("alpha", "named"))]}, context)
    assert [s.name for s in installed.cloud.stacks(ACCOUNT_A)] == ["stackherd-alpha-named"]


def test_undecodable_records_are_acknowledged_and_never_crash_the_batch(
    installed: FakeWorld, context: LocalContext
) -> None:
    response = stream.handler(load_event("stream/garbage.json"), context)
    assert response == {"batchItemFailures": []}


def test_images_that_are_not_maps_do_not_stop_the_rest_of_the_batch(
    installed: FakeWorld, context: LocalContext
) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "odd")
    installed.put("alpha", "fine")
    event = {
        "Records": [
            stream_record("MODIFY", "alpha", "odd", "1", old="x", new=["y"]),  # type: ignore[arg-type]
            stream_record("INSERT", "alpha", "fine", "2", new=image("alpha", "fine")),
        ]
    }

    assert stream.handler(event, context) == {"batchItemFailures": []}
    assert {s.name for s in installed.cloud.stacks(ACCOUNT_A)} == {"stackherd-alpha-odd", "stackherd-alpha-fine"}


@pytest.mark.parametrize("event", [{}, {"Records": "x"}, {"Records": [1, None, "x"]}, {"Records": []}])
def test_malformed_events_return_an_empty_failure_list(
    installed: FakeWorld, context: LocalContext, event: dict[str, Any]
) -> None:
    assert stream.handler(event, context) == {"batchItemFailures": []}


def test_unknown_tenant_marks_the_record_failed_and_acknowledges(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "arena")
    del installed.store.tenants["alpha"]
    response = stream.handler(
        {"Records": [stream_record("INSERT", "alpha", "arena", "7", new=image("alpha", "arena"))]}, context
    )
    assert response == {"batchItemFailures": []}
    server = installed.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.FAILED
    assert "not registered" in (server.status.last_error or "")


def test_invalid_config_is_marked_failed_and_acknowledged(installed: FakeWorld, context: LocalContext) -> None:
    from dataclasses import replace

    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "arena")
    key = ("alpha", "arena")
    installed.store.servers[key] = replace(installed.store.servers[key], unreadable="stored config.seed: too long")
    response = stream.handler(
        {"Records": [stream_record("INSERT", "alpha", "arena", "8", new=image("alpha", "arena"))]}, context
    )
    assert response == {"batchItemFailures": []}
    server = installed.server("alpha", "arena")
    assert server is not None and server.status.phase is Phase.FAILED


def test_transient_failures_are_reported_for_retry_and_only_those(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "ok")
    installed.put("alpha", "throttled")
    installed.cloud.fail_next(ACCOUNT_A, "create", lambda: ThrottledError("Throttling: Rate exceeded"))
    records = [
        stream_record("INSERT", "alpha", "ok", "10", new=image("alpha", "ok")),
        stream_record("INSERT", "alpha", "throttled", "11", new=image("alpha", "throttled")),
    ]
    response = stream.handler({"Records": records}, context)
    # Actions run in id order: "ok" is created first and consumes the injected fault.
    assert failures(response) == ["10"]


def test_a_tenant_level_transient_error_reports_all_its_records(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.add_tenant("bravo", ACCOUNT_B)
    for tenant in ("alpha", "bravo"):
        installed.put(tenant, "s")
    installed.cloud.throttle_next(ACCOUNT_A, times=1)
    records = [
        stream_record("INSERT", "alpha", "s", "20", new=image("alpha", "s")),
        stream_record("INSERT", "bravo", "s", "21", new=image("bravo", "s")),
    ]
    assert failures(stream.handler({"Records": records}, context)) == ["20"]


def test_remove_reconciles_and_deletes_the_orphaned_stack(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "gone")
    installed.converge("alpha")
    del installed.store.servers[("alpha", "gone")]
    stream.handler({"Records": [stream_record("REMOVE", "alpha", "gone", "30", old=image("alpha", "gone"))]}, context)
    assert installed.cloud.count("DeleteStack") == 1


def test_sweep_handler_returns_a_summary_and_isolates_failures(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.add_tenant("bravo", ACCOUNT_B)
    installed.put("alpha", "a")
    installed.put("bravo", "b")
    installed.cloud.deny(ACCOUNT_B)

    summary = sweep.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, context)

    assert summary["tenants"] == 2
    assert summary["actions"] == {"create": 1}
    assert list(summary["failures"]) == ["bravo"]


def test_admin_dry_run_returns_the_plan_without_changing_anything(installed: FakeWorld, context: LocalContext) -> None:
    installed.add_tenant("alpha", ACCOUNT_A)
    installed.put("alpha", "arena", difficulty="easy")
    result = admin.handler({"tenant_id": "alpha", "dry_run": True}, context)
    assert result["ok"] is True and result["dry_run"] is True
    assert [(a["kind"], a["outcome"]) for a in result["actions"]] == [("create", "planned")]
    assert result["actions"][0]["parameters"]["Difficulty"] == "easy"
    assert installed.cloud.count("CreateStack") == 0

    applied = admin.handler({"tenant_id": "alpha", "dry_run": False}, context)
    assert [(a["kind"], a["outcome"]) for a in applied["actions"]] == [("create", "done")]
    assert installed.cloud.count("CreateStack") == 1


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        ({}, "event.tenant_id"),
        ({"tenant_id": "Bad Id!"}, "event.tenant_id"),
        ({"tenant_id": "alpha", "dry_run": "perhaps"}, "event.dry_run"),
        ({"tenant_id": "alpha", "dry_run": "false"}, "event.dry_run"),
        ({"tenant_id": "alpha", "dry_run": 0}, "event.dry_run"),
        ({"tenant_id": "alpha", "confirm_deletions": "yes"}, "event.confirm_deletions"),
        ({"tenant_id": "alpha", "extra": 1}, "event.extra"),
    ],
)
def test_admin_rejects_bad_events_with_a_clear_message(
    installed: FakeWorld, context: LocalContext, event: dict[str, Any], needle: str
) -> None:
    result = admin.handler(event, context)
    assert result["ok"] is False and needle in result["error"]


class UnreachableQueue:
    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue"}}, "SendMessageBatch")


@pytest.mark.parametrize("queue", ["sqs", "raising"])
def test_a_queue_that_cannot_be_reached_does_not_hide_what_the_pass_did(
    world: FakeWorld, context: LocalContext, queue: str
) -> None:
    from reconciler.adapters.sqs import SqsRequeuer

    if queue == "sqs":
        url = "https://sqs.us-east-1.amazonaws.com/1/gone"
        world.engine.requeuer = SqsRequeuer(url, region="us-east-1", client=UnreachableQueue())
    else:
        world.requeuer.unreachable = True
    install_runtime(fake_runtime(world))
    try:
        world.add_tenant("alpha", "111111111111")
        world.put("alpha", "s0")

        applied = admin.handler({"tenant_id": "alpha", "dry_run": False}, context)
        swept = sweep.handler({}, context)
    finally:
        install_runtime(None)

    assert applied["ok"] is True
    assert [a["kind"] for a in applied["actions"]] == ["create"]
    assert swept["failures"] == {}


def test_admin_on_an_unknown_tenant_says_so(installed: FakeWorld, context: LocalContext) -> None:
    result = admin.handler({"tenant_id": "ghost", "dry_run": True}, context)
    assert result["ok"] is False and "not registered" in result["error"]


def test_is_status_only_predicate() -> None:
    base = image("alpha", "x")
    assert stream.is_status_only({**base, "status": {"M": {}}}, {**base, "status": {"M": {"phase": {"S": "Ready"}}}})
    assert not stream.is_status_only(base, {**base, "generation": {"N": "2"}})
    assert not stream.is_status_only(None, base)
