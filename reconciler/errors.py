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
