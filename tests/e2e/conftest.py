"""Fixtures of the end-to-end suites that drive the admin CLI against a moto server on loopback: one server per
module, reset and aimed at by the environment for each test. A module may define its own `endpoint`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handlers.runtime import reset_runtime
from tests.e2e.moto_server import moto_server


@pytest.fixture(scope="module")
def moto_server_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def endpoint(moto_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST"))
    for key, value in {
        "AWS_ENDPOINT_URL": moto_server_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset_runtime()
    yield moto_server_url
    reset_runtime()
