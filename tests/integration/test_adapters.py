"""How the boto3 adapters translate what AWS says: S3 template catalog, STS and CloudFormation errors."""

from __future__ import annotations

from typing import Any

import pytest

from models.records import Tenant, role_arn_for
from reconciler.errors import PermanentError, TemplateNotFoundError, ThrottledError, TransientError
from tests.conftest import REGION, TEMPLATE_BUCKET, gameserver_template

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("moto_aws")]


def tenant(external_id: str = "ext-alpha", account_id: str = "111111111111") -> Tenant:
    return Tenant(
        tenant_id="alpha",
        account_id=account_id,
        regions=(REGION,),
        role_arn=role_arn_for(account_id, "StackherdExecution"),
        external_id=external_id,
    )


# --- the template catalog -------------------------------------------------------------------------


def test_catalog_publishes_lists_and_resolves_versions(template_catalog: Any) -> None:
    template_catalog.publish(gameserver_template().encode(), "v2")

    assert template_catalog.versions() == ["v1", "v2"]
    head = template_catalog.s3.head_object(Bucket=TEMPLATE_BUCKET, Key="gameserver/v2.yaml")
    assert template_catalog.url_for("v2") == (
        f"https://{TEMPLATE_BUCKET}.s3.amazonaws.com/gameserver/v2.yaml?versionId={head['VersionId']}"
    )


def test_a_published_version_never_changes(template_catalog: Any) -> None:
    import boto3

    from reconciler.errors import TemplateVersionExistsError

    body = gameserver_template().encode()
    url = template_catalog.publish(body, "v2")
    assert template_catalog.publish(body, "v2") == url  # the same body again: a no-op

    with pytest.raises(TemplateVersionExistsError, match="'v2' is already published with a different body"):
        template_catalog.publish(body + b"\n# changed\n", "v2")

    stored = boto3.client("s3", region_name=REGION).get_object(Bucket=TEMPLATE_BUCKET, Key="gameserver/v2.yaml")
    assert stored["Body"].read() == body


def test_catalog_reports_an_unpublished_version_as_not_found(template_catalog: Any) -> None:
    with pytest.raises(TemplateNotFoundError, match="v9"):
        template_catalog.url_for("v9")


def test_catalog_reports_a_missing_bucket_as_not_found() -> None:
    import boto3

    from reconciler.adapters.s3 import S3TemplateCatalog

    catalog = S3TemplateCatalog(boto3.client("s3", region_name=REGION), "no-such-template-bucket")

    with pytest.raises(TemplateNotFoundError):
        catalog.url_for("v1")


class _FailingS3:
    """An S3 client whose every call fails the way a busy or unreachable S3 does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def _fail(self, **_: Any) -> None:
        raise self.error

    get_object = head_object = _fail


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param("503", TransientError, id="service-unavailable"),
        pytest.param("SlowDown", ThrottledError, id="slow-down"),
        pytest.param("network", TransientError, id="network"),
    ],
)
def test_catalog_treats_a_failing_s3_as_transient_not_as_a_missing_template(
    error: str, expected: type[Exception]
) -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    from reconciler.adapters.s3 import S3TemplateCatalog

    raised: Exception = (
        EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")
        if error == "network"
        else ClientError({"Error": {"Code": error, "Message": "busy"}}, "HeadObject")
    )
    catalog = S3TemplateCatalog(_FailingS3(raised), TEMPLATE_BUCKET)  # type: ignore[arg-type]

    with pytest.raises(expected) as caught:
        catalog.url_for("v1")
    assert not isinstance(caught.value, TemplateNotFoundError)


# --- the connector --------------------------------------------------------------------------------


def test_a_malformed_assume_role_request_is_permanent_not_transient() -> None:
    """botocore refuses an ExternalId shorter than 2 characters before sending; retrying cannot fix that."""
    from reconciler.adapters.aws import AwsConnector

    with pytest.raises(PermanentError, match="ExternalId"):
        AwsConnector().gateway(tenant(external_id="x"), REGION)


def test_a_tenant_whose_role_is_in_another_account_is_refused_before_any_call() -> None:
    import boto3

    from reconciler.adapters.aws import AwsConnector
    from reconciler.errors import AccessDeniedError

    session = boto3.Session(region_name=REGION)
    assumed: list[str] = []
    session.events.register("provide-client-params.sts.AssumeRole", lambda params, **_: assumed.append("x"))
    wrong = Tenant(
        tenant_id="alpha",
        account_id="111111111111",
        regions=(REGION,),
        role_arn=role_arn_for("222222222222", "StackherdExecution"),
        external_id="ext-alpha",
    )

    with pytest.raises(AccessDeniedError, match="222222222222"):
        AwsConnector(session).gateway(wrong, REGION)
    assert assumed == []


def test_the_gateway_client_acts_in_the_tenants_account() -> None:
    from reconciler.adapters.aws import AwsConnector

    gateway = AwsConnector().gateway(tenant(account_id="444444444444"), REGION)

    identity = gateway.client.meta.region_name, _caller_account(gateway.client)
    assert identity == (REGION, "444444444444")


def _caller_account(cloudformation: Any) -> str:
    import boto3

    credentials = cloudformation._request_signer._credentials.get_frozen_credentials()
    sts = boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    )
    return str(sts.get_caller_identity()["Account"])


def test_pacing_takes_a_token_for_every_request_a_listing_sends() -> None:
    """A listing of many stacks is several DescribeStacks pages; each is a call against the account's rate."""
    import boto3

    from reconciler.adapters.aws import AwsConnector
    from reconciler.pacing import AccountRateLimiter

    session = boto3.Session(region_name=REGION)
    pages: list[str] = []
    session.events.register("before-send.cloudformation.DescribeStacks", lambda **_: pages.append("page"))
    acquired: list[str] = []

    class Recording(AccountRateLimiter):
        def acquire(self, account_id: str) -> None:
            acquired.append(account_id)

    gateway = AwsConnector(session, limiter=Recording(1.0)).gateway(tenant(), REGION)
    for index in range(120):
        gateway.client.create_stack(
            StackName=f"theirs-{index}",
            TemplateBody=gameserver_template(),
            Parameters=[
                {"ParameterKey": "Difficulty", "ParameterValue": "easy"},
                {"ParameterKey": "PlayerCount", "ParameterValue": "2"},
                {"ParameterKey": "Seed", "ParameterValue": "x"},
            ],
        )
    acquired.clear()

    assert len(gateway.list_stacks()) == 120
    assert len(pages) > 1, "moto pages DescribeStacks; the test needs more than one page"
    assert acquired == ["111111111111"] * len(pages)


def test_concurrent_gateways_share_one_client_per_account_and_region() -> None:
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    from reconciler.adapters.aws import AwsConnector

    session = boto3.Session(region_name=REGION)
    made: list[str] = []
    session.events.register("creating-client-class", lambda **_: made.append("client"))
    connector = AwsConnector(session)
    regions = (REGION, "eu-west-1")

    with ThreadPoolExecutor(16) as pool:
        gateways = list(pool.map(lambda i: connector.gateway(tenant(), regions[i % 2]), range(32)))

    assert len({id(g.client) for g in gateways}) == 2
    assert connector.cache.assume_calls == 1


# --- regions and SDK failures at the edge ------------------------------------------------------------


@pytest.mark.parametrize("region", ["xx-fake-1", "us-gov-west-1", "cn-north-1"])
def test_a_region_outside_the_roles_partition_is_permanent_before_any_call(region: str) -> None:
    import boto3

    from reconciler.adapters.aws import AwsConnector
    from reconciler.errors import UnknownRegionError

    session = boto3.Session(region_name=REGION)
    assumed: list[str] = []
    session.events.register("provide-client-params.sts.AssumeRole", lambda params, **_: assumed.append("x"))
    with pytest.raises(UnknownRegionError, match=region):
        AwsConnector(session).gateway(tenant(), region)
    assert assumed == []


def test_sts_is_called_on_the_regional_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from reconciler.adapters.aws import AwsConnector

    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")  # what an old profile might say
    connector = AwsConnector(boto3.Session(region_name="eu-central-1"))
    assert connector._client("sts").meta.endpoint_url == "https://sts.eu-central-1.amazonaws.com"


def test_a_response_that_cannot_be_parsed_is_transient_not_an_internal_error() -> None:
    from botocore.parsers import ResponseParserError

    from reconciler.adapters.aws import AwsGateway

    class Garbled:
        def get_paginator(self, _: str) -> Any:
            raise ResponseParserError("Unable to parse response (syntax error), invalid XML received")

    with pytest.raises(TransientError, match="could not be read"):
        AwsGateway(Garbled(), "111111111111", REGION).list_stacks()  # type: ignore[arg-type]


DEFAULTED_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Difficulty:
    Type: String
  PlayerCount:
    Type: String
  Seed:
    Type: String
  MapSize:
    Type: String
    Default: medium
Resources:
  Settings:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/stackherd/${AWS::StackName}/settings"
      Type: String
      Value: !Sub "${Difficulty}/${PlayerCount}/${Seed}/${MapSize}"
"""


def _validating_catalog() -> Any:
    import boto3

    from reconciler.adapters.s3 import S3TemplateCatalog

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=TEMPLATE_BUCKET)
    s3.put_bucket_versioning(Bucket=TEMPLATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    return S3TemplateCatalog(s3, TEMPLATE_BUCKET, region=REGION, cloudformation=cloudformation)


def test_publishing_stores_the_parameters_and_defaults_cloudformation_reads_from_the_template() -> None:
    catalog = _validating_catalog()

    url = catalog.publish(DEFAULTED_TEMPLATE.encode(), "v2")

    assert url.startswith(f"https://{TEMPLATE_BUCKET}.s3.{REGION}.amazonaws.com/gameserver/v2.yaml?versionId=")
    described = catalog.describe("v2")
    assert described.url == url
    assert dict(described.parameters or {}) == {
        "Difficulty": None,
        "PlayerCount": None,
        "Seed": None,
        "MapSize": "medium",
    }
    assert catalog.versions() == ["v2"]  # the stored summary is no version of its own


def test_a_version_published_without_a_summary_has_unknown_parameters() -> None:
    from reconciler.adapters.s3 import S3TemplateCatalog

    s3 = _validating_catalog().s3
    S3TemplateCatalog(s3, TEMPLATE_BUCKET, region=REGION).publish(gameserver_template().encode(), "v1")
    described = S3TemplateCatalog(s3, TEMPLATE_BUCKET, region=REGION).describe("v1")
    assert described.parameters is None and described.capabilities == ()


def test_a_pinned_version_without_a_summary_says_so_and_republishing_the_same_body_stores_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A version pinned without a summary (published with no CloudFormation client) that adds a defaulted
    parameter: the operator is told, and publishing the same body again stores its defaults (so MapSize at
    its default is no drift) and keeps the pin."""
    from reconciler.adapters.s3 import S3TemplateCatalog

    catalog = _validating_catalog()
    url = S3TemplateCatalog(catalog.s3, TEMPLATE_BUCKET, region=REGION).publish(DEFAULTED_TEMPLATE.encode(), "v2")
    with caplog.at_level("WARNING", logger="stackherd.templates"):
        assert catalog.describe("v2").parameters is None
    assert "publish it again with the same body" in caplog.text
    assert catalog.publish(DEFAULTED_TEMPLATE.encode(), "v2") == url
    fresh = S3TemplateCatalog(catalog.s3, TEMPLATE_BUCKET, region=REGION)
    assert fresh.describe("v2").defaults() == {"MapSize": "medium"}
    assert fresh.describe("v2").url == url


def test_publishing_refuses_a_template_cloudformation_refuses() -> None:
    from reconciler.adapters.s3 import InvalidTemplateError

    catalog = _validating_catalog()
    with pytest.raises(InvalidTemplateError, match="CloudFormation refuses the template"):
        catalog.publish(b"Resources: {}\nNotASection: 1\n", "v2")
    assert catalog.versions() == []


def test_failure_cause_walks_the_events_back_to_the_operations_start_and_no_further() -> None:
    """DescribeStackEvents pages newest first; the walk stops at the event that opened the latest operation
    (no page after it is fetched) and names its first failed resource event, not a later cancellation."""
    from datetime import UTC, datetime

    import boto3
    from botocore.stub import Stubber

    from reconciler.adapters.aws import AwsGateway

    client = boto3.client("cloudformation", region_name=REGION)
    at = datetime(2026, 3, 1, tzinfo=UTC)

    def event(logical: str, kind: str, status: str, reason: str = "") -> dict[str, Any]:
        return {
            "StackId": "arn:aws:cloudformation:us-east-1:111111111111:stack/gs-one/1",
            "EventId": f"{logical}-{status}",
            "StackName": "gs-one",
            "LogicalResourceId": logical,
            "ResourceType": kind,
            "ResourceStatus": status,
            "ResourceStatusReason": reason,
            "Timestamp": at,
        }

    stack = "AWS::CloudFormation::Stack"
    with Stubber(client) as stub:
        stub.add_response(
            "describe_stack_events",
            {
                "StackEvents": [
                    event("gs-one", stack, "UPDATE_ROLLBACK_COMPLETE"),
                    event("gs-one", stack, "UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) failed"),
                    event("Volume", "AWS::EC2::Volume", "UPDATE_FAILED", "Resource update cancelled"),
                ],
                "NextToken": "page-2",
            },
            {"StackName": "gs-one"},
        )
        stub.add_response(
            "describe_stack_events",
            {
                "StackEvents": [
                    event("Server", "AWS::EC2::Instance", "UPDATE_FAILED", "instance type not supported"),
                    event("gs-one", stack, "UPDATE_IN_PROGRESS", "User Initiated"),
                    event("gs-one", stack, "CREATE_FAILED", "an older operation"),
                ],
                "NextToken": "page-3",
            },
            {"StackName": "gs-one", "NextToken": "page-2"},
        )
        cause = AwsGateway(client, "111111111111", REGION).failure_cause("gs-one")
        stub.assert_no_pending_responses()

    assert cause is not None
    assert (cause.logical_id, cause.resource_type, cause.status, cause.reason) == (
        "Server",
        "AWS::EC2::Instance",
        "UPDATE_FAILED",
        "instance type not supported",
    )
