"""The template catalog on S3: versioned game-server templates in the template bucket. A tenant pins a
version; players never choose a template URL."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from reconciler.errors import TemplateNotFoundError, TemplateVersionExistsError, classify, classify_exception
from reconciler.rendering import template_key, template_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


#: What HeadObject answers for a key or bucket that is not there (403 when the caller may not list the bucket).
_MISSING = frozenset({"404", "403", "NoSuchKey", "NoSuchBucket", "NotFound", "AccessDenied", "Forbidden"})


class S3TemplateCatalog:
    """Checks that a version exists (once per process per version) and returns its URL."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self._known: set[str] = set()
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
        return template_url(self.bucket, version)

    def publish(self, body: bytes, version: str) -> str:
        """Publish `body` as `version`. A version never changes once published: a stack's TemplateURL names
        only the version, so a changed body would leave every tenant pinned to it running whichever body
        its stacks last saw. Publishing the same body again is a no-op."""
        from botocore.exceptions import ClientError

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
        with self._lock:
            self._known.add(version)
        return template_url(self.bucket, version)

    def versions(self) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix="gameserver/"):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith(".yaml"):
                    found.append(key.removeprefix("gameserver/").removesuffix(".yaml"))
        return sorted(found)
