"""infra/sam/template.yaml: the tables, event sources, schedules, queues, alarms and permissions the control
plane's code relies on."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

from models import tables
from tests.infra import cfn

FUNCTIONS = {
    "WorkerFunction": "handlers.worker.handler",
    "StreamFunction": "handlers.stream.handler",
    "SweepFunction": "handlers.sweep.handler",
    "AdminFunction": "handlers.admin.handler",
    "ApiFunction": "handlers.api.app.handler",
    "AdminApiFunction": "handlers.api.app.handler",
    "RequeueFunction": "handlers.requeue.handler",
}
#: Functions that enqueue work for the worker (coalescing on the tenants table's work items).
PRODUCERS = ("StreamFunction", "SweepFunction", "AdminFunction", "RequeueFunction", "AdminApiFunction")
TABLES = ("TenantsTable", "GameServersTable", "ActivityTable")
REQUIRED_ENV = {
    "STACKHERD_TENANTS_TABLE": {"Ref": "TenantsTable"},
    "STACKHERD_GAMESERVERS_TABLE": {"Ref": "GameServersTable"},
    "STACKHERD_ACTIVITY_TABLE": {"Ref": "ActivityTable"},
    "STACKHERD_TEMPLATE_BUCKET": {"Ref": "TemplateBucket"},
    "STACKHERD_INSTALLATION": {"Ref": "Installation"},
    "STACKHERD_REQUEUE_QUEUE_URL": {"Ref": "RequeueQueue"},
    "STACKHERD_WORK_QUEUE_URL": {"Ref": "WorkQueue"},
    "STACKHERD_WORKER_FUNCTION": {"Fn::Sub": "${Installation}-worker"},
    "STACKHERD_TENANT_ROLE_NAME": {"Ref": "TenantRoleName"},
    "STACKHERD_ACCOUNT_CALLS_PER_SECOND": {"Ref": "AccountCallsPerSecond"},
    "STACKHERD_CLIENT_CACHE_SIZE": {"Ref": "ClientCacheSize"},
    "POWERTOOLS_SERVICE_NAME": "stackherd",
    "POWERTOOLS_METRICS_NAMESPACE": "Stackherd",
}
XRAY_WRITES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
#: What every function's role has for its own logs and traces (FunctionBasicsPolicy).
BASICS = {"logs:CreateLogStream", "logs:PutLogEvents", *XRAY_WRITES}
DYNAMO_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


def function(platform: dict[str, Any], logical_id: str) -> dict[str, Any]:
    res = cfn.resource(platform, logical_id)
    assert res["Type"] == "AWS::Serverless::Function"
    found: dict[str, Any] = res["Properties"]
    return found


def only_event(platform: dict[str, Any], logical_id: str, type_: str) -> dict[str, Any]:
    events = function(platform, logical_id).get("Events", {})
    assert len(events) == 1, f"{logical_id} has events {sorted(events)}"
    (event,) = events.values()
    assert event["Type"] == type_
    found: dict[str, Any] = event["Properties"]
    return found


def table_arn_refs(statement: dict[str, Any]) -> set[str]:
    """The logical ids of the tables a statement's resources name (`!GetAtt T.Arn` or `!Sub "${T.Arn}/..."`)."""
    found = set()
    for item in cfn.resources(statement):
        if isinstance(item, dict) and "Fn::GetAtt" in item:
            found.add(item["Fn::GetAtt"][0])
        else:
            found.update(re.findall(r"\$\{(\w+)\.Arn\}", cfn.sub_text(item)))
    return found


# --- shape --------------------------------------------------------------------------------------------------


def test_is_a_sam_template(platform: dict[str, Any]) -> None:
    assert platform["Transform"] == "AWS::Serverless-2016-10-31"


def test_globals(platform: dict[str, Any]) -> None:
    globals_ = platform["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12"
    assert (cfn.SAM_DIR / globals_["CodeUri"]).resolve() == cfn.ROOT / "build" / "lambda", "make package's output"
    env = globals_["Environment"]["Variables"]
    for name, value in REQUIRED_ENV.items():
        assert env.get(name) == value, name


def test_default_table_names_are_the_code_defaults(platform: dict[str, Any]) -> None:
    installation = cfn.parameter_default(platform, "Installation")
    expected = {
        "TenantsTable": tables.DEFAULT_TENANTS_TABLE,
        "GameServersTable": tables.DEFAULT_GAMESERVERS_TABLE,
        "ActivityTable": tables.DEFAULT_ACTIVITY_TABLE,
    }
    for logical_id, name in expected.items():
        text = cfn.sub_text(cfn.props(platform, logical_id)["TableName"])
        assert cfn.substitute(text, {"Installation": installation}) == name


def test_installation_pattern_agrees_with_the_runtime_settings(platform: dict[str, Any]) -> None:
    runtime = pytest.importorskip("handlers.runtime", reason="handlers/runtime.py is not present yet")
    pattern = platform["Parameters"]["Installation"]["AllowedPattern"]
    for name in ("stackherd", "prod2", "a", "x" * 20, "x" * 21, "Stackherd", "stack-herd", "2fast"):
        accepted_by_template = re.fullmatch(pattern, name) is not None
        try:
            runtime.Settings.from_env({"STACKHERD_INSTALLATION": name})
            accepted_by_runtime = True
        except runtime.SettingsError:
            accepted_by_runtime = False
        assert accepted_by_template == accepted_by_runtime, name


# --- data ---------------------------------------------------------------------------------------------------


def key_schema(properties: dict[str, Any]) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in properties["KeySchema"]}


def test_tenants_table(platform: dict[str, Any]) -> None:
    props = cfn.props(platform, "TenantsTable")
    assert key_schema(props) == {"HASH": "tenant_id"}
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_gameservers_table_streams_new_and_old_images(platform: dict[str, Any]) -> None:
    props = cfn.props(platform, "GameServersTable")
    assert key_schema(props) == {"HASH": "tenant_id", "RANGE": "gameserver_id"}
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_activity_table_expires_items(platform: dict[str, Any]) -> None:
    props = cfn.props(platform, "ActivityTable")
    assert key_schema(props) == {"HASH": "server_key", "RANGE": "at"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_key_attributes_match_the_models(platform: dict[str, Any]) -> None:
    for logical_id, model in (
        ("TenantsTable", tables.TenantModel),
        ("GameServersTable", tables.GameServerModel),
        ("ActivityTable", tables.ActivityModel),
    ):
        expected = {
            ("HASH" if a.is_hash_key else "RANGE"): a.attr_name
            for a in model.get_attributes().values()
            if a.is_hash_key or a.is_range_key
        }
        assert key_schema(cfn.props(platform, logical_id)) == expected, logical_id


def test_worker_function_name_matches_its_environment_variable(platform: dict[str, Any]) -> None:
    assert function(platform, "WorkerFunction")["FunctionName"] == REQUIRED_ENV["STACKHERD_WORKER_FUNCTION"]


def test_stateful_resources_are_retained(platform: dict[str, Any]) -> None:
    for logical_id in (*TABLES, "TemplateBucket", "UserPool"):
        res = cfn.resource(platform, logical_id)
        assert res.get("DeletionPolicy") == "Retain", logical_id
        assert res.get("UpdateReplacePolicy") == "Retain", logical_id


# --- template bucket ----------------------------------------------------------------------------------------


def test_template_bucket_is_versioned_and_private(platform: dict[str, Any]) -> None:
    props = cfn.props(platform, "TemplateBucket")
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_bucket_policy_shares_templates_with_tenant_roles_only(platform: dict[str, Any]) -> None:
    props = cfn.props(platform, "TemplateBucketPolicy")
    assert props["Bucket"] == {"Ref": "TemplateBucket"}
    allows = [s for s in cfn.statements(props["PolicyDocument"]) if s["Effect"] == "Allow"]
    assert len(allows) == 2, "one statement for an organization, one for a list of accounts"
    for statement in allows:
        # GetObjectVersion: stacks deploy a pinned TemplateURL (?versionId=...).
        assert cfn.actions(statement) == ["s3:GetObject", "s3:GetObjectVersion"]
        assert [cfn.sub_text(r) for r in cfn.resources(statement)] == ["${TemplateBucket.Arn}/gameserver/*"]
        assert statement["Condition"]["ArnLike"]["aws:PrincipalArn"] == {
            "Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${TenantRoleName}"
        }
    by_sid = {s["Sid"]: s for s in allows}
    organization = by_sid["TenantOrganizationReadsTemplates"]
    assert organization["Principal"] == "*"
    # One condition for any number of accounts: the read grant does not grow with the tenants.
    assert organization["Condition"]["StringEquals"] == {"aws:PrincipalOrgID": {"Ref": "TenantOrganizationId"}}
    assert by_sid["TenantAccountsReadTemplates"]["Principal"] == {"AWS": {"Ref": "TenantAccountIds"}}


# --- functions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("logical_id", "handler"), FUNCTIONS.items())
def test_handler_paths(platform: dict[str, Any], logical_id: str, handler: str) -> None:
    assert function(platform, logical_id)["Handler"] == handler
    module, _, attribute = handler.rpartition(".")
    path = cfn.ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert path.exists(), f"the template names {module}, but {path.relative_to(cfn.ROOT)} does not exist"
    tree = ast.parse(path.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert attribute in names, f"{path.relative_to(cfn.ROOT)} defines no top-level {attribute!r}"


def test_lambda_package_has_its_dependencies() -> None:
    # `sam build` installs what requirements.txt in CodeUri lists; without it the functions ship without
    # PynamoDB, pydantic or Powertools.
    requirements = cfn.ROOT / "requirements.txt"
    assert requirements.exists(), "requirements.txt is missing from the repository root: sam build packages nothing"
    listed = {
        re.split(r"[<>=~!\[; ]", line.strip(), maxsplit=1)[0].lower() for line in requirements.read_text().splitlines()
    }
    for needed in ("pynamodb", "pydantic", "aws-lambda-powertools", "deepdiff"):
        assert needed in listed, needed
    import tomllib

    declared = tomllib.loads((cfn.ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line.strip() for line in requirements.read_text().splitlines()]
    pinned = [line for line in lines if line and not line.startswith("#")]
    assert sorted(pinned) == sorted(declared), "requirements.txt must list exactly pyproject's [project.dependencies]"


def test_stream_event_source(platform: dict[str, Any]) -> None:
    event = only_event(platform, "StreamFunction", "DynamoDB")
    assert event["Stream"] == {"Fn::GetAtt": ["GameServersTable", "StreamArn"]}
    assert event["StartingPosition"] == "LATEST"
    assert event["BatchSize"] == 100
    assert "MaximumBatchingWindowInSeconds" in event
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["BisectBatchOnFunctionError"] is True
    assert "MaximumRetryAttempts" in event
    # Status-only changes are filtered in code: a FilterCriteria here could not compare old and new images.
    assert "FilterCriteria" not in event
    destination = event["DestinationConfig"]["OnFailure"]
    assert destination["Type"] == "SQS"
    assert destination["Destination"] == {"Fn::GetAtt": ["StreamDeadLetterQueue", "Arn"]}
    assert cfn.resource(platform, "StreamDeadLetterQueue")["Type"] == "AWS::SQS::Queue"


def test_sweep_runs_on_a_schedule_one_at_a_time(platform: dict[str, Any]) -> None:
    props = function(platform, "SweepFunction")
    assert props["Timeout"] <= 900
    assert props["ReservedConcurrentExecutions"] == 1
    event = only_event(platform, "SweepFunction", "Schedule")
    assert event["Schedule"] == {"Ref": "SweepSchedule"}
    assert cfn.parameter_default(platform, "SweepSchedule") == "rate(5 minutes)"
    # A throttled overlapping tick must be dropped, not retried for hours.
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert props["EventInvokeConfig"]["MaximumEventAgeInSeconds"] <= 300


def test_requeue_queue_feeds_the_requeue_function(platform: dict[str, Any]) -> None:
    event = only_event(platform, "RequeueFunction", "SQS")
    assert event["Queue"] == {"Fn::GetAtt": ["RequeueQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = cfn.props(platform, "RequeueQueue")
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["RequeueDeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * function(platform, "RequeueFunction")["Timeout"]
    # Delayed messages wait up to 900 seconds before they are even visible; they must outlive that.
    assert queue["MessageRetentionPeriod"] > 900
    assert "DelaySeconds" not in queue, "each message sets its own delay"


def test_admin_has_no_trigger(platform: dict[str, Any]) -> None:
    assert not function(platform, "AdminFunction").get("Events")


def http_routes(platform: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every HttpApi route of the template: path -> (function logical id, event properties)."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for logical_id in FUNCTIONS:
        for event in function(platform, logical_id).get("Events", {}).values():
            if event["Type"] == "HttpApi":
                assert event["Properties"]["Path"] not in found, event["Properties"]["Path"]
                found[event["Properties"]["Path"]] = (logical_id, event["Properties"])
    return found


def route_for(routes: dict[str, tuple[str, dict[str, Any]]], path: str) -> tuple[str, dict[str, Any]]:
    """The route API Gateway picks for a request path: an exact path first, else the greedy `{proxy+}` route
    with the longest matching prefix."""
    if path in routes:
        return routes[path]
    greedy = [p for p in routes if p.endswith("/{proxy+}") and path.startswith(p.removesuffix("{proxy+}"))]
    assert greedy, f"no route serves {path}"
    return routes[max(greedy, key=len)]


def api_paths() -> list[str]:
    """Concrete request paths for every route of the API's checked-in OpenAPI document."""
    document = json.loads((cfn.ROOT / "docs" / "openapi.json").read_text())
    return [re.sub(r"\{\w+\}", "x1", path) for path in document["paths"]]


def test_api_sits_behind_a_jwt_authorizer(platform: dict[str, Any]) -> None:
    routes = http_routes(platform)
    public = ("/openapi.json", "/docs", "/dashboard")
    assert set(public) <= set(routes)
    for path, (logical_id, event) in routes.items():
        assert event["ApiId"] == {"Ref": "HttpApi"}, logical_id
        if path in public:
            assert event["Method"] == "GET"
            assert event["Auth"] == {"Authorizer": "NONE"}, f"{path} is public documentation or a static page"
        else:
            assert "Auth" not in event, f"{path} opts out of the default authorizer"
    api = cfn.resource(platform, "HttpApi")
    assert api["Type"] == "AWS::Serverless::HttpApi"
    auth = api["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["JwtConfiguration"] == {
        "issuer": {"Fn::Sub": "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${UserPool}"},
        "audience": [{"Ref": "UserPoolClient"}],
    }


#: The routes only admins may call; the template sends them to the function holding the admin role.
ADMIN_PREFIXES = ("/tenants", "/fleet", "/rollouts")


@pytest.mark.parametrize("path", api_paths())
def test_admin_routes_reach_the_admin_api_and_player_routes_the_player_api(platform: dict[str, Any], path: str) -> None:
    logical_id, event = route_for(http_routes(platform), path)
    admin = any(path == prefix or path.startswith(prefix + "/") for prefix in ADMIN_PREFIXES)
    expected = "AdminApiFunction" if admin else "ApiFunction"
    assert logical_id == expected, path
    assert event["Method"] == "ANY", "the handler answers 405 itself, with the methods a route allows"


def test_unknown_routes_reach_the_api_for_its_json_404(platform: dict[str, Any]) -> None:
    assert route_for(http_routes(platform), "/nope/x")[0] == "ApiFunction"


# --- permissions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_no_function_has_wildcard_grants_or_cloudformation(platform: dict[str, Any], logical_id: str) -> None:
    for statement in cfn.function_statements(platform, logical_id):
        assert statement.get("Effect") == "Allow"
        for action in cfn.actions(statement):
            assert not action.endswith("*"), f"{logical_id}: {action}"
            assert not action.startswith("cloudformation:"), f"{logical_id}: only tenant roles touch stacks"
        if "*" in cfn.resources(statement):
            # X-Ray has no resource-level permissions; nothing else may be granted on everything.
            assert set(cfn.actions(statement)) <= XRAY_WRITES, f"{logical_id}: {statement.get('Sid')}"


def granted(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in cfn.actions(s)]


def test_only_the_worker_assumes_tenant_roles(platform: dict[str, Any]) -> None:
    for logical_id in FUNCTIONS:
        sts = [
            s
            for s in cfn.function_statements(platform, logical_id)
            if any(a.startswith("sts:") for a in cfn.actions(s))
        ]
        if logical_id != "WorkerFunction":
            assert sts == [], f"{logical_id} must not assume roles; only the worker does"
            continue
        assert len(sts) == 2, "one statement per branch of RequireTenantRoleTag"
        for statement in sts:
            assert cfn.actions(statement) == ["sts:AssumeRole"]
            assert [cfn.sub_text(r) for r in cfn.resources(statement)] == [
                "arn:${AWS::Partition}:iam::*:role/${TenantRoleName}"
            ]


def test_worker_reaches_tables_templates_and_both_queues(platform: dict[str, Any]) -> None:
    statements = cfn.function_statements(platform, "WorkerFunction")
    for action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        tables_reached = set().union(*(table_arn_refs(s) for s in granted(statements, action)))
        assert set(TABLES) <= tables_reached, (action, tables_reached)
    for action in ("s3:GetObject", "s3:GetObjectVersion"):
        reads = [cfn.sub_text(r) for s in granted(statements, action) for r in cfn.resources(s)]
        assert reads == ["${TemplateBucket.Arn}/gameserver/*"], action
    sends = [r for s in granted(statements, "sqs:SendMessage") for r in cfn.resources(s)]
    assert sends == [{"Fn::GetAtt": ["RequeueQueue", "Arn"]}, {"Fn::GetAtt": ["WorkQueue", "Arn"]}]
    receives = [r for s in granted(statements, "sqs:ReceiveMessage") for r in cfn.resources(s)]
    assert receives == [{"Fn::GetAtt": ["WorkQueue", "Arn"]}]


@pytest.mark.parametrize("logical_id", PRODUCERS)
def test_producers_send_work_and_mark_tenants_pending(platform: dict[str, Any], logical_id: str) -> None:
    statements = cfn.function_statements(platform, logical_id)
    assert {"Fn::GetAtt": ["WorkQueue", "Arn"]} in [
        r for s in granted(statements, "sqs:SendMessage") for r in cfn.resources(s)
    ]
    assert "TenantsTable" in set().union(*(table_arn_refs(s) for s in granted(statements, "dynamodb:UpdateItem")))
    for statement in statements:
        assert not any(a.startswith("cloudformation:") for a in cfn.actions(statement)), logical_id


@pytest.mark.parametrize("logical_id", ["AdminFunction", "AdminApiFunction"])
def test_admin_plans_invoke_only_the_worker(platform: dict[str, Any], logical_id: str) -> None:
    invokes = [
        r
        for s in granted(cfn.function_statements(platform, logical_id), "lambda:InvokeFunction")
        for r in cfn.resources(s)
    ]
    assert invokes == [{"Fn::GetAtt": ["WorkerFunction", "Arn"]}]


def test_dispatcher_invokes_only_itself(platform: dict[str, Any]) -> None:
    invokes = [
        cfn.sub_text(r)
        for s in granted(cfn.function_statements(platform, "SweepFunction"), "lambda:InvokeFunction")
        for r in cfn.resources(s)
    ]
    own = cfn.sub_text(function(platform, "SweepFunction")["FunctionName"])
    assert invokes == [f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{own}"]


def test_player_api_writes_only_desired_records_and_activity(platform: dict[str, Any]) -> None:
    statements = [s for s in cfn.function_statements(platform, "ApiFunction") if not set(cfn.actions(s)) <= BASICS]
    assert statements

    def reach(action: str) -> set[str]:
        return set().union(*(table_arn_refs(s) for s in statements if action in cfn.actions(s)))

    for statement in statements:
        for action in cfn.actions(statement):
            assert action.startswith("dynamodb:"), f"the player API only touches DynamoDB, not {action}"
            assert action not in {"dynamodb:Scan", "dynamodb:BatchWriteItem"}, action
        assert table_arn_refs(statement) <= set(TABLES)

    def reach_unconditionally(action: str) -> set[str]:
        return set().union(
            *(table_arn_refs(s) for s in statements if action in cfn.actions(s) and "Condition" not in s)
        )

    assert reach_unconditionally("dynamodb:PutItem") == {"GameServersTable", "ActivityTable"}
    assert reach_unconditionally("dynamodb:UpdateItem") == {"GameServersTable"}, "the activity log is append-only"
    # The tenants table takes only rate-limit buckets from the player API.
    conditioned = [s for s in statements if "Condition" in s]
    assert conditioned, "rate-limit buckets"
    for statement in conditioned:
        assert table_arn_refs(statement) == {"TenantsTable"}
        assert set(cfn.actions(statement)) <= {"dynamodb:PutItem", "dynamodb:UpdateItem"}
        assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["rate#*"]}}
    assert reach("dynamodb:DeleteItem") == set(), "only the reconciler removes a record, once its stack is gone"
    assert reach("dynamodb:GetItem") >= {"GameServersTable", "TenantsTable"}
    assert reach("dynamodb:Query") >= {"GameServersTable", "ActivityTable"}


def test_player_api_has_no_sts_s3_sqs_or_cloudformation(platform: dict[str, Any]) -> None:
    for statement in cfn.function_statements(platform, "ApiFunction"):
        for action in cfn.actions(statement):
            assert not action.startswith(("sts:", "cloudformation:", "s3:", "sqs:", "lambda:", "iam:")), action


# --- alarms -------------------------------------------------------------------------------------------------


def dead_letter_queues(platform: dict[str, Any]) -> set[str]:
    """The logical ids of every queue used as a dead-letter queue: the stream's on-failure destination and
    each queue's redrive target."""
    targets = [only_event(platform, "StreamFunction", "DynamoDB")["DestinationConfig"]["OnFailure"]["Destination"]]
    for queue in cfn.of_type(platform, "AWS::SQS::Queue").values():
        if "RedrivePolicy" in queue["Properties"]:
            targets.append(queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
    names = {target["Fn::GetAtt"][0] for target in targets}
    assert names == {"StreamDeadLetterQueue", "RequeueDeadLetterQueue", "WorkDeadLetterQueue"}
    return names


def test_every_dead_letter_queue_has_an_alarm(platform: dict[str, Any]) -> None:
    alarms = cfn.of_type(platform, "AWS::CloudWatch::Alarm").values()
    for queue in dead_letter_queues(platform):
        watching = [
            a["Properties"]
            for a in alarms
            if {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}} in a["Properties"]["Dimensions"]
        ]
        assert watching, f"no alarm on {queue}"
        (alarm,) = watching
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Threshold"] == 0


def test_outputs(platform: dict[str, Any]) -> None:
    assert {
        "PlatformAccountId",
        "TemplateBucketName",
        "TenantRoleName",
        "GameServersTableName",
        "RequeueQueueUrl",
        "WorkQueueUrl",
        "WorkerRoleArn",
        "TemplateBucketRegion",
        "UserPoolClientId",
        "AdminFunctionName",
        "ApiUrl",
    } <= set(platform["Outputs"])
