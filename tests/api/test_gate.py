"""The gate's table of paths matches the routes: every documented operation is checked for its audience
before validation, and its body (if it takes one) before Powertools parses it."""

from __future__ import annotations

import json
import re

from handlers.api.gate import shape_of

#: Paths for admins only: the tenants, and the fleet overview the dashboard reads.
ADMIN_PREFIXES = ("/tenants", "/fleet", "/rollouts")


def test_every_route_has_a_gate_shape_with_its_audience_method_and_body() -> None:
    from handlers.api.app import openapi_document

    document = json.loads(openapi_document())
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{\w+\}", "x-1", path)
        shape = shape_of(concrete)
        assert shape is not None, path
        assert shape.audience == ("admin" if path.startswith(ADMIN_PREFIXES) else "player"), path
        for method, operation in operations.items():
            assert method.upper() in shape.methods, (method, path)
            assert (method.upper() in shape.with_body) == ("requestBody" in operation), (method, path)


def test_public_paths_need_no_token() -> None:
    for path in ("/openapi.json", "/docs", "/dashboard"):
        shape = shape_of(path)
        assert shape is not None and shape.audience == "public"
