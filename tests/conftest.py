"""Shared fixtures. moto is imported inside fixtures only, so suites that never touch it stay fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import freezegun
import pytest

# freezegun walks every loaded module when it freezes time; Powertools' lazily imported pydantic models
# would then be built against freezegun's fake datetime class and fail. Leave Powertools alone.
freezegun.configure(extend_ignore_list=["aws_lambda_powertools", "pydantic"])

ROOT = Path(__file__).resolve().parent.parent
GAMESERVER_TEMPLATE = ROOT / "infra" / "sam" / "gameserver.yaml"
TEMPLATE_BUCKET = "stackherd-templates-test"
REGION = "us-east-1"

#: The game-server parameters, all of type String, and one resource moto can create (moto's CloudFormation
#: crashes on an AWS::SSM::Parameter without a Name). moto compares parameters as sent, so only a template
#: whose parameters are strings shows its "No updates are to be performed" for an identical update.
STRING_PARAMETERS_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: stackherd game server (test stand-in)
Parameters:
  Difficulty:
    Type: String
  PlayerCount:
    Type: String
  Seed:
    Type: String
Resources:
  Settings:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/stackherd/${AWS::StackName}/settings"
      Type: String
      Value: !Sub "${Difficulty}/${PlayerCount}/${Seed}"
"""


def gameserver_template() -> str:
    """The game-server template stackherd ships."""
    return GAMESERVER_TEMPLATE.read_text()


@pytest.fixture(scope="session")
def shared_botocore_loader() -> Iterator[None]:
    """One botocore data loader for every session the tests make.

    Each boto3 session, and each PynamoDB connection, otherwise parses the same service-model JSON again;
    that parsing was most of the moto suites' run time. The loaded models are only read, never changed.
    """
    import functools

    import botocore.session

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", functools.cache(botocore.session.create_loader))
        yield


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, shared_botocore_loader: None) -> None:
    """Fake credentials, one region, and no endpoint override: in-process moto must see every call."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto_aws(aws_env: None) -> Iterator[None]:
    """Everything inside runs against moto in-process."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def moto_reads_template_object_versions(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's CloudFormation reads the latest object of a TemplateURL's key whatever the URL says; CloudFormation
    reads the object version its `versionId` names. This makes moto do the same, so a test can tell them apart."""
    from urllib.parse import parse_qs, urlparse

    import moto.cloudformation.responses as cfn_responses
    import moto.cloudformation.utils as cfn_utils
    from moto.s3.models import s3_backends

    resolve = cfn_utils.get_stack_from_s3_url

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        parts = urlparse(template_url)
        version_id = parse_qs(parts.query).get("versionId", [None])[0]
        if version_id is None:
            return resolve(template_url, account_id, partition)
        key = s3_backends[account_id][partition].get_object(
            parts.netloc.split(".")[0], parts.path.lstrip("/"), version_id=version_id
        )
        assert key is not None, f"no object version {version_id} behind {template_url}"
        return key.value.decode("utf-8")  # type: ignore[union-attr]

    monkeypatch.setattr(cfn_responses, "get_stack_from_s3_url", get_stack_from_s3_url)


@pytest.fixture
def dynamo_tables(moto_aws: None) -> None:
    """The PynamoDB models pointed at fresh moto tables (connections are rebuilt inside this mock)."""
    from models import tables

    tables.configure(region=REGION)
    tables.create_tables()


@pytest.fixture
def template_catalog(moto_aws: None) -> object:
    """A moto S3 template bucket with the game-server template published as v1."""
    import boto3

    from reconciler.adapters.s3 import S3TemplateCatalog

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=TEMPLATE_BUCKET)
    s3.put_bucket_versioning(Bucket=TEMPLATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    catalog = S3TemplateCatalog(s3, TEMPLATE_BUCKET)
    catalog.publish(gameserver_template().encode(), "v1")
    return catalog
