"""The template bucket's policy keeps published templates immutable: only the publisher writes or deletes under
gameserver/, nobody overwrites a published version (every template upload must carry If-None-Match), and the
tenant roles' read grant covers pinned versions. Evaluated statement by statement against requests, since moto
does not enforce bucket policies; the publishing code's side of the contract is checked on moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import rendering
from tests.infra import cfn

BUCKET_ARN = "arn:aws:s3:::stackherd-templates-222222222222-us-east-1"
PUBLISHER = cfn.REQUIRED_PARAMETERS["TemplatePublisherArn"]
PLATFORM_ADMIN = "arn:aws:iam::222222222222:role/Administrator"
WORKER = "arn:aws:iam::222222222222:role/stackherd-worker-us-east-1"
VALUES = {
    "TemplateBucket.Arn": BUCKET_ARN,
    "TemplatePublisherArn": PUBLISHER,
    "AWS::Partition": "aws",
    "TenantRoleName": "StackherdExecution",
    "TenantOrganizationId": "o-abcdefghij",
    "TenantAccountIds": "111111111111",
}
TEMPLATE = f"{BUCKET_ARN}/{rendering.template_key('v1')}"
SUMMARY = f"{BUCKET_ARN}/gameserver/v1.json"


def resolve(value: Any) -> Any:
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return VALUES[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        return VALUES[".".join(value["Fn::GetAtt"])]
    if isinstance(value, dict) and "Fn::Sub" in value:
        return cfn.substitute(cfn.sub_text(value), VALUES)
    return value


def condition_holds(condition: dict[str, Any], context: dict[str, str | None]) -> bool:
    """IAM condition evaluation for the operators this policy uses (an unknown one fails the test)."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            wanted = [str(v) for v in cfn.as_list(resolve(expected))]
            if operator == "Null":
                holds = (actual is None) == (wanted == ["true"])
            elif operator == "Bool":
                holds = actual is not None and actual in wanted
            elif operator == "ArnNotEquals":
                holds = actual is None or actual not in wanted
            elif operator in ("ArnLike", "StringLike"):
                holds = actual is not None and any(cfn.iam_match(w, actual) for w in wanted)
            elif operator == "StringEquals":
                holds = actual is not None and actual in wanted
            else:
                raise AssertionError(f"no evaluator for {operator}")
            if not holds:
                return False
    return True


def matching(
    statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, str | None]
) -> Iterator[dict[str, Any]]:
    for statement in statements:
        if not any(cfn.iam_match(a, action) for a in cfn.actions(statement)):
            continue
        if not any(cfn.iam_match(r, resource) for r in (resolve(r) for r in cfn.resources(statement))):
            continue
        if condition_holds(statement.get("Condition", {}), context):
            yield statement


@pytest.fixture(scope="module")
def policy(platform: dict[str, Any]) -> list[dict[str, Any]]:
    return cfn.statements(cfn.props(platform, "TemplateBucketPolicy")["PolicyDocument"])


def denied(
    policy: list[dict[str, Any]], principal: str, action: str, resource: str, *, if_none_match: bool = False
) -> bool:
    context: dict[str, str | None] = {
        "aws:PrincipalArn": principal,
        "aws:SecureTransport": "true",
        "s3:if-none-match": "*" if if_none_match else None,
    }
    return any(s["Effect"] == "Deny" for s in matching(policy, action, resource, context))


def test_overwriting_a_published_template_is_denied_even_to_the_publisher(policy: list[dict[str, Any]]) -> None:
    # `aws s3 cp gameserver.yaml s3://<bucket>/gameserver/v1.yaml` sends no If-None-Match.
    for principal in (PUBLISHER, PLATFORM_ADMIN, WORKER):
        assert denied(policy, principal, "s3:PutObject", TEMPLATE), principal


@pytest.mark.parametrize("action", ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectTagging"])
@pytest.mark.parametrize("principal", [PLATFORM_ADMIN, WORKER, "arn:aws:iam::111111111111:role/StackherdExecution"])
def test_only_the_publisher_writes_or_deletes_templates(
    policy: list[dict[str, Any]], action: str, principal: str
) -> None:
    for resource in (TEMPLATE, SUMMARY):
        assert denied(policy, principal, action, resource, if_none_match=True), (principal, action, resource)


def test_the_publisher_publishes_new_versions_and_their_summaries(policy: list[dict[str, Any]]) -> None:
    assert not denied(policy, PUBLISHER, "s3:PutObject", TEMPLATE, if_none_match=True)
    # The summary beside a version is rewritten when the same body is published again.
    assert not denied(policy, PUBLISHER, "s3:PutObject", SUMMARY)
    assert not denied(policy, PUBLISHER, "s3:DeleteObject", TEMPLATE), "withdrawing a version stays possible"


def test_reads_are_not_denied(policy: list[dict[str, Any]]) -> None:
    for action in ("s3:GetObject", "s3:GetObjectVersion"):
        assert not denied(policy, WORKER, action, TEMPLATE)


def test_tls_only(policy: list[dict[str, Any]]) -> None:
    context: dict[str, str | None] = {"aws:PrincipalArn": PUBLISHER, "aws:SecureTransport": "false"}
    assert any(s["Effect"] == "Deny" for s in matching(policy, "s3:GetObject", TEMPLATE, context))


def test_versions_are_kept_for_the_stacks_pinned_to_them(platform: dict[str, Any]) -> None:
    bucket = cfn.props(platform, "TemplateBucket")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    # A stack's TemplateURL names a version id: expiring noncurrent versions would break its next update.
    assert "NoncurrentVersionExpiration" not in str(bucket.get("LifecycleConfiguration", {}))
    assert "Default" not in platform["Parameters"]["TemplatePublisherArn"]


@pytest.mark.integration
def test_publishing_sends_if_none_match_for_the_template(fake_aws_credentials: None) -> None:
    """The other half of NoTemplateIsOverwritten: the CLI's upload of a version is conditional, so the deny
    never stops a real publish."""
    import boto3
    from moto import mock_aws

    from reconciler.adapters.s3 import S3TemplateCatalog

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="templates")
        s3.put_bucket_versioning(Bucket="templates", VersioningConfiguration={"Status": "Enabled"})
        sent: list[tuple[str, str | None]] = []

        def record(request: Any, **_: Any) -> None:
            header = request.headers.get("If-None-Match")
            sent.append((request.url.rsplit("/", 1)[-1], header.decode() if isinstance(header, bytes) else header))

        s3.meta.events.register("before-send.s3.PutObject", record)
        catalog = S3TemplateCatalog(s3, "templates", region="us-east-1", expected_owner="123456789012")
        catalog.publish(cfn.GAMESERVER.read_bytes(), "v1", summary={"parameters": {}, "capabilities": []})
    templates = [header for key, header in sent if key.endswith(".yaml")]
    assert templates == ["*"]
