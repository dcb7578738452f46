"""A stateful property test of the whole reconciler on the fake cloud and the in-memory store.

Hypothesis drives a `FakeWorld` of three tenants in three accounts (one tenant has two regions), with a few
servers already converged, through random sequences of:

- desired-state writes, as the API and the CLI make them: put (a new server, a change, a re-create of an
  id whose deletion is pending (refused) or already finalized, an owner conflict), config changes, moves to the
  other region, deletion requests, and removal of a record behind the reconciler's back (what a REMOVE
  stream event reports: its stack becomes an orphan);
- the three triggers. Every write queues a "stream event"; `deliver_event` delivers any queued event
  (so delivery is reordered and delayed), twice in a row, now and again later, or drops it (then only the
  sweep can catch it); `deliver_batch` is one pass scoped to all of a tenant's queued events; `sweep`
  (optionally followed by every CloudFormation operation finishing); `admin_pass` (with or without
  `confirm_deletions`);
- time: `advance_clock` (31 s lets every operation in flight finish, an hour expires credentials);
- concurrency on one tenant: `interleaved_pass` replaces `store.get_server` for one call, so the first
  consistent re-read the pass makes after planning (right before a CloudFormation call, or before a status
  write) first runs another pass of the same tenant (whole, scoped, or followed by CloudFormation
  finishing), or a player's write (to the record being re-read or another one), or that write and the
  pass its stream event starts, or an operator pausing the tenant. That is the narrowest real race: a second
  trigger or a writer running between one pass's plan and its apply. An assertion failing inside it is
  re-raised afterwards, since the engine would isolate it as an internal error;
- templates: v3 declares an optional parameter with a default (`MapSize: medium`), which every stack on it
  reports; `failing_template` makes every update with v2 roll back (a template version that cannot work)
  and pins a tenant to it;
- rollouts (`reconciler.rollout_service`): start one of any version over all or some tenants (waves of one or
  two, a tolerance of 0 or 1, with or without auto-rollback; refused when it overlaps an active one), advance
  every active rollout (what every sweep does first), pause, resume, abort or roll back any of them, and a
  version that fails in some tenants (every update of their stacks rolls back);
- faults that never end by themselves: a create of one server that always rolls back, an orphan stack (our
  tags, no record) whose every delete fails;
- faults: throttling of the next calls, a transient failure of one operation, access denied (the tenant is
  quarantined) and its end (allowed again, quarantine released), expired credentials; the next create,
  update, delete or rollback of a stack ending failed (ROLLBACK_COMPLETE, UPDATE_ROLLBACK_FAILED, a clean
  UPDATE_ROLLBACK_COMPLETE, DELETE_FAILED) or stuck in progress (`unstick` later places a final status by
  hand); a blocker that makes every delete of a stack fail until it is removed; incomplete desired-state
  reads; a crash between a CloudFormation call and the status write (the next `write_status` raises once);
  hand-made drift and hand deletes.

Every account also holds, from the start, stacks that are not its tenant's: one without tags, one named
like ours without tags, and one tagged for another tenant of this installation.

After every step (`check_every_step`):

- no stack in an account carries another tenant's tag unless it was placed there by hand, and no recorded
  call aimed at a `stackherd-<tenant>-*` stack went to another tenant's account;
- no recorded call ever targeted a foreign stack, and every foreign stack is still there, unchanged;
- every desired record the writers made is in the store exactly as written (owner, config, region,
  generation, deletion flag), except records the reconciler legitimately finalized: deletion requested and
  the stack gone; and a record's status never claims a generation the record does not have, nor goes back
  to an older one;
- the failure budget: no pass acts on a server's stack (at the record's region) while the server waits out a
  backoff (`next_retry_at` after the pass's time, at the generation it was set for), unless an admin forced it;
- the deletion brake: in one pass of one tenant, at most `max_deletions` stacks are deleted unless an admin
  confirmed, none at all when that pass read the desired state incompletely, and none that the stored brake
  held as the pass began unless an admin confirmed. Deleting a stack in ROLLBACK_COMPLETE, CREATE_FAILED or
  ROLLBACK_FAILED (the first half of a recreate) does not count: such a stack holds no resources; nor does
  retrying the delete of a stack in DELETE_FAILED: it was counted when its deletion was decided. Passes are
  measured by diffing the cloud's call log around each pass, nested passes subtracted;
- pause means stop: a pass of a paused tenant makes no CloudFormation change, and a pass during which the
  tenant is paused (`interleaved_pass` in mode "pause", between the plan and a change) makes none after the
  pause is written.

- rollouts: a rollout pins only tenants of its own set, only to its version (forward) or to the version the
  tenant had before (back); once a rollout has halted (or ended otherwise) it pins no tenant forward again; and a
  tenant a rollout pinned back stays on its previous version until someone pins it elsewhere.

At the end (`teardown`) the incident ends (active rollouts are aborted, so nothing more is pinned): faults
cleared, blockers removed, accounts allowed, quarantines released, stuck stacks finished by hand, and one sweep
sees the last outcomes and stores what the deletion brake holds. Then the documented operator steps
(docs/operations.md), read off `stackherd plan`: `stackherd servers retry` for each server (or orphan) that is
held or backing off after failed attempts (or held after repeated DELETE_FAILED), then `stackherd reconcile TENANT
--confirm-deletions` for the servers held by the deletion brake (narrowed to just those servers). After that at
most three sweeps, each followed by CloudFormation finishing, must converge every tenant exactly: the owned stacks
are the non-deleted records' stacks, stable and with matching parameters, every record is Ready at its generation,
deleted records are finalized, and a dry run is in sync. Three is the longest chain the decision table has
(ROLLBACK_COMPLETE: delete, create, observe; UPDATE_ROLLBACK_FAILED: continue, update, observe); a pass that
starts an operation cannot also observe its end, since the engine never waits.

Sweeps run one tenant at a time (`concurrency=1`) so a failing example replays exactly; tenants share
nothing but the fake cloud, and the same-tenant races that matter are the interleaved ones above.

Runs `STACKHERD_PROPERTY_EXAMPLES` examples (500 by default, about 15 s; nightly:
`STACKHERD_PROPERTY_EXAMPLES=5000`, about 2.5 min). With `CI` set the run is derandomized and uses no
example database, so it is reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from models.config import GameServerConfig
from models.records import DesiredServer, Phase, now_iso
from reconciler import naming
from reconciler.desired import DesiredWrites, trail
from reconciler.engine import TenantResult
from reconciler.errors import TransientError
from reconciler.fakes.cloud import Call
from reconciler.fakes.world import FakeWorld
from reconciler.planner import ActionKind, HoldReason, PlanSettings
from reconciler.rollout_service import RolloutService
from reconciler.rollouts import RolloutError, RolloutState
from reconciler.stacks import RECREATE_STATUSES, STABLE_STATUSES, ObservedStack
from reconciler.writes import ConcurrentWriteError, DeletionPendingError, NotFoundError, NotOwnedError

INSTALLATION = "stackherd"
PRIMARY = "us-east-1"
SECONDARY = "eu-west-1"
TENANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alpha": ("111111111111", (PRIMARY,)),
    "bravo": ("222222222222", (PRIMARY,)),
    "charlie": ("333333333333", (PRIMARY, SECONDARY)),
}
MUTATING = ("CreateStack", "UpdateStack", "DeleteStack", "ContinueUpdateRollback")
ACCOUNT_TENANT = {account: tenant for tenant, (account, _) in TENANTS.items()}
SERVER_IDS = ("s0", "s1", "s2")
OWNERS = ("ann", "bob")
TEMPLATE_VERSIONS = ("v1", "v2", "v3")
#: v3 adds an optional parameter with a default: stacks on it report it, and that is no drift.
V3_PARAMETERS: dict[str, str | None] = {"Difficulty": None, "PlayerCount": None, "Seed": None, "MapSize": "medium"}
SETTINGS = PlanSettings(installation=INSTALLATION, max_deletions=1, delete_retry_limit=1)

# What a stuck operation is ended in by hand: during the run any of these, at teardown the first.
UNSTICK: dict[str, tuple[str, ...]] = {
    "CREATE_IN_PROGRESS": ("CREATE_COMPLETE", "ROLLBACK_COMPLETE"),
    "UPDATE_IN_PROGRESS": ("UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"),
    "DELETE_IN_PROGRESS": ("DELETE_COMPLETE", "DELETE_FAILED"),
    "UPDATE_ROLLBACK_IN_PROGRESS": ("UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"),
}
# How the next operation on a stack can end badly: failed, or stuck in progress.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "create": ("ROLLBACK_COMPLETE", "CREATE_IN_PROGRESS"),
    "update": ("UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_IN_PROGRESS"),
    "delete": ("DELETE_FAILED", "DELETE_IN_PROGRESS"),
    "continue-rollback": ("UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS"),
}
CLOUD_FAULTS = (
    "throttle",
    "fail-create",
    "fail-update",
    "fail-delete",
    "fail-continue-rollback",
    "fail-list",
    "fail-assume-role",
    "deny",
    "restore-access",
    "expire-credentials",
)

tenants = st.sampled_from(sorted(TENANTS))
server_ids = st.sampled_from(SERVER_IDS)
configs = st.builds(
    GameServerConfig,
    difficulty=st.sampled_from(["easy", "hard"]),
    player_count=st.sampled_from([4, 8]),
    seed=st.sampled_from(["a", "b"]),
)


@dataclass(frozen=True)
class Want:
    """A desired record as the writers left it."""

    owner: str
    config: GameServerConfig
    region: str | None
    generation: int
    deletion_requested: bool = False


@dataclass(frozen=True)
class _Before:
    recreatable: set[tuple[str, str]]  # (region, name) of stacks a recreate or a delete retry may delete
    incomplete: bool  # the pass reads the desired state incompletely
    paused: bool
    held: frozenset[str]  # "<region>/<stack name>" of the deletions the brake holds as the pass starts
    backing_off: set[tuple[str, str]] = field(default_factory=set)  # (region, name) of servers waiting


@dataclass
class _Frame:
    """One reconcile pass being measured: where its calls start and which nested ranges are not its own."""

    start: int
    nested: list[tuple[int, int]] = field(default_factory=list)


def account_of(tenant_id: str) -> str:
    return TENANTS[tenant_id][0]


def stack_place(call: Call) -> tuple[str, str]:
    """(region, stack name) a call aimed at; targets are names or stack ids (ARNs)."""
    if call.target.startswith("arn:"):
        # arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>
        parts = call.target.split(":")
        return parts[3], parts[5].split("/")[1]
    return call.region, call.target


def record_region(tenant_id: str, want: Want) -> str:
    return want.region or TENANTS[tenant_id][1][0]


class ReconcilerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = FakeWorld(settings=SETTINGS)
        self.cloud = self.world.cloud
        self.store = self.world.store
        self.engine = self.world.engine
        self.model: dict[tuple[str, str], Want] = {}
        self.pending: list[tuple[str, str]] = []
        self.foreign: dict[tuple[str, str, str], ObservedStack] = {}  # (account, region, name) -> as placed
        self.frames: list[_Frame] = []
        self.blocked: set[tuple[str, str]] = set()  # (account, stack name) whose every delete fails
        self.observed: dict[tuple[str, str], int] = {}  # the highest observed_generation seen per record
        self.calls_checked = 0
        self.healthy = False  # True only right after every invariant held
        writes = DesiredWrites(self.store, clock=self.world.clock, templates=self.world.templates)
        self.rollouts = RolloutService(self.store, writes, clock=self.world.clock, timeout_s=900)
        #: every pin a rollout made: (rollout id, tenant, version, back)
        self.rollout_pins: list[tuple[str, str, str, bool]] = []
        #: forward pins of each rollout when it was first seen ended (halted, completed, aborted, rolled back)
        self.ended_pins: dict[str, int] = {}
        #: tenant -> the version a rollout pinned it back to, while nobody has pinned it elsewhere since
        self.pinned_back: dict[str, str] = {}
        pin = writes.pin_template_version

        def recording(tenant_id: str, version: str, *, trail: object, note: str) -> object:
            rollout_id = note.split(" by rollout ", 1)[1].split(",", 1)[0]
            back = note.startswith("pinned back")
            self.rollout_pins.append((rollout_id, tenant_id, version, back))
            if back:
                self.pinned_back[tenant_id] = version
            else:
                self.pinned_back.pop(tenant_id, None)
            return pin(tenant_id, version, trail=trail, note=note)  # type: ignore[arg-type]

        writes.pin_template_version = recording  # type: ignore[method-assign]

    # --- setting up ------------------------------------------------------------------------------

    @initialize(servers=st.lists(st.tuples(tenants, server_ids, configs), max_size=6))
    def tenants_with_foreign_stacks(self, servers: list[tuple[str, str, GameServerConfig]]) -> None:
        """Three tenants, each account with foreign stacks, and a few servers already converged."""
        self.healthy = False
        self.world.templates.published.update(TEMPLATE_VERSIONS)
        self.world.templates.add("v3", V3_PARAMETERS)
        self.cloud.register_template(self.world.templates.url("v3"), V3_PARAMETERS)
        for tenant_id, (account, regions) in TENANTS.items():
            self.world.add_tenant(tenant_id, account, regions=regions)
            other = next(t for t in sorted(TENANTS) if t != tenant_id)
            hand_made: list[tuple[str, dict[str, str]]] = [
                ("billing-db", {"team": "billing"}),
                (naming.stack_name(INSTALLATION, tenant_id, "legacy"), {}),
                (
                    naming.stack_name(INSTALLATION, other, "s1"),
                    {naming.TAG_INSTALLATION: INSTALLATION, naming.TAG_TENANT: other, naming.TAG_GAMESERVER: "s1"},
                ),
            ]
            for name, tags in hand_made:
                self.cloud.put_stack(account, PRIMARY, name, parameters={"Size": "large"}, tags=tags)
        for account in ACCOUNT_TENANT:
            for stack in self.cloud.stacks(account):
                self.foreign[(account, stack.region, stack.name)] = stack
        for tenant_id, server_id, config in servers:
            self._write_put(tenant_id, server_id, OWNERS[0], config, None)
        self.pending.clear()
        self._sweep()
        self.cloud.settle_all()
        self._sweep()

    # --- measuring passes ------------------------------------------------------------------------

    @contextmanager
    def _measured(self, tenant_id: str, *, confirm: bool, force: bool = False) -> Iterator[None]:
        before = self._before(tenant_id)
        frame = _Frame(len(self.cloud.calls))
        self.frames.append(frame)
        try:
            yield
        finally:
            self.frames.pop()
            end = len(self.cloud.calls)
            if self.frames:
                self.frames[-1].nested.append((frame.start, end))
        own = [
            call
            for index, call in enumerate(self.cloud.calls[frame.start : end], frame.start)
            if not any(a <= index < b for a, b in frame.nested)
        ]
        self._check_pass(tenant_id, own, before, confirm=confirm, force=force)

    def _before(self, tenant_id: str) -> _Before:
        """What a pass's checks need to know about the tenant as the pass starts."""
        tenant = self.store.get_tenant(tenant_id)
        now = now_iso(self.world.clock())
        return _Before(
            recreatable={
                (s.region, s.name)
                for s in self.cloud.stacks(account_of(tenant_id))
                if s.status in (*RECREATE_STATUSES, "DELETE_FAILED")
            },
            incomplete=tenant_id in self.store.fail_reads,
            paused=tenant is not None and tenant.paused,
            held=self.store.get_tenant_state(tenant_id).deletion_brake.held_keys,
            backing_off={
                (
                    record_region(tenant_id, Want("", s.config, s.region, s.generation)),
                    naming.stack_name(INSTALLATION, tenant_id, s.gameserver_id),
                )
                for s in self.store.read_servers(tenant_id).servers
                if s.status.next_retry_at
                and s.status.next_retry_at > now
                and s.status.observed_generation == s.generation
            }
            if tenant_id not in self.store.fail_reads
            else set(),
        )

    def _check_pass(
        self, tenant_id: str, calls: list[Call], before: _Before, *, confirm: bool, force: bool = False
    ) -> None:
        account = account_of(tenant_id)
        own = [c for c in calls if c.account_id == account]
        if not force:
            early = [c for c in own if c.operation in MUTATING and stack_place(c) in before.backing_off]
            assert not early, f"{tenant_id}: {early} acted on a server before its next_retry_at"
        if before.paused:
            changes = [c for c in own if c.operation in MUTATING]
            assert not changes, f"{tenant_id} is paused, yet the pass made {changes}"
        # Distinct stacks: a call retried after refreshing expired credentials is still one deletion.
        deleted = {
            stack_place(c) for c in own if c.operation == "DeleteStack" and stack_place(c) not in before.recreatable
        }
        if before.incomplete:
            assert not deleted, f"{tenant_id}: deleted {sorted(deleted)} although its desired read was incomplete"
        if not confirm:
            released = sorted(place for place in deleted if f"{place[0]}/{place[1]}" in before.held)
            assert not released, f"{tenant_id}: deleted {released}, held by the brake, without an admin confirming"
            assert len(deleted) <= SETTINGS.max_deletions, (
                f"{tenant_id}: {len(deleted)} deletions in one pass ({sorted(deleted)}), "
                f"the brake allows {SETTINGS.max_deletions}"
            )

    def _pass(
        self, tenant_id: str, *, scope: set[str] | None = None, confirm: bool = False, force: bool = False
    ) -> TenantResult:
        self._rearm_blocked()
        with self._measured(tenant_id, confirm=confirm, force=force):
            return self.engine.reconcile_tenant(tenant_id, scope=scope, confirm_deletions=confirm, force=force)

    def _sweep(self) -> None:
        before = {t: self._before(t) for t in TENANTS}
        start = len(self.cloud.calls)
        self._rearm_blocked()
        self.engine.sweep(concurrency=1)
        calls = self.cloud.calls[start:]
        for tenant_id in TENANTS:
            # A sweep makes one pass per tenant, and each tenant has an account of its own.
            self._check_pass(tenant_id, calls, before[tenant_id], confirm=False)

    def _rearm_blocked(self) -> None:
        # A resource that blocks a delete keeps blocking it: every delete of that stack fails until it is removed.
        for account, name in sorted(self.blocked):
            self.cloud.set_outcome(account, name, "delete", "DELETE_FAILED")

    # --- the model of the writers ----------------------------------------------------------------

    def _sync_finalized(self) -> None:
        """Drop records the reconciler removed, after checking it was allowed to."""
        for (tenant_id, server_id), want in list(self.model.items()):
            if self.store.get_server(tenant_id, server_id) is not None:
                continue
            assert want.deletion_requested, f"{tenant_id}/{server_id} vanished without a deletion request"
            region = record_region(tenant_id, want)
            name = naming.stack_name(INSTALLATION, tenant_id, server_id)
            live = {(s.region, s.name) for s in self.cloud.stacks(account_of(tenant_id))}
            assert (region, name) not in live, f"{tenant_id}/{server_id} was finalized while its stack exists"
            del self.model[(tenant_id, server_id)]
            self.observed.pop((tenant_id, server_id), None)

    def _write_put(
        self, tenant_id: str, server_id: str, owner: str, config: GameServerConfig, region: str | None
    ) -> None:
        self._sync_finalized()
        key = (tenant_id, server_id)
        current = self.model.get(key)
        tenant = self.store.get_tenant(tenant_id)
        assert tenant is not None
        try:
            result = self.world.writes.put_server(
                tenant, server_id, owner, config.model_dump(), trail=trail(owner, "test"), region=region
            )
        except NotOwnedError:
            assert current is not None and current.owner != owner
            return
        except DeletionPendingError:
            # A deletion stands until the stack is gone: the id can only be created again after that.
            assert current is not None and current.deletion_requested
            return
        if current is None:
            expected = Want(owner, config, region or TENANTS[tenant_id][1][0], 1)
        else:
            where = region if region is not None else current.region
            if current.config == config and current.region == where:
                expected = current
            else:
                expected = Want(owner, config, where, current.generation + 1)
        assert current is None or current.owner == owner
        assert result.server.generation == expected.generation
        self.model[key] = expected
        if result.changed:
            self.pending.append(key)

    def _write_delete(self, tenant_id: str, server_id: str) -> None:
        self._sync_finalized()
        key = (tenant_id, server_id)
        current = self.model.get(key)
        try:
            tenant = self.store.get_tenant(tenant_id)
            assert tenant is not None
            result = self.world.writes.delete_server(tenant, server_id, trail=trail("admin", "test"))
        except NotFoundError:
            assert current is None
            return
        assert current is not None
        if not current.deletion_requested:
            current = Want(current.owner, current.config, current.region, current.generation + 1, True)
        assert result.server.generation == current.generation
        self.model[key] = current
        if result.changed:
            self.pending.append(key)

    def _region_for(self, tenant_id: str, choice: int) -> str | None:
        regions = TENANTS[tenant_id][1]
        return None if len(regions) == 1 else (None, PRIMARY, SECONDARY)[choice]

    # --- rules: writers --------------------------------------------------------------------------

    @rule(tenant=tenants, server=server_ids, owner=st.sampled_from(OWNERS), config=configs, region=st.integers(0, 2))
    def put(self, tenant: str, server: str, owner: str, config: GameServerConfig, region: int) -> None:
        """Any player puts any server: a new one, a change, a re-create after finalizing, an owner conflict."""
        self.healthy = False
        self._write_put(tenant, server, owner, config, self._region_for(tenant, region))

    def _existing(self, data: st.DataObject, *, only: str | None = None) -> tuple[str, str] | None:
        """Any record the writers made (optionally only deletion-requested ones, or only multi-region ones)."""
        self._sync_finalized()
        keys = sorted(self.model)
        if only == "deleted":
            keys = [k for k in keys if self.model[k].deletion_requested]
        elif only == "movable":
            keys = [k for k in keys if len(TENANTS[k[0]][1]) > 1]
        return data.draw(st.sampled_from(keys), label="record") if keys else None

    @rule(data=st.data(), config=configs)
    def change_config(self, data: st.DataObject, config: GameServerConfig) -> None:
        """The owner changes an existing server; on one whose deletion is pending this is refused."""
        self.healthy = False
        key = self._existing(data)
        if key is not None:
            current = self.model[key]
            self._write_put(*key, current.owner, config, current.region)

    @rule(data=st.data())
    def recreate_deleted(self, data: st.DataObject) -> None:
        """The owner asks for a server again, unchanged, while its deletion is still pending (refused)."""
        self.healthy = False
        key = self._existing(data, only="deleted")
        if key is not None:
            current = self.model[key]
            self._write_put(*key, current.owner, current.config, current.region)

    @rule(data=st.data(), region=st.sampled_from([None, PRIMARY, SECONDARY]))
    def move_region(self, data: st.DataObject, region: str | None) -> None:
        """A server of the two-region tenant is moved to another region (or back to the default)."""
        self.healthy = False
        key = self._existing(data, only="movable")
        if key is not None:
            current = self.model[key]
            self._write_put(*key, current.owner, current.config, region)

    @rule(data=st.data())
    def request_deletion(self, data: st.DataObject) -> None:
        self.healthy = False
        key = self._existing(data)
        if key is not None:
            self._write_delete(*key)

    @rule(data=st.data())
    def remove_record(self, data: st.DataObject) -> None:
        """The record disappears without a deletion request (a REMOVE on the stream): its stack is an orphan."""
        self.healthy = False
        key = self._existing(data)
        if key is None:
            return
        with self.store._lock:
            self.store.servers.pop(key)
        del self.model[key]
        self.observed.pop(key, None)
        self.pending.append(key)

    @rule(tenant=tenants)
    def toggle_pause(self, tenant: str) -> None:
        """`stackherd tenants pause` / `resume`: a paused tenant's stacks are observed and reported only."""
        self.healthy = False
        current = self.store.get_tenant(tenant)
        assert current is not None
        self.store.put_tenant(replace(current, paused=not current.paused))

    @rule(tenant=tenants, version=st.sampled_from(TEMPLATE_VERSIONS))
    def pin_template(self, tenant: str, version: str) -> None:
        """An admin pins the tenant to another published template version: every stack needs an update."""
        self.healthy = False
        current = self.store.get_tenant(tenant)
        assert current is not None
        self.store.put_tenant(replace(current, template_version=version))
        self.pinned_back.pop(tenant, None)

    # --- rules: rollouts -------------------------------------------------------------------------

    @rule(
        version=st.sampled_from(TEMPLATE_VERSIONS),
        chosen=st.one_of(st.none(), st.lists(tenants, min_size=1, max_size=3, unique=True)),
        wave=st.sampled_from(["1", "2"]),
        tolerance=st.sampled_from(["0", "1"]),
        auto_rollback=st.booleans(),
    )
    def start_rollout(
        self, version: str, chosen: list[str] | None, wave: str, tolerance: str, auto_rollback: bool
    ) -> None:
        """`stackherd rollout start`; refused when it overlaps an active rollout or has no tenant to move."""
        self.healthy = False
        with suppress(RolloutError):
            self.rollouts.start(
                version,
                trail=trail("operator", "test"),
                tenants=chosen,
                wave_sizes=[wave],
                failure_tolerance=tolerance,
                auto_rollback=auto_rollback,
            )

    @rule()
    def advance_rollouts(self) -> None:
        """What every sweep does first."""
        self.healthy = False
        self.rollouts.advance_all(trail("stackherd", "rollout"))

    @precondition(lambda self: self.store.list_rollouts())
    @rule(data=st.data(), operation=st.sampled_from(["pause", "resume", "abort", "rollback"]))
    def operate_rollout(self, data: st.DataObject, operation: str) -> None:
        """`stackherd rollout pause|resume|abort|rollback` on any rollout, in whatever state it is."""
        self.healthy = False
        # Rollout ids are random and rollouts started in the same fake second tie on their start time: draw from
        # an order that does not depend on the ids, so a failing example replays the same steps.
        ordered = sorted(
            self.store.list_rollouts(), key=lambda r: (r.created_at, r.target_version, r.waves, r.revision)
        )
        rollout = data.draw(st.sampled_from(ordered), label="rollout")
        with suppress(RolloutError, ConcurrentWriteError):
            getattr(self.rollouts, operation)(rollout.rollout_id, trail=trail("operator", "test"))

    @rule(tenant=tenants)
    def version_fails_in_tenant(self, tenant: str) -> None:
        """Whatever version comes next does not work in this tenant: every update of its stacks rolls back."""
        self.healthy = False
        for server_id in SERVER_IDS:
            name = naming.stack_name(INSTALLATION, tenant, server_id)
            self.cloud.set_outcome(account_of(tenant), name, "update", "UPDATE_ROLLBACK_COMPLETE", always=True)

    @rule(tenant=tenants)
    def failing_template(self, tenant: str) -> None:
        """Template v2 turns out never to work: every update with it rolls back. A tenant is pinned to it."""
        self.healthy = False
        self.cloud.fail_template(self.world.templates.url("v2"), "update", "UPDATE_ROLLBACK_COMPLETE")
        self.pin_template(tenant, "v2")

    @rule(tenant=tenants, server_id=server_ids)
    def create_always_rolls_back(self, tenant: str, server_id: str) -> None:
        """Every create of this server's stack rolls back (say a resource the account may not create)."""
        self.healthy = False
        name = naming.stack_name(INSTALLATION, tenant, server_id)
        self.cloud.set_outcome(account_of(tenant), name, "create", "ROLLBACK_COMPLETE", always=True)

    @rule(tenant=tenants, server_id=st.sampled_from(("o0", "o1")))
    def undeletable_orphan(self, tenant: str, server_id: str) -> None:
        """A stack of ours without a record appears (an older installation's leftover) and cannot be deleted."""
        self.healthy = False
        account = account_of(tenant)
        name = naming.stack_name(INSTALLATION, tenant, server_id)
        if any(s.name == name for s in self.cloud.stacks(account)) or (tenant, server_id) in self.model:
            return
        tags = {naming.TAG_INSTALLATION: INSTALLATION, naming.TAG_TENANT: tenant, naming.TAG_GAMESERVER: server_id}
        self.cloud.put_stack(account, PRIMARY, name, parameters={"Seed": "x"}, tags=tags)
        self.blocked.add((account, name))

    # --- rules: triggers -------------------------------------------------------------------------

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), how=st.sampled_from(["once", "twice", "keep", "drop"]))
    def deliver_event(self, data: st.DataObject, how: str) -> None:
        """Deliver any queued event: out of order, twice in a row, now and again later, or never (then only
        the sweep can catch what it announced)."""
        self.healthy = False
        index = data.draw(st.integers(0, len(self.pending) - 1), label="event")
        tenant, server = self.pending[index] if how == "keep" else self.pending.pop(index)
        for _ in range({"once": 1, "twice": 2, "keep": 1, "drop": 0}[how]):
            self._pass(tenant, scope={server})

    @precondition(lambda self: self.pending)
    @rule(tenant=tenants)
    def deliver_batch(self, tenant: str) -> None:
        """A stream batch: one pass for the tenant, scoped to every server it names."""
        self.healthy = False
        scope = {server for t, server in self.pending if t == tenant}
        self.pending = [(t, s) for t, s in self.pending if t != tenant]
        if scope:
            self._pass(tenant, scope=scope)

    @rule(then_settle=st.booleans())
    def sweep(self, then_settle: bool) -> None:
        """The scheduled sweep, optionally followed by every CloudFormation operation in flight finishing."""
        self.healthy = False
        self._sweep()
        if then_settle:
            self.cloud.settle_all()

    @rule(tenant=tenants, confirm=st.booleans(), force=st.booleans())
    def admin_pass(self, tenant: str, confirm: bool, force: bool) -> None:
        self.healthy = False
        self._pass(tenant, confirm=confirm, force=force)

    @rule(
        tenant=tenants,
        mode=st.sampled_from(["pass", "scoped-pass", "pass-then-settle", "put", "put-then-pass", "delete", "pause"]),
        config=configs,
        other=st.sampled_from([None, *SERVER_IDS]),
    )
    def interleaved_pass(self, tenant: str, mode: str, config: GameServerConfig, other: str | None) -> None:
        """Run something between one pass's plan and its apply (see the module docstring). A write goes to the
        record being re-read, or to `other`; "put-then-pass" is a write and the pass its stream event starts."""
        self.healthy = False
        store = self.store
        original = store.get_server

        failures: list[AssertionError] = []
        paused_at: list[int] = []

        def hooked(tenant_id: str, server_id: str) -> DesiredServer | None:
            store.__dict__.pop("get_server", None)  # once
            try:
                if mode == "pause":  # `stackherd tenants pause` while the pass is applying its plan
                    registered = store.get_tenant(tenant_id)
                    assert registered is not None
                    store.put_tenant(replace(registered, paused=True))
                    paused_at.append(len(self.cloud.calls))
                elif mode == "pass":
                    self._pass(tenant_id)
                elif mode == "scoped-pass":
                    self._pass(tenant_id, scope={server_id})
                elif mode == "pass-then-settle":
                    self._pass(tenant_id)
                    self.cloud.settle_all()
                elif mode in ("put", "put-then-pass"):
                    target = other or server_id
                    current = self.model.get((tenant_id, target))
                    owner = current.owner if current is not None else OWNERS[0]
                    region = current.region if current is not None else None
                    self._write_put(tenant_id, target, owner, config, region)
                    if mode == "put-then-pass":
                        self._pass(tenant_id, scope={target})
                else:
                    self._write_delete(tenant_id, other or server_id)
            except AssertionError as failure:
                failures.append(failure)  # the engine would isolate it as an internal error of the outer pass
                raise
            return original(tenant_id, server_id)

        store.get_server = hooked  # type: ignore[method-assign, assignment]
        try:
            self._pass(tenant)
        finally:
            store.__dict__.pop("get_server", None)
        if failures:
            raise failures[0]
        if paused_at:
            after = [c for c in self.cloud.calls[paused_at[0] :] if c.account_id == account_of(tenant)]
            changes = [c for c in after if c.operation in MUTATING]
            assert not changes, f"{tenant} was paused during the pass, which then made {changes}"

    # --- rules: time -----------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1, 20, 31, 600, 3600]))
    def advance_clock(self, seconds: int) -> None:
        """Time passes: 31 s lets every CloudFormation operation in flight finish, an hour expires credentials."""
        self.healthy = False
        self.world.clock.advance(seconds)

    # --- rules: faults ---------------------------------------------------------------------------

    @rule(tenant=tenants, fault=st.sampled_from(CLOUD_FAULTS), times=st.integers(1, 3))
    def cloud_fault(self, tenant: str, fault: str, times: int) -> None:
        """Throttling, one failing operation, access denied (and its end), expired credentials."""
        self.healthy = False
        account = account_of(tenant)
        if fault == "throttle":
            self.cloud.throttle_next(account, times)
        elif fault.startswith("fail-"):
            self.cloud.fail_next(account, fault.removeprefix("fail-"), lambda: TransientError("ServiceUnavailable"))
        elif fault == "deny":
            self.cloud.deny(account)
        elif fault == "restore-access":
            self.cloud.allow(account)
            self.store.set_quarantine(tenant, None, self.world.clock())
        else:
            self.cloud.expire_credentials(account)

    @rule(data=st.data())
    def inject_outcome(self, data: st.DataObject) -> None:
        """The next operation one server's stack will see (create, update, delete or rollback) fails or sticks."""
        self.healthy = False
        key = self._existing(data)
        if key is None:
            return
        tenant_id, server_id = key
        want, name = self.model[key], naming.stack_name(INSTALLATION, tenant_id, server_id)
        stack = next(
            (s for s in self.cloud.stacks(account_of(tenant_id), record_region(tenant_id, want)) if s.name == name),
            None,
        )
        if stack is None:
            operation = "create"
        elif stack.status == "UPDATE_ROLLBACK_FAILED":
            operation = "continue-rollback"
        elif want.deletion_requested or stack.status in (*RECREATE_STATUSES, "DELETE_FAILED"):
            operation = "delete"
        else:
            operation = "update"
        self.cloud.set_outcome(account_of(tenant_id), name, operation, data.draw(st.sampled_from(OUTCOMES[operation])))

    @rule(data=st.data(), operation=st.sampled_from(["create", "update", "delete"]), config=configs)
    def write_that_will_fail(self, data: st.DataObject, operation: str, config: GameServerConfig) -> None:
        """A write whose CloudFormation operation is doomed: a new server whose create fails or sticks, a
        change whose update fails or sticks, a deletion whose delete fails or sticks."""
        self.healthy = False
        self._sync_finalized()
        if operation == "create":
            free = [(t, s) for t in sorted(TENANTS) for s in SERVER_IDS if (t, s) not in self.model]
            if not free:
                return
            key = data.draw(st.sampled_from(free), label="new record")
            self._write_put(*key, OWNERS[0], config, None)
        else:
            found = self._existing(data)
            if found is None:
                return
            key = found
            if operation == "update":
                self._write_put(*key, self.model[key].owner, config, self.model[key].region)
            else:
                self._write_delete(*key)
        name = naming.stack_name(INSTALLATION, *key)
        self.cloud.set_outcome(account_of(key[0]), name, operation, data.draw(st.sampled_from(OUTCOMES[operation])))

    @rule(data=st.data(), blocked=st.booleans())
    def delete_blocker(self, data: st.DataObject, blocked: bool) -> None:
        """Something in a server's stack (say a retained resource) makes every delete of it fail, or an operator
        removes such a blocker (leaving the record's retry count as it is)."""
        self.healthy = False
        key = self._existing(data)
        if key is None:
            return
        place = (account_of(key[0]), naming.stack_name(INSTALLATION, *key))
        if blocked:
            self.blocked.add(place)
        elif place in self.blocked:
            self.blocked.discard(place)
            self.cloud.set_outcome(*place, "delete", "DELETE_COMPLETE")  # overrides a re-armed failure

    @precondition(lambda self: self.cloud.stuck_stacks())
    @rule(data=st.data())
    def unstick(self, data: st.DataObject) -> None:
        self.healthy = False
        account, region, name, status = data.draw(st.sampled_from(self.cloud.stuck_stacks()), label="stuck")
        self.cloud.unstick(account, region, name, data.draw(st.sampled_from(UNSTICK[status]), label="final"))

    @rule(tenant=tenants, fault=st.sampled_from(["incomplete-reads", "crash"]))
    def store_fault(self, tenant: str, fault: str) -> None:
        """Toggle incomplete desired-state reads for a tenant, or make the next status write crash (after the
        CloudFormation call it records was made)."""
        self.healthy = False
        if fault == "incomplete-reads":
            self.store.fail_reads ^= {tenant}
            return
        store = self.store

        def crashing(*args: object, **kwargs: object) -> bool:
            store.__dict__.pop("write_status", None)
            raise RuntimeError("injected crash between the CloudFormation call and the status write")

        store.write_status = crashing  # type: ignore[method-assign]

    @rule(data=st.data(), change=st.sampled_from(["drift", "delete"]))
    def by_hand(self, data: st.DataObject, change: str) -> None:
        """Someone changes or deletes one of our stacks in a tenant account, bypassing stackherd."""
        self.healthy = False
        ours = [
            (account, stack.region, stack.name)
            for account in ACCOUNT_TENANT
            for stack in self.cloud.stacks(account)
            if (account, stack.region, stack.name) not in self.foreign
            and (change == "delete" or stack.status in STABLE_STATUSES)
        ]
        if not ours:
            return
        account, region, name = data.draw(st.sampled_from(ours), label="stack")
        if change == "delete":
            self.cloud.remove_stack(account, region, name)
        else:
            self.cloud.tamper(account, region, name, {"Seed": "hand"})

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def check_every_step(self) -> None:
        self.healthy = False
        self._check_tenancy()
        self._check_foreign()
        self._check_records()
        self._check_rollouts()
        self.healthy = True

    def _check_tenancy(self) -> None:
        for account, tenant_id in ACCOUNT_TENANT.items():
            for stack in self.cloud.stacks(account):
                if (account, stack.region, stack.name) in self.foreign:
                    continue
                assert stack.tags.get(naming.TAG_TENANT) == tenant_id, f"{stack.name} in {account} is not {tenant_id}'s"
                assert stack.tags.get(naming.TAG_INSTALLATION) == INSTALLATION
        calls = self.cloud.calls[self.calls_checked :]
        self.calls_checked += len(calls)
        for call in calls:
            if not call.target or call.operation in ("AssumeRole", "GetTemplateSummary"):
                continue  # no stack: a template summary names the template's URL
            region, name = stack_place(call)
            # Reading a stack named in the tenant's own namespace is how its ownership tags are learnt (the
            # stack may be an orphan); any other call on a foreign stack, and any read outside, is not allowed.
            if call.operation != "DescribeStack":
                assert (call.account_id, region, name) not in self.foreign, f"{call} touched a foreign stack"
            owner = next((t for t in TENANTS if name.startswith(f"{INSTALLATION}-{t}-")), None)
            assert owner is not None and account_of(owner) == call.account_id, f"{call} went to the wrong account"

    def _check_foreign(self) -> None:
        for (account, region, name), placed in self.foreign.items():
            now = [s for s in self.cloud.stacks(account, region) if s.name == name]
            assert now == [placed], f"foreign stack {name} in {account} changed: {now}"

    def _check_records(self) -> None:
        self._sync_finalized()
        stored = dict(self.store.servers)
        assert set(stored) == set(self.model), f"records {set(stored) ^ set(self.model)} differ from what was written"
        for key, want in self.model.items():
            server = stored[key]
            have = Want(server.username, server.config, server.region, server.generation, server.deletion_requested)
            assert have == want, f"{key}: stored {have}, written {want}"
            # The status never claims a generation the record does not have (say a pass's status for an
            # earlier record with the same id), and never goes back to an older one (a slower pass overwriting
            # what a newer pass wrote).
            observed = server.status.observed_generation
            assert observed <= server.generation, f"{key}: status observed {observed} of generation {server.generation}"
            before = self.observed.get(key, 0)
            assert observed >= before, f"{key}: status went back from generation {before} to {observed}"
            self.observed[key] = observed

    def _check_rollouts(self) -> None:
        rollouts = {r.rollout_id: r for r in self.store.list_rollouts()}
        forward: dict[str, int] = {}
        for rollout_id, tenant_id, version, back in self.rollout_pins:
            rollout = rollouts[rollout_id]
            assert tenant_id in rollout.tenant_ids(), f"rollout {rollout_id} pinned {tenant_id}, not one of its tenants"
            if back:
                progress = rollout.progress(tenant_id)
                assert progress is not None and version == progress.previous_version, (rollout_id, tenant_id, version)
            else:
                assert version == rollout.target_version, (rollout_id, tenant_id, version)
                forward[rollout_id] = forward.get(rollout_id, 0) + 1
        for rollout_id, rollout in rollouts.items():
            if rollout.active:
                continue
            seen = self.ended_pins.setdefault(rollout_id, forward.get(rollout_id, 0))
            assert forward.get(rollout_id, 0) == seen, f"rollout {rollout_id} pinned a tenant after it ended"
            if rollout.state is RolloutState.COMPLETED:
                assert all(t.outcome.value not in ("waiting", "in-flight") for t in rollout.tenants), rollout
        for tenant_id, version in self.pinned_back.items():
            tenant = self.store.get_tenant(tenant_id)
            assert tenant is not None and tenant.template_version == version, (tenant_id, version)

    # --- the end of the incident -----------------------------------------------------------------

    def teardown(self) -> None:
        if not self.healthy:
            return  # a step already failed; that failure is the one to report
        self.store.__dict__.pop("get_server", None)
        self.store.__dict__.pop("write_status", None)
        for rollout in self.store.list_rollouts():
            if rollout.active:  # `stackherd rollout abort`: nothing more is pinned while the fleet converges
                self.rollouts.abort(rollout.rollout_id, trail=trail("operator", "test"))
        self.blocked.clear()  # the operator removes what blocked deletes
        self.cloud.clear_faults()
        self.store.fail_reads.clear()
        for tenant_id in TENANTS:
            self.cloud.allow(account_of(tenant_id))
            self.store.set_quarantine(tenant_id, None, self.world.clock())
            tenant = self.store.get_tenant(tenant_id)
            assert tenant is not None
            self.store.put_tenant(replace(tenant, paused=False))  # `stackherd tenants resume`
        self.cloud.settle_all()
        for account, region, name, status in self.cloud.stuck_stacks():
            self.cloud.unstick(account, region, name, UNSTICK[status][0])
        # The first scheduled sweep after the incident: it sees the last outcomes (failed attempts recorded) and
        # stores what the deletion brake holds, which is what an operator then confirms (a dry run shows what
        # would be held, but only a pass holds it).
        self._sweep()
        self.cloud.settle_all()
        self.check_every_step()

        # The documented operator steps (docs/operations.md) for what is held, read off `stackherd plan`:
        # `stackherd servers retry` for what failed (a stack that would not delete, a change that rolled back),
        # then confirming braked deletions.
        for tenant_id in TENANTS:
            retried_servers = self._retry_candidates(tenant_id)
            for retried in retried_servers:
                # Orphans of that name (none, or one left in a region the server moved from) are forgotten.
                name = naming.stack_name(INSTALLATION, tenant_id, retried)
                kept = {k: a for k, a in self.store.orphan_attempts(tenant_id).items() if a.stack_name != name}
                self.store.save_orphan_attempts(tenant_id, kept, self.world.clock())
                server = self.store.get_server(tenant_id, retried)
                if server is not None:
                    reset = replace(server.status, attempts=0, next_retry_at=None, tries=0, operation=None)
                    self.store.write_status(server, reset)
            braked = self._held(tenant_id, HoldReason.DELETION_BRAKE)
            for _ in range(len(SERVER_IDS) if retried_servers else 0):
                if not braked:
                    break
                # A retried deletion can meet a window other deletions have spent: only a pass stores what the
                # brake holds, and a confirmation releases exactly what is stored (the next pass, narrowed).
                # Narrowed, that pass may spend the window on a deletion the plan held (the plan gave the
                # allowance to one outside the scope), which leaves that other one held and not yet stored: it
                # takes another narrowed pass, until the plan holds only what a pass just held.
                self._pass(tenant_id, scope=braked)
                narrowed, braked = braked, self._held(tenant_id, HoldReason.DELETION_BRAKE)
                if braked <= narrowed:
                    break
            if braked:
                # `stackherd reconcile TENANT --confirm-deletions`, narrowed to the held servers so it does no
                # work for the others that the three sweeps below must prove they can do themselves.
                self._pass(tenant_id, scope=braked, confirm=True)
        self.cloud.settle_all()
        self.check_every_step()

        for _ in range(3):
            self._sweep()
            self.cloud.settle_all()
            self.check_every_step()
        self._check_converged()

    def _retry_candidates(self, tenant_id: str) -> set[str]:
        planned = self.engine.reconcile_tenant(tenant_id, dry_run=True)
        assert planned.error is None, planned.error
        retried = {HoldReason.DELETE_FAILED.value, HoldReason.FAILURE_BUDGET.value}
        return {
            r.action.gameserver_id
            for r in planned.results
            if r.action.kind is ActionKind.BACKOFF or (r.action.kind is ActionKind.HOLD and r.action.code in retried)
        }

    def _held(self, tenant_id: str, reason: HoldReason) -> set[str]:
        planned = self.engine.reconcile_tenant(tenant_id, dry_run=True)
        assert planned.error is None, planned.error
        return {
            r.action.gameserver_id
            for r in planned.results
            if r.action.kind is ActionKind.HOLD and r.action.code == reason.value
        }

    def _check_converged(self) -> None:
        for tenant_id, (account, _) in TENANTS.items():
            tenant = self.store.get_tenant(tenant_id)
            assert tenant is not None and not tenant.quarantined
            owned = {
                (s.region, s.name): s
                for s in self.cloud.stacks(account)
                if naming.is_owned(s.tags, INSTALLATION, tenant_id)
            }
            wanted = {
                (record_region(tenant_id, want), naming.stack_name(INSTALLATION, tenant_id, server_id)): (
                    server_id,
                    want,
                )
                for (t, server_id), want in self.model.items()
                if t == tenant_id
            }
            unfinalized = sorted(s for (t, s), w in self.model.items() if t == tenant_id and w.deletion_requested)
            assert not unfinalized, f"{tenant_id}: deleted records {unfinalized} were not finalized"
            assert set(owned) == set(wanted), f"{tenant_id}: stacks {sorted(owned)} != records {sorted(wanted)}"
            for place, (server_id, want) in wanted.items():
                stack = owned[place]
                assert stack.status in STABLE_STATUSES, f"{stack.name}: {stack.status}"
                defaults = {"MapSize": "medium"} if tenant.template_version == "v3" else {}
                expected = {**defaults, **want.config.parameters()}
                assert stack.parameters == expected, f"{stack.name}: {stack.parameters}"
                assert stack.tags[naming.TAG_TEMPLATE_VERSION] == tenant.template_version, stack.tags
                server = self.store.get_server(tenant_id, server_id)
                assert server is not None
                assert server.status.phase is Phase.READY, f"{tenant_id}/{server_id}: {server.status}"
                assert server.status.observed_generation == server.generation
            plan = self.engine.reconcile_tenant(tenant_id, dry_run=True)
            assert plan.in_sync, plan.to_dict()


_CI = bool(os.environ.get("CI"))
_SETTINGS = settings(
    max_examples=int(os.environ.get("STACKHERD_PROPERTY_EXAMPLES", "500")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    # Under CI: the same examples on every run.
    derandomize=_CI,
    print_blob=True,
)
# ... and no example database carrying failures from one run into the next.
ReconcilerMachine.TestCase.settings = settings(_SETTINGS, database=None) if _CI else _SETTINGS
TestReconciler = ReconcilerMachine.TestCase
