"""Decoding one stream record (through Powertools' DynamoDB stream record classes): which key it names,
whether it is only the reconciler's own status write, and a clear error for one that cannot be decoded."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.stream import ChangedKey, changed_key
from tests.functional.conftest import image, stream_record

STATUS_BEFORE = {"M": {"phase": {"S": "Creating"}}}
STATUS_AFTER = {"M": {"phase": {"S": "Ready"}, "observed_generation": {"N": "1"}}}


def test_an_insert_names_its_key() -> None:
    record = stream_record("INSERT", "alpha", "s-1", "1", new=image("alpha", "s-1"))
    assert changed_key(record) == ChangedKey("alpha", "s-1", "INSERT")


def test_a_modify_of_only_the_status_needs_no_reconcile() -> None:
    old = image("alpha", "s-1", status=STATUS_BEFORE)
    new = image("alpha", "s-1", status=STATUS_AFTER)
    assert changed_key(stream_record("MODIFY", "alpha", "s-1", "1", old=old, new=new)) is None


def test_numbers_are_compared_as_numbers_not_as_text() -> None:
    old = image("alpha", "s-1", status=STATUS_BEFORE)
    new = {**image("alpha", "s-1", status=STATUS_AFTER), "generation": {"N": "1.0"}}
    assert changed_key(stream_record("MODIFY", "alpha", "s-1", "1", old=old, new=new)) is None


def test_a_desired_change_with_a_status_change_is_reconciled() -> None:
    old = image("alpha", "s-1", status=STATUS_BEFORE)
    new = image("alpha", "s-1", generation=2, status=STATUS_AFTER)
    assert changed_key(stream_record("MODIFY", "alpha", "s-1", "1", old=old, new=new)) == ChangedKey(
        "alpha", "s-1", "MODIFY"
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (None, None),  # a stream without images
        ("x", ["y"]),  # images that are not maps
        (image("alpha", "s-1", status={"Q": "?"}), image("alpha", "s-1")),  # an attribute of no DynamoDB type
        (image("alpha", "s-1", generation={}), image("alpha", "s-1")),  # type: ignore[arg-type]
    ],
)
def test_a_modify_whose_images_cannot_show_a_status_only_change_is_reconciled(old: Any, new: Any) -> None:
    record = stream_record("MODIFY", "alpha", "s-1", "1")
    if old is not None:
        record["dynamodb"]["OldImage"] = old
        record["dynamodb"]["NewImage"] = new
    assert changed_key(record) == ChangedKey("alpha", "s-1", "MODIFY")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(eventName="TRUNCATE"), "unsupported eventName 'TRUNCATE'"),
        (lambda r: r.pop("eventName"), "unsupported eventName None"),
        (lambda r: r.update(dynamodb="not an object"), "no 'dynamodb' section"),
        (lambda r: r["dynamodb"].update(Keys={"id": {"S": "x"}}), "record keys must be"),
        (lambda r: r["dynamodb"].update(Keys={"tenant_id": {"N": "1"}, "gameserver_id": {"S": "x"}}), "keys must be"),
        (lambda r: r["dynamodb"].update(Keys={"tenant_id": "alpha", "gameserver_id": {"S": "x"}}), "keys must be"),
        (lambda r: r["dynamodb"].update(Keys=["alpha"]), "record keys must be"),
    ],
)
def test_a_record_that_cannot_be_decoded_says_why(mutate: Any, message: str) -> None:
    record = stream_record("INSERT", "alpha", "s-1", "1", new=image("alpha", "s-1"))
    mutate(record)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        changed_key(record)
