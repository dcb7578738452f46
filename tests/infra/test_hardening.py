"""The hardened deployment, asserted on the platform template as `sam deploy` transforms it (SAM adds roles,
managed policies and event source mappings the raw template does not show): least-privilege IAM, one worker
that assumes tenant roles, concurrency the API cannot take from the workers, recoverable tables, tracing,
alarms on a topic, a Cognito pool whose tenant attribute players cannot write, and pacing on by default."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

from tests.infra import cfn

#: Services whose actions read or write data (DynamoDB and its streams, SQS, S3, Kinesis) and Lambda invocation.
DATA_PREFIXES = ("dynamodb:", "sqs:", "s3:", "kinesis:", "lambda:invoke")
WILDCARD_RESOURCE = re.compile(r"^(\*|arn:[^:]*:[^:]*:[^:]*:[^:]*:\*)$")
INTERNET_FACING = ("ApiFunction", "AdminApiFunction")
TABLES = ("TenantsTable", "GameServersTable", "ActivityTable")


def lambda_functions(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return cfn.of_type(transformed, "AWS::Lambda::Function")


def text(value: Any) -> str:
    """A resource as text: plain strings as they are, `!Sub` as its template, other intrinsics as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        return cfn.sub_text(value)
    return json.dumps(value, sort_keys=True)


def grants(transformed: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, statement)
        for name, document in cfn.policy_documents(transformed)
        for statement in cfn.statements(document)
        if statement.get("Effect") == "Allow"
    ]


def role_of(transformed: dict[str, Any], function_id: str) -> str:
    return cfn.function_role(transformed, function_id)


# --- IAM ----------------------------------------------------------------------------------------------------


#: AWS managed policies that grant stream or queue actions on "*" (what SAM attaches for event sources).
DATA_ON_EVERYTHING = (
    "AWSLambdaSQSQueueExecutionRole",
    "AWSLambdaDynamoDBExecutionRole",
    "AWSLambdaKinesisExecutionRole",
)


def test_no_statement_grants_a_data_action_on_every_resource(transformed: dict[str, Any]) -> None:
    for logical_id, role in cfn.of_type(transformed, "AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert not text(arn).endswith(DATA_ON_EVERYTHING), f"{logical_id} attaches {text(arn)}"
    checked = 0
    for name, statement in grants(transformed):
        for action in cfn.actions(statement):
            assert action != "*" and not action.endswith(":*"), f"{name}: {action}"
            if not action.lower().startswith(DATA_PREFIXES):
                continue
            checked += 1
            for resource in cfn.resources(statement):
                assert not WILDCARD_RESOURCE.match(text(resource)), f"{name} grants {action} on {text(resource)}"
    assert checked > 20, "the walk found the functions' data grants"


def test_sam_attaches_none_of_its_managed_policies(transformed: dict[str, Any]) -> None:
    # AWSLambdaSQSQueueExecutionRole and AWSLambdaDynamoDBExecutionRole grant queue and stream actions on "*".
    for logical_id, role in cfn.of_type(transformed, "AWS::IAM::Role").items():
        attached = role["Properties"].get("ManagedPolicyArns", [])
        assert attached == [{"Ref": "FunctionBasicsPolicy"}], f"{logical_id} attaches {attached}"
    assert "arn:aws:iam::aws:policy/" not in json.dumps(transformed)


def test_every_function_runs_with_a_role_of_its_own(transformed: dict[str, Any]) -> None:
    roles = [role_of(transformed, f) for f in lambda_functions(transformed)]
    assert len(roles) == len(set(roles)), roles


def test_only_the_worker_may_assume_roles_and_only_tenant_roles(transformed: dict[str, Any]) -> None:
    worker_role = role_of(transformed, "WorkerFunction")
    assuming = []
    for name, statement in grants(transformed):
        for action in cfn.actions(statement):
            if action.lower().startswith("sts:") or action.lower() == "iam:passrole":
                assuming.append(name)
                assert name == f"{worker_role}/worker", f"{name} may {action}; only the worker assumes roles"
                assert action == "sts:AssumeRole"
                assert [text(r) for r in cfn.resources(statement)] == [
                    "arn:${AWS::Partition}:iam::*:role/${TenantRoleName}"
                ]
    assert len(assuming) == 2, "the worker assumes tenant roles (one statement per RequireTenantRoleTag branch)"


@pytest.mark.parametrize("function_id", INTERNET_FACING)
def test_internet_facing_functions_cannot_assume_roles_or_touch_stacks(
    transformed: dict[str, Any], function_id: str
) -> None:
    for statement in cfn.role_statements(transformed, role_of(transformed, function_id)):
        for action in cfn.actions(statement):
            assert not action.startswith(("sts:", "iam:", "cloudformation:")), f"{function_id}: {action}"


def test_functions_invoke_only_the_worker_or_hand_on_to_themselves(transformed: dict[str, Any]) -> None:
    for name, statement in grants(transformed):
        for action in cfn.actions(statement):
            if action.startswith("lambda:"):
                assert action == "lambda:InvokeFunction", f"{name}: {action}"
                for resource in cfn.resources(statement):
                    assert resource == {"Fn::GetAtt": ["WorkerFunction", "Arn"]} or text(resource).endswith(
                        ":function:${Installation}-sweep"
                    ), f"{name} invokes {text(resource)}"


def test_event_sources_read_only_their_own_stream_and_queues(transformed: dict[str, Any]) -> None:
    sources = {}
    for mapping in cfn.of_type(transformed, "AWS::Lambda::EventSourceMapping").values():
        props = mapping["Properties"]
        sources[props["FunctionName"]["Ref"]] = props["EventSourceArn"]
    assert sources == {
        "WorkerFunction": {"Fn::GetAtt": ["WorkQueue", "Arn"]},
        "RequeueFunction": {"Fn::GetAtt": ["RequeueQueue", "Arn"]},
        "StreamFunction": {"Fn::GetAtt": ["GameServersTable", "StreamArn"]},
    }
    for function_id, source in sources.items():
        statements = cfn.role_statements(transformed, role_of(transformed, function_id))
        if function_id == "StreamFunction":
            reads = [s for s in statements if "dynamodb:GetRecords" in cfn.actions(s)]
            assert [text(r) for s in reads for r in cfn.resources(s)] == ["${GameServersTable.Arn}/stream/*"]
        else:
            receives = [s for s in statements if "sqs:ReceiveMessage" in cfn.actions(s)]
            assert [r for s in receives for r in cfn.resources(s)] == [source]


# --- the work queue and concurrency ---------------------------------------------------------------------------


def worker_mapping(transformed: dict[str, Any]) -> dict[str, Any]:
    (mapping,) = [
        m["Properties"]
        for m in cfn.of_type(transformed, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": "WorkerFunction"}
    ]
    return mapping


def test_worker_consumes_the_fifo_work_queue_with_partial_failures(transformed: dict[str, Any]) -> None:
    mapping = worker_mapping(transformed)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == {"Ref": "WorkerBatchSize"}
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    assert "MaximumBatchingWindowInSeconds" not in mapping, "FIFO event sources take no batching window"
    parameters = transformed["Parameters"]
    assert (parameters["WorkerBatchSize"]["Default"], parameters["WorkerBatchSize"]["MaxValue"]) == (10, 10)
    assert parameters["WorkerMaxConcurrency"]["Default"] == 50

    queue = cfn.props(transformed, "WorkQueue")
    assert cfn.sub_text(queue["QueueName"]) == "${Installation}-work.fifo"
    assert queue["FifoQueue"] is True
    # A trigger after a pass claimed the tenant must not be dropped as a duplicate of the consumed message.
    assert queue["ContentBasedDeduplication"] is False
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["WorkDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "WorkMaxReceiveCount"},
    }
    assert parameters["WorkMaxReceiveCount"]["Default"] == 5
    dlq = cfn.props(transformed, "WorkDeadLetterQueue")
    assert cfn.sub_text(dlq["QueueName"]) == "${Installation}-work-dlq.fifo"
    assert dlq["FifoQueue"] is True
    worker = lambda_functions(transformed)["WorkerFunction"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"], "Lambda's advice for SQS event sources"


def test_api_floods_cannot_starve_the_workers(transformed: dict[str, Any]) -> None:
    functions = {k: v["Properties"] for k, v in lambda_functions(transformed).items()}
    parameters = transformed["Parameters"]

    def default(value: Any) -> int:
        return int(parameters[value["Ref"]]["Default"]) if isinstance(value, dict) else int(value)

    for function_id in INTERNET_FACING:
        assert "ReservedConcurrentExecutions" in functions[function_id], f"{function_id} is unbounded"
    # The worker's share is reserved: no other function can take it, and it covers the queue's fan-out.
    worker_reserved = default(functions["WorkerFunction"]["ReservedConcurrentExecutions"])
    assert worker_reserved > default(worker_mapping(transformed)["ScalingConfig"]["MaximumConcurrency"])
    assert parameters["WorkerReservedConcurrency"]["MinValue"] > parameters["WorkerMaxConcurrency"]["MinValue"]
    reserved = sum(
        default(p["ReservedConcurrentExecutions"]) for p in functions.values() if "ReservedConcurrentExecutions" in p
    )
    assert reserved <= 900, "a region's default 1,000 must keep 100 unreserved"


# --- data, tracing, pacing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_every_table_has_point_in_time_recovery_and_deletion_protection(
    transformed: dict[str, Any], table: str
) -> None:
    assert set(cfn.of_type(transformed, "AWS::DynamoDB::Table")) == set(TABLES)
    props = cfn.props(transformed, table)
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] is True


def test_every_function_traces_actively(transformed: dict[str, Any]) -> None:
    functions = lambda_functions(transformed)
    assert len(functions) == 7
    for function_id, function in functions.items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, function_id
        statements = cfn.role_statements(transformed, role_of(transformed, function_id))
        assert any("xray:PutTraceSegments" in cfn.actions(s) for s in statements), function_id


def handler_modules(platform: dict[str, Any]) -> dict[str, str]:
    return {
        p["Properties"]["Handler"].rpartition(".")[0]: logical_id
        for logical_id, p in cfn.of_type(platform, "AWS::Serverless::Function").items()
    }


@pytest.mark.parametrize(
    "module",
    ["handlers.worker", "handlers.stream", "handlers.sweep", "handlers.requeue", "handlers.admin", "handlers.api.app"],
)
def test_every_lambda_handler_is_traced(platform: dict[str, Any], module: str) -> None:
    assert module in handler_modules(platform)
    path = cfn.ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert path.exists(), f"the template names {module}, but {path.relative_to(cfn.ROOT)} does not exist"
    (handler,) = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "handler"]
    decorators = [ast.unparse(d) for d in handler.decorator_list]
    assert any(d.startswith("tracer.capture_lambda_handler") for d in decorators), (module, decorators)


def test_pacing_is_on_by_default(platform: dict[str, Any]) -> None:
    from models.settings import Settings

    parameter = platform["Parameters"]["AccountCallsPerSecond"]
    assert parameter["Default"] == 2
    assert parameter["MinValue"] > 0, "pacing cannot be switched off by a zero"
    env = platform["Globals"]["Function"]["Environment"]["Variables"]
    assert env["STACKHERD_ACCOUNT_CALLS_PER_SECOND"] == {"Ref": "AccountCallsPerSecond"}
    settings = Settings.from_env({"STACKHERD_ACCOUNT_CALLS_PER_SECOND": str(parameter["Default"])})
    assert settings.account_calls_per_second == 2


# --- alarms ---------------------------------------------------------------------------------------------------


def alarms(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in cfn.of_type(transformed, "AWS::CloudWatch::Alarm").items()}


def test_every_alarm_notifies_the_topic_parameter(transformed: dict[str, Any]) -> None:
    assert "Default" not in transformed["Parameters"]["AlarmTopicArn"], "alarms nobody receives are no alarms"
    for logical_id, alarm in alarms(transformed).items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopicArn"}], logical_id
        assert alarm["OKActions"] == [{"Ref": "AlarmTopicArn"}], logical_id


@pytest.mark.parametrize(
    ("namespace", "metric", "dimension"),
    [
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            ("QueueName", {"Fn::GetAtt": ["WorkDeadLetterQueue", "QueueName"]}),
        ),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            ("QueueName", {"Fn::GetAtt": ["StreamDeadLetterQueue", "QueueName"]}),
        ),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            ("QueueName", {"Fn::GetAtt": ["RequeueDeadLetterQueue", "QueueName"]}),
        ),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", ("QueueName", {"Fn::GetAtt": ["WorkQueue", "QueueName"]})),
        ("AWS/Lambda", "Errors", ("FunctionName", {"Ref": "WorkerFunction"})),
        ("AWS/ApiGateway", "5xx", ("ApiId", {"Ref": "HttpApi"})),
        ("Stackherd", "TenantPassFailures", ("service", "stackherd")),
        ("Stackherd", "TenantsQuarantined", ("service", "stackherd")),
        ("Stackherd", "RolloutsHalted", ("service", "stackherd")),
    ],
)
def test_alarm_watches(transformed: dict[str, Any], namespace: str, metric: str, dimension: tuple[str, Any]) -> None:
    name, value = dimension
    watching = [
        a
        for a in alarms(transformed).values()
        if a["Namespace"] == namespace
        and a["MetricName"] == metric
        and a["Dimensions"] == [{"Name": name, "Value": value}]
    ]
    assert len(watching) == 1, (namespace, metric, dimension)
    (alarm,) = watching
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


def test_custom_metric_alarms_use_the_powertools_namespace_and_service(platform: dict[str, Any]) -> None:
    # Powertools Metrics publishes under POWERTOOLS_METRICS_NAMESPACE with a `service` dimension.
    env = platform["Globals"]["Function"]["Environment"]["Variables"]
    for alarm in cfn.of_type(platform, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if not props["Namespace"].startswith("AWS/"):
            assert props["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
            assert props["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]


# --- identity -------------------------------------------------------------------------------------------------


def test_players_can_never_write_their_tenant(transformed: dict[str, Any]) -> None:
    pool = cfn.props(transformed, "UserPool")
    (attribute,) = [a for a in pool["Schema"] if a["Name"] == "tenant_id"]
    assert attribute["AttributeDataType"] == "String"
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    clients = cfn.of_type(transformed, "AWS::Cognito::UserPoolClient")
    assert list(clients) == ["UserPoolClient"]
    client = clients["UserPoolClient"]["Properties"]
    assert client["UserPoolId"] == {"Ref": "UserPool"}
    # Left out, WriteAttributes would default to every attribute, custom:tenant_id included.
    assert "WriteAttributes" in client
    assert "custom:tenant_id" not in client["WriteAttributes"]
    assert "custom:tenant_id" in client["ReadAttributes"], "the API reads it from the ID token"


def test_admins_group_is_the_one_the_api_checks(transformed: dict[str, Any]) -> None:
    from handlers.api import identity

    (group,) = cfn.of_type(transformed, "AWS::Cognito::UserPoolGroup").values()
    assert group["Properties"]["UserPoolId"] == {"Ref": "UserPool"}
    assert group["Properties"]["GroupName"] == identity.ADMIN_GROUP == "admins"


def test_the_api_authorizer_trusts_this_user_pool_only(transformed: dict[str, Any]) -> None:
    body = transformed["Resources"]["HttpApi"]["Properties"]["Body"]
    scheme = body["components"]["securitySchemes"]["PlayerJwt"]
    jwt = scheme["x-amazon-apigateway-authorizer"]["jwtConfiguration"]
    assert jwt == {
        "issuer": {"Fn::Sub": "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${UserPool}"},
        "audience": [{"Ref": "UserPoolClient"}],
    }
    assert "JwtIssuer" not in transformed["Parameters"], "no issuer from outside the application"
