"""Powertools Logger and Metrics, shared by the Lambda handlers.

The engine logs through the standard `logging` module; `copy_config_to_registered_loggers` gives
those lines the same JSON shape and keys (tenant and server) as the handlers' own.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "stackherd")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Stackherd")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
copy_config_to_registered_loggers(source_logger=logger, include={"stackherd.engine", "stackherd.requeue"})
