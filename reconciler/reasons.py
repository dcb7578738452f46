"""What a player is told about their game server: one stable reason code and message per kind of outcome.

The reconciler records raw causes (AWS error codes and messages, stack ARNs, the platform's role and the
template bucket) on a record's status and in its history; admins read them through the admin routes, the CLI
and the logs. A player's view carries only the reason code and the fixed message of this table, derived from
the error classification in `reconciler.errors` for every AWS error code it knows. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.errors import (
    AccessDeniedError,
    CredentialsExpiredError,
    PermanentError,
    ThrottledError,
    TransientError,
    classify,
)


@dataclass(frozen=True)
class PlayerReason:
    code: str
    message: str


_ASK = "an admin of your tenant can see the details"

#: Every reason a player can see, by its code.
PLAYER_REASONS: dict[str, PlayerReason] = {
    r.code: r
    for r in (
        PlayerReason("Available", "the server is running with its desired config"),
        PlayerReason("Creating", "the server is being created"),
        PlayerReason("Updating", "the server is being changed to its desired config"),
        PlayerReason("Recreating", "the server is being replaced (its region or an unchangeable setting changed)"),
        PlayerReason("Deleting", "the server is being deleted"),
        PlayerReason("InProgress", "a change to the server is in progress"),
        PlayerReason("Drifted", "the server's settings were changed outside the platform; they are set back"),
        PlayerReason("Stuck", f"a change to the server is taking much longer than usual; {_ASK}"),
        PlayerReason("TenantPaused", "your tenant is paused: changes wait until an admin resumes it"),
        PlayerReason("TenantAccessDenied", f"the platform cannot reach your tenant's cloud account; {_ASK}"),
        PlayerReason("TemplateUnavailable", f"the game-server template your tenant uses is not available; {_ASK}"),
        PlayerReason("RegionUnavailable", f"the server's region cannot be used at the moment; {_ASK}"),
        PlayerReason("Throttled", "the cloud provider is busy; the change is retried automatically"),
        PlayerReason("TemporarilyUnavailable", "a temporary problem interrupted the change; it is retried"),
        PlayerReason("StackRolledBack", f"the last change failed and was rolled back; it is retried later; {_ASK}"),
        PlayerReason(
            "FailureBudgetExhausted",
            f"the change failed repeatedly and is on hold until an admin retries it or you change the server; {_ASK}",
        ),
        PlayerReason("DeletionHeld", "the deletion waits for an admin's confirmation"),
        PlayerReason("DeleteFailed", f"the server's resources could not be deleted; {_ASK}"),
        PlayerReason("NeedsAttention", f"the server needs an admin's attention; {_ASK}"),
        PlayerReason("NameUnavailable", f"the server's name is taken in your tenant's account; {_ASK}"),
        PlayerReason("InvalidConfig", "the stored config is not valid any more: replace it with a whole PUT"),
        PlayerReason("Unreadable", "the stored server cannot be read: replace its config with a whole PUT"),
        PlayerReason("OperationFailed", f"the platform could not apply the change; {_ASK}"),
    )
}

#: Reasons the planner, the status and the engine record (not AWS error codes) -> the player's reason.
_RECORDED: dict[str, str] = {
    "Available": "Available",
    "Creating": "Creating",
    "Updating": "Updating",
    "Recreating": "Recreating",
    "ContinuingRollback": "Updating",
    "Deleting": "Deleting",
    "InProgress": "InProgress",
    "StackStuck": "Stuck",
    "Drifted": "Drifted",
    "TenantPaused": "TenantPaused",
    "Held": "NeedsAttention",
    "AttemptFailed": "StackRolledBack",
    "RetryBackoff": "StackRolledBack",
    "FailureBudgetExhausted": "FailureBudgetExhausted",
    "DeletionBrake": "DeletionHeld",
    "DesiredReadIncomplete": "TemporarilyUnavailable",
    "DeleteFailedRepeatedly": "DeleteFailed",
    "UnexpectedStackStatus": "NeedsAttention",
    "TerminationProtected": "NeedsAttention",
    "ReviewInProgress": "NeedsAttention",
    "StackNameTaken": "NameUnavailable",
    "InvalidConfig": "InvalidConfig",
    "Unreadable": "Unreadable",
    "UnreadableItem": "Unreadable",
    "TemplateNotFound": "TemplateUnavailable",
    "InvalidTemplate": "TemplateUnavailable",
    "TemplateVersionExists": "TemplateUnavailable",
    "RegionUnavailable": "RegionUnavailable",
    "UnknownRegion": "RegionUnavailable",
    "TenantUnavailable": "TenantAccessDenied",
    "UnknownTenant": "TenantAccessDenied",
    "StoreUnavailable": "TemporarilyUnavailable",
    "Network": "TemporarilyUnavailable",
    "ResponseParse": "TemporarilyUnavailable",
    "Transient": "TemporarilyUnavailable",
    "NoCredentials": "OperationFailed",
    "ParamValidation": "OperationFailed",
}


_LEADING_CODE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?::|$)")


def player_error(last_error: str, ready: str | None) -> PlayerReason:
    """The player's reason for a recorded last error: the Ready condition's reason when it is not ready, the
    error code the text starts with (`Throttling: Rate exceeded`) otherwise."""
    if ready is not None:
        return player_reason(ready)
    match = _LEADING_CODE.match(last_error)
    return player_reason(match.group(1) if match else "Failed")


def player_reason(reason: str) -> PlayerReason:
    """The player's reason for a recorded condition reason or AWS error code: a recorded reason by the table,
    an AWS error code by the class `reconciler.errors.classify` gives it."""
    code = _RECORDED.get(reason)
    if code is None:
        error = classify(reason, "")
        if isinstance(error, ThrottledError):
            code = "Throttled"
        elif isinstance(error, AccessDeniedError):
            code = "TenantAccessDenied"
        elif isinstance(error, CredentialsExpiredError | TransientError):
            code = "TemporarilyUnavailable"
        elif isinstance(error, PermanentError):
            code = "OperationFailed"
        else:  # a stack that is missing, already exists, needs no update: the next pass plans for it
            code = "InProgress"
    return PLAYER_REASONS[code]


#: What a player's history says for entries the reconciler wrote (their raw text is for admins).
HISTORY_MESSAGES: dict[str, str] = {
    "create": "server creation started",
    "update": "server change started",
    "recreate": "server replacement started",
    "delete": "server deletion started",
    "continue-rollback": "recovery of a failed change started",
    "hold": "the server is on hold; its status says why",
    "fail": "the server cannot be changed; its status says why",
    "backoff": "the last change failed; it is retried later",
    "status": "an attempt failed; the server's status says why",
    "ready": "the server is running with its desired config",
    "finalized": "the server is deleted",
    "stuck": "a change is taking much longer than usual",
    "brake": "the deletion waits for an admin's confirmation",
    "orphan": "an old copy of the server was cleaned up",
    "report": "your tenant is paused: the change waits until an admin resumes it",
    "finalize": "the server is deleted",
}

#: The kinds of entries the desired writes append (a player's or an operator's own words about the change);
#: every other kind is the reconciler's, whose text quotes AWS and is never shown to a player as written.
DESIRED_KINDS = frozenset({"desired", "retry", "rollout"})

#: A reconciler entry of a kind the table above does not know yet.
OTHER_HISTORY_MESSAGE = "the platform acted on the server; its status says where it stands"


def player_history_message(kind: str, message: str, *names: str) -> str:
    """What a player's history says for an entry: the desired writes' lines redacted, any other by its kind's
    fixed message (a kind without one gets a general message rather than its raw text)."""
    if kind in DESIRED_KINDS:
        return redact(message, *names)
    return HISTORY_MESSAGES.get(kind, OTHER_HISTORY_MESSAGE)


# Belt and braces for text a player sees that is theirs but passes through the platform (a drift
# description, why a stored item does not validate): nothing that names the platform's accounts or resources.
_ARN = re.compile(r"arn:[A-Za-z0-9-]*:[^\s\"',;)]*")
_ACCOUNT = re.compile(r"(?<![0-9A-Za-z])[0-9]{12}(?![0-9A-Za-z])")
_S3_URL = re.compile(r"(?:https?://|s3://)[^\s\"',;)]*")


def redact(text: str, *names: str) -> str:
    """`text` without ARNs, 12-digit account ids, S3 or other URLs, or any of `names` (a bucket's)."""
    text = _ARN.sub("<arn>", text)
    text = _S3_URL.sub("<url>", text)
    for name in names:
        if name:
            text = text.replace(name, "<bucket>")
    return _ACCOUNT.sub("<account>", text)
