"""The template catalog on S3: versioned game-server templates in the template bucket. A tenant pins a
version; players never choose a template URL.

Publishing validates the template with CloudFormation (ValidateTemplate) and stores, beside the body as
`gameserver/<version>.json` (the version's record), what CloudFormation reads from it (GetTemplateSummary: the
parameters it declares with their defaults, the capabilities it requires) and what pins the body: the S3
`VersionId` the upload created and the body's SHA-256. Stacks are created and updated with the TemplateURL of
that object version (`?versionId=`), so overwriting the key later (a new S3 object version) changes nothing that
is deployed; reading a version checks the pinned body against the recorded digest and reports a key that was
overwritten since. A version without a pin is never deployed. Every call names the bucket's expected owner
(`ExpectedBucketOwner`), so a bucket of the same name in another account is never read or written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.errors import (
    PermanentError,
    ReconcileError,
    TemplateIntegrityError,
    TemplateNotFoundError,
    TemplateUnpinnedError,
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


class TemplateBucketNotVersionedError(PermanentError):
    """Publishing into a bucket that keeps no object versions: nothing could be pinned."""

    code = "TemplateBucketNotVersioned"


#: What HeadObject answers for a key or bucket that is not there (403 when the caller may not list the bucket).
_MISSING = frozenset({"404", "403", "NoSuchKey", "NoSuchBucket", "NotFound", "AccessDenied", "Forbidden"})
#: What GetObject with a VersionId answers for an object version that is not there (deleted).
_NO_VERSION = frozenset({"NoSuchVersion", "404", "NoSuchKey", "InvalidArgument"})


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class _Record:
    """A version's record as stored beside its body; `object_version` and `sha256` are empty when unpinned."""

    summary: dict[str, Any] | None
    object_version: str = ""
    sha256: str = ""

    @property
    def pinned(self) -> bool:
        return bool(self.object_version and self.sha256)


class S3TemplateCatalog:
    """Publishes versions (pinned to their S3 object version and digest) and reads them back, checked: each
    version is read and verified once per process (an object version never changes in a versioned bucket)."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        *,
        region: str | None = None,
        cloudformation: Any = None,
        expected_owner: str | Callable[[], str] | None = None,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        #: The bucket's region: template URLs take the regional form, which works in every region.
        self.region = region
        #: A CloudFormation client of the platform account, for validating templates when publishing.
        self.cloudformation = cloudformation
        #: The account that must own the bucket (a callable is asked once, on the first S3 call).
        self._owner: str | None = expected_owner if isinstance(expected_owner, str) else None
        self._owner_lookup = expected_owner if callable(expected_owner) else None
        self._pinned: dict[str, _Record] = {}
        self._described: dict[str, TemplateVersion] = {}
        #: Versions whose key holds another object than the pinned one (overwritten or deleted since
        #: publishing): version -> what the key holds now. Stacks keep the pinned body; this reports it.
        self.overwritten: dict[str, str] = {}
        self._lock = threading.Lock()

    def owned(self, **params: Any) -> dict[str, Any]:
        """`params` for an S3 call on the bucket, with the `ExpectedBucketOwner` S3 checks (it refuses, 403, a
        bucket of this name owned by any other account)."""
        if self._owner is None and self._owner_lookup is None:
            return {"Bucket": self.bucket, **params}
        return {"Bucket": self.bucket, "ExpectedBucketOwner": self.expected_owner(), **params}

    def expected_owner(self) -> str:
        if self._owner is None and self._owner_lookup is not None:
            owner = self._owner_lookup()
            with self._lock:
                self._owner = owner
        if self._owner is None:
            raise PermanentError("no expected owner of the template bucket is configured")
        return self._owner

    def _refused(self, error: Any, what: str) -> ReconcileError:
        """The error for an S3 refusal of `what`: transient ones stay transient; a 403 says what may cause it."""
        info = error.response.get("Error", {})
        code, message = str(info.get("Code", "")), str(info.get("Message", ""))
        if code not in _MISSING:
            # Throttling, a 5xx, expired credentials: the template may well be there; retry the pass rather
            # than fail every server of the tenant as if it were not published.
            return classify(code, message)
        owner = f" is owned by account {self._owner}," if self._owner else ""
        hint = (
            f" (S3 refuses access when the bucket is not owned by the expected account: check that "
            f"s3://{self.bucket}{owner} as STACKHERD_TEMPLATE_BUCKET_OWNER says, and that this function may read "
            "it: s3:GetObject, s3:GetObjectVersion)"
            if code in ("403", "AccessDenied", "Forbidden")
            else ""
        )
        return TemplateNotFoundError(f"{what} ({code}){hint}")

    def _record(self, version: str) -> _Record:
        """The version's record (pinned or not); TemplateNotFoundError when the version is not published."""
        from botocore.exceptions import BotoCoreError, ClientError

        with self._lock:
            known = self._pinned.get(version)
        if known is not None:
            return known
        record = self._read_record(version)
        if record is None:
            try:
                self.s3.head_object(**self.owned(Key=template_key(version)))
            except ClientError as error:
                raise self._refused(
                    error,
                    f"template version {version!r} is not published in s3://{self.bucket}/{template_key(version)}; "
                    f"publish it with `stackherd templates publish FILE --version {version}`",
                ) from error
            except BotoCoreError as error:
                raise TransientError(f"could not check template version {version!r}: {error}") from error
            record = _Record(None)
        if record.pinned:
            with self._lock:
                self._pinned[version] = record
        return record

    def _read_record(self, version: str) -> _Record | None:
        """The stored record, None when there is none; a record that is not JSON counts as an unpinned one."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            raw = self.s3.get_object(**self.owned(Key=summary_key(version)))["Body"].read()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in _MISSING:
                raise self._refused(error, f"could not read template version {version!r}'s record") from error
            return None
        except BotoCoreError as error:
            raise TransientError(f"could not read template version {version!r}'s record: {error}") from error
        except Exception as error:
            classified = classify_exception(error, f"could not read template version {version!r}'s record")
            if classified is None:
                raise
            raise classified from error
        try:
            stored = json.loads(raw)
        except ValueError:
            return _Record(None)
        if not isinstance(stored, dict):
            return _Record(None)
        return _Record(
            stored if isinstance(stored.get("parameters"), dict) else None,
            str(stored.get("version_id") or ""),
            str(stored.get("sha256") or ""),
        )

    def _url(self, version: str, record: _Record) -> str:
        return template_url(self.bucket, version, self.region, record.object_version)

    def url_for(self, version: str) -> str:
        """The pinned URL of a published version. Raises TemplateNotFoundError when it is not published and
        TemplateUnpinnedError when it has no pin (`describe` also checks the body)."""
        record = self._record(version)
        if not record.pinned:
            raise TemplateUnpinnedError.for_version(version)
        return self._url(version, record)

    def describe(self, version: str) -> TemplateVersion:
        """The version with what its publishing stored, after checking that its pinned object version holds the
        recorded body (TemplateIntegrityError otherwise). Read once per process per version. A version
        published without a summary has unknown parameters (None)."""
        with self._lock:
            known = self._described.get(version)
        if known is not None:
            return known
        record = self._record(version)
        if not record.pinned:
            raise TemplateUnpinnedError.for_version(version)
        self._verify(version, record)
        self._report_overwrite(version, record)
        described = _from_summary(version, self._url(version, record), record.summary)
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

    def _verify(self, version: str, record: _Record) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.s3.get_object(**self.owned(Key=template_key(version), VersionId=record.object_version))[
                "Body"
            ].read()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _NO_VERSION:
                raise TemplateIntegrityError.missing_object_version(version, record.object_version) from error
            raise self._refused(error, f"could not read template version {version!r}") from error
        except BotoCoreError as error:
            raise TransientError(f"could not read template version {version!r}: {error}") from error
        found = sha256_hex(body)
        if found != record.sha256:
            log.error(
                "template version %s: the body of its pinned object version %s has SHA-256 %s, not the recorded %s",
                version,
                record.object_version,
                found,
                record.sha256,
            )
            raise TemplateIntegrityError.digest_mismatch(version, record.object_version, found, record.sha256)

    def _report_overwrite(self, version: str, record: _Record) -> None:
        """Say so when the key holds another object than the pinned one: stacks keep the pinned body, but
        someone wrote (or deleted) a published key, which the bucket policy should have refused."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            latest = str(self.s3.head_object(**self.owned(Key=template_key(version))).get("VersionId") or "")
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) not in _MISSING:
                return  # only a report: the pinned body was verified, a busy S3 does not fail the pass
            latest = "deleted"
        except BotoCoreError:
            return
        if latest == record.object_version:
            return
        with self._lock:
            self.overwritten[version] = latest
        log.error(
            "template version %s: s3://%s/%s was overwritten or deleted after publishing (it now holds %s, the "
            "pinned object version is %s); stacks keep being created and updated with the pinned body, find out "
            "who wrote the key",
            version,
            self.bucket,
            template_key(version),
            latest,
            record.object_version,
        )

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
        """Publish `body` as `version`, with `summary` (from `summarize`; computed here when not given), and
        return its pinned URL. The record beside the body names the S3 object version the upload created and
        the body's SHA-256. A version never changes once published: a different body is refused
        (TemplateVersionExistsError), the same body again is a no-op, and the same body of a version uploaded
        before versions were pinned records its pin (the body in S3 must be exactly `body`)."""
        from botocore.exceptions import ClientError

        if summary is None and self.cloudformation is not None:
            summary = self.summarize(body)
        digest = sha256_hex(body)
        key = template_key(version)
        existing = self._read_record(version)
        if existing is not None and existing.pinned:
            if existing.sha256 != digest:
                raise self._exists(version)
            if summary is None or existing.summary is not None:
                with self._lock:
                    self._pinned[version] = existing
                return self._url(version, existing)
            object_version = existing.object_version  # pinned without a summary: store the summary
        else:
            self._require_versioning()
            try:
                put = self.s3.put_object(
                    **self.owned(Key=key, Body=body, ContentType="application/x-yaml", IfNoneMatch="*")
                )
                object_version = str(put.get("VersionId") or "")
            except ClientError as error:
                if str(error.response.get("Error", {}).get("Code", "")) not in ("PreconditionFailed", "412"):
                    raise
                # The key holds a body that was never pinned: pin it only if it is exactly this one.
                stored = self.s3.get_object(**self.owned(Key=key))
                if stored["Body"].read() != body:
                    raise self._exists(version) from None
                object_version = str(stored.get("VersionId") or "")
            if object_version in ("", "null"):
                raise TemplateBucketNotVersionedError(
                    f"s3://{self.bucket}/{key} has no object version to pin (it was uploaded while the bucket kept "
                    f"no versions); publish the template under a new version"
                )
        stored_summary = summary if summary is not None else (existing.summary if existing else None)
        record = {
            **(stored_summary or {}),
            "version_id": object_version,
            "sha256": digest,
        }
        self.s3.put_object(
            **self.owned(
                Key=summary_key(version),
                Body=json.dumps(record, sort_keys=True).encode(),
                ContentType="application/json",
            )
        )
        pinned = _Record(stored_summary, object_version, digest)
        with self._lock:
            self._pinned[version] = pinned
            self._described.pop(version, None)
        return self._url(version, pinned)

    def _exists(self, version: str) -> TemplateVersionExistsError:
        return TemplateVersionExistsError(
            f"template version {version!r} is already published with a different body, and a version never "
            "changes; publish it as a new version and move tenants to it with "
            "`stackherd tenants update TENANT --template-version V`"
        )

    def _require_versioning(self) -> None:
        """Refuse to publish into a bucket that keeps no object versions: its upload could not be pinned, and an
        overwrite would replace the body every stack deploys."""
        status = self.s3.get_bucket_versioning(**self.owned()).get("Status")
        if status != "Enabled":
            raise TemplateBucketNotVersionedError(
                f"the template bucket {self.bucket} does not keep object versions (versioning is "
                f"{status or 'off'}), so a published body could not be pinned; enable it with `aws s3api "
                f"put-bucket-versioning --bucket {self.bucket} --versioning-configuration Status=Enabled` "
                "(the deployment's template and `stackherd init` enable it)"
            )

    def versions(self) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(**self.owned(Prefix="gameserver/")):
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
