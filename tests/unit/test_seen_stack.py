"""A stack's kept full read (`SeenStack`) and when a listing lets the sweep reuse it instead of a describe."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from dateutil.tz import tzutc
from hypothesis import given, settings
from hypothesis import strategies as st

from models.records import SeenStack
from reconciler.stacks import ObservedStack, StackSummary, changed_key, same_change, seen_from, still_seen

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


def test_the_stack_taken_from_a_kept_read_is_the_one_the_constructor_builds() -> None:
    listed = replace(LISTED, status_reason="done", parent_id="")
    kept = still_seen(listed, seen_from(STACK))

    assert kept is not None
    assert vars(kept) == vars(
        ObservedStack(
            name=STACK.name,
            stack_id=STACK.stack_id,
            status=STACK.status,
            region=STACK.region,
            parameters=dict(STACK.parameters),
            tags=dict(STACK.tags),
            status_reason="done",
            parent_id="",
            termination_protection=True,
            changed_at=AT,
        )
    )
    assert kept.parameters is not STACK.parameters  # its own dictionaries, as the constructor's caller made them


# UTC as botocore parses it (dateutil's tzutc), as the standard library spells it, and times in other offsets.
_OFFSETS = st.sampled_from(
    [UTC, tzutc(), timezone(timedelta(0)), timezone(timedelta(hours=2)), timezone(-timedelta(hours=5)), None]
)
_TIMES = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    _OFFSETS,
)


def _spellings(moment: datetime) -> list[str]:
    """The stored spelling of `moment` and near misses of it: another offset, milliseconds, a space, a `Z`."""
    canonical = moment.isoformat(timespec="microseconds")
    return [
        canonical,
        moment.isoformat(timespec="milliseconds"),
        moment.isoformat(sep=" ", timespec="microseconds"),
        canonical.replace("+00:00", "Z"),
        canonical.replace("+00:00", "-00:00"),
        canonical.replace("-", "/"),
        canonical[:-1],
        canonical + "0",
    ]


@settings(max_examples=400, deadline=None)
@given(_TIMES, _TIMES, st.text(max_size=40), st.integers(min_value=0, max_value=7))
def test_a_change_time_matches_its_stored_spelling_exactly_as_the_formatted_comparison_says(
    listed: datetime, other: datetime, text: str, which: int
) -> None:
    for stored in [*_spellings(listed), *_spellings(other), text, _spellings(listed)[which][:32]]:
        assert same_change(listed, stored) == (changed_key(listed) == stored), stored
    assert same_change(None, changed_key(listed) or "") is False
