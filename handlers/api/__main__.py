"""`python -m handlers.api > docs/openapi.json`: print the API's OpenAPI document."""

import sys

from handlers.api.app import openapi_document

sys.stdout.write(openapi_document())
