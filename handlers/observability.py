"""Powertools Logger and Metrics, shared by the Lambda handlers.

The reconciler logs through the standard `logging` module, one logger per part (`stackherd.engine`,
`stackherd.store`, `stackherd.desired`, `stackherd.requeue`); `copy_config_to_registered_loggers` gives
those lines the same JSON shape and keys (tenant and server) as the handlers' own.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "stackherd")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Stackherd")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
RECONCILER_LOGGERS = frozenset(
    {"stackherd.engine", "stackherd.store", "stackherd.desired", "stackherd.requeue", "stackherd.rollouts"}
)
for _name in RECONCILER_LOGGERS:
    logging.getLogger(_name)  # registered now, so the copy below reaches it whichever module is imported first
copy_config_to_registered_loggers(source_logger=logger, include=set(RECONCILER_LOGGERS))
