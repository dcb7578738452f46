"""Every template under infra/sam passes cfn-lint (resource schemas, IAM action names, intrinsic functions), and
the SAM template transforms (aws-sam-translator, as `sam deploy` does) into plain CloudFormation that passes too."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra import cfn

TEMPLATES = [cfn.GAMESERVER, cfn.PLATFORM, cfn.TENANT_ROLE]
ANY_URI = "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/%s"


def lint(template: str | dict[str, Any]) -> list[str]:
    api = pytest.importorskip("cfnlint.api", reason="cfn-lint is not installed (it comes with moto[cloudformation])")
    text = template if isinstance(template, str) else json.dumps(template)
    return [
        f"{m.rule.id} {m.message} (line {m.linenumber})" for m in api.lint(text, regions=["us-east-1", "eu-west-1"])
    ]


def test_every_template_is_listed() -> None:
    assert sorted(cfn.SAM_DIR.glob("*.yaml")) == sorted(TEMPLATES)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_parses(path: Path) -> None:
    template = cfn.load(path)
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Resources"]
    assert template.get("Description")


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_is_clean(path: Path) -> None:
    assert lint(path.read_text()) == []


def test_sam_template_transforms_to_clean_cloudformation(transformed: dict[str, Any]) -> None:
    types = {r["Type"] for r in transformed["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert {"AWS::Lambda::EventSourceMapping", "AWS::Events::Rule", "AWS::ApiGatewayV2::Api"} <= types
    assert lint(transformed) == []

    # The routes API Gateway gets: documentation is public, everything else needs a player's JWT, and the
    # admin routes run in the function that holds the reconciler's permissions.
    paths = transformed["Resources"]["HttpApi"]["Properties"]["Body"]["paths"]
    routes = {
        (path, method): (op["security"], cfn.sub_text(op["x-amazon-apigateway-integration"]["uri"]))
        for path, methods in paths.items()
        for method, op in methods.items()
    }
    target = "functions/${%s.Arn}/invocations"
    assert routes == {
        ("/openapi.json", "get"): ([{"NONE": []}], ANY_URI % (target % "ApiFunction")),
        ("/docs", "get"): ([{"NONE": []}], ANY_URI % (target % "ApiFunction")),
        ("/dashboard", "get"): ([{"NONE": []}], ANY_URI % (target % "ApiFunction")),
        ("/fleet", "x-amazon-apigateway-any-method"): ([{"PlayerJwt": []}], ANY_URI % (target % "AdminApiFunction")),
        ("/rollouts", "x-amazon-apigateway-any-method"): ([{"PlayerJwt": []}], ANY_URI % (target % "AdminApiFunction")),
        ("/rollouts/{proxy+}", "x-amazon-apigateway-any-method"): (
            [{"PlayerJwt": []}],
            ANY_URI % (target % "AdminApiFunction"),
        ),
        ("/{proxy+}", "x-amazon-apigateway-any-method"): ([{"PlayerJwt": []}], ANY_URI % (target % "ApiFunction")),
        ("/tenants", "x-amazon-apigateway-any-method"): (
            [{"PlayerJwt": []}],
            ANY_URI % (target % "AdminApiFunction"),
        ),
        ("/tenants/{proxy+}", "x-amazon-apigateway-any-method"): (
            [{"PlayerJwt": []}],
            ANY_URI % (target % "AdminApiFunction"),
        ),
    }


def checkov_skips(path: Path) -> list[tuple[str, str, Any]]:
    """(resource, check id, comment) for every checkov skip a template declares."""
    found = []
    for logical_id, res in cfn.load(path)["Resources"].items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            found.append((logical_id, skip.get("id"), skip.get("comment")))
    return found


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_checkov_skip_is_justified_where_it_is_made(path: Path) -> None:
    for logical_id, check, comment in checkov_skips(path):
        assert isinstance(check, str), (logical_id, check)
        assert re.fullmatch(r"CKV2?_AWS_\d+", check), (logical_id, check)
        assert isinstance(comment, str), f"{logical_id} skips {check} without saying why"
        assert len(comment.split()) >= 8, f"{logical_id} skips {check} with too short a reason: {comment!r}"
    text = path.read_text()
    assert "checkov:skip=" not in text, "skip in Metadata with a comment, not in an inline marker"
