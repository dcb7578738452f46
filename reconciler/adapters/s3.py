"""The template catalog on S3: versioned game-server templates in the template bucket. A tenant pins a
version; players never choose a template URL.

Publishing validates the template with CloudFormation (ValidateTemplate) and stores what CloudFormation
reads from it (GetTemplateSummary: the parameters it declares with their defaults, the capabilities it
requires) beside the body as `gameserver/<version>.json`, so the reconciler knows each version's defaults
and capabilities without parsing templates itself.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from reconciler.errors import (
    PermanentError,
    TemplateNotFoundError,
    TemplateVersionExistsError,
    TransientError,
    classify,
    classify_exception,
)
from reconciler.rendering import template_key, template_url
from reconciler.stacks import TemplateVersion

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("stackherd.templates")

#: The largest body ValidateTemplate and GetTemplateSummary take inline.
_INLINE_BODY_MAX = 51_200


def summary_key(version: str) -> str:
    """Where what CloudFormation read from a version's template is stored, beside it."""
    return template_key(version).removesuffix(".yaml") + ".json"


class InvalidTemplateError(PermanentError):
    code = "InvalidTemplate"


#: What HeadObject answers for a key or bucket that is not there (403 when the caller may not list the bucket).
_MISSING = frozenset({"404", "403", "NoSuchKey", "NoSuchBucket", "NotFound", "AccessDenied", "Forbidden"})


class S3TemplateCatalog:
    """Checks that a version exists (once per process per version) and returns its URL."""

    def __init__(self, s3: S3Client, bucket: str, *, region: str | None = None, cloudformation: Any = None) -> None:
        self.s3 = s3
        self.bucket = bucket
        #: The bucket's region: template URLs take the regional form, which works in every region.
        self.region = region
        #: A CloudFormation client of the platform account, for validating templates when publishing.
        self.cloudformation = cloudformation
        self._known: set[str] = set()
        self._described: dict[str, TemplateVersion] = {}
        self._lock = threading.Lock()

    def url_for(self, version: str) -> str:
        if version not in self._known:
            from botocore.exceptions import ClientError

            try:
                self.s3.head_object(Bucket=self.bucket, Key=template_key(version))
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code not in _MISSING:
                    # Throttling, a 5xx, expired credentials: the template may well be there; retry the
                    # pass rather than fail every server of the tenant as if it were not published.
                    raise classify(code, str(error.response.get("Error", {}).get("Message", ""))) from error
                raise TemplateNotFoundError(
                    f"template version {version!r} is not published in s3://{self.bucket}/{template_key(version)} "
                    f"({code}); publish it with `stackherd templates publish FILE --version {version}`"
                ) from error
            except Exception as error:
                classified = classify_exception(error, f"could not check template version {version!r}")
                if classified is None:
                    raise
                raise classified from error
            with self._lock:
                self._known.add(version)
        return template_url(self.bucket, version, self.region)

    def describe(self, version: str) -> TemplateVersion:
        """The version with what its publishing stored (read once per process per version). A version
        published before summaries were stored has none: its parameters are not known (None)."""
        with self._lock:
            known = self._described.get(version)
        if known is not None:
            return known
        url = self.url_for(version)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            raw = self.s3.get_object(Bucket=self.bucket, Key=summary_key(version))["Body"].read()
            summary = json.loads(raw)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in _MISSING:
                raise classify(code, str(error.response.get("Error", {}).get("Message", ""))) from error
            summary = None
        except BotoCoreError as error:
            raise TransientError(f"could not read template version {version!r}'s summary: {error}") from error
        except ValueError:
            summary = None  # not JSON: treated like a version published without one
        described = _from_summary(version, url, summary)
        if described.parameters is None:
            # The reconciler has no CloudFormation permission in the platform account to read it itself: the
            # engine reads it through a tenant's role (GetTemplateSummary) when a stack's parameters differ.
            log.warning(
                "template version %s has no stored summary: its parameter defaults and capabilities are read "
                "from a tenant's account when needed; publish it again with the same body "
                "(`stackherd templates publish FILE --version %s`) to store them",
                version,
                version,
            )
        with self._lock:
            self._described[version] = described
        return described

    def summarize(self, body: bytes) -> dict[str, Any]:
        """Validate `body` with CloudFormation and return what it reads from it: the parameters (name ->
        default, None without one) and the capabilities it requires. Raises InvalidTemplateError."""
        if self.cloudformation is None:
            raise InvalidTemplateError("no CloudFormation client to validate the template with")
        if len(body) > _INLINE_BODY_MAX:
            raise InvalidTemplateError(
                f"the template is {len(body)} bytes; CloudFormation validates at most {_INLINE_BODY_MAX} inline: "
                "make it smaller"
            )
        from botocore.exceptions import BotoCoreError, ClientError

        text = body.decode("utf-8", errors="replace")
        try:
            validated = self.cloudformation.validate_template(TemplateBody=text)
            summary = self.cloudformation.get_template_summary(TemplateBody=text)
        except ClientError as error:
            info = error.response.get("Error", {})
            code, message = str(info.get("Code", "")), str(info.get("Message", ""))
            if code == "ValidationError":
                raise InvalidTemplateError(f"CloudFormation refuses the template: {message}") from error
            raise classify(code, message) from error
        except BotoCoreError as error:
            raise TransientError(f"could not validate the template: {error}") from error
        parameters = {
            str(p["ParameterKey"]): (None if p.get("DefaultValue") is None else str(p["DefaultValue"]))
            for p in summary.get("Parameters", [])
        }
        capabilities = sorted({*validated.get("Capabilities", []), *summary.get("Capabilities", [])})
        return {"parameters": parameters, "capabilities": capabilities}

    def publish(self, body: bytes, version: str, summary: dict[str, Any] | None = None) -> str:
        """Publish `body` as `version`, with `summary` (from `summarize`; computed here when not given)
        stored beside it. A version never changes once published: a stack's TemplateURL names only the
        version, so a changed body would leave every tenant pinned to it running whichever body its
        stacks last saw. Publishing the same body again is a no-op."""
        from botocore.exceptions import ClientError

        if summary is None and self.cloudformation is not None:
            summary = self.summarize(body)
        key = template_key(version)
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-yaml", IfNoneMatch="*"
            )
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) not in ("PreconditionFailed", "412"):
                raise
            if self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read() != body:
                raise TemplateVersionExistsError(
                    f"template version {version!r} is already published with a different body, and a version "
                    "never changes; publish it as a new version and move tenants to it with "
                    "`stackherd tenants update TENANT --template-version V`"
                ) from None
        if summary is not None:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=summary_key(version),
                Body=json.dumps(summary, sort_keys=True).encode(),
                ContentType="application/json",
            )
        with self._lock:
            self._known.add(version)
            self._described.pop(version, None)
        return template_url(self.bucket, version, self.region)

    def versions(self) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix="gameserver/"):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith(".yaml"):
                    found.append(key.removeprefix("gameserver/").removesuffix(".yaml"))
        return sorted(found)


def _from_summary(version: str, url: str, summary: Any) -> TemplateVersion:
    if not isinstance(summary, dict) or not isinstance(summary.get("parameters"), dict):
        return TemplateVersion(version, url)
    parameters = {str(k): (None if v is None else str(v)) for k, v in summary["parameters"].items()}
    capabilities = tuple(str(c) for c in summary.get("capabilities") or ())
    return TemplateVersion(version, url, parameters, capabilities)
