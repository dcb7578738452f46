"""Errors that carry their retry policy, and the classification of AWS error codes into them.

Pure: callers extract the error code and message from whatever SDK raised it.
"""

from __future__ import annotations


class ReconcileError(Exception):
    """Base of every error the reconciler reasons about."""

    retryable = False
    code = "Error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class TransientError(ReconcileError):
    """Throttling, an operation already in progress, the network: retry with backoff."""

    retryable = True
    code = "Transient"


class ThrottledError(TransientError):
    code = "Throttling"


class CredentialsExpiredError(TransientError):
    """The assumed-role credentials expired: drop them from the cache and retry."""

    code = "ExpiredToken"


class PermanentError(ReconcileError):
    """Invalid config, a missing template, access denied: retrying will not help until something changes."""

    code = "Permanent"


class AccessDeniedError(PermanentError):
    code = "AccessDenied"


class TemplateNotFoundError(PermanentError):
    code = "TemplateNotFound"


class TemplateUnpinnedError(TemplateNotFoundError):
    """A version whose S3 object version and digest were never recorded (uploaded before publishing pinned
    them, or copied into the bucket by hand): stackherd deploys only a pinned body, so it is not deployed."""

    code = "TemplateUnpinned"

    @classmethod
    def for_version(cls, version: str) -> TemplateUnpinnedError:
        return cls(
            f"template version {version!r} has no recorded S3 object version and SHA-256 (it was uploaded before "
            "versions were pinned, or copied into the bucket by hand), and only a pinned body is deployed; record "
            f"them with `stackherd templates publish FILE --version {version}`, FILE being the template it was "
            "published from (the body in S3 must be exactly that file)"
        )


class TemplateIntegrityError(TemplateNotFoundError):
    """The body a version's pinned S3 object version holds is not the body recorded when it was published."""

    code = "TemplateIntegrity"

    @classmethod
    def digest_mismatch(cls, version: str, object_version: str, found: str, recorded: str) -> TemplateIntegrityError:
        return cls(
            f"template version {version!r} is refused: its body in S3 (object version {object_version}) has SHA-256 "
            f"{found}, not the {recorded} recorded when it was published, so it was changed after publishing; "
            "publish the intended template under a new version (`stackherd templates publish FILE --version V`) "
            "and move tenants to it (`stackherd tenants update TENANT --template-version V`)"
        )

    @classmethod
    def missing_object_version(cls, version: str, object_version: str) -> TemplateIntegrityError:
        return cls(
            f"template version {version!r} is refused: its pinned S3 object version {object_version} is gone "
            "(deleted after publishing); publish the intended template under a new version "
            "(`stackherd templates publish FILE --version V`) and move tenants to it"
        )


class TemplateVersionExistsError(PermanentError):
    """A version is already published with another body: versions are immutable."""

    code = "TemplateVersionExists"


class StackNotFoundError(ReconcileError):
    code = "StackNotFound"


class AlreadyExistsError(ReconcileError):
    code = "AlreadyExists"


class NoUpdatesError(ReconcileError):
    """CloudFormation's "No updates are to be performed": the stack already matches."""

    code = "NoUpdates"


class StoreError(TransientError):
    """The desired-state store could not be read completely."""

    code = "StoreUnavailable"


class UnreadableItemError(PermanentError):
    """An item in a table cannot be read as what it should be (written around the models); retrying cannot
    fix it, only correcting the item."""

    code = "UnreadableItem"


_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId"}
_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AccountSuspended",
    "OptInRequired",
}
_TRANSIENT = {
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
    "TokenAlreadyExistsException",
    "OperationInProgressException",
}


# The stack is mid-change, or in a state (UPDATE_ROLLBACK_FAILED, ROLLBACK_COMPLETE) the next pass plans for.
# CloudFormation writes "can not be updated"; other services and older messages "cannot".
_BUSY_STACK = ("_IN_PROGRESS state", "can not be updated", "cannot be updated")


def classify(code: str, message: str) -> ReconcileError:
    """Turn an AWS error code and message into the error whose class says how to retry it."""
    text = f"{code}: {message}" if message else code
    if code in _THROTTLING or "Rate exceeded" in message:
        return ThrottledError(text, code=code)
    if code in _EXPIRED or "security token included in the request is expired" in message:
        return CredentialsExpiredError(text, code=code)
    if code in _DENIED:
        return AccessDeniedError(text, code=code)
    if code == "AlreadyExistsException":
        return AlreadyExistsError(text, code=code)
    if code == "ValidationError" and "No updates are to be performed" in message:
        return NoUpdatesError(text, code=code)
    if code == "ValidationError" and "does not exist" in message:
        return StackNotFoundError(text, code=code)
    if code == "ValidationError" and any(s in message for s in _BUSY_STACK):
        return TransientError(text, code=code)
    if code in _TRANSIENT or code.startswith("5"):
        return TransientError(text, code=code)
    return PermanentError(text, code=code)


class UnknownRegionError(PermanentError):
    """A region the SDK or the partition does not know (a made-up name, or one outside the role's partition):
    no retry can reach it; the tenant's regions must be corrected."""

    code = "UnknownRegion"


class RegionUnavailableError(PermanentError):
    """One region of a tenant cannot be used (not enabled in the account, denied by an SCP): only the
    servers placed there fail; the tenant's other regions go on."""

    code = "RegionUnavailable"


# SDK exceptions by class name (this module imports no SDK): anything in an exception's class hierarchy.
_REGION_ERRORS = frozenset(
    {
        "NoRegionError",
        "InvalidRegionError",
        "UnknownEndpointError",
        "UnknownRegionError",
        "EndpointResolutionError",
        "EndpointVariantError",
    }
)
_NETWORK_ERRORS = frozenset(
    {
        "ConnectionError",  # botocore's: EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ...
        "HTTPClientError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "IncompleteReadError",
        "ResponseStreamingError",
    }
)


def classify_exception(error: BaseException, what: str = "AWS call") -> ReconcileError | None:
    """The one place an SDK exception becomes a `ReconcileError` with its retry policy; None when `error` is
    not an SDK error (a defect, which the caller lets through).

    Network failures, responses that cannot be parsed (a truncated or garbled body, an HTML error page from a
    proxy) and 5xx answers are transient; an unknown region or endpoint, a malformed request and missing
    credentials are permanent, with a message saying what to fix."""
    if isinstance(error, ReconcileError):
        return error
    names = {cls.__name__ for cls in type(error).__mro__}
    module = type(error).__module__ or ""
    if not module.startswith(("botocore", "boto3", "urllib3")):
        return None
    if "ClientError" in names:
        response = getattr(error, "response", None) or {}
        info = response.get("Error", {}) if isinstance(response, dict) else {}
        code, message = str(info.get("Code", "Unknown")), str(info.get("Message", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None
        classified = classify(code, message)
        if isinstance(status, int) and status >= 500 and not classified.retryable:
            return TransientError(f"{code}: {message} (HTTP {status})", code=code)
        return classified
    if names & _REGION_ERRORS:
        return UnknownRegionError(
            f"{what}: {error}; correct the tenant's regions (`stackherd tenants update TENANT --region ...`)"
        )
    if "ResponseParserError" in names:
        return TransientError(f"{what}: AWS sent a response that could not be read: {error}", code="ResponseParse")
    if "ParamValidationError" in names:
        return PermanentError(f"{what}: {error}", code="ParamValidation")
    if "NoCredentialsError" in names or "PartialCredentialsError" in names:
        return PermanentError(f"{what}: {error}; configure stackherd's own AWS credentials", code="NoCredentials")
    if names & _NETWORK_ERRORS:
        return TransientError(f"{what}: {error}", code="Network")
    if "BotoCoreError" in names:
        return TransientError(f"{what}: {error}")
    return None
