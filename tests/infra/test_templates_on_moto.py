"""The game-server template and the tenant role template deployed on moto's CloudFormation.

moto creates, updates and deletes synchronously and does not enforce AllowedValues, MinValue/MaxValue or
AllowedPattern, nor IAM; these tests prove the templates deploy, that stacks coexist and that the outputs and
resources are what the platform expects, not that CloudFormation's constraints hold (test_*_template.py do).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from models.config import GameServerConfig
from models.records import DesiredServer, Tenant
from reconciler import naming, rendering
from tests.infra import cfn

pytestmark = pytest.mark.integration

PLATFORM_ACCOUNT = "123456789012"  # moto's default account
WORKER_ROLE_ARN = f"arn:aws:iam::{PLATFORM_ACCOUNT}:role/stackherd-worker-us-east-1"
TENANT_ACCOUNT = "111111111111"
BUCKET = "stackherd-templates-test"
REGION = "us-east-1"
EXTERNAL_ID = "3f9c2a7e1b5d4c8a9e0f6b2d7c1a4e85"
#: Not named <installation>-*: the execution role may change such stacks, and must not be able to change its own.
ONBOARDING_STACK = "StackherdOnboarding"


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[Any]:
    """moto in-process, with the game-server template published as v1 in the platform's bucket."""
    from moto import mock_aws

    with mock_aws():
        import boto3

        session = boto3.Session(region_name=REGION)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=rendering.template_key("v1"), Body=cfn.GAMESERVER.read_bytes())
        yield session


def parameters(config: GameServerConfig) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(config.parameters().items())]


def outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: str(o["OutputValue"]) for o in stack.get("Outputs", [])}


def describe(client: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.describe_stacks(StackName=name)["Stacks"][0]
    return found


def tenant_session(session: Any, account: str = TENANT_ACCOUNT) -> Any:
    import boto3

    credentials = session.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/StackherdExecution",
        RoleSessionName=naming.session_name("acme"),
        ExternalId=EXTERNAL_ID,
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )


def test_two_game_servers_coexist_through_create_update_delete(aws: Any) -> None:
    cloudformation, ssm, logs = aws.client("cloudformation"), aws.client("ssm"), aws.client("logs")
    url = rendering.template_url(BUCKET, "v1")
    assert url == f"https://{BUCKET}.s3.amazonaws.com/gameserver/v1.yaml"
    first, second = naming.stack_name("stackherd", "acme", "s1"), naming.stack_name("stackherd", "acme", "s2")
    configs = {
        first: GameServerConfig(difficulty="easy", player_count=4, seed="alpha"),
        second: GameServerConfig(difficulty="hard", player_count=16, seed="beta"),
    }

    for name, config in configs.items():
        cloudformation.create_stack(StackName=name, TemplateURL=url, Parameters=parameters(config))

    for name, config in configs.items():
        stack = describe(cloudformation, name)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        out = outputs(stack)
        assert out["ConfigParameterName"] == f"/stackherd/{name}/config"
        assert out["LogGroupName"] == f"/stackherd/{name}"
        assert json.loads(out["Config"]) == config.model_dump()
        assert (out["Difficulty"], out["PlayerCount"], out["Seed"]) == (
            config.difficulty,
            str(config.player_count),
            config.seed,
        )
        resources = cloudformation.describe_stack_resources(StackName=name)["StackResources"]
        assert {(r["LogicalResourceId"], r["ResourceType"]) for r in resources} == {
            ("ConfigParameter", "AWS::SSM::Parameter"),
            ("ServerLogGroup", "AWS::Logs::LogGroup"),
        }
        assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in resources)
        value = ssm.get_parameter(Name=f"/stackherd/{name}/config")["Parameter"]["Value"]
        assert json.loads(value) == config.model_dump()
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix="/stackherd/")["logGroups"]}
    assert set(groups) == {f"/stackherd/{first}", f"/stackherd/{second}"}
    assert all(g["retentionInDays"] == 14 for g in groups.values())

    bigger = configs[first].model_copy(update={"player_count": 8})
    cloudformation.update_stack(StackName=first, TemplateURL=url, Parameters=parameters(bigger))
    stack = describe(cloudformation, first)
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs(stack)["PlayerCount"] == "8"
    assert json.loads(ssm.get_parameter(Name=f"/stackherd/{first}/config")["Parameter"]["Value"])["player_count"] == 8
    assert describe(cloudformation, second)["StackStatus"] == "CREATE_COMPLETE"
    assert json.loads(ssm.get_parameter(Name=f"/stackherd/{second}/config")["Parameter"]["Value"]) == (
        configs[second].model_dump()
    )

    cloudformation.delete_stack(StackName=first)
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=f"/stackherd/{first}/config")
    remaining = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/stackherd/")["logGroups"]]
    assert remaining == [f"/stackherd/{second}"]
    assert describe(cloudformation, second)["StackStatus"] == "CREATE_COMPLETE"
    assert ssm.get_parameter(Name=f"/stackherd/{second}/config")["Parameter"]["Value"]

    cloudformation.delete_stack(StackName=second)
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=f"/stackherd/{second}/config")
    live = [s for s in cloudformation.describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert live == []


def test_a_tenant_account_creates_a_rendered_stack_from_the_platform_bucket(aws: Any) -> None:
    tenant = Tenant(
        tenant_id="acme",
        account_id=TENANT_ACCOUNT,
        regions=(REGION,),
        role_arn=f"arn:aws:iam::{TENANT_ACCOUNT}:role/StackherdExecution",
        external_id=EXTERNAL_ID,
    )
    server = DesiredServer(
        tenant_id="acme",
        gameserver_id="s1",
        username="steve",
        config=GameServerConfig(difficulty="normal", player_count=10, seed="Seed42"),
    )
    spec = rendering.render(tenant, server, installation="stackherd", url=rendering.template_url(BUCKET, "v1"))
    in_tenant = tenant_session(aws)

    in_tenant.client("cloudformation").create_stack(
        StackName=spec.name,
        TemplateURL=spec.template_url,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(spec.parameters.items())],
        Tags=[{"Key": k, "Value": v} for k, v in sorted(spec.tags.items())],
    )

    stack = describe(in_tenant.client("cloudformation"), spec.name)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert f":{TENANT_ACCOUNT}:stack/{spec.name}/" in stack["StackId"]
    assert {t["Key"]: t["Value"] for t in stack["Tags"]} == spec.tags
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]} == spec.parameters
    assert in_tenant.client("ssm").get_parameter(Name=f"/stackherd/{spec.name}/config")["Parameter"]["Value"]
    # Nothing landed in the platform account.
    assert aws.client("cloudformation").describe_stacks()["Stacks"] == []
    assert aws.client("ssm").describe_parameters()["Parameters"] == []


def test_a_missing_parameter_is_rejected(aws: Any) -> None:
    from botocore.exceptions import ClientError

    without_seed = [p for p in parameters(GameServerConfig()) if p["ParameterKey"] != "Seed"]
    with pytest.raises(ClientError, match="Seed"):
        aws.client("cloudformation").create_stack(
            StackName="stackherd-acme-s3", TemplateURL=rendering.template_url(BUCKET, "v1"), Parameters=without_seed
        )


def test_tenant_role_template_deploys(aws: Any) -> None:
    in_tenant = tenant_session(aws)
    cloudformation = in_tenant.client("cloudformation")
    cloudformation.create_stack(
        StackName=ONBOARDING_STACK,
        TemplateBody=cfn.TENANT_ROLE.read_text(),
        Parameters=[
            {"ParameterKey": "PlatformWorkerRoleArn", "ParameterValue": WORKER_ROLE_ARN},
            {"ParameterKey": "ExternalId", "ParameterValue": EXTERNAL_ID},
            {"ParameterKey": "TemplateBucketName", "ParameterValue": BUCKET},
            {"ParameterKey": "TemplateBucketRegion", "ParameterValue": REGION},
        ],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )

    stack = describe(cloudformation, ONBOARDING_STACK)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert outputs(stack)["RoleArn"] == f"arn:aws:iam::{TENANT_ACCOUNT}:role/StackherdExecution"
    role = in_tenant.client("iam").get_role(RoleName="StackherdExecution")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"AWS": WORKER_ROLE_ARN}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    assert {"Key": "stackherd:installation", "Value": "stackherd"} in role.get("Tags", [])
    policies = in_tenant.client("iam").list_role_policies(RoleName="StackherdExecution")["PolicyNames"]
    assert policies == ["stackherd-gameserver-stacks"]
