"""Fixtures for the engine and the handlers on the fake cloud and the in-memory store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.local.embedded import LocalContext, fake_runtime
from handlers.runtime import install_runtime
from reconciler.fakes.world import FakeWorld

EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def installed(world: FakeWorld) -> Iterator[FakeWorld]:
    """The Lambda handlers' runtime, pointed at the fake world."""
    install_runtime(fake_runtime(world))
    yield world
    install_runtime(None)


@pytest.fixture
def context() -> LocalContext:
    return LocalContext()


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


def stream_record(
    event: str,
    tenant_id: str,
    gameserver_id: str,
    sequence: str,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Keys": {"tenant_id": {"S": tenant_id}, "gameserver_id": {"S": gameserver_id}},
        "SequenceNumber": sequence,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        body["OldImage"] = old
    if new is not None:
        body["NewImage"] = new
    return {
        "eventID": f"id-{sequence}",
        "eventName": event,
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/stackherd-gameservers/stream/x",
        "dynamodb": body,
    }


def image(tenant_id: str, gameserver_id: str, generation: int = 1, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tenant_id": {"S": tenant_id},
        "gameserver_id": {"S": gameserver_id},
        "username": {"S": "player"},
        "generation": {"N": str(generation)},
        "config": {"M": {"difficulty": {"S": "normal"}, "player_count": {"N": "4"}, "seed": {"S": "default"}}},
    }
    item.update(extra)
    return item
