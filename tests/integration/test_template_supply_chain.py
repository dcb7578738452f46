"""The S3 template catalog on a versioned moto bucket: what publishing pins (the S3 object version and the
body's SHA-256), what reading a version checks, and that every S3 call names the bucket's expected owner."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from reconciler.errors import (
    TemplateIntegrityError,
    TemplateNotFoundError,
    TemplateUnpinnedError,
    TemplateVersionExistsError,
)
from tests.conftest import REGION, TEMPLATE_BUCKET, gameserver_template

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("moto_aws")]

PLATFORM = "123456789012"  # moto's account: the owner of the buckets it creates
BODY = gameserver_template().encode()
KEY = "gameserver/v1.yaml"


def bucket(*, versioned: bool = True) -> Any:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=TEMPLATE_BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=TEMPLATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return s3


def catalog(s3: Any, owner: str | None = PLATFORM) -> Any:
    from reconciler.adapters.s3 import S3TemplateCatalog

    return S3TemplateCatalog(s3, TEMPLATE_BUCKET, region=REGION, expected_owner=owner)


def record(s3: Any, version: str = "v1") -> dict[str, Any]:
    stored: dict[str, Any] = json.loads(
        s3.get_object(Bucket=TEMPLATE_BUCKET, Key=f"gameserver/{version}.json")["Body"].read()
    )
    return stored


def test_publishing_records_the_s3_object_version_and_sha256_of_the_body() -> None:
    s3 = bucket()
    catalog(s3).publish(BODY, "v1", {"parameters": {"Seed": None}, "capabilities": []})

    head = s3.head_object(Bucket=TEMPLATE_BUCKET, Key=KEY)
    assert record(s3) == {
        "version_id": head["VersionId"],
        "sha256": hashlib.sha256(BODY).hexdigest(),
        "parameters": {"Seed": None},
        "capabilities": [],
    }


def test_the_template_url_names_the_pinned_object_version() -> None:
    s3 = bucket()
    url = catalog(s3).publish(BODY, "v1")
    version_id = s3.head_object(Bucket=TEMPLATE_BUCKET, Key=KEY)["VersionId"]

    expected = f"https://{TEMPLATE_BUCKET}.s3.{REGION}.amazonaws.com/{KEY}?versionId={version_id}"
    assert url == expected
    fresh = catalog(s3)
    assert fresh.url_for("v1") == expected and fresh.describe("v1").url == expected


def test_an_overwritten_key_keeps_the_pinned_url_and_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    s3 = bucket()
    url = catalog(s3).publish(BODY, "v1")
    overwrite = s3.put_object(Bucket=TEMPLATE_BUCKET, Key=KEY, Body=BODY + b"\n# overwritten\n")  # as `aws s3 cp`

    fresh = catalog(s3)
    with caplog.at_level("ERROR", logger="stackherd.templates"):
        described = fresh.describe("v1")

    assert described.url == url
    assert fresh.overwritten == {"v1": overwrite["VersionId"]}
    assert "overwritten or deleted after publishing" in caplog.text
    with pytest.raises(TemplateVersionExistsError):
        fresh.publish(BODY + b"\n# overwritten\n", "v1")  # publishing the overwrite changes nothing either
    assert catalog(s3).describe("v1").url == url


def test_a_body_whose_sha256_differs_from_the_recorded_one_is_refused() -> None:
    """The record points at an object version whose body is not the one published (a hand-edited record, an
    overwrite in a bucket whose versioning was suspended): reading the version refuses it."""
    s3 = bucket()
    catalog(s3).publish(BODY, "v1")
    other = s3.put_object(Bucket=TEMPLATE_BUCKET, Key=KEY, Body=b"Resources: {}\n")["VersionId"]
    s3.put_object(
        Bucket=TEMPLATE_BUCKET,
        Key="gameserver/v1.json",
        Body=json.dumps({**record(s3), "version_id": other}).encode(),
    )

    with pytest.raises(TemplateIntegrityError) as refused:
        catalog(s3).describe("v1")
    message = str(refused.value)
    assert "'v1'" in message and "changed after publishing" in message and "under a new version" in message


def test_a_pinned_object_version_that_was_deleted_is_refused() -> None:
    s3 = bucket()
    catalog(s3).publish(BODY, "v1")
    pinned = record(s3)["version_id"]
    s3.delete_object(Bucket=TEMPLATE_BUCKET, Key=KEY, VersionId=pinned)

    with pytest.raises(TemplateIntegrityError, match=f"object version {pinned} is gone"):
        catalog(s3).describe("v1")


def test_a_version_uploaded_before_pinning_is_refused_until_published_again_with_the_same_body() -> None:
    s3 = bucket()
    uploaded = s3.put_object(Bucket=TEMPLATE_BUCKET, Key=KEY, Body=BODY)["VersionId"]
    s3.put_object(Bucket=TEMPLATE_BUCKET, Key="gameserver/v1.json", Body=b'{"parameters": {"Seed": null}}')

    for read in (catalog(s3).url_for, catalog(s3).describe):
        with pytest.raises(TemplateUnpinnedError, match="stackherd templates publish FILE --version v1"):
            read("v1")
    with pytest.raises(TemplateVersionExistsError):
        catalog(s3).publish(BODY + b"# not what was uploaded\n", "v1")

    url = catalog(s3).publish(BODY, "v1")

    assert url.endswith(f"?versionId={uploaded}")
    assert record(s3) == {
        "version_id": uploaded,
        "sha256": hashlib.sha256(BODY).hexdigest(),
        "parameters": {"Seed": None},  # kept from the record it had
    }
    assert catalog(s3).describe("v1").url == url


def test_publishing_into_a_bucket_that_keeps_no_versions_is_refused() -> None:
    from reconciler.adapters.s3 import TemplateBucketNotVersionedError

    s3 = bucket(versioned=False)
    with pytest.raises(TemplateBucketNotVersionedError, match="put-bucket-versioning"):
        catalog(s3).publish(BODY, "v1")
    assert "Contents" not in s3.list_objects_v2(Bucket=TEMPLATE_BUCKET)


def test_a_version_that_is_not_published_is_still_not_found() -> None:
    s3 = bucket()
    with pytest.raises(TemplateNotFoundError, match="templates publish FILE --version v9"):
        catalog(s3).describe("v9")


# --- the bucket's owner ----------------------------------------------------------------------------------


def sent_owners(s3: Any) -> list[tuple[str, str | None]]:
    """Every S3 request the client sends, with the `x-amz-expected-bucket-owner` header it carries."""
    sent: list[tuple[str, str | None]] = []

    def record_request(model: Any, params: dict[str, Any], **_: Any) -> None:
        sent.append((model.name, params["headers"].get("x-amz-expected-bucket-owner")))

    s3.meta.events.register("before-call.s3", record_request)
    return sent


def test_every_s3_call_of_the_catalog_names_the_expected_bucket_owner() -> None:
    s3 = bucket()
    sent = sent_owners(s3)
    publisher = catalog(s3)
    publisher.publish(BODY, "v1")
    publisher.publish(BODY, "v1")
    s3.put_object(Bucket=TEMPLATE_BUCKET, Key=KEY, Body=BODY + b"# overwritten\n")
    reader = catalog(s3)
    reader.describe("v1")
    reader.versions()
    with pytest.raises(TemplateNotFoundError):
        reader.url_for("v9")

    operations = {name for name, _ in sent}
    assert {"GetBucketVersioning", "PutObject", "GetObject", "HeadObject", "ListObjectsV2"} <= operations
    catalog_calls = [(name, owner) for name, owner in sent if name != "PutObject" or owner is not None]
    assert len(catalog_calls) == len(sent) - 1  # only the test's own overwrite went without the header
    assert {owner for _, owner in catalog_calls} == {PLATFORM}


def test_a_bucket_owned_by_another_account_is_refused_with_an_error_that_names_the_expected_owner() -> None:
    """S3 answers 403 AccessDenied to a request whose ExpectedBucketOwner is not the bucket's owner (moto does
    not check it: the hook below answers as S3 does)."""
    from botocore.awsrequest import AWSResponse

    s3 = bucket()
    catalog(s3).publish(BODY, "v1")
    elsewhere = "999999999999"

    def s3_checks_the_owner(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if params["headers"].get("x-amz-expected-bucket-owner") in (None, PLATFORM):
            return None
        denied = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {}}
        return AWSResponse(params["url"], 403, {}, None), denied

    s3.meta.events.register("before-call.s3", s3_checks_the_owner)

    with pytest.raises(TemplateNotFoundError) as refused:
        catalog(s3, owner=elsewhere).describe("v1")
    assert f"not owned by the expected account: check that s3://{TEMPLATE_BUCKET} is owned by account" in str(
        refused.value
    )
    assert elsewhere in str(refused.value)
    assert catalog(s3).describe("v1").url.startswith(f"https://{TEMPLATE_BUCKET}.")  # the right owner reads it


def test_the_runtime_expects_the_bucket_in_its_own_account_unless_told_otherwise() -> None:
    from handlers.runtime import build_runtime
    from models.settings import Settings

    s3 = bucket()
    catalog(s3).publish(BODY, "v1")

    derived = build_runtime(Settings(template_bucket=TEMPLATE_BUCKET, region=REGION))
    assert derived.templates.expected_owner() == PLATFORM
    told = build_runtime(Settings(template_bucket=TEMPLATE_BUCKET, region=REGION, template_bucket_owner="210987654321"))
    sent = sent_owners(told.templates.s3)
    told.templates.describe("v1")  # moto does not check the owner; S3 would refuse this bucket
    assert sent and all(owner == "210987654321" for _, owner in sent)


def test_templates_verify_names_each_version_that_is_overwritten_changed_or_unpinned() -> None:
    import io

    from handlers.local.cli import main
    from handlers.runtime import build_runtime, install_runtime
    from models.settings import Settings

    s3 = bucket()
    publisher = catalog(s3)
    for version in ("v1", "v2", "v3"):
        publisher.publish(BODY + f"# {version}\n".encode(), version)
    s3.put_object(Bucket=TEMPLATE_BUCKET, Key="gameserver/v2.yaml", Body=b"Resources: {}\n")
    pinned = s3.get_object(Bucket=TEMPLATE_BUCKET, Key="gameserver/v3.json")["Body"].read()
    s3.put_object(
        Bucket=TEMPLATE_BUCKET, Key="gameserver/v3.json", Body=pinned.replace(b'"sha256": "', b'"sha256": "0')
    )
    s3.put_object(Bucket=TEMPLATE_BUCKET, Key="gameserver/v4.yaml", Body=BODY)
    install_runtime(build_runtime(Settings(template_bucket=TEMPLATE_BUCKET, region=REGION)))
    try:
        out = io.StringIO()
        assert main(["templates", "verify"], out) == 1
        one = io.StringIO()
        assert main(["templates", "verify", "v1"], one) == 0
    finally:
        install_runtime(None)

    states = {line.split("  ")[0]: line.split("  ")[1] for line in out.getvalue().splitlines()}
    assert states == {"v1": "Pinned", "v2": "Overwritten", "v3": "TemplateIntegrity", "v4": "TemplateUnpinned"}
    assert one.getvalue().startswith("v1  Pinned  ")
