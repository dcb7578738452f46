"""Property-based fuzzing driven by the OpenAPI document: requests built from each operation's parameters and
body schemas, mixed with mutations and plain garbage, from every kind of caller. Whatever comes in, the
answer is never a 5xx, always JSON, errors always have the documented shape, and every success body
matches the schema the document promises for it.

Bounded: `EXAMPLES` per operation, so the whole module runs in well under a minute. For a longer hunt, set
STACKHERD_FUZZ_EXAMPLES (for example 1000).
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import ALICE, ANON, BOB, CAROL, ROOT, ApiClient, Caller, build_event, player, put_config

EXAMPLES = int(os.environ.get("STACKHERD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@cache
def document() -> dict[str, Any]:
    from handlers.api.app import openapi_document

    data: dict[str, Any] = json.loads(openapi_document())
    return data


def operations() -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in document()["paths"].items() for method in ops]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that (mostly) satisfy a JSON schema, for the subset of JSON schema pydantic emits."""
    schema = resolve(schema)
    if depth > 6:
        return JSON_VALUES
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(option, depth + 1) for option in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, depth + 1) for k, v in properties.items() if k in required},
            optional={k: from_schema(v, depth + 1) for k, v in properties.items() if k not in required},
        )
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {}), depth + 1),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 5), 5),
        )
    if kind == "string":
        if "pattern" in schema:
            pattern = st.from_regex(schema["pattern"], fullmatch=True)
            return pattern.filter(lambda s: len(s) <= schema.get("maxLength", 10**6))
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 30), 30))
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(
            min_value=int(low) - 2 if low is not None else None, max_value=int(high) + 2 if high is not None else None
        )
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON_VALUES


def mutated(value: Any) -> st.SearchStrategy[Any]:
    """A schema-shaped value with one key added, dropped or set to something arbitrary."""
    if not isinstance(value, dict) or not value:
        return JSON_VALUES
    keys = sorted(value)
    return st.one_of(
        st.builds(lambda k, v: {**value, k: v}, st.sampled_from(keys), JSON_VALUES),
        st.builds(lambda k: {x: y for x, y in value.items() if x != k}, st.sampled_from(keys)),
        st.builds(lambda k, v: {**value, k: v}, st.text(min_size=1, max_size=12), JSON_VALUES),
    )


ADMIN_IN_ACME = player("root", "acme", groups=["admins", "players"])
FUZZED_CALLER = st.builds(
    lambda claims: Caller("fuzzed", claims),
    st.dictionaries(
        st.sampled_from(["cognito:username", "sub", "custom:tenant_id", "cognito:groups", "email"]),
        st.one_of(JSON_VALUES, st.sampled_from(["alice", "acme", "globex", "[admins]", "admins players"])),
        max_size=5,
    ),
)
# Mostly real callers (so requests get past the gate and exercise the routes), sometimes arbitrary claims.
CLAIMS = st.integers(0, 9).flatmap(
    lambda n: (
        FUZZED_CALLER if n == 0 else st.sampled_from([ALICE, ALICE, ALICE, ROOT, ROOT, ADMIN_IN_ACME, BOB, CAROL, ANON])
    )
)
PATH_VALUES = st.one_of(
    st.sampled_from(["alpha-1", "bravo-1", "acme", "globex", "nope-9"]),
    st.from_regex(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$", fullmatch=True),
    st.text(min_size=0, max_size=45),
)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", ""]
)


@st.composite
def requests(draw: st.DrawFn, method: str, template: str) -> dict[str, Any]:
    """An HTTP API event for one operation of the document."""
    operation = document()["paths"][template][method.lower()]
    path = template
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    for parameter in operation.get("parameters", []):
        where, name, schema = parameter["in"], parameter["name"], parameter["schema"]
        if where == "path":
            value = draw(st.one_of(from_schema(schema), PATH_VALUES))
            encoded = quote(str(value), safe="") if draw(st.booleans()) else str(value)
            path = path.replace("{" + name + "}", encoded)
        elif where == "query" and draw(st.booleans()):
            value = draw(st.one_of(from_schema(schema), st.text(max_size=20)))
            query[name] = json.dumps(value) if isinstance(value, bool) and draw(st.booleans()) else str(value)
        elif where == "header" and draw(st.booleans()):
            headers[name] = draw(
                st.one_of(
                    st.sampled_from(['"1-0123456789ab"', '"2"', "*", 'W/"1-0123456789ab"', '"1-0123456789ab", "2"']),
                    HEADER_TEXT,
                )
            )
    kwargs: dict[str, Any] = {"query": query or None, "headers": headers}
    if "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        shaped = draw(from_schema(schema))
        body = draw(
            st.one_of(
                st.just(shaped),
                mutated(shaped),
                JSON_VALUES,
                st.text(max_size=60).map(lambda text: ("raw", text)),
                st.just(("raw", "x" * (16 * 1024 + 1))),
            )
        )
        if isinstance(body, tuple):
            kwargs["raw_body"] = body[1]
        else:
            kwargs["body"] = body
        kwargs["base64_body"] = draw(st.booleans())
        if draw(st.integers(0, 4)) == 0:
            headers["content-type"] = draw(CONTENT_TYPES)
    return build_event(method, path, caller=draw(CLAIMS), **kwargs)


def assert_sane(api: ApiClient, event: dict[str, Any]) -> None:
    response = api.send(event)
    assert response.status < 500, (event, response.text)
    if event["rawPath"] == "/docs" and response.status == 200:
        return
    body = response.json()
    if response.status >= 400:
        assert set(body) == {"code", "message", "details", "request_id"}, body
        assert "Traceback" not in response.text
        return
    schema = success_schema(event, response.status)
    if schema is not None:
        validate(body, schema)


def success_schema(event: dict[str, Any], status: int) -> dict[str, Any] | None:
    method = event["requestContext"]["http"]["method"].lower()
    for template, ops in document()["paths"].items():
        pattern = "^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, event["rawPath"]) and method in ops:
            response = ops[method]["responses"].get(str(status))
            assert response is not None, f"{method} {template} answered an undocumented {status}"
            schema: dict[str, Any] = response["content"]["application/json"]["schema"]
            return schema
    return None


def validate(body: Any, schema: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator({**schema, "components": document()["components"]}).validate(body)


@pytest.fixture
def seeded(api: ApiClient) -> ApiClient:
    api.put("/servers/alpha-1", put_config(), ALICE)
    api.put("/servers/bravo-1", put_config(), BOB)
    return api


@pytest.mark.parametrize(("method", "template"), operations(), ids=[f"{m} {p}" for m, p in operations()])
def test_no_request_built_from_the_document_gets_a_5xx(seeded: ApiClient, method: str, template: str) -> None:
    @FUZZ
    @given(event=requests(method, template))
    def check(event: dict[str, Any]) -> None:
        assert_sane(seeded, event)

    check()


@FUZZ
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "OPTIONS", "TRACE", "get", "BREW"]),
    segments=st.lists(
        st.one_of(st.sampled_from(["servers", "tenants", "history", "plan", "acme"]), st.text()), max_size=4
    ),
    caller=CLAIMS,
    body=st.one_of(st.none(), JSON_VALUES, st.text(max_size=40).map(lambda t: ("raw", t))),
)
def test_no_request_at_all_gets_a_5xx(
    seeded: ApiClient, method: str, segments: list[str], caller: Caller, body: Any
) -> None:
    kwargs: dict[str, Any] = {}
    if isinstance(body, tuple):
        kwargs["raw_body"] = body[1]
    elif body is not None:
        kwargs["body"] = body
    assert_sane(seeded, build_event(method, "/" + "/".join(segments), caller=caller, **kwargs))


@FUZZ
@given(
    authorizer=st.one_of(
        JSON_VALUES,
        st.fixed_dictionaries({"jwt": st.one_of(JSON_VALUES, st.fixed_dictionaries({"claims": JSON_VALUES}))}),
    )
)
def test_no_authorizer_shape_gets_a_5xx(seeded: ApiClient, authorizer: Any) -> None:
    event = build_event("GET", "/servers/alpha-1", caller=ALICE)
    event["requestContext"]["authorizer"] = authorizer
    assert seeded.send(event).status in (200, 401, 404)
