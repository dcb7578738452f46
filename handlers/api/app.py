"""The player and admin HTTP API's wiring: the resolver, its routers, the one exception handler, the OpenAPI
document and Swagger UI, and the Lambda handler (API Gateway HTTP API, payload format 2.0).

Like every writer the API only validates and writes DynamoDB; it never calls CloudFormation (the two admin
routes that plan or force a tenant call the engine, which is the reconciler).

A request first passes the gate (`handlers.api.gate`: authentication, the path's audience, body size,
media type, encoding and JSON) in `handler`, before Powertools routes and validates it, so an anonymous
caller learns nothing from validation errors. Every error, wherever it is raised, becomes a response in
`error_response`, with its status and code from the table in `handlers.api.errors`.

Regenerate the checked-in OpenAPI document with `python -m handlers.api > docs/openapi.json`.

Importing this module stays cheap: boto3, PynamoDB and the runtime are imported on first use.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from handlers.api import admins, dashboard, gate, players, rollouts
from handlers.api.errors import FRIENDLY, MethodNotAllowedError, UnprocessableError, problem_for
from handlers.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from handlers.api.errors import Problem

API_VERSION = "1.0.0"
TITLE = "stackherd API"
DESCRIPTION = (
    "Players manage their own game servers; admins manage tenants and force reconciles. "
    "Writes only change desired state in DynamoDB; the reconciler converges CloudFormation. "
    "Send the Cognito ID token as a bearer token."
)

# Bodies are parsed with duplicate keys refused, the same way the gate checked them.
app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=gate.loads)
app.include_router(players.router)
app.include_router(admins.router)
app.include_router(dashboard.router)
app.include_router(rollouts.router)


def _request_id(event: dict[str, Any] | None) -> str | None:
    context = event.get("requestContext") if isinstance(event, dict) else None
    value = context.get("requestId") if isinstance(context, dict) else None
    return value if isinstance(value, str) else None


def error_response(problem: Problem, request_id: str | None) -> Response[Any]:
    """The one place an error becomes an HTTP response (counted and logged)."""
    body = {"code": problem.code, "message": problem.message, "details": problem.details, "request_id": request_id}
    if problem.status >= 500:
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="Rejections", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=f"Rejections{problem.status}", unit=MetricUnit.Count, value=1)
    status, code, message = problem.status, problem.code, problem.message
    logger.info("request rejected" if status < 500 else "request failed", status=status, code=code, error=message)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers=problem.headers or None,
    )


def _on_error(error: Exception) -> Response[Any]:
    """Every exception raised while resolving a request: the routes', validation's and routing's."""
    if isinstance(error, RouteNotFoundError):
        error = _no_route(app.current_event.path, app.current_event.http_method.upper()) or error
    problem = problem_for(error)
    if problem.status >= 500:
        if problem.status == 503:
            logger.warning("store unavailable", error=str(error))
        else:
            logger.exception("unhandled error", exc_info=error)
    return error_response(problem, _request_id(app.current_event.raw_event))


# One handler for every exception: Powertools looks handlers up along the exception's class hierarchy, so this
# one also receives its routing (no route) and validation errors.
app.exception_handler(Exception)(_on_error)


def _no_route(path: str, method: str) -> Exception | None:
    """Why a request matched no route: a method the path does not have (405), or an id that is not even a
    path segment the router accepts (422, like any other invalid id); None for a path the API does not have."""
    shape = gate.shape_of(path)
    if shape is None:
        return None
    if method not in shape.methods:
        allowed = ", ".join(sorted(shape.methods))
        return MethodNotAllowedError(f"{method} is not allowed here; use {allowed}", headers={"Allow": allowed})
    if shape.field is None:
        return None
    message = f"{shape.field} {FRIENDLY[shape.field]}"
    return UnprocessableError(message, field=shape.field, location="path", rule="string_pattern_mismatch")


# --- the OpenAPI document and Swagger UI -------------------------------------------------------------


def _openapi_options() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Tag

    return {
        "title": TITLE,
        "version": API_VERSION,
        "description": DESCRIPTION,
        "tags": [
            Tag(name="servers", description="a player's own game servers (tenant from the token)"),
            Tag(name="tenants", description="admin only: tenants, their servers, plans and reconciles"),
        ],
        "security_schemes": {"cognito": HTTPBearer(bearerFormat="JWT", description="Cognito ID token")},
        "security": [{"cognito": []}],
    }


@functools.cache
def openapi_document() -> str:
    """The OpenAPI 3 document of this API (what `GET /openapi.json` serves and docs/openapi.json holds)."""
    document = json.loads(app.get_openapi_json_schema(**_openapi_options()))
    _prune_schemas(document)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _prune_schemas(document: dict[str, Any]) -> None:
    """Drop component schemas nothing refers to (Powertools adds its own error shapes, which we replace)."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    while True:
        text = json.dumps(document)
        unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


@app.get("/openapi.json", include_in_schema=False)
def get_openapi() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_document())


_swagger_enabled = False


def _enable_swagger() -> None:
    """Swagger UI at /docs (Powertools serves it with its bundled assets). Registered on first use, as
    building its options imports the OpenAPI models, which a cold start does not need."""
    global _swagger_enabled
    if not _swagger_enabled:
        app.enable_swagger(path="/docs", **_openapi_options())
        _swagger_enabled = True


# --- the Lambda entry point ------------------------------------------------------------------------


@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    response = _respond(event, context)
    http = (event.get("requestContext") or {}).get("http") or {}
    logger.info("request", method=http.get("method"), path=event.get("rawPath"), status=response.get("statusCode"))
    return response


def _respond(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The gate, then Powertools' routing, validation and the route."""
    proxy_event = APIGatewayProxyEventV2(event)
    try:
        identity = gate.check(proxy_event)
    except Exception as error:
        return _refusal(problem_for(error), _request_id(event))
    if identity is not None:
        logger.append_keys(user=identity.user, tenant_id=identity.tenant_id, admin=identity.admin)
    if proxy_event.path == "/docs":
        _enable_swagger()
    # Routing context set before resolving reaches the routes; Powertools clears it after each request.
    app.append_context(identity=identity)
    return app.resolve(event, context)


def _refusal(problem: Problem, request_id: str | None) -> dict[str, Any]:
    """A request the gate refused, answered without routing it: the HTTP API (payload 2.0) response."""
    response = error_response(problem, request_id)
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": content_types.APPLICATION_JSON, **(response.headers or {})},
        "cookies": [],
        "body": json.dumps(response.body, separators=(",", ":")),
        "isBase64Encoded": False,
    }
