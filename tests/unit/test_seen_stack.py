"""A stack's kept full read (`SeenStack`) and when a listing lets the sweep reuse it instead of a describe."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models.records import SeenStack
from reconciler.stacks import ObservedStack, StackSummary, seen_from, still_seen

AT = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
STACK = ObservedStack(
    name="stackherd-alpha-s0",
    stack_id="arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-alpha-s0/1",
    status="UPDATE_COMPLETE",
    region="us-east-1",
    parameters={"Seed": "abc", "Difficulty": "hard"},
    tags={"stackherd:tenant": "alpha"},
    termination_protection=True,
    changed_at=AT,
)
LISTED = StackSummary(STACK.name, STACK.stack_id, STACK.status, STACK.region, changed_at=AT)


def test_a_listing_that_shows_the_stack_unchanged_gives_back_what_was_read() -> None:
    seen = seen_from(STACK)
    assert seen is not None and SeenStack.from_dict(seen.to_dict()) == seen

    assert still_seen(LISTED, seen) == STACK


@pytest.mark.parametrize(
    "listed",
    [
        replace(LISTED, status="UPDATE_IN_PROGRESS"),
        replace(LISTED, changed_at=AT + timedelta(milliseconds=1)),
        replace(LISTED, stack_id=STACK.stack_id.replace("/1", "/2")),
        replace(LISTED, changed_at=None),
    ],
    ids=["status", "change-time", "recreated", "no-time"],
)
def test_a_listing_that_shows_any_change_asks_for_a_describe(listed: StackSummary) -> None:
    assert still_seen(listed, seen_from(STACK)) is None


def test_nothing_kept_or_no_change_time_reported_means_a_describe() -> None:
    assert still_seen(LISTED, None) is None
    assert seen_from(replace(STACK, changed_at=None)) is None


@pytest.mark.parametrize(
    "raw", [None, "text", {}, {"stack_id": "x"}, {"stack_id": "x", "status": "s", "changed_at": "t", "tags": [1]}]
)
def test_a_malformed_stored_read_is_forgotten_not_fatal(raw: object) -> None:
    assert SeenStack.from_dict(raw) is None
