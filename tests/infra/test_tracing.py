"""Tracing: the handlers' Tracer is Powertools', built on the first invocation (not at import)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools import Tracer

from handlers.observability import LazyTracer


def test_the_tracer_is_built_on_the_first_invocation_and_wraps_the_handler() -> None:
    lazy = LazyTracer("stackherd-test")
    calls: list[Any] = []

    @lazy.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The handler's docstring."""
        calls.append(event)
        return {"ok": True}

    assert lazy._tracer is None, "importing a traced handler builds no tracer"
    assert handler.__name__ == "handler"
    assert handler.__doc__ == "The handler's docstring."
    assert handler({"n": 1}, None) == {"ok": True}
    built = lazy._tracer
    assert isinstance(built, Tracer)
    assert built.service == "stackherd-test"
    assert handler({"n": 2}, None) == {"ok": True}
    assert lazy._tracer is built, "one tracer per process"
    assert calls == [{"n": 1}, {"n": 2}]


def test_a_handler_error_still_propagates() -> None:
    lazy = LazyTracer("stackherd-test")

    @lazy.capture_lambda_handler()
    def handler(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        handler({}, None)
