"""Fixtures for the HTTP API tests: a world with two tenants, callers with their JWT claims, and a client
that turns requests into API Gateway HTTP API (payload 2.0) events built from tests/events/api/.

The world is the in-memory store and the fake cloud (`reconciler.fakes`); a test marked `integration`
runs on moto instead (DynamoDB, S3, CloudFormation), for the round trips through the real adapters.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import gameserver_template

EVENTS = Path(__file__).resolve().parent.parent / "events" / "api"
REGION = "us-east-1"
TEMPLATE_BUCKET = "stackherd-api-test-templates"
ACME_ACCOUNT = "111111111111"
GLOBEX_ACCOUNT = "222222222222"


@dataclass(frozen=True)
class Caller:
    """Who sends a request: the JWT claims the authorizer would pass on (None: no token at all)."""

    name: str
    claims: dict[str, Any] | None


def player(user: str, tenant: str, groups: Any = "[players]") -> Caller:
    return Caller(
        user, {"sub": f"sub-{user}", "cognito:username": user, "custom:tenant_id": tenant, "cognito:groups": groups}
    )


ALICE = player("alice", "acme")
BOB = player("bob", "acme")
CAROL = player("carol", "globex")
ROOT = Caller("root", {"sub": "sub-root", "cognito:username": "root", "cognito:groups": "[admins]"})
ANON = Caller("anonymous", None)
CALLERS = {c.name: c for c in (ALICE, BOB, CAROL, ROOT, ANON)}


class LambdaContext:
    function_name = "stackherd-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stackherd-api"
    aws_request_id = "lambda-request-id"
    log_group_name = "/aws/lambda/stackherd-api"
    log_stream_name = "2026/11/26/[$LATEST]0"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    text: str
    event: dict[str, Any] = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.text)

    def header(self, name: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.headers.items()}
        return lowered.get(name.lower())

    @property
    def etag(self) -> str | None:
        return self.header("ETag")


_UNSET: Any = object()
_counter = [0]


def build_event(
    method: str,
    path: str,
    *,
    caller: Caller = ALICE,
    body: Any = _UNSET,
    raw_body: str | None = None,
    base64_body: bool = False,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An HTTP API v2 event shaped like tests/events/api/get_server.json, for any method, path and caller."""
    event = copy.deepcopy(load_event("get_server"))
    _counter[0] += 1
    event["routeKey"] = "$default"
    event["rawPath"] = path
    event["rawQueryString"] = urlencode(query or {})
    event.pop("pathParameters", None)
    if query:
        event["queryStringParameters"] = dict(query)
    context = event["requestContext"]
    context["http"]["method"] = method
    context["http"]["path"] = path
    context["routeKey"] = "$default"
    context["requestId"] = f"req-{_counter[0]}"
    if caller.claims is None:
        context.pop("authorizer", None)
        event["headers"].pop("authorization", None)
    else:
        context["authorizer"] = {"jwt": {"claims": copy.deepcopy(caller.claims), "scopes": None}}
    text = raw_body if raw_body is not None else (None if body is _UNSET else json.dumps(body))
    if text is not None:
        event["headers"]["content-type"] = "application/json"
        if base64_body:
            event["body"] = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    event["headers"].update(headers or {})
    return event


class ApiClient:
    """Calls `handlers.api.app.handler` in-process, the way API Gateway would."""

    def __init__(self) -> None:
        import handlers.api.app

        self.handler = handlers.api.app.handler

    def send(self, event: dict[str, Any]) -> ApiResponse:
        raw = self.handler(event, LambdaContext())
        headers = dict(raw.get("headers") or {})
        for name, values in (raw.get("multiValueHeaders") or {}).items():
            headers[name] = ",".join(values)
        body = raw.get("body") or ""
        if raw.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return ApiResponse(raw["statusCode"], headers, body, event)

    def request(self, method: str, path: str, caller: Caller = ALICE, **kwargs: Any) -> ApiResponse:
        return self.send(build_event(method, path, caller=caller, **kwargs))

    def get(self, path: str, caller: Caller = ALICE, **kwargs: Any) -> ApiResponse:
        return self.request("GET", path, caller, **kwargs)

    def put(self, path: str, body: Any, caller: Caller = ALICE, **kwargs: Any) -> ApiResponse:
        return self.request("PUT", path, caller, body=body, **kwargs)

    def patch(self, path: str, body: Any, caller: Caller = ALICE, **kwargs: Any) -> ApiResponse:
        return self.request("PATCH", path, caller, body=body, **kwargs)

    def post(self, path: str, body: Any = _UNSET, caller: Caller = ROOT, **kwargs: Any) -> ApiResponse:
        return self.request("POST", path, caller, body=body, **kwargs)

    def delete(self, path: str, caller: Caller = ALICE, **kwargs: Any) -> ApiResponse:
        return self.request("DELETE", path, caller, **kwargs)


def server_path(gameserver_id: str) -> str:
    return "/servers/" + quote(gameserver_id, safe="")


API_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "STACKHERD_TEMPLATE_BUCKET": TEMPLATE_BUCKET,
    "STACKHERD_INSTALLATION": "stackherd",
}
API_ENV_REMOVED = (
    "AWS_ENDPOINT_URL",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "STACKHERD_REQUEUE_QUEUE_URL",
)


def seed_tenants() -> None:
    """acme (standard tier, two regions) and globex (free tier: 3 servers of at most 8 players)."""
    from handlers.runtime import runtime
    from models.config import TenantSpec
    from models.records import tenant_from_spec

    store = runtime().store
    now = datetime.now(UTC)
    for spec in (
        TenantSpec(tenant_id="acme", account_id=ACME_ACCOUNT, regions=("us-east-1", "eu-west-1"), tier="standard"),
        TenantSpec(tenant_id="globex", account_id=GLOBEX_ACCOUNT, tier="free"),
    ):
        store.put_tenant(tenant_from_spec(spec, external_id=f"ext-{spec.tenant_id}"), now)


def truncate_tables() -> None:
    from models.tables import ALL_MODELS

    for model in ALL_MODELS:
        with model.batch_write() as batch:
            for item in model.scan():
                batch.delete(item)


@pytest.fixture(scope="module")
def moto_world() -> Iterator[None]:
    """One moto in-process world per test module (creating tables costs most of a test's time): fake
    credentials and one region, the tables, and the template bucket with v1 published."""
    import botocore.session
    from botocore.loaders import create_loader
    from moto import mock_aws

    from handlers.runtime import reset_runtime, runtime
    from models import tables

    with pytest.MonkeyPatch.context() as patch:
        # Every test builds a fresh runtime, and so fresh PynamoDB connections and boto3 sessions, each of
        # which would parse botocore's service and endpoint JSON again (most of a test's time). One shared
        # loader keeps its parsed files.
        patch.setattr(botocore.session, "create_loader", functools.cache(create_loader))
        for name, value in API_ENV.items():
            patch.setenv(name, value)
        for name in API_ENV_REMOVED:
            patch.delenv(name, raising=False)
        with mock_aws():
            reset_runtime()
            tables.configure(region=REGION)
            tables.create_tables()
            import boto3

            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket=TEMPLATE_BUCKET)
            s3.put_bucket_versioning(Bucket=TEMPLATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
            runtime().templates.publish(gameserver_template().encode(), "v1")
            yield
            reset_runtime()
            tables.configure()


@pytest.fixture
def world(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Empty tables but for the two tenants, and a fresh runtime, for each test."""
    from handlers.runtime import reset_runtime

    for name, value in API_ENV.items():
        monkeypatch.setenv(name, value)
    from moto.backends import get_backend

    reset_runtime()
    truncate_tables()
    for service in ("cloudformation", "ssm"):  # stacks (and their resources) left by an earlier test
        for account_backends in get_backend(service).values():
            account_backends.reset()  # (BackendDict.reset itself would reset every service)
    seed_tenants()
    yield
    reset_runtime()


@pytest.fixture
def memory_world() -> Iterator[Any]:
    """The two tenants on the in-memory store and the fake cloud, for each test; the runtime built on them."""
    from handlers.local.embedded import fake_runtime
    from handlers.runtime import install_runtime, reset_runtime
    from reconciler.fakes.cloud import FakeClock
    from reconciler.fakes.world import FakeWorld

    world = FakeWorld(clock=FakeClock(datetime.now(UTC)))
    world.add_tenant("acme", ACME_ACCOUNT, regions=("us-east-1", "eu-west-1"), tier="standard")
    world.add_tenant("globex", GLOBEX_ACCOUNT, tier="free")
    install_runtime(fake_runtime(world, template_bucket=TEMPLATE_BUCKET, installation="stackherd", region=REGION))
    yield world
    reset_runtime()


@pytest.fixture
def api(request: pytest.FixtureRequest) -> ApiClient:
    """The API on the in-memory store, or on moto for a test marked `integration` (see ON_BOTH_STORES)."""
    kind = getattr(request, "param", None) or (
        "dynamodb" if request.node.get_closest_marker("integration") else "memory"
    )
    request.getfixturevalue("world" if kind == "dynamodb" else "memory_world")
    return ApiClient()


#: Runs a test on the in-memory store and again on DynamoDB (moto): the round trips that keep the two honest.
ON_BOTH_STORES = pytest.mark.parametrize(
    "api", ["memory", pytest.param("dynamodb", marks=pytest.mark.integration)], indirect=True
)


def put_config(**config: Any) -> dict[str, Any]:
    return {"config": {"difficulty": "easy", "player_count": 4, "seed": "abc", **config}}
