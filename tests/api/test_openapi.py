"""The OpenAPI document: served at /openapi.json, browsable at /docs, and checked in as docs/openapi.json.

Regenerate the checked-in copy after changing a route or a model: `python -m handlers.api > docs/openapi.json`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import ANON, ApiClient

ROOT = Path(__file__).resolve().parent.parent.parent
CHECKED_IN = ROOT / "docs" / "openapi.json"
REGENERATE = "python -m handlers.api > docs/openapi.json"


def test_the_checked_in_document_is_what_the_code_generates() -> None:
    from handlers.api.app import openapi_document

    assert CHECKED_IN.read_text() == openapi_document(), f"docs/openapi.json is stale: run `{REGENERATE}`"


def test_the_regeneration_command_writes_the_same_document() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "handlers.api"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert generated == CHECKED_IN.read_text()


def test_served_without_a_token(api: ApiClient) -> None:
    from handlers.api.app import openapi_document

    response = api.get("/openapi.json", ANON)
    assert response.status == 200
    assert response.json() == json.loads(openapi_document())


def test_swagger_ui_without_a_token(api: ApiClient) -> None:
    response = api.get("/docs", ANON)
    assert response.status == 200
    assert response.header("Content-Type") == "text/html"
    assert "SwaggerUIBundle" in response.text
    assert '"title": "stackherd API"' in response.text
    assert "</script>" in response.text and "<\\/" in response.text  # the embedded spec cannot end the script


def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CHECKED_IN.read_text())
    return data


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document()["paths"].items() for method, op in ops.items()]


def test_document_shape() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["cognito"] == {
        "type": "http",
        "description": "Cognito ID token",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert doc["security"] == [{"cognito": []}]
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids)) == 23
    assert not {"/openapi.json", "/docs", "/dashboard"} & set(doc["paths"])


def test_every_operation_documents_its_success_and_every_error_as_error_body() -> None:
    for method, path, op in operations():
        codes = {int(code) for code in op["responses"]}
        assert codes & {200, 201, 202}, (method, path)
        assert {401, 403, 422} <= codes, (method, path)
        for code, response in op["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            if int(code) >= 400:
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
        assert op["summary"] and op["tags"], (method, path)
        if "requestBody" in op:
            assert {400, 415} <= codes, (method, path)


def test_ids_are_documented_with_their_pattern() -> None:
    """Creating takes today's pattern; reading, deleting and the history of an existing server take any id a
    stored record may carry (one stored by an older version)."""
    from models.config import ID_PATTERN, STORED_ID_PATTERN

    existing = {("get", "/servers/{gameserver_id}"), ("delete", "/servers/{gameserver_id}")}
    existing.add(("get", "/servers/{gameserver_id}/history"))
    admin_history = ("get", "/tenants/{tenant_id}/servers/{gameserver_id}/history")
    for method, path, op in operations():
        for parameter in op.get("parameters", []):
            if parameter["in"] == "path":
                stored = (method, path) in existing or (
                    (method, path) == admin_history and parameter["name"] != "tenant_id"
                )
                expected = STORED_ID_PATTERN if stored else ID_PATTERN
                assert parameter["schema"]["pattern"] == expected, (method, path)


def test_request_bodies_forbid_unknown_keys_and_are_not_nullable() -> None:
    schemas = document()["components"]["schemas"]
    for name in (
        "ServerPut",
        "ServerPatch",
        "ConfigPut",
        "ConfigPatch",
        "TenantPatch",
        "GameServerConfig",
        "TenantCreate",
        "RolloutCreate",
    ):
        assert schemas[name]["additionalProperties"] is False, name
    for name in ("ServerPatch", "ConfigPatch", "TenantPatch"):
        assert '"null"' not in json.dumps(schemas[name]), name


def test_the_document_is_valid_openapi() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document())
