"""Powertools Logger, Metrics and Tracer, shared by the Lambda handlers.

The reconciler logs through the standard `logging` module, one logger per part (`stackherd.engine`,
`stackherd.store`, `stackherd.desired`, `stackherd.requeue`); `copy_config_to_registered_loggers` gives
those lines the same JSON shape and keys (tenant and server) as the handlers' own.

The Tracer is built on a handler's first invocation, not at import: building it loads the X-Ray SDK and
botocore (to patch it), which the handler modules keep out of their import for a short cold start.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "stackherd")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Stackherd")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
Handler = TypeVar("Handler", bound=Callable[..., Any])


class LazyTracer:
    """Powertools' Tracer (X-Ray; the functions run with Tracing: Active), built when a traced handler first
    runs. It patches botocore, so every AWS call of the invocation is a subsegment of its trace."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._tracer: Tracer | None = None

    @property
    def tracer(self) -> Tracer:
        if self._tracer is None:
            self._tracer = Tracer(service=self.service)
        return self._tracer

    def capture_lambda_handler(self, *, capture_response: bool = True) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            traced: Callable[..., Any] | None = None

            @functools.wraps(handler)
            def wrapper(event: Any, context: Any) -> Any:
                nonlocal traced
                if traced is None:
                    traced = self.tracer.capture_lambda_handler(handler, capture_response=capture_response)
                return traced(event, context)

            return cast(Handler, wrapper)

        return decorate


tracer = LazyTracer(SERVICE)
RECONCILER_LOGGERS = frozenset(
    {"stackherd.engine", "stackherd.store", "stackherd.desired", "stackherd.requeue", "stackherd.rollouts"}
)
for _name in RECONCILER_LOGGERS:
    logging.getLogger(_name)  # registered now, so the copy below reaches it whichever module is imported first
copy_config_to_registered_loggers(source_logger=logger, include=set(RECONCILER_LOGGERS))


def event_records(event: Any) -> list[dict[str, Any]]:
    """The records of a batch event (SQS, DynamoDB stream); an event without a Records list is logged and read
    as empty, and entries that are not objects are left out (the partial-batch processors index every record)."""
    raw_records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(raw_records, list):
        logger.error("event has no Records list; nothing to do", extra={"event_type": type(event).__name__})
        return []
    return [r for r in raw_records if isinstance(r, dict)]
