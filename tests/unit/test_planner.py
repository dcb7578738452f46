"""The decision table, one row per case: what `plan` does for each desired/observed combination and why."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import FrozenInstanceError, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.config import GameServerConfig
from models.records import DesiredServer, OrphanAttempts, ServerStatus, Tenant
from reconciler import naming
from reconciler.planner import Action, ActionKind, Plan, PlanSettings, drift_summary, plan
from reconciler.rendering import render
from reconciler.stacks import ObservedStack, TemplateVersion

INSTALLATION = "stackherd"
URL = "https://templates.s3.amazonaws.com/gameserver/v1.yaml"
TENANT = Tenant(
    tenant_id="acme",
    account_id="111111111111",
    regions=("us-east-1", "eu-west-1"),
    role_arn="arn:aws:iam::111111111111:role/StackherdExecution",
    external_id="ext-acme",
    tier="standard",
    template_version="v1",
)
PAUSED = replace(TENANT, paused=True)
CONFIG = GameServerConfig(difficulty="easy", player_count=4, seed="abc")
#: What CONFIG renders to, written out so a rendering bug cannot hide behind its own output.
PARAMS = {"Difficulty": "easy", "PlayerCount": "4", "Seed": "abc"}

C, U, D, W, N = ActionKind.CREATE, ActionKind.UPDATE, ActionKind.DELETE, ActionKind.WAIT, ActionKind.NOOP
H, F, R = ActionKind.HOLD, ActionKind.FAIL, ActionKind.REPORT
B = ActionKind.BACKOFF
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = "2026-03-01T12:05:00Z"  # a backoff not yet run out at NOW
EARLIER = "2026-03-01T11:55:00Z"  # one that has


def server(gid: str = "gs-1", **changes: Any) -> DesiredServer:
    base = DesiredServer(
        tenant_id="acme", gameserver_id=gid, username="alice", config=CONFIG, generation=1, incarnation=INCARNATION
    )
    return replace(base, **changes)


INCARNATION = "5f0c2a9e41d84b7c9a3e6d1f2b8c7a40"


def owned_tags(gid: str = "gs-1", **overrides: str) -> dict[str, str]:
    tags = {
        naming.TAG_INCARNATION: INCARNATION,
        naming.TAG_INSTALLATION: INSTALLATION,
        naming.TAG_TENANT: "acme",
        naming.TAG_GAMESERVER: gid,
        naming.TAG_GENERATION: "1",
        naming.TAG_TEMPLATE_VERSION: "v1",
        naming.TAG_OWNER: "alice",
    }
    tags.update(overrides)
    return tags


def stack(
    gid: str = "gs-1",
    status: str = "CREATE_COMPLETE",
    *,
    region: str = "us-east-1",
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    reason: str = "",
    **extra: Any,
) -> ObservedStack:
    return ObservedStack(
        name=f"stackherd-acme-{gid}",
        stack_id=f"arn:aws:cloudformation:{region}:111111111111:stack/stackherd-acme-{gid}/{gid}-id",
        status=status,
        region=region,
        parameters=dict(PARAMS if params is None else params),
        tags=owned_tags(gid) if tags is None else tags,
        status_reason=reason,
        **extra,
    )


@dataclass(frozen=True)
class Row:
    reason: str
    desired: tuple[DesiredServer, ...]
    observed: tuple[ObservedStack, ...]
    #: One dict per expected action, in order; each names only the Action fields this row is about.
    expected: tuple[dict[str, Any], ...]
    tenant: Tenant = TENANT
    settings: PlanSettings = field(default_factory=PlanSettings)
    template_url: str | None = URL
    template_error: str | None = None
    desired_complete: bool = True
    scope: frozenset[str] | None = None
    now: datetime | None = None
    template: TemplateVersion | None = None
    orphan_attempts: Mapping[str, OrphanAttempts] | None = None


def row(
    reason: str,
    desired: list[DesiredServer],
    observed: list[ObservedStack],
    expected: list[dict[str, Any]],
    *,
    id: str,
    **options: Any,
) -> Any:
    return pytest.param(Row(reason, tuple(desired), tuple(observed), tuple(expected), **options), id=id)


def want(kind: ActionKind, gid: str = "gs-1", **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "gameserver_id": gid, **fields}


def project(action: Any, keys: list[str]) -> dict[str, Any]:
    view = {k: getattr(action, k) for k in keys if k != "parameters"}
    if "parameters" in keys:
        view["parameters"] = dict(action.spec.parameters) if action.spec else None
    return view


def run(r: Row) -> Plan:
    return plan(
        r.tenant,
        r.desired,
        r.observed,
        settings=r.settings,
        template_url=r.template_url,
        template_error=r.template_error,
        now=r.now,
        template=r.template,
        orphan_attempts=r.orphan_attempts,
        desired_complete=r.desired_complete,
        scope=r.scope,
    )


ROWS = [
    # --- present, no stack ------------------------------------------------------------------------------
    row(
        "a desired server without a stack is created from its rendering",
        [server()],
        [],
        [want(C, parameters=PARAMS, region="us-east-1", stack_name="stackherd-acme-gs-1", generation=1)],
        id="create-when-no-stack",
    ),
    row(
        "a DELETE_COMPLETE stack is history, not a stack: the server is created again",
        [server()],
        [stack(status="DELETE_COMPLETE")],
        [want(C)],
        id="create-when-only-a-deleted-stack",
    ),
    row(
        "a server pinned to a secondary region is created there",
        [server(region="eu-west-1")],
        [],
        [want(C, region="eu-west-1")],
        id="create-in-pinned-region",
    ),
    # --- present, in progress --------------------------------------------------------------------------
    *[
        row(
            f"a stack in {status} is never touched mid-operation: wait and look again later",
            [server()],
            [stack(status=status)],
            [want(W, requeue_after_s=30, stack_status=status)],
            id=f"wait-{status.lower()}",
        )
        for status in (
            "CREATE_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "ROLLBACK_IN_PROGRESS",
            "DELETE_IN_PROGRESS",
        )
    ],
    row(
        "the requeue delay comes from the settings",
        [server()],
        [stack(status="UPDATE_IN_PROGRESS")],
        [want(W, requeue_after_s=7)],
        settings=PlanSettings(requeue_after_s=7),
        id="wait-uses-configured-requeue",
    ),
    # --- present, stable -------------------------------------------------------------------------------
    *[
        row(
            f"{status} with the same rendering needs nothing",
            [server()],
            [stack(status=status)],
            [want(N, stack_status=status, diff=None, spec=None)],
            id=f"noop-{status.lower()}",
        )
        for status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")
    ],
    row(
        "a new generation that renders the same parameters does not need a CloudFormation update",
        [server(generation=5)],
        [stack(tags=owned_tags(**{naming.TAG_GENERATION: "1"}))],
        [want(N, generation=5)],
        id="generation-tag-alone-is-no-update",
    ),
    row(
        "a changed parameter is updated, and the diff says what changes in plain words",
        [server()],
        [stack(params={**PARAMS, "Seed": "old"})],
        [want(U, diff="parameters.Seed: 'old' -> 'abc'", parameters=PARAMS)],
        id="update-parameter-differs",
    ),
    row(
        "several changed parameters are all listed",
        [server()],
        [stack(status="UPDATE_COMPLETE", params={"Difficulty": "hard", "PlayerCount": "8", "Seed": "abc"})],
        [want(U, diff="parameters.Difficulty: 'hard' -> 'easy'; parameters.PlayerCount: '8' -> '4'")],
        id="update-several-parameters-differ",
    ),
    row(
        "a stack still running the previous template version is updated to the pinned one",
        [server()],
        [stack(tags=owned_tags(**{naming.TAG_TEMPLATE_VERSION: "v0"}))],
        [want(U, diff="tags.stackherd:template-version: 'v0' -> 'v1'")],
        id="update-template-version-differs",
    ),
    row(
        "a stack tagged for an earlier incarnation of the id is retagged for this one",
        [server()],
        [stack(tags=owned_tags(**{naming.TAG_INCARNATION: "0" * 32}))],
        [want(U, diff=f"tags.stackherd:incarnation: '{'0' * 32}' -> '{INCARNATION}'")],
        id="update-incarnation-differs",
    ),
    row(
        "a stack created before incarnations were tagged gets the tag",
        [server()],
        [stack(tags={k: v for k, v in owned_tags().items() if k != naming.TAG_INCARNATION})],
        [want(U, diff=f"tags.stackherd:incarnation: None -> '{INCARNATION}'")],
        id="update-incarnation-missing",
    ),
    row(
        "a stack edited by hand that lost a parameter gets it back",
        [server()],
        [stack(params={"Difficulty": "easy", "PlayerCount": "4"})],
        [want(U, diff="parameters.Seed: missing -> 'abc'")],
        id="update-parameter-missing",
    ),
    row(
        "a stack that drifted after an UPDATE_ROLLBACK_COMPLETE is updated again",
        [server()],
        [stack(status="UPDATE_ROLLBACK_COMPLETE", params={**PARAMS, "PlayerCount": "2"})],
        [want(U)],
        id="update-after-rollback-complete",
    ),
    # --- present, failed states ------------------------------------------------------------------------
    *[
        row(
            f"a stack in {status} cannot be updated: delete it now, create it on a later pass",
            [server()],
            [stack(status=status, reason="resource failed")],
            [want(ActionKind.RECREATE, stack_status=status)],
            id=f"recreate-{status.lower()}",
        )
        for status in ("ROLLBACK_COMPLETE", "CREATE_FAILED", "ROLLBACK_FAILED")
    ],
    row(
        "an UPDATE_ROLLBACK_FAILED stack is unstuck by continuing the rollback",
        [server()],
        [stack(status="UPDATE_ROLLBACK_FAILED")],
        [want(ActionKind.CONTINUE_ROLLBACK)],
        id="continue-rollback",
    ),
    row(
        "a DELETE_FAILED stack is deleted again, counting the attempt",
        [server(status=ServerStatus(attempts=2))],
        [stack(status="DELETE_FAILED")],
        [want(D, attempt=3)],
        id="delete-failed-retried-below-limit",
    ),
    row(
        "after delete_retry_limit failed deletes the stack is held for an operator",
        [server(status=ServerStatus(attempts=3))],
        [stack(status="DELETE_FAILED", reason="bucket not empty")],
        [want(H, code="DeleteFailedRepeatedly")],
        id="delete-failed-held-at-limit",
    ),
    row(
        "the retry limit comes from the settings",
        [server(status=ServerStatus(attempts=1))],
        [stack(status="DELETE_FAILED")],
        [want(H, code="DeleteFailedRepeatedly")],
        settings=PlanSettings(delete_retry_limit=1),
        id="delete-failed-limit-configurable",
    ),
    row(
        "a status the table does not know is held for an operator, never guessed at",
        [server()],
        [stack(status="IMPORT_ROLLBACK_FAILED")],
        [want(H, code="UnexpectedStackStatus")],
        id="hold-unexpected-status",
    ),
    # --- deletion requested ----------------------------------------------------------------------------
    row(
        "deletion requested and the stack exists: delete it",
        [server(deletion_requested=True)],
        [stack()],
        [want(D, generation=1, orphan=False)],
        id="deletion-requested-deletes",
    ),
    row(
        "deletion requested and no stack left: finalize the record",
        [server(deletion_requested=True)],
        [],
        [want(ActionKind.FINALIZE)],
        id="deletion-requested-finalizes",
    ),
    row(
        "a DELETE_COMPLETE stack counts as gone, so the record is finalized",
        [server(deletion_requested=True)],
        [stack(status="DELETE_COMPLETE")],
        [want(ActionKind.FINALIZE)],
        id="deletion-requested-finalizes-after-delete-complete",
    ),
    row(
        "deletion requested while the delete runs: wait for it",
        [server(deletion_requested=True)],
        [stack(status="DELETE_IN_PROGRESS")],
        [want(W, requeue_after_s=30)],
        id="deletion-requested-waits",
    ),
    row(
        "deletion requested on a DELETE_FAILED stack past the limit is held, not retried forever",
        [server(deletion_requested=True, status=ServerStatus(attempts=3))],
        [stack(status="DELETE_FAILED")],
        [want(H, code="DeleteFailedRepeatedly")],
        id="deletion-requested-delete-failed-held",
    ),
    row(
        "a record that no longer validates may still be deleted when its player asks",
        [server(deletion_requested=True, unreadable="stored config.seed: bad")],
        [stack()],
        [want(D)],
        id="deletion-requested-with-invalid-config",
    ),
    # --- orphans and stacks that are not ours ----------------------------------------------------------
    row(
        "an owned stack whose record is gone is an orphan and is deleted",
        [],
        [stack("gs-9")],
        [want(D, "gs-9", orphan=True, generation=None, stack_name="stackherd-acme-gs-9")],
        id="orphan-deleted",
    ),
    row(
        "an orphan mid-operation is waited for, not deleted under CloudFormation's feet",
        [],
        [stack("gs-9", status="UPDATE_IN_PROGRESS")],
        [want(W, "gs-9", orphan=True, requeue_after_s=30)],
        id="orphan-in-progress-waits",
    ),
    row(
        "a stack without our tags is never touched",
        [],
        [stack("gs-9", tags={})],
        [],
        id="untagged-stack-ignored",
    ),
    row(
        "a stack of another installation is never touched",
        [],
        [stack("gs-9", tags=owned_tags("gs-9", **{naming.TAG_INSTALLATION: "other"}))],
        [],
        id="other-installation-ignored",
    ),
    row(
        "a stack tagged for another tenant is never touched",
        [],
        [stack("gs-9", tags=owned_tags("gs-9", **{naming.TAG_TENANT: "globex"}))],
        [],
        id="other-tenant-ignored",
    ),
    *[
        row(
            "a desired server whose stack name is taken by a stack that is not ours fails; the stack is left alone",
            [server()],
            [stack(tags=tags)],
            [want(F, code="StackNameTaken")],
            id=f"name-taken-{label}",
        )
        for label, tags in (
            ("untagged", {}),
            ("other-installation", owned_tags(**{naming.TAG_INSTALLATION: "other"})),
            ("other-tenant", owned_tags(**{naming.TAG_TENANT: "globex"})),
        )
    ],
    row(
        "a server moved to another tenant region is created there and its old stack removed",
        [server(region="eu-west-1")],
        [stack(region="us-east-1")],
        [want(C, region="eu-west-1"), want(D, region="us-east-1", orphan=True)],
        id="region-move-creates-and-removes-old",
    ),
    # --- paused tenant ---------------------------------------------------------------------------------
    row(
        "a paused tenant is observed and reported, never created in",
        [server()],
        [],
        [want(R)],
        tenant=PAUSED,
        id="paused-no-create",
    ),
    row(
        "a paused tenant's drift is reported, not updated",
        [server()],
        [stack(params={**PARAMS, "Seed": "old"})],
        [want(R)],
        tenant=PAUSED,
        id="paused-no-update",
    ),
    row(
        "a paused tenant's deletion requests wait until it is resumed",
        [server(deletion_requested=True)],
        [stack()],
        [want(R)],
        tenant=PAUSED,
        id="paused-no-delete",
    ),
    row(
        "a paused tenant's orphans are reported and left in place",
        [],
        [stack("gs-9")],
        [want(R, "gs-9", orphan=True)],
        tenant=PAUSED,
        id="paused-orphan-reported",
    ),
    # --- invalid config and missing template: fail, never delete ---------------------------------------
    row(
        "a stored config that no longer validates fails the record and keeps its stack",
        [server(unreadable="stored config.seed: String should match pattern")],
        [stack()],
        [want(F, code="InvalidConfig", reason="stored config.seed: String should match pattern")],
        id="invalid-stored-config-fails-keeps-stack",
    ),
    row(
        "a player count above the tenant tier's maximum fails with the tier and the limit",
        [server(config=GameServerConfig(player_count=40))],
        [stack()],
        [want(F, code="InvalidConfig")],
        id="player-count-above-tier-fails-keeps-stack",
    ),
    row(
        "a region the tenant does not have fails the record and creates nothing",
        [server(region="ap-south-1")],
        [],
        [want(F, code="InvalidConfig")],
        id="region-not-in-tenant-fails",
    ),
    row(
        "moving a server to a region the tenant lacks fails it and keeps its running stack",
        [server(region="ap-south-1")],
        [stack(region="us-east-1")],
        [want(F, code="InvalidConfig")],
        id="region-not-in-tenant-keeps-old-stack",
    ),
    row(
        "an unpublished template version fails the record with the lookup's message",
        [server()],
        [stack()],
        [want(F, code="TemplateNotFound", reason="gameserver/v1.yaml not found in bucket templates")],
        template_url=None,
        template_error="gameserver/v1.yaml not found in bucket templates",
        id="template-missing-fails",
    ),
    row(
        "without a lookup message the failure still names the version",
        [server()],
        [],
        [want(F, code="TemplateNotFound", reason="template version v1 is not published")],
        template_url=None,
        id="template-missing-default-message",
    ),
    row(
        "a moved server whose new region cannot be rendered keeps its old stack",
        [server(region="eu-west-1")],
        [stack(region="us-east-1")],
        [want(F, code="TemplateNotFound")],
        template_url=None,
        id="template-missing-keeps-old-region-stack",
    ),
    # --- deletion brake --------------------------------------------------------------------------------
    row(
        "after an incomplete desired read an orphan may only look orphaned: hold it",
        [],
        [stack("gs-9")],
        [want(H, "gs-9", code="DesiredReadIncomplete")],
        desired_complete=False,
        id="brake-incomplete-read-holds-orphan",
    ),
    row(
        "an incomplete read holds requested deletions too, but not the rest of the plan",
        [server("gs-1", deletion_requested=True), server("gs-2")],
        [stack("gs-1")],
        [want(H, "gs-1", code="DesiredReadIncomplete"), want(C, "gs-2")],
        desired_complete=False,
        id="brake-incomplete-read-holds-requested-delete",
    ),
    row(
        "confirming deletions does not override an incomplete read",
        [],
        [stack("gs-9")],
        [want(H, "gs-9", code="DesiredReadIncomplete")],
        desired_complete=False,
        settings=PlanSettings(confirm_deletions=True),
        id="brake-incomplete-read-ignores-confirm",
    ),
    row(
        "more deletions than max_deletions: the first ones go, the rest are held",
        [],
        [stack("gs-7"), stack("gs-8"), stack("gs-9")],
        [want(D, "gs-7"), want(D, "gs-8"), want(H, "gs-9", code="DeletionBrake")],
        settings=PlanSettings(max_deletions=2),
        id="brake-caps-deletions",
    ),
    row(
        "exactly max_deletions deletions pass the brake",
        [],
        [stack("gs-8"), stack("gs-9")],
        [want(D, "gs-8"), want(D, "gs-9")],
        settings=PlanSettings(max_deletions=2),
        id="brake-allows-up-to-max",
    ),
    row(
        "an admin's confirmation lifts the cap",
        [],
        [stack("gs-7"), stack("gs-8"), stack("gs-9")],
        [want(D, "gs-7"), want(D, "gs-8"), want(D, "gs-9")],
        settings=PlanSettings(max_deletions=2, confirm_deletions=True),
        id="brake-confirmed",
    ),
    row(
        "requested deletions and orphans share one cap",
        [server("gs-1", deletion_requested=True)],
        [stack("gs-1"), stack("gs-9")],
        [want(D, "gs-1"), want(H, "gs-9", code="DeletionBrake")],
        settings=PlanSettings(max_deletions=1),
        id="brake-counts-requested-and-orphans",
    ),
    # --- scope -----------------------------------------------------------------------------------------
    row(
        "a scoped plan (the stream path) only covers the ids it names",
        [server("gs-1"), server("gs-2")],
        [stack("gs-9")],
        [want(C, "gs-2")],
        scope=frozenset({"gs-2"}),
        id="scope-limits-servers",
    ),
    row(
        "a scoped plan includes an orphan with a named id (its record was just removed)",
        [server("gs-1")],
        [stack("gs-8"), stack("gs-9")],
        [want(D, "gs-9", orphan=True)],
        scope=frozenset({"gs-9"}),
        id="scope-includes-named-orphan",
    ),
    # --- the failure budget ----------------------------------------------------------------------------
    row(
        "our update for this generation rolled back: a failed attempt, backed off (5 min), its cause read",
        [server(status=ServerStatus(observed_generation=1, operation="update", tries=1))],
        [stack(status="UPDATE_ROLLBACK_COMPLETE", params={**PARAMS, "Seed": "old"})],
        [want(B, failed_attempt=True, retry_at="2026-03-01T12:05:00Z", requeue_after_s=300)],
        now=NOW,
        id="update-rolled-back-is-a-failed-attempt",
    ),
    row(
        "our create rolled back: a failed attempt, not an immediate recreate",
        [server(status=ServerStatus(observed_generation=1, operation="create", tries=1))],
        [stack(status="ROLLBACK_COMPLETE")],
        [want(B, failed_attempt=True)],
        now=NOW,
        id="create-rolled-back-is-a-failed-attempt",
    ),
    row(
        "the third failed attempt spends the budget: held, with the way out",
        [server(status=ServerStatus(observed_generation=1, operation="update", tries=3))],
        [stack(status="UPDATE_ROLLBACK_COMPLETE", params={**PARAMS, "Seed": "old"})],
        [want(H, code="FailureBudgetExhausted", failed_attempt=True)],
        now=NOW,
        id="budget-spent-holds",
    ),
    row(
        "while the backoff runs, nothing is sent (stream, sweep and requeue alike)",
        [server(status=ServerStatus(observed_generation=1, tries=1, next_retry_at=LATER))],
        [stack(status="UPDATE_ROLLBACK_COMPLETE", params={**PARAMS, "Seed": "old"})],
        [want(B, failed_attempt=False, retry_at=LATER)],
        now=NOW,
        id="backoff-waits",
    ),
    row(
        "once the backoff ran out the change is tried again, as the budget's next try",
        [server(status=ServerStatus(observed_generation=1, tries=1, next_retry_at=EARLIER))],
        [stack(status="UPDATE_ROLLBACK_COMPLETE", params={**PARAMS, "Seed": "old"})],
        [want(U, tries=2)],
        now=NOW,
        id="backoff-over-retries",
    ),
    row(
        "an admin's force skips the backoff",
        [server(status=ServerStatus(observed_generation=1, tries=1, next_retry_at=LATER))],
        [stack(status="UPDATE_ROLLBACK_COMPLETE", params={**PARAMS, "Seed": "old"})],
        [want(U, tries=2)],
        now=NOW,
        settings=PlanSettings(force=True),
        id="force-skips-backoff",
    ),
    row(
        "a new generation starts afresh: no backoff, no spent budget",
        [server(generation=2, status=ServerStatus(observed_generation=1, tries=3, next_retry_at=LATER))],
        [stack(status="UPDATE_ROLLBACK_COMPLETE", params={**PARAMS, "Seed": "old"})],
        [want(U, tries=1)],
        now=NOW,
        id="new-generation-resets-budget",
    ),
    row(
        "a held server stays held on every pass, with the same words",
        [server(status=ServerStatus(observed_generation=1, tries=3))],
        [stack(status="UPDATE_ROLLBACK_COMPLETE", params={**PARAMS, "Seed": "old"})],
        [want(H, code="FailureBudgetExhausted", failed_attempt=False)],
        now=NOW,
        id="held-stays-held",
    ),
    row(
        "our update succeeded: a later drift is a fresh change, not a retry",
        [server(status=ServerStatus(observed_generation=1, operation="update", tries=3))],
        [stack(status="UPDATE_COMPLETE", params={**PARAMS, "Seed": "hand"})],
        [want(U, tries=1)],
        now=NOW,
        id="success-resets-budget",
    ),
    row(
        "an orphan whose delete failed is backed off like a record",
        [],
        [stack("gs-9", status="DELETE_FAILED")],
        [want(B, "gs-9", orphan=True, failed_attempt=True)],
        now=NOW,
        orphan_attempts={
            "arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-acme-gs-9/gs-9-id": OrphanAttempts(
                "arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-acme-gs-9/gs-9-id",
                "stackherd-acme-gs-9",
                "us-east-1",
                tries=1,
                operation="delete",
            )
        },
        id="orphan-delete-failed-backs-off",
    ),
    row(
        "an orphan past its budget is held and takes no deletion-brake slot",
        [],
        [stack("gs-8"), stack("gs-9", status="DELETE_FAILED")],
        [want(D, "gs-8", orphan=True), want(H, "gs-9", code="FailureBudgetExhausted")],
        settings=PlanSettings(max_deletions=1),
        orphan_attempts={
            "arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-acme-gs-9/gs-9-id": OrphanAttempts(
                "arn:aws:cloudformation:us-east-1:111111111111:stack/stackherd-acme-gs-9/gs-9-id",
                "stackherd-acme-gs-9",
                "us-east-1",
                tries=3,
            )
        },
        id="orphan-budget-spent-holds",
    ),
    # --- stuck, review, protection, nesting, template defaults ----------------------------------------
    row(
        "in progress for over an hour: still a wait (never cancelled), marked stuck since it started",
        [server()],
        [stack(status="UPDATE_IN_PROGRESS", changed_at=NOW - timedelta(hours=2))],
        [want(W, stuck_since="2026-03-01T10:00:00Z")],
        now=NOW,
        id="stuck-is-a-wait-marked-stuck",
    ),
    row(
        "in progress for less than the setting: an ordinary wait",
        [server()],
        [stack(status="UPDATE_IN_PROGRESS", changed_at=NOW - timedelta(minutes=30))],
        [want(W, stuck_since=None)],
        now=NOW,
        id="slow-is-not-stuck",
    ),
    row(
        "a change set never executed (REVIEW_IN_PROGRESS) past the grace is held, not waited on",
        [server()],
        [stack(status="REVIEW_IN_PROGRESS", changed_at=NOW - timedelta(hours=1))],
        [want(H, code="ReviewInProgress")],
        now=NOW,
        id="review-in-progress-held",
    ),
    row(
        "an orphan left in REVIEW_IN_PROGRESS past the grace is held too, and one stuck deleting is marked stuck",
        [],
        [
            stack("gs-8", status="REVIEW_IN_PROGRESS", changed_at=NOW - timedelta(hours=1)),
            stack("gs-9", status="DELETE_IN_PROGRESS", changed_at=NOW - timedelta(hours=2)),
        ],
        [
            want(H, "gs-8", code="ReviewInProgress", orphan=True),
            want(W, "gs-9", stuck_since="2026-03-01T10:00:00Z", orphan=True),
        ],
        now=NOW,
        id="orphan-review-and-stuck",
    ),
    row(
        "deleting a stack with termination protection is held with its own code",
        [server(deletion_requested=True)],
        [stack(termination_protection=True)],
        [want(H, code="TerminationProtected")],
        id="termination-protected-delete-held",
    ),
    row(
        "a nested stack (listed with a ParentId and its parent's tags) is never an orphan",
        [server()],
        [stack(), stack("gs-1-Storage-X1", parent_id="arn:aws:cloudformation:us-east-1:111111111111:stack/p/1")],
        [want(N)],
        id="nested-stack-ignored",
    ),
    row(
        "a parameter the stack reports at its template default is no drift",
        [server()],
        [stack(status="UPDATE_COMPLETE", params={**PARAMS, "MapSize": "medium"})],
        [want(N)],
        template=TemplateVersion(
            "v1", URL, {"Difficulty": None, "PlayerCount": None, "Seed": None, "MapSize": "medium"}
        ),
        id="template-default-is-no-drift",
    ),
    row(
        "a parameter the template no longer declares is no drift",
        [server()],
        [stack(status="UPDATE_COMPLETE", params={**PARAMS, "Retired": "x"})],
        [want(N)],
        template=TemplateVersion("v1", URL, {"Difficulty": None, "PlayerCount": None, "Seed": None}),
        id="undeclared-parameter-is-no-drift",
    ),
    row(
        "the capabilities a template version requires go with its creates and updates",
        [server()],
        [],
        [want(C)],
        template=TemplateVersion("v1", URL, None, ("CAPABILITY_IAM",)),
        id="capabilities-sent",
    ),
    # --- a whole tenant --------------------------------------------------------------------------------
    row(
        "one pass plans every server in id order, then the orphans",
        [server("gs-3"), server("gs-1"), server("gs-2")],
        [stack("gs-2", status="UPDATE_IN_PROGRESS"), stack("gs-3"), stack("gs-0"), stack("zz", tags={})],
        [want(C, "gs-1"), want(W, "gs-2"), want(N, "gs-3"), want(D, "gs-0", orphan=True)],
        id="whole-tenant",
    ),
]


@pytest.mark.parametrize("case", ROWS)
def test_plan(case: Row) -> None:
    actions = run(case).actions

    got = [project(a, list(w)) for a, w in zip(actions, case.expected, strict=False)]
    assert (len(actions), got) == (len(case.expected), list(case.expected)), case.reason


def test_every_row_has_a_reason() -> None:
    assert all(p.values[0].reason for p in ROWS)


def test_plan_is_deterministic() -> None:
    desired = [server("gs-2"), server("gs-1", deletion_requested=True), server("gs-3", region="eu-west-1")]
    observed = [stack("gs-9"), stack("gs-1"), stack("gs-2", params={**PARAMS, "Seed": "x"}), stack("gs-8")]
    settings = PlanSettings(max_deletions=2)

    first = plan(TENANT, desired, observed, settings=settings, template_url=URL)
    again = plan(TENANT, desired, observed, settings=settings, template_url=URL)
    shuffled = plan(TENANT, desired[::-1], observed[::-1], settings=settings, template_url=URL)

    assert first == again == shuffled
    # The brake must hold the same orphan whatever order the account listed its stacks in.
    assert [(a.kind, a.gameserver_id) for a in first.actions] == [
        (D, "gs-1"),
        (U, "gs-2"),
        (C, "gs-3"),
        (D, "gs-8"),
        (H, "gs-9"),
    ]


def test_plan_reports_sync_and_changes() -> None:
    in_sync = plan(TENANT, [server()], [stack()], settings=PlanSettings(), template_url=URL)
    drifted = plan(TENANT, [server()], [stack(params={}), stack("gs-9")], settings=PlanSettings(), template_url=URL)

    assert in_sync.in_sync
    assert in_sync.changes == ()
    assert not drifted.in_sync
    assert [a.kind for a in drifted.changes] == [U, D]


def test_the_in_sync_fast_path_builds_the_same_no_op_as_the_full_decision() -> None:
    # The fast path builds its no-op without `Action.__init__`; it must be the very value the full decision
    # (render, then drift_summary) builds for the same server, equal, hashed alike, and shown alike.
    fast = plan(TENANT, [server()], [stack()], settings=PlanSettings(), template_url=URL).actions[0]
    full = Action(
        N,
        "gs-1",
        "stackherd-acme-gs-1",
        "us-east-1",
        "stack matches its rendering",
        generation=1,
        stack_id=stack().stack_id,
        stack_status="CREATE_COMPLETE",
    )

    assert fast == full
    assert hash(fast) == hash(full)
    assert repr(fast) == repr(full)
    assert {f.name: getattr(fast, f.name) for f in fields(Action)} == vars(full)
    assert pickle.loads(pickle.dumps(fast)) == full
    assert replace(fast, kind=U) == replace(full, kind=U)
    assert fast.to_dict() == full.to_dict()
    assert (fast.pending, fast.mutating, fast.blocked) == (False, False, False)
    with pytest.raises(FrozenInstanceError):
        fast.reason = "changed"  # type: ignore[misc]


def test_action_to_dict_is_plain_json_values() -> None:
    the_plan = plan(
        TENANT, [server()], [stack(params={**PARAMS, "Seed": "old"})], settings=PlanSettings(), template_url=URL
    )

    assert the_plan.to_dict() == {
        "tenant_id": "acme",
        "in_sync": False,
        "actions": [
            {
                "kind": "update",
                "gameserver_id": "gs-1",
                "stack_name": "stackherd-acme-gs-1",
                "region": "us-east-1",
                "reason": "stack differs from its rendering",
                "generation": 1,
                "stack_id": stack().stack_id,
                "stack_status": "CREATE_COMPLETE",
                "diff": "parameters.Seed: 'old' -> 'abc'",
                "parameters": PARAMS,
            }
        ],
    }


def test_drift_summary_is_none_when_stack_matches_rendering() -> None:
    spec = render(TENANT, server(generation=9), installation=INSTALLATION, url=URL)

    assert drift_summary(spec, stack()) is None


def test_drift_summary_names_a_missing_ownership_tag() -> None:
    spec = render(TENANT, server(), installation=INSTALLATION, url=URL)
    tags = owned_tags()
    del tags[naming.TAG_TEMPLATE_VERSION]

    assert drift_summary(spec, stack(tags=tags)) == "tags.stackherd:template-version: None -> 'v1'"


def test_capabilities_a_template_requires_go_with_the_spec() -> None:
    template = TemplateVersion("v1", URL, None, ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"))
    (create,) = plan(TENANT, [server()], [], settings=PlanSettings(), template_url=None, template=template).actions
    assert create.spec is not None and create.spec.capabilities == ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")
    assert create.spec.template_url == URL


def test_a_transient_failure_is_waited_out_without_spending_the_budget() -> None:
    waiting = server(status=ServerStatus(observed_generation=1, attempts=1, next_retry_at=LATER))
    (action,) = plan(TENANT, [waiting], [], settings=PlanSettings(), template_url=URL, now=NOW).actions
    assert (action.kind, action.code, action.retry_at) == (B, "RetryBackoff", LATER)
    assert action.reason == f"the last call failed transiently; next try after {LATER}"
