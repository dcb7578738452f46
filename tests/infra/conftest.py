"""Fixtures for the template tests: the three parsed templates, the platform template as `sam deploy` would
transform it, and fake AWS credentials for moto."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra import cfn


@pytest.fixture(scope="session")
def gameserver() -> dict[str, Any]:
    return cfn.load(cfn.GAMESERVER)


@pytest.fixture(scope="session")
def platform() -> dict[str, Any]:
    return cfn.load(cfn.PLATFORM)


@pytest.fixture(scope="session")
def tenant_role() -> dict[str, Any]:
    return cfn.load(cfn.TENANT_ROLE)


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and one region; no endpoint override or profile, so in-process moto sees every call
    and nothing can reach a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def transformed() -> dict[str, Any]:
    return cfn.transform_platform()
