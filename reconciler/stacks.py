"""Value objects for stacks: what we ask CloudFormation for (`StackSpec`) and what it reports (`ObservedStack`)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class StackSpec:
    """Everything a create or update sends."""

    name: str
    region: str
    template_url: str
    parameters: dict[str, str]
    tags: dict[str, str]


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
