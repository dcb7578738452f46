"""Reading the CloudFormation templates under infra/sam: a YAML loader that understands the short intrinsic
tags (!Ref, !Sub, !GetAtt, ...) and helpers to walk parameters, `!If` branches and IAM policy statements."""

from __future__ import annotations

import copy
import fnmatch
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAM_DIR = ROOT / "infra" / "sam"
GAMESERVER = SAM_DIR / "gameserver.yaml"
PLATFORM = SAM_DIR / "template.yaml"
TENANT_ROLE = SAM_DIR / "tenant-role.yaml"

NO_VALUE = {"Ref": "AWS::NoValue"}


class CfnLoader(yaml.SafeLoader):
    """A safe loader that turns `!Name value` into the long form `{"Fn::Name": value}` (`!Ref` into `Ref`)."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=CfnLoader)  # a SafeLoader subclass: no arbitrary objects
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    resources = template["Resources"]
    assert logical_id in resources, f"no resource {logical_id}; have {sorted(resources)}"
    found: dict[str, Any] = resources[logical_id]
    return found


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = resource(template, logical_id).get("Properties", {})
    return found


def of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_}


def sub_text(value: Any) -> str:
    """The template string of a `!Sub` (either form), or a plain string as is."""
    if isinstance(value, str):
        return value
    assert isinstance(value, dict), f"expected a string or !Sub, got {value!r}"
    assert "Fn::Sub" in value, f"expected a string or !Sub, got {value!r}"
    sub = value["Fn::Sub"]
    text = sub[0] if isinstance(sub, list) else sub
    assert isinstance(text, str)
    return text


def substitute(text: str, values: dict[str, str]) -> str:
    """Resolve `${Name}` placeholders of a `!Sub` string; an unknown name fails the test."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no value for ${{{name}}} in {text!r}"
        return values[name]

    return re.sub(r"\$\{([^}!]+)\}", replace, text)


def resolve_sub(value: Any, values: dict[str, str]) -> str:
    """Resolve a `!Sub` in either form; variables of the map form may be plain strings or `!Ref`s."""
    local = dict(values)
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), list):
        _, variables = value["Fn::Sub"]
        for name, item in variables.items():
            local[name] = values[item["Ref"]] if isinstance(item, dict) else str(item)
    return substitute(sub_text(value), local)


def branches(value: Any) -> Iterator[Any]:
    """Every value a `!If` could produce (recursively), leaving out AWS::NoValue."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        yield from branches(when_true)
        yield from branches(when_false)
    elif value != NO_VALUE:
        yield value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of a policy document, every `!If` branch included."""
    found: list[dict[str, Any]] = []
    for item in as_list(document["Statement"]):
        found.extend(branches(item))
    return found


def actions(statement: dict[str, Any]) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action", []))]


def resources(statement: dict[str, Any]) -> list[Any]:
    found: list[Any] = []
    for item in as_list(statement.get("Resource", [])):
        found.extend(branches(item))
    return found


def role_statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every policy statement an IAM role defined in the template grants: its inline policies and the managed
    policies (defined in the template) it attaches. Anything else (an AWS managed policy) fails, so a broad
    grant cannot slip past the checks that use this."""
    role = resource(template, role_id)
    assert role["Type"] == "AWS::IAM::Role", f"{role_id} is not a role"
    found: list[dict[str, Any]] = []
    for policy in role["Properties"].get("Policies", []):
        found.extend(statements(policy["PolicyDocument"]))
    for arn in role["Properties"].get("ManagedPolicyArns", []):
        assert isinstance(arn, dict), f"{role_id} attaches {arn!r}; grant with explicit statements"
        assert set(arn) == {"Ref"}, f"{role_id} attaches {arn!r}; grant with explicit statements"
        managed = resource(template, arn["Ref"])
        assert managed["Type"] == "AWS::IAM::ManagedPolicy", f"{role_id}: {arn} is not a managed policy"
        found.extend(statements(managed["Properties"]["PolicyDocument"]))
    return found


def function_role(template: dict[str, Any], logical_id: str) -> str:
    """The logical id of the role a function (SAM or plain Lambda) runs with."""
    role = resource(template, logical_id)["Properties"].get("Role")
    assert isinstance(role, dict), f"{logical_id} has no role of the template's own: {role!r}"
    assert "Fn::GetAtt" in role, f"{logical_id} has no role of the template's own: {role!r}"
    target, attribute = role["Fn::GetAtt"]
    assert attribute == "Arn"
    return str(target)


def function_statements(template: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    """Every policy statement a function's role grants."""
    return role_statements(template, function_role(template, logical_id))


def iam_match(pattern: str, value: str) -> bool:
    """IAM-style wildcard match (`*` any run of characters, `?` one character)."""
    return fnmatch.fnmatchcase(value, pattern)


def parameter_default(template: dict[str, Any], name: str) -> Any:
    return template["Parameters"][name].get("Default")


#: Values for the platform template's parameters without a default.
REQUIRED_PARAMETERS = {
    "TemplatePublisherArn": "arn:aws:iam::222222222222:role/stackherd-publisher",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:222222222222:stackherd-alarms",
}
#: What SAM attaches for event sources, tracing and basic execution when a function has no role of its own;
#: the loader knows them all, so a transformed template that still attaches one shows it.
SAM_MANAGED_POLICIES = (
    "service-role/AWSLambdaBasicExecutionRole",
    "service-role/AWSLambdaDynamoDBExecutionRole",
    "service-role/AWSLambdaSQSQueueExecutionRole",
    "service-role/AWSLambdaKinesisExecutionRole",
    "AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess",
)


class _ManagedPolicies:
    def load(self) -> dict[str, str]:
        return {name.rpartition("/")[2]: f"arn:aws:iam::aws:policy/{name}" for name in SAM_MANAGED_POLICIES}


def transform_platform(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The platform template as plain CloudFormation, transformed offline by aws-sam-translator as `sam deploy`
    does: SAM adds roles, policies, event source mappings and API definitions the raw template does not show."""
    from samtranslator.translator import transform as translator

    template = copy.deepcopy(load(PLATFORM))
    # `sam package` replaces the local CodeUri with the uploaded artifact; the translator only accepts the latter.
    template["Globals"]["Function"]["CodeUri"] = "s3://stackherd-artifacts/stackherd.zip"
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        result: dict[str, Any] = translator.transform(
            template, {**REQUIRED_PARAMETERS, **(parameters or {})}, _ManagedPolicies()
        )
    finally:
        if previous is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    return result


def policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every identity policy document of a (transformed) template, named `<logical id>` or `<role>/<policy>`."""
    for logical_id, res in template["Resources"].items():
        properties = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                yield f"{logical_id}/{policy['PolicyName']}", policy["PolicyDocument"]
        elif res["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            yield logical_id, properties["PolicyDocument"]
