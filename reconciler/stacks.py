"""Value objects for stacks: what we ask CloudFormation for (`StackSpec`) and what it reports (`ObservedStack`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.records import SeenStack

IN_PROGRESS_SUFFIX = "_IN_PROGRESS"
STABLE_STATUSES = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)
RECREATE_STATUSES = frozenset({"ROLLBACK_COMPLETE", "CREATE_FAILED", "ROLLBACK_FAILED"})
CONTINUE_ROLLBACK_STATUSES = frozenset({"UPDATE_ROLLBACK_FAILED"})
DELETE_FAILED = "DELETE_FAILED"
GONE_STATUSES = frozenset({"DELETE_COMPLETE"})
REVIEW_IN_PROGRESS = "REVIEW_IN_PROGRESS"

#: The statuses a stack can end in when the operation we started on it failed, by operation. Seen on the
#: pass after our own call for the record's generation, each is a failed attempt against the failure budget.
FAILED_OUTCOMES: Mapping[str, frozenset[str]] = {
    "create": frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"}),
    "update": frozenset({"UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED"}),
    "delete": frozenset({"DELETE_FAILED"}),
    "continue-rollback": frozenset({"UPDATE_ROLLBACK_FAILED"}),
}

#: Stack-level statuses that open an operation in the event log (the walk back for a cause stops there).
OPERATION_START_STATUSES = frozenset(
    {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS", REVIEW_IN_PROGRESS}
)
STACK_RESOURCE_TYPE = "AWS::CloudFormation::Stack"


@dataclass(frozen=True)
class StackSpec:
    """Everything a create or update sends."""

    name: str
    region: str
    template_url: str
    parameters: dict[str, str]
    tags: dict[str, str]
    #: What the template version requires (CAPABILITY_IAM, ...), stored with the version when published.
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateVersion:
    """A published template version: where it lives, the parameters it declares (name -> default, None for
    a parameter without one) and the capabilities it requires. `parameters` is None when not known."""

    version: str
    url: str
    parameters: Mapping[str, str | None] | None = None
    capabilities: tuple[str, ...] = ()

    def defaults(self) -> dict[str, str]:
        return {k: v for k, v in (self.parameters or {}).items() if v is not None}


@dataclass(frozen=True)
class TemplateSummary:
    """What CloudFormation reads from a template (GetTemplateSummary): the parameters it declares (name ->
    default, None for a parameter without one) and the capabilities it requires."""

    parameters: Mapping[str, str | None]
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackEvent:
    """One DescribeStackEvents entry."""

    logical_id: str
    resource_type: str
    status: str
    reason: str = ""
    timestamp: datetime | None = None

    def describe(self) -> str:
        return f"{self.logical_id} ({self.resource_type}) {self.status}: {self.reason or 'no reason given'}"


def operation_events(events_newest_first: Iterable[StackEvent], stack_name: str) -> list[StackEvent]:
    """The events of the stack's latest operation, oldest first: the walk stops at the stack-level event
    that opened it, so callers can stop paging there too."""
    found: list[StackEvent] = []
    for event in events_newest_first:
        found.append(event)
        if is_operation_start(event, stack_name):
            break
    return found[::-1]


def is_operation_start(event: StackEvent, stack_name: str) -> bool:
    return (
        event.resource_type == STACK_RESOURCE_TYPE
        and event.logical_id == stack_name
        and (event.status in OPERATION_START_STATUSES or event.reason == "User Initiated")
    )


def operation_failed(operation: Sequence[StackEvent], stack_name: str) -> bool:
    """Whether an operation's events (oldest first, opened by its start event) end in failure: the stack's
    last event failed, or rolled back a create or an update (a continued rollback that completes is a
    success)."""
    own = [e for e in operation if e.logical_id == stack_name]
    if not own or not is_operation_start(own[0], stack_name) or own[-1].status.endswith("_IN_PROGRESS"):
        return False
    last = own[-1].status
    return last.endswith("_FAILED") or (
        last.endswith("ROLLBACK_COMPLETE") and own[0].status != "UPDATE_ROLLBACK_IN_PROGRESS"
    )


def first_failure(operation: Sequence[StackEvent], stack_name: str) -> StackEvent | None:
    """The cause of a failed operation (events oldest first): its first failed resource event, else the first
    stack-level event after the start that failed or rolled back with a reason (all that some backends
    report). None when the operation did not fail."""
    if not operation_failed(operation, stack_name):
        return None
    for event in operation:
        if event.logical_id != stack_name and event.status.endswith("_FAILED"):
            return event
    for event in operation[1:]:
        if event.logical_id == stack_name and event.reason and ("FAILED" in event.status or "ROLLBACK" in event.status):
            return event
    return None


@dataclass(frozen=True)
class ObservedStack:
    """One stack as CloudFormation reports it."""

    name: str
    stack_id: str
    status: str
    region: str
    parameters: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    status_reason: str = ""
    #: Set for a nested stack: only root stacks are planned, a nested one belongs to its parent.
    parent_id: str = ""
    termination_protection: bool = False
    #: When the stack last changed (LastUpdatedTime, else CreationTime); None when not reported.
    changed_at: datetime | None = None

    @property
    def nested(self) -> bool:
        return bool(self.parent_id)

    @property
    def in_progress(self) -> bool:
        return self.status.endswith(IN_PROGRESS_SUFFIX)

    @property
    def stable(self) -> bool:
        return self.status in STABLE_STATUSES


def stack_region(stack_id: str | None, account_id: str) -> str | None:
    """The region in a stack id (`arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>`) of a
    stack in `account_id`; None for anything else."""
    parts = (stack_id or "").split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[2] == "cloudformation" and parts[4] == account_id:
        return parts[3] or None
    return None


@dataclass(frozen=True)
class StackSummary:
    """One stack as ListStacks reports it: no parameters, tags or outputs, so reading it needs no permission
    on the stack itself."""

    name: str
    stack_id: str
    status: str
    region: str
    status_reason: str = ""
    parent_id: str = ""
    #: LastUpdatedTime, else CreationTime (a stack never updated, or a backend that does not report it).
    changed_at: datetime | None = None

    @property
    def nested(self) -> bool:
        return bool(self.parent_id)


def changed_key(changed_at: datetime | None) -> str | None:
    """How a last-change time is stored and compared: ISO 8601 with microseconds, None when not reported."""
    return changed_at.isoformat(timespec="microseconds") if changed_at is not None else None


_UTC_OFFSET = "+00:00"
_ZERO = timedelta(0)


def same_change(changed_at: datetime | None, stored: str) -> bool:
    """`changed_key(changed_at) == stored`, without formatting `changed_at` when both are UTC times in the
    stored shape (every time CloudFormation reports): a sweep asks this for every stack of every tenant, and
    `isoformat` costs ten times what parsing the stored string and comparing two times does."""
    if changed_at is None:
        return False
    if (
        len(stored) == 32
        and stored[4] == "-"
        and stored[7] == "-"
        and stored[10] == "T"
        and stored[13] == ":"
        and stored[16] == ":"
        and stored[19] == "."
        and stored.endswith(_UTC_OFFSET)
        and changed_at.utcoffset() == _ZERO
    ):
        try:
            # Both in UTC: the same instant is the same wall time, which is what the stored string spells.
            return datetime.fromisoformat(stored) == changed_at
        except ValueError:
            return False
    return changed_key(changed_at) == stored


def seen_from(stack: ObservedStack) -> SeenStack | None:
    """What a full read of `stack` says, to store on its server's status; None when the read reports no time
    of last change (nothing could tell a later listing whether it still holds)."""
    changed = changed_key(stack.changed_at)
    if changed is None or not stack.stack_id:
        return None
    return SeenStack(
        stack_id=stack.stack_id,
        status=stack.status,
        changed_at=changed,
        parameters=tuple(sorted(stack.parameters.items())),
        tags=tuple(sorted(stack.tags.items())),
        termination_protection=stack.termination_protection,
    )


def still_seen(summary: StackSummary, seen: SeenStack | None) -> ObservedStack | None:
    """The stack as its last full read found it, when the listing shows it unchanged since (same id, status and
    last-change time); None when it changed or was never read, and must be described again."""
    if seen is None or summary.stack_id != seen.stack_id or summary.status != seen.status:
        return None
    if not same_change(summary.changed_at, seen.changed_at):
        return None
    # Every field set in one update of the instance's dictionary: what the frozen dataclass's `__init__` sets
    # with one `object.__setattr__` each, for every stack of every tenant a sweep finds unchanged.
    stack: ObservedStack = _new(ObservedStack)
    stack.__dict__.update(
        name=summary.name,
        stack_id=summary.stack_id,
        status=summary.status,
        region=summary.region,
        parameters=dict(seen.parameters),
        tags=dict(seen.tags),
        status_reason=summary.status_reason,
        parent_id=summary.parent_id,
        termination_protection=seen.termination_protection,
        changed_at=summary.changed_at,
    )
    return stack


_new = object.__new__
