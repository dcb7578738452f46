"""The `TemplateCatalog` contract (reconciler/ports.py) as the supply chain needs it, run against both
implementations: the in-memory catalog and the S3 catalog on a versioned moto bucket. A version is pinned to
the object version its publishing created; an overwrite of its key keeps the pin and is reported; a pinned
body that is not the one published, or a version that was never pinned, is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from reconciler.errors import TemplateIntegrityError, TemplateUnpinnedError, TemplateVersionExistsError
from tests.conftest import REGION, TEMPLATE_BUCKET, gameserver_template

BODY = gameserver_template().encode()
OTHER = b"Resources: {Miner: {Type: AWS::EC2::Instance}}\n"


class Catalog(Protocol):
    """The catalog under test, and what can happen to its bucket outside it."""

    def publish(self, body: bytes, version: str) -> str: ...

    def fresh(self) -> Any:
        """A catalog as a new process has it (nothing cached)."""

    def overwrite(self, version: str, body: bytes) -> None:
        """`aws s3 cp` onto the published key."""

    def change_pinned_body(self, version: str, body: bytes) -> None:
        """Make the pinned object version's body another one than published."""

    def upload_unpinned(self, version: str, body: bytes) -> None:
        """Put a body in the bucket without publishing it."""


class InMemory:
    def __init__(self) -> None:
        from reconciler.fakes.templates import StaticTemplateCatalog

        self.catalog = StaticTemplateCatalog(TEMPLATE_BUCKET, versions=(), region=REGION)

    def publish(self, body: bytes, version: str) -> str:
        return self.catalog.publish(body, version)

    def fresh(self) -> Any:
        return self.catalog

    def overwrite(self, version: str, body: bytes) -> None:
        self.catalog.overwrite(version, body)

    def change_pinned_body(self, version: str, body: bytes) -> None:
        self.catalog.corrupt(version, body)

    def upload_unpinned(self, version: str, body: bytes) -> None:
        self.catalog.upload_unpinned(version, body)


class OnMoto:
    def __init__(self) -> None:
        import boto3

        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=TEMPLATE_BUCKET)
        self.s3.put_bucket_versioning(Bucket=TEMPLATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})

    def fresh(self) -> Any:
        from reconciler.adapters.s3 import S3TemplateCatalog

        return S3TemplateCatalog(self.s3, TEMPLATE_BUCKET, region=REGION, expected_owner="123456789012")

    def publish(self, body: bytes, version: str) -> str:
        url: str = self.fresh().publish(body, version)
        return url

    def overwrite(self, version: str, body: bytes) -> None:
        self.s3.put_object(Bucket=TEMPLATE_BUCKET, Key=f"gameserver/{version}.yaml", Body=body)

    def change_pinned_body(self, version: str, body: bytes) -> None:
        # A versioned bucket never changes an object version in place: point the record at another one instead.
        other = self.s3.put_object(Bucket=TEMPLATE_BUCKET, Key=f"gameserver/{version}.yaml", Body=body)["VersionId"]
        key = f"gameserver/{version}.json"
        record = json.loads(self.s3.get_object(Bucket=TEMPLATE_BUCKET, Key=key)["Body"].read())
        self.s3.put_object(Bucket=TEMPLATE_BUCKET, Key=key, Body=json.dumps({**record, "version_id": other}).encode())

    def upload_unpinned(self, version: str, body: bytes) -> None:
        self.s3.put_object(Bucket=TEMPLATE_BUCKET, Key=f"gameserver/{version}.yaml", Body=body)


@pytest.fixture(params=["in-memory", "s3-on-moto"])
def backend(request: pytest.FixtureRequest) -> Iterator[Catalog]:
    if request.param == "in-memory":
        yield InMemory()
        return
    request.getfixturevalue("moto_aws")
    yield OnMoto()


def test_a_published_version_resolves_to_the_url_of_its_pinned_object_version(backend: Catalog) -> None:
    url = backend.publish(BODY, "v1")

    assert url.startswith(f"https://{TEMPLATE_BUCKET}.s3.{REGION}.amazonaws.com/gameserver/v1.yaml?versionId=")
    assert backend.fresh().url_for("v1") == url and backend.fresh().describe("v1").url == url
    assert backend.publish(BODY, "v1") == url  # the same body again: a no-op


def test_an_overwritten_key_keeps_the_pin_and_is_reported(backend: Catalog) -> None:
    url = backend.publish(BODY, "v1")
    backend.overwrite("v1", OTHER)

    catalog = backend.fresh()
    assert catalog.describe("v1").url == url
    assert set(catalog.overwritten) == {"v1"}
    with pytest.raises(TemplateVersionExistsError):
        backend.publish(OTHER, "v1")


def test_a_pinned_body_that_is_not_the_published_one_is_refused(backend: Catalog) -> None:
    backend.publish(BODY, "v1")
    backend.change_pinned_body("v1", OTHER)

    with pytest.raises(TemplateIntegrityError, match=r"'v1' is refused: .* changed after publishing"):
        backend.fresh().describe("v1")


def test_a_version_never_pinned_is_refused_until_its_body_is_published_again(backend: Catalog) -> None:
    backend.upload_unpinned("v1", BODY)

    with pytest.raises(TemplateUnpinnedError, match="templates publish FILE --version v1"):
        backend.fresh().describe("v1")
    with pytest.raises(TemplateVersionExistsError):
        backend.publish(OTHER, "v1")
    url = backend.publish(BODY, "v1")
    assert backend.fresh().describe("v1").url == url
