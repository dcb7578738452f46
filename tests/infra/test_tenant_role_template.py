"""infra/sam/tenant-role.yaml: the role a tenant deploys trusts only the platform's worker role with the tenant's
external id, can read and manage only the installation's game-server stacks (listing aside) and what their
resources need, and deploys only templates from the platform bucket's gameserver/ prefix."""

from __future__ import annotations

import re
from typing import Any

import pytest

from reconciler import naming, rendering
from tests.infra import cfn

TENANT_ACCOUNT = "111111111111"
VALUES = {
    "AWS::Partition": "aws",
    "AWS::AccountId": TENANT_ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "Installation": "stackherd",
    "TemplateBucketName": "stackherd-templates-222222222222-us-east-1",
    "TemplateBucketRegion": "us-east-1",
    "PlatformWorkerRoleArn": "arn:aws:iam::222222222222:role/stackherd-worker-us-east-1",
}
BUCKET = VALUES["TemplateBucketName"]
OTHER_STACK = f"arn:aws:cloudformation:eu-west-1:{TENANT_ACCOUNT}:stack/payments-prod/0f3c7a10"

#: What gameserver.yaml's resource types need, as (IAM service prefix, ARN of one such resource in the tenant account).
NEEDED_BY_GAMESERVER = {
    "AWS::SSM::Parameter": (
        "ssm",
        f"arn:aws:ssm:eu-west-1:{TENANT_ACCOUNT}:parameter/stackherd/stackherd-acme-s1/config",
    ),
    "AWS::Logs::LogGroup": ("logs", f"arn:aws:logs:eu-west-1:{TENANT_ACCOUNT}:log-group:/stackherd/stackherd-acme-s1"),
}


def role(tenant_role: dict[str, Any]) -> dict[str, Any]:
    roles = cfn.of_type(tenant_role, "AWS::IAM::Role")
    assert len(roles) == 1
    return next(iter(roles.values()))["Properties"]


def permission_statements(tenant_role: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in role(tenant_role)["Policies"]:
        found.extend(cfn.statements(policy["PolicyDocument"]))
    assert all(s["Effect"] == "Allow" for s in found)
    return found


def granting(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if any(cfn.iam_match(a, action) for a in cfn.actions(s))]


def resolved(statement: dict[str, Any]) -> list[str]:
    return [cfn.substitute(cfn.sub_text(r), VALUES) for r in cfn.resources(statement)]


def allows(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    return any(any(cfn.iam_match(r, arn) for r in resolved(s)) for s in granting(statements, action))


def test_role_name_defaults_to_stackherd_execution(tenant_role: dict[str, Any]) -> None:
    assert cfn.parameter_default(tenant_role, "RoleName") == "StackherdExecution"
    assert role(tenant_role)["RoleName"] == {"Ref": "RoleName"}


def test_trust_is_only_the_worker_role_with_the_external_id(tenant_role: dict[str, Any]) -> None:
    trust = cfn.statements(role(tenant_role)["AssumeRolePolicyDocument"])
    assert len(trust) == 1
    (statement,) = trust
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"
    # Not the platform account's root: no other principal of the platform account may assume the role.
    assert statement["Principal"] == {"AWS": {"Ref": "PlatformWorkerRoleArn"}}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    for name in ("PlatformWorkerRoleArn", "ExternalId", "TemplateBucketRegion"):
        assert "Default" not in tenant_role["Parameters"][name], f"{name} must be given by the tenant"


def test_trusted_role_is_the_platforms_worker_role(tenant_role: dict[str, Any], platform: dict[str, Any]) -> None:
    name = cfn.substitute(
        cfn.sub_text(cfn.props(platform, "WorkerRole")["RoleName"]),
        {"Installation": "stackherd", "AWS::Region": "ap-southeast-2"},
    )
    assert len(name) <= 64
    pattern = tenant_role["Parameters"]["PlatformWorkerRoleArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, f"arn:aws:iam::222222222222:role/{name}")
    assert not re.fullmatch(pattern, "arn:aws:iam::222222222222:root"), "an account is not the worker"
    assert platform["Outputs"]["WorkerRoleArn"]["Value"] == {"Fn::GetAtt": ["WorkerRole", "Arn"]}
    worker = cfn.resource(platform, "WorkerFunction")["Properties"]["Role"]
    assert worker == {"Fn::GetAtt": ["WorkerRole", "Arn"]}


def test_external_id_must_hold_128_bits(tenant_role: dict[str, Any]) -> None:
    external_id = tenant_role["Parameters"]["ExternalId"]
    # 128 bits in the allowed alphabet (URL-safe base64 at 6 bits a character) need 22 characters.
    assert external_id["MinLength"] >= 22


def test_role_is_tagged_for_the_platforms_assume_condition(
    tenant_role: dict[str, Any], platform: dict[str, Any]
) -> None:
    tags = {t["Key"]: t["Value"] for t in role(tenant_role)["Tags"]}
    assert tags == {"stackherd:installation": {"Ref": "Installation"}}
    assume = [
        s
        for s in cfn.role_statements(platform, "WorkerRole")
        if "sts:AssumeRole" in cfn.actions(s) and "Condition" in s
    ]
    assert assume, "the platform pins the tag when RequireTenantRoleTag is true"
    assert assume[0]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/stackherd:installation": {"Ref": "Installation"}}
    }


@pytest.mark.parametrize(
    "action",
    [
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",
        "cloudformation:DescribeStacks",
        "cloudformation:ContinueUpdateRollback",
        "cloudformation:ListStackResources",
        "cloudformation:TagResource",
    ],
)
def test_reconciler_actions_are_allowed_on_its_stacks(tenant_role: dict[str, Any], action: str) -> None:
    name = naming.stack_name("stackherd", "acme", "s1")
    arn = f"arn:aws:cloudformation:eu-west-1:{TENANT_ACCOUNT}:stack/{name}/0f3c7a10-0000-0000-0000-000000000000"
    assert allows(permission_statements(tenant_role), action, arn)


@pytest.mark.parametrize(
    "action", ["cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:DeleteStack"]
)
def test_other_stacks_cannot_be_changed(tenant_role: dict[str, Any], action: str) -> None:
    for arn in (
        f"arn:aws:cloudformation:eu-west-1:{TENANT_ACCOUNT}:stack/payments-prod/0f3c7a10",
        "arn:aws:cloudformation:eu-west-1:333333333333:stack/stackherd-acme-s1/0f3c7a10",
        # The onboarding stack that holds this very role (docs/deployment.md names it so).
        f"arn:aws:cloudformation:eu-west-1:{TENANT_ACCOUNT}:stack/StackherdOnboarding/0f3c7a10",
    ):
        assert not allows(permission_statements(tenant_role), action, arn), arn


def test_only_the_listing_has_a_wildcard_resource(tenant_role: dict[str, Any]) -> None:
    for statement in permission_statements(tenant_role):
        if "*" in cfn.resources(statement):
            assert cfn.actions(statement) == ["cloudformation:ListStacks"]


@pytest.mark.parametrize(
    "action",
    [
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
        "cloudformation:DescribeStackResources",
        "cloudformation:GetTemplate",
        "cloudformation:GetTemplateSummary",
        "cloudformation:ListStackResources",
    ],
)
def test_tenant_role_cannot_read_other_stacks(tenant_role: dict[str, Any], action: str) -> None:
    # Parameters and outputs of the tenant's own stacks are none of the platform's business.
    assert not allows(permission_statements(tenant_role), action, OTHER_STACK)
    assert not any(
        cfn.iam_match(a, action)
        for s in permission_statements(tenant_role)
        if "*" in cfn.resources(s)
        for a in cfn.actions(s)
    )


def test_the_comment_on_the_listing_tells_what_it_reads() -> None:
    text = cfn.TENANT_ROLE.read_text()
    assert "metadata only" not in text
    comment = text[: text.index("Sid: ListStacks")].rsplit("- Sid:", 1)[1]
    for said in ("every stack in the account", "not their parameters, outputs", "describes by name only"):
        assert said in comment, said


def test_no_wildcard_actions_and_no_iam(tenant_role: dict[str, Any]) -> None:
    for statement in permission_statements(tenant_role):
        for action in cfn.actions(statement):
            assert "*" not in action, action
            assert not action.startswith(("iam:", "sts:")), f"{action} would let a stolen session escalate"


def template_url_patterns(tenant_role: dict[str, Any], action: str) -> list[str]:
    found = []
    for statement in granting(permission_statements(tenant_role), action):
        condition = statement["Condition"]
        assert set(condition) == {"StringLike"}, condition
        found.extend(
            cfn.substitute(cfn.sub_text(p), VALUES)
            for p in cfn.as_list(condition["StringLike"]["cloudformation:TemplateUrl"])
        )
    assert found, action
    return found


@pytest.mark.parametrize("action", ["cloudformation:CreateStack", "cloudformation:UpdateStack"])
@pytest.mark.parametrize(
    "url",
    [
        rendering.template_url(BUCKET, "v1"),
        rendering.template_url(BUCKET, "v1", "us-east-1"),
        rendering.template_url(BUCKET, "v1", "us-east-1") + "?versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
    ],
)
def test_create_and_update_from_the_template_bucket(tenant_role: dict[str, Any], action: str, url: str) -> None:
    assert any(cfn.iam_match(p, url) for p in template_url_patterns(tenant_role, action)), url


@pytest.mark.parametrize("action", ["cloudformation:CreateStack", "cloudformation:UpdateStack"])
@pytest.mark.parametrize(
    "url",
    [
        "https://evil.s3.amazonaws.com/gameserver/v1.yaml",
        # Hosts the old `<bucket>.s3.*.amazonaws.com` pattern matched.
        f"https://{BUCKET}.s3.attacker.s3.amazonaws.com/gameserver/v1.yaml",
        f"https://{BUCKET}.s3.evil-bucket.s3.us-east-1.amazonaws.com/gameserver/v1.yaml",
        f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/gameserver/v1.yaml",
        f"https://{BUCKET}.s3.amazonaws.com.attacker.example/gameserver/v1.yaml",
        f"https://{BUCKET}.s3-external-1.amazonaws.com/gameserver/v1.yaml",
        f"http://{BUCKET}.s3.amazonaws.com/gameserver/v1.yaml",
        # Paths outside gameserver/ as the first segment.
        f"https://{BUCKET}.s3.amazonaws.com/uploads/gameserver/v1.yaml",
        f"https://{BUCKET}.s3.us-east-1.amazonaws.com/x/gameserver/v1.yaml",
        f"https://{BUCKET}.s3.amazonaws.com/gameserverx/v1.yaml",
    ],
)
def test_template_url_condition_rejects_lookalike_hosts_and_other_paths(
    tenant_role: dict[str, Any], action: str, url: str
) -> None:
    assert not any(cfn.iam_match(p, url) for p in template_url_patterns(tenant_role, action)), url


def test_role_can_read_published_templates(tenant_role: dict[str, Any]) -> None:
    key = rendering.template_key("v7")
    arn = f"arn:aws:s3:::{VALUES['TemplateBucketName']}/{key}"
    assert allows(permission_statements(tenant_role), "s3:GetObject", arn)
    assert allows(permission_statements(tenant_role), "s3:GetObjectVersion", arn), "pinned URLs name a version"
    assert not allows(permission_statements(tenant_role), "s3:GetObject", f"arn:aws:s3:::other-bucket/{key}")


@pytest.mark.parametrize(
    "action",
    ["ssm:PutParameter", "ssm:DeleteParameter", "ssm:GetParameters", "ssm:AddTagsToResource"],
)
def test_role_can_manage_game_server_parameters(tenant_role: dict[str, Any], action: str) -> None:
    arn = NEEDED_BY_GAMESERVER["AWS::SSM::Parameter"][1]
    assert allows(permission_statements(tenant_role), action, arn)
    assert not allows(
        permission_statements(tenant_role), action, f"arn:aws:ssm:eu-west-1:{TENANT_ACCOUNT}:parameter/prod/db-password"
    )


@pytest.mark.parametrize(
    "action", ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:TagResource"]
)
def test_role_can_manage_game_server_log_groups(tenant_role: dict[str, Any], action: str) -> None:
    arn = NEEDED_BY_GAMESERVER["AWS::Logs::LogGroup"][1]
    assert allows(permission_statements(tenant_role), action, arn)
    assert not allows(
        permission_statements(tenant_role), action, f"arn:aws:logs:eu-west-1:{TENANT_ACCOUNT}:log-group:/aws/x"
    )


def test_every_game_server_resource_type_is_covered(tenant_role: dict[str, Any], gameserver: dict[str, Any]) -> None:
    statements = permission_statements(tenant_role)
    for logical_id, res in gameserver["Resources"].items():
        assert res["Type"] in NEEDED_BY_GAMESERVER, f"{logical_id}: grant {res['Type']} in tenant-role.yaml"
        service, arn = NEEDED_BY_GAMESERVER[res["Type"]]
        granted = [s for s in statements if any(a.startswith(f"{service}:") for a in cfn.actions(s))]
        assert any(any(cfn.iam_match(r, arn) for r in resolved(s)) for s in granted), logical_id


def test_installation_pattern_matches_the_platform(tenant_role: dict[str, Any], platform: dict[str, Any]) -> None:
    for name in ("Installation",):
        assert tenant_role["Parameters"][name]["AllowedPattern"] == platform["Parameters"][name]["AllowedPattern"]
        assert cfn.parameter_default(tenant_role, name) == cfn.parameter_default(platform, name) == "stackherd"
    assert cfn.parameter_default(tenant_role, "RoleName") == cfn.parameter_default(platform, "TenantRoleName")
