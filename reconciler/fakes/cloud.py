"""An in-memory cloud that models CloudFormation and STS honestly enough to test a reconciler against.

What it models, because moto does not: operations that take time (`*_IN_PROGRESS` until an injected
clock passes their duration), "No updates are to be performed", failed creates that end in
ROLLBACK_COMPLETE, failed updates that end in UPDATE_ROLLBACK_FAILED, DELETE_FAILED, stacks stuck in
progress, already-exists, idempotent request tokens, per-account throttling (a token bucket), access
denied, expired credentials and per-call latency. Every call is recorded.

It also has the shapes of real CloudFormation that moto lacks: stack events (a stack-level event opening
each operation, resource events with their reasons when one fails, the stack's own outcome), nested stacks
(listed with a ParentId and their parent's tags), termination protection (a delete is refused), stacks in
REVIEW_IN_PROGRESS (a change set never executed), templates that declare parameter defaults (reported
by DescribeStacks like any other parameter) and templates that require capabilities (a create or update
without them is refused with InsufficientCapabilities), and each stack's creation and last-update time.

Request tokens are modelled on the strict side: a token stays spent for its stack name after the stack is
deleted, so a CreateStack that repeats the token of a deleted stack is taken for a replay of that old
request and creates nothing. CloudFormation documents tokens as identifying a request to retry; a
reconciler that only reuses a token for a real retry is right whichever way the service reads it.

It lives in the importable code because the demo and the benchmark drive it as well as the tests.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from models.records import Tenant
from reconciler.credentials import Credentials, CredentialsCache
from reconciler.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    CredentialsExpiredError,
    NoUpdatesError,
    PermanentError,
    ReconcileError,
    StackNotFoundError,
    ThrottledError,
    TransientError,
)
from reconciler.naming import session_name
from reconciler.stacks import (
    STACK_RESOURCE_TYPE,
    ObservedStack,
    StackEvent,
    StackSpec,
    StackSummary,
    TemplateSummary,
    first_failure,
    operation_events,
)

PAGE_SIZE = 50
#: ListStacks returns up to 100 summaries a page.
SUMMARY_PAGE_SIZE = 100
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to. Thread-safe."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        # Reading one attribute is atomic; the lock only keeps two advances from losing one. Every pass reads
        # the clock several times, and a lock taken by every thread of a benchmark is a point they queue at.
        return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


@dataclass(frozen=True)
class Call:
    operation: str
    account_id: str
    region: str
    target: str = ""


@dataclass(frozen=True)
class FailureCause:
    """The resource whose failure makes an injected outcome fail, as its event reports it."""

    logical_id: str = "GameServer"
    resource_type: str = "AWS::EC2::Instance"
    reason: str = "injected failure"


@dataclass(frozen=True)
class FakeTemplate:
    """What CloudFormation reads from a template body: its parameters (name -> default) and capabilities."""

    parameters: dict[str, str | None]
    capabilities: tuple[str, ...] = ()


@dataclass
class _Stack:
    name: str
    stack_id: str
    region: str
    status: str
    parameters: dict[str, str]
    tags: dict[str, str]
    template_url: str
    status_reason: str = ""
    # The operation in flight: the status it ends in and when.
    settles_to: str | None = None
    settles_at: datetime | None = None
    tokens: set[str] = field(default_factory=set)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    parent_id: str = ""
    termination_protection: bool = False
    events: list[StackEvent] = field(default_factory=list)  # oldest first
    # The cause the operation in flight fails with, when it is to fail.
    failing: FailureCause | None = None
    operation: str = ""

    def observed(self) -> ObservedStack:
        return ObservedStack(
            name=self.name,
            stack_id=self.stack_id,
            status=self.status,
            region=self.region,
            parameters=dict(self.parameters),
            tags=dict(self.tags),
            status_reason=self.status_reason,
            parent_id=self.parent_id,
            termination_protection=self.termination_protection,
            changed_at=self.updated_at or self.created_at,
        )

    def summary(self) -> StackSummary:
        # Every field set in one update of the dictionary (as `__init__` would, one `object.__setattr__` each):
        # a listing builds one per stack, and the benchmark's workers share one process's CPU with this fake.
        summary: StackSummary = object.__new__(StackSummary)
        summary.__dict__.update(
            name=self.name,
            stack_id=self.stack_id,
            status=self.status,
            region=self.region,
            status_reason=self.status_reason,
            parent_id=self.parent_id,
            changed_at=self.updated_at or self.created_at,
        )
        return summary

    def event(self, logical_id: str, resource_type: str, status: str, reason: str, at: datetime) -> None:
        self.events.append(StackEvent(logical_id, resource_type, status, reason, at))


@dataclass
class _Account:
    account_id: str
    external_id: str | None
    denied: str | None = None  # a reason, when AssumeRole and every call are refused
    stacks: dict[tuple[str, str], _Stack] = field(default_factory=dict)  # (region, name) -> stack
    # (region, name) -> {token: stack id} of the deleted stacks of that name
    spent_tokens: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    credential_epoch: int = 0  # bumped to revoke every credential issued before
    bucket_tokens: float = 0.0
    bucket_at: float = 0.0
    #: region -> the error every CloudFormation call there raises (a region not enabled, denied by an SCP)
    region_faults: dict[str, Callable[[], ReconcileError]] = field(default_factory=dict)


@dataclass
class _Fault:
    operation: str
    error: Callable[[], ReconcileError]
    remaining: int


class FakeCloud:
    """Accounts -> regions -> stacks, plus STS."""

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        latency_s: float = 0.0,
        rate_per_account: float | None = None,
        burst: float | None = None,
        operation_seconds: float = 30.0,
        credential_lifetime: timedelta = timedelta(hours=1),
        narrow_role: str | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        #: The installation whose stacks alone the tenant roles may read, as the narrow tenant role grants:
        #: ListStacks account-wide, every other call only on `stack/<installation>-*` (AccessDenied otherwise).
        #: None: the role may read every stack.
        self.narrow_role = narrow_role
        self.latency_s = latency_s
        self.rate_per_account = rate_per_account
        self.burst = burst if burst is not None else (rate_per_account or 0.0)
        self.operation_seconds = operation_seconds
        self.credential_lifetime = credential_lifetime
        self.calls: list[Call] = []
        self._accounts: dict[str, _Account] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._outcomes: dict[tuple[str, str, str], str] = {}  # (account, name, op) -> final status
        # Outcomes that hold for every such operation, not only the next: (account, name, op) -> final status
        self._always: dict[tuple[str, str, str], str] = {}
        self._causes: dict[tuple[str, str, str], FailureCause] = {}
        self._templates: dict[str, FakeTemplate] = {}  # template URL -> what it declares
        # A template whose every create or update fails: (template URL, op) -> (final status, cause)
        self._template_outcomes: dict[tuple[str, str], tuple[str, FailureCause]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # --- setting up the world -------------------------------------------------------------------

    def add_account(self, account_id: str, *, external_id: str | None = None) -> None:
        with self._lock:
            self._accounts.setdefault(account_id, _Account(account_id, external_id))

    def deny(self, account_id: str, reason: str = "AccessDenied: role trust policy refuses stackherd") -> None:
        self._account(account_id).denied = reason

    def allow(self, account_id: str) -> None:
        self._account(account_id).denied = None

    def deny_region(self, account_id: str, region: str, reason: str = "an SCP denies this region") -> None:
        """Every CloudFormation call in `region` is refused (an SCP); AssumeRole and other regions still work."""
        message = f"AccessDenied: User is not authorized to perform cloudformation:DescribeStacks ({reason})"
        self._account(account_id).region_faults[region] = lambda: AccessDeniedError(message)

    def disable_region(self, account_id: str, region: str) -> None:
        """`region` is not enabled in the account: it refuses every token, however fresh."""
        self._account(account_id).region_faults[region] = lambda: CredentialsExpiredError(
            "InvalidClientTokenId: The security token included in the request is invalid.", code="InvalidClientTokenId"
        )

    def break_region(self, account_id: str, region: str, error: Callable[[], ReconcileError]) -> None:
        """Every CloudFormation call in `region` raises `error()` (an endpoint down, an unknown region)."""
        self._account(account_id).region_faults[region] = error

    def heal_region(self, account_id: str, region: str) -> None:
        self._account(account_id).region_faults.pop(region, None)

    def expire_credentials(self, account_id: str) -> None:
        """Revoke every credential issued for the account so far (they fail with ExpiredToken)."""
        self._account(account_id).credential_epoch += 1

    def fail_next(self, account_id: str, operation: str, error: Callable[[], ReconcileError], times: int = 1) -> None:
        """The next `times` calls of `operation` ("create", "update", ..., "*") in the account raise."""
        with self._lock:
            self._faults.setdefault(account_id, []).append(_Fault(operation, error, times))

    def throttle_next(self, account_id: str, times: int = 1) -> None:
        self.fail_next(account_id, "*", lambda: ThrottledError("Throttling: Rate exceeded"), times)

    def set_outcome(
        self,
        account_id: str,
        stack_name: str,
        operation: str,
        final_status: str,
        *,
        always: bool = False,
        cause: FailureCause | None = None,
    ) -> None:
        """The next `operation` on the stack ends in `final_status` (e.g. create -> ROLLBACK_COMPLETE,
        update -> UPDATE_ROLLBACK_FAILED, delete -> DELETE_FAILED, any -> *_IN_PROGRESS to stay stuck);
        with `always`, every such operation does. A failure leaves a resource event with `cause`."""
        with self._lock:
            key = (account_id, stack_name, operation)
            (self._always if always else self._outcomes)[key] = final_status
            self._causes[key] = cause or FailureCause(reason=f"injected failure: {operation} ends in {final_status}")

    def register_template(
        self, url: str, parameters: dict[str, str | None], capabilities: tuple[str, ...] = ()
    ) -> None:
        """What the template at `url` declares: creates and updates with it report its defaults, and are
        refused without its capabilities or with a parameter it does not declare."""
        with self._lock:
            self._templates[url] = FakeTemplate(dict(parameters), tuple(capabilities))

    def fail_template(self, url: str, operation: str, final_status: str, cause: FailureCause | None = None) -> None:
        """Every `operation` ("create" or "update") made with the template at `url` ends in `final_status`, in
        every account: a template version that cannot work."""
        with self._lock:
            self._template_outcomes[(url, operation)] = (
                final_status,
                cause or FailureCause(reason=f"template {url} cannot {operation}"),
            )

    def protect(self, account_id: str, region: str, name: str, enabled: bool = True) -> None:
        """Turn termination protection on (or off) by hand."""
        with self._lock:
            self._account(account_id).stacks[(region, name)].termination_protection = enabled

    def put_stack(
        self,
        account_id: str,
        region: str,
        name: str,
        *,
        parameters: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        status: str = "CREATE_COMPLETE",
        parent_id: str = "",
        termination_protection: bool = False,
    ) -> str:
        """Place a stack directly, as if made by hand (e.g. one without our tags), or by CloudFormation: a
        nested stack (`parent_id`), a stack left in REVIEW_IN_PROGRESS by a change set never executed."""
        with self._lock:
            account = self._account(account_id)
            now = self.clock()
            stack = _Stack(
                name=name,
                stack_id=self._new_id(account_id, region, name),
                region=region,
                status=status,
                parameters=dict(parameters or {}),
                tags=dict(tags or {}),
                template_url="https://example.invalid/hand-made.yaml",
                created_at=now,
                parent_id=parent_id,
                termination_protection=termination_protection,
            )
            opening = "REVIEW_IN_PROGRESS" if status == "REVIEW_IN_PROGRESS" else "CREATE_IN_PROGRESS"
            stack.event(name, STACK_RESOURCE_TYPE, opening, "User Initiated", now)
            if status != opening:
                stack.event(name, STACK_RESOURCE_TYPE, status, "", now)
            account.stacks[(region, name)] = stack
            return stack.stack_id

    def tamper(self, account_id: str, region: str, name: str, parameters: dict[str, str]) -> None:
        """Change parameters by hand (drift), bypassing the reconciler: an update made outside stackherd, which
        moves the stack's last-update time as any CloudFormation update does."""
        with self._lock:
            stack = self._account(account_id).stacks[(region, name)]
            stack.parameters.update(parameters)
            stack.updated_at = self._later(stack)

    def _later(self, stack: _Stack) -> datetime:
        """Now, or just after the stack's last change when the clock has not moved: CloudFormation's times have
        milliseconds, so two operations on one stack never share one."""
        now, last = self.clock(), stack.updated_at or stack.created_at
        return now if last is None or now > last else last + timedelta(milliseconds=1)

    def remove_stack(self, account_id: str, region: str, name: str) -> None:
        """Delete a stack by hand, instantly."""
        with self._lock:
            self._remove(self._account(account_id), region, name)

    def unstick(self, account_id: str, region: str, name: str, final_status: str) -> None:
        """End a stack's stuck operation by hand in `final_status` (DELETE_COMPLETE removes it)."""
        with self._lock:
            account = self._account(account_id)
            stack = account.stacks[(region, name)]
            stack.status, stack.settles_to, stack.settles_at = final_status, None, None
            if final_status == "DELETE_COMPLETE":
                self._remove(account, region, name)

    def clear_faults(self) -> None:
        """Forget every injected fault and pending outcome (what an incident's end looks like)."""
        with self._lock:
            self._faults.clear()
            self._outcomes.clear()
            self._always.clear()
            self._template_outcomes.clear()

    # --- reading the world (for tests; not recorded as calls) ------------------------------------

    def stuck_stacks(self) -> list[tuple[str, str, str, str]]:
        """(account, region, name, status) of every stack in progress that will never settle on its own."""
        with self._lock:
            return [
                (account.account_id, region, name, stack.status)
                for account in self._accounts.values()
                for (region, name), stack in sorted(account.stacks.items())
                if stack.status.endswith("_IN_PROGRESS") and stack.settles_to is None
            ]

    def stacks(self, account_id: str, region: str | None = None) -> list[ObservedStack]:
        with self._lock:
            account = self._account(account_id)
            result = []
            for (stack_region, _), stack in sorted(account.stacks.items()):
                self._settle(account, stack)
                if region is None or stack_region == region:
                    result.append(stack.observed())
            return [s for s in result if s.status != "DELETE_COMPLETE"]

    def template_url_of(self, account_id: str, region: str, name: str) -> str:
        """The TemplateURL the stack's latest create or update was made with (CloudFormation keeps the body it
        read from it; which body that is depends on the URL naming an object version)."""
        with self._lock:
            return self._account(account_id).stacks[(region, name)].template_url

    def settle_all(self) -> None:
        """Advance the clock far enough for every operation in flight to finish."""
        self.clock.advance(self.operation_seconds + 1)

    def count(self, operation: str | None = None, account_id: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for c in self.calls
                if (operation is None or c.operation == operation)
                and (account_id is None or c.account_id == account_id)
            )

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(c.operation for c in self.calls)

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # --- STS ------------------------------------------------------------------------------------

    def assume_role(self, role_arn: str, external_id: str, session_name: str) -> Credentials:
        account_id = role_arn.split(":")[4]
        self._enter("AssumeRole", account_id, "global", role_arn)
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                raise AccessDeniedError(f"AccessDenied: no role {role_arn} in account {account_id}")
            if account.denied:
                raise AccessDeniedError(account.denied)
            if account.external_id is not None and account.external_id != external_id:
                raise AccessDeniedError(f"AccessDenied: external id does not match for {role_arn}")
            serial = next(self._ids)
            return Credentials(
                access_key_id=f"ASIA{account_id}{account.credential_epoch:04d}{serial:06d}",
                secret_access_key=f"secret-{serial}",
                session_token=f"{account_id}:{account.credential_epoch}:{session_name}",
                expiration=self.clock() + self.credential_lifetime,
            )

    # --- CloudFormation (called by FakeGateway) ---------------------------------------------------

    def _check_credentials(self, account_id: str, credentials: Credentials) -> None:
        account = self._account(account_id)
        if account.denied:
            raise AccessDeniedError(account.denied)
        issued_for, epoch, _ = credentials.session_token.split(":", 2)
        if issued_for != account_id:
            raise AccessDeniedError("AccessDenied: credentials belong to another account")
        if int(epoch) != account.credential_epoch or credentials.expiration <= self.clock():
            raise CredentialsExpiredError("ExpiredToken: The security token included in the request is expired")

    def _enter(self, operation: str, account_id: str, region: str, target: str = "") -> None:
        """Record the call, pay its latency, apply throttling and injected faults."""
        with self._lock:
            self.calls.append(Call(operation, account_id, region, target))
        if self.latency_s:
            time.sleep(self.latency_s)
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return
            region_fault = account.region_faults.get(region)
            if region_fault is not None and operation != "AssumeRole":
                raise region_fault()
            if self.rate_per_account and operation != "AssumeRole":
                now = time.monotonic()
                if account.bucket_at == 0.0:
                    account.bucket_tokens, account.bucket_at = self.burst, now
                account.bucket_tokens = min(
                    self.burst, account.bucket_tokens + (now - account.bucket_at) * self.rate_per_account
                )
                account.bucket_at = now
                if account.bucket_tokens < 1.0:
                    raise ThrottledError("Throttling: Rate exceeded")
                account.bucket_tokens -= 1.0
            for fault in self._faults.get(account_id, []):
                if fault.remaining > 0 and fault.operation in ("*", _short(operation)):
                    fault.remaining -= 1
                    raise fault.error()

    def _settle(self, account: _Account, stack: _Stack) -> None:
        if stack.settles_to and stack.settles_at and self.clock() >= stack.settles_at:
            at = stack.settles_at
            final = stack.settles_to
            if stack.failing is not None:
                # What CloudFormation writes when a resource fails: the resource's own event with its reason,
                # then the stack rolling back (or failing) because of it.
                cause = stack.failing
                verb = {"create": "CREATE", "update": "UPDATE", "delete": "DELETE"}.get(stack.operation, "UPDATE")
                stack.event(cause.logical_id, cause.resource_type, f"{verb}_FAILED", cause.reason, at)
                if final != f"{verb}_FAILED" and final != "DELETE_FAILED":
                    rolling = "ROLLBACK_IN_PROGRESS" if verb == "CREATE" else "UPDATE_ROLLBACK_IN_PROGRESS"
                    stack.event(
                        stack.name,
                        STACK_RESOURCE_TYPE,
                        rolling,
                        f"The following resource(s) failed to {verb.lower()}: [{cause.logical_id}].",
                        at,
                    )
            stack.event(stack.name, STACK_RESOURCE_TYPE, final, stack.status_reason if stack.failing else "", at)
            stack.status, stack.settles_to, stack.settles_at, stack.failing = final, None, None, None
            if stack.status == "DELETE_COMPLETE":
                self._remove(account, stack.region, stack.name)

    @staticmethod
    def _remove(account: _Account, region: str, name: str) -> None:
        stack = account.stacks.pop((region, name), None)
        if stack is not None:
            account.spent_tokens.setdefault((region, name), {}).update(dict.fromkeys(stack.tokens, stack.stack_id))

    def _final(self, account_id: str, name: str, operation: str, *, consume: bool) -> str | None:
        key = (account_id, name, operation)
        if key in self._outcomes:
            return self._outcomes.pop(key) if consume else self._outcomes[key]
        return self._always.get(key)

    def _start(
        self, account: _Account, stack: _Stack, operation: str, in_progress: str, done: str, url: str = ""
    ) -> None:
        final = self._final(account.account_id, stack.name, operation, consume=True)
        by_template = self._template_outcomes.get((url, operation)) if url else None
        if final is None and by_template is not None:
            final = by_template[0]
            self._causes[(account.account_id, stack.name, operation)] = by_template[1]
        final = final or done
        now = self.clock()
        stack.status, stack.operation, stack.failing = in_progress, operation, None
        if operation != "create":
            stack.updated_at = self._later(stack)
        stack.event(stack.name, STACK_RESOURCE_TYPE, in_progress, "User Initiated", now)
        if final.endswith("_IN_PROGRESS"):
            stack.status, stack.settles_to, stack.settles_at = final, None, None  # stuck
            return
        if final != done:
            stack.status_reason = f"injected failure: {operation} ends in {final}"
            stack.failing = self._causes.get((account.account_id, stack.name, operation), FailureCause())
        stack.settles_to = final
        stack.settles_at = now + timedelta(seconds=self.operation_seconds)

    def _check_template(self, spec: StackSpec) -> dict[str, str]:
        """The parameters a stack made from `spec` reports (the template's defaults filled in); raises what
        CloudFormation raises for a template it will not take as sent."""
        template = self._templates.get(spec.template_url)
        if template is None:
            return dict(spec.parameters)
        unknown = sorted(set(spec.parameters) - set(template.parameters))
        if unknown:
            raise PermanentError(f"ValidationError: Parameters: [{', '.join(unknown)}] do not exist in the template")
        missing = [c for c in template.capabilities if c not in spec.capabilities]
        if missing:
            raise PermanentError(
                f"InsufficientCapabilitiesException: Requires capabilities : [{', '.join(missing)}]",
                code="InsufficientCapabilities",
            )
        defaults = {k: v for k, v in template.parameters.items() if v is not None}
        return {**defaults, **spec.parameters}

    def _new_id(self, account_id: str, region: str, name: str) -> str:
        return f"arn:aws:cloudformation:{region}:{account_id}:stack/{name}/{next(self._ids):08d}"

    def _account(self, account_id: str) -> _Account:
        try:
            return self._accounts[account_id]
        except KeyError:
            raise AccessDeniedError(f"AccessDenied: unknown account {account_id}") from None

    def _live(self, account: _Account, region: str, name: str) -> _Stack | None:
        for (stack_region, stack_name), stack in list(account.stacks.items()):
            if stack_region == region and name in (stack_name, stack.stack_id):
                self._settle(account, stack)
                return account.stacks.get((stack_region, stack_name))
        return None

    def _check_narrow(self, operation: str, account_id: str, region: str, name: str | None) -> None:
        """What IAM answers a narrow tenant role asked for a stack outside `<installation>-*` (or, with no
        name, for every stack of the account)."""
        if self.narrow_role is None:
            return
        if name is not None:
            stack_name = name.split(":stack/", 1)[1].split("/", 1)[0] if ":stack/" in name else name
            if stack_name.startswith(f"{self.narrow_role}-"):
                return
        resource = f"arn:aws:cloudformation:{region}:{account_id}:stack/{name or '*'}"
        raise AccessDeniedError(
            f"AccessDenied: User: stackherd is not authorized to perform: cloudformation:{operation} on resource: "
            f"{resource} because no identity-based policy allows the cloudformation:{operation} action"
        )

    def op_list_summaries(self, account_id: str, region: str, credentials: Credentials) -> list[StackSummary]:
        with self._lock:
            account = self._account(account_id)
            names = [k for k in account.stacks if k[0] == region]
        pages = max(1, -(-len(names) // SUMMARY_PAGE_SIZE))
        result: list[StackSummary] = []
        for page in range(pages):
            self._enter("ListStacks", account_id, region)
            with self._lock:
                self._check_credentials(account_id, credentials)
                if page < pages - 1:
                    continue
                # Read as the last page's call is answered, in the same hold of the lock (every benchmark
                # worker takes it). Only this region's stacks, in name order (settling one removes only it).
                for key in sorted(key for key in account.stacks if key[0] == region):
                    stack = account.stacks[key]
                    if stack.settles_to:  # an operation in flight, which may have finished by now
                        self._settle(account, stack)
                        if key not in account.stacks:
                            continue
                    result.append(stack.summary())
        return result

    def op_list(self, account_id: str, region: str, credentials: Credentials) -> list[ObservedStack]:
        with self._lock:
            account = self._account(account_id)
            names = [k for k in account.stacks if k[0] == region]
        pages = max(1, -(-len(names) // PAGE_SIZE))
        result: list[ObservedStack] = []
        for _ in range(pages):
            self._enter("DescribeStacks", account_id, region)
            with self._lock:
                self._check_credentials(account_id, credentials)
                self._check_narrow("DescribeStacks", account_id, region, None)
        with self._lock:
            for key in sorted(account.stacks):
                stack = account.stacks.get(key)
                if stack is None or key[0] != region:
                    continue
                self._settle(account, stack)
                if (region, stack.name) in account.stacks:
                    result.append(stack.observed())
        return result

    def op_describe(self, account_id: str, region: str, credentials: Credentials, name: str) -> ObservedStack | None:
        self._enter("DescribeStack", account_id, region, name)
        with self._lock:
            self._check_credentials(account_id, credentials)
            self._check_narrow("DescribeStacks", account_id, region, name)
            stack = self._live(self._account(account_id), region, name)
            return stack.observed() if stack else None

    def op_create(self, account_id: str, credentials: Credentials, spec: StackSpec, token: str) -> str:
        self._enter("CreateStack", account_id, spec.region, spec.name)
        with self._lock:
            self._check_credentials(account_id, credentials)
            self._check_narrow("CreateStack", account_id, spec.region, spec.name)
            account = self._account(account_id)
            existing = self._live(account, spec.region, spec.name)
            if existing is not None:
                if token in existing.tokens:
                    return existing.stack_id  # a retry of the same request
                raise AlreadyExistsError(f"AlreadyExistsException: Stack [{spec.name}] already exists")
            replayed = account.spent_tokens.get((spec.region, spec.name), {}).get(token)
            if replayed is not None:
                return replayed  # the token of a request already taken, for a stack since deleted
            parameters = self._check_template(spec)
            stack = _Stack(
                name=spec.name,
                stack_id=self._new_id(account_id, spec.region, spec.name),
                region=spec.region,
                status="CREATE_IN_PROGRESS",
                parameters=parameters,
                tags=dict(spec.tags),
                template_url=spec.template_url,
                tokens={token},
                created_at=self.clock(),
            )
            account.stacks[(spec.region, spec.name)] = stack
            self._start(account, stack, "create", "CREATE_IN_PROGRESS", "CREATE_COMPLETE", spec.template_url)
            refused = resource_tag_problem(spec.tags)
            if refused:  # the stack's tags reach its resources, whose services refuse the value: a rollback
                stack.settles_to, stack.status_reason = "ROLLBACK_COMPLETE", refused
            if stack.settles_to == "ROLLBACK_COMPLETE":
                stack.status = "CREATE_IN_PROGRESS"
            return stack.stack_id

    def op_update(self, account_id: str, credentials: Credentials, spec: StackSpec, token: str) -> str:
        self._enter("UpdateStack", account_id, spec.region, spec.name)
        with self._lock:
            self._check_credentials(account_id, credentials)
            self._check_narrow("UpdateStack", account_id, spec.region, spec.name)
            account = self._account(account_id)
            stack = self._live(account, spec.region, spec.name)
            if stack is None:
                raise StackNotFoundError(f"ValidationError: Stack [{spec.name}] does not exist")
            if token in stack.tokens:
                return stack.stack_id
            if stack.status.endswith("_IN_PROGRESS"):
                raise TransientError(
                    f"ValidationError: Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
                )
            if stack.status not in (
                "CREATE_COMPLETE",
                "UPDATE_COMPLETE",
                "UPDATE_ROLLBACK_COMPLETE",
                "IMPORT_COMPLETE",
            ):
                raise ReconcileError(
                    f"ValidationError: Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
                )
            parameters = self._check_template(spec)
            if stack.parameters == parameters and stack.tags == spec.tags and stack.template_url == spec.template_url:
                raise NoUpdatesError("ValidationError: No updates are to be performed.")
            stack.tokens.add(token)
            final = self._final(account_id, stack.name, "update", consume=False)
            if final is None:
                final = self._template_outcomes.get((spec.template_url, "update"), (None,))[0]
            if final is None or final == "UPDATE_COMPLETE":
                stack.parameters, stack.tags, stack.template_url = (
                    parameters,
                    dict(spec.tags),
                    spec.template_url,
                )
            stack.status_reason = ""
            self._start(account, stack, "update", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", spec.template_url)
            return stack.stack_id

    def op_delete(self, account_id: str, region: str, credentials: Credentials, name: str, token: str) -> None:
        self._enter("DeleteStack", account_id, region, name)
        with self._lock:
            self._check_credentials(account_id, credentials)
            self._check_narrow("DeleteStack", account_id, region, name)
            account = self._account(account_id)
            stack = self._live(account, region, name)
            if stack is None or stack.status == "DELETE_IN_PROGRESS":
                return  # deleting what is gone, or going, succeeds
            if token in stack.tokens:
                return  # a retry of a request already taken: CloudFormation does not run it again
            if stack.termination_protection:
                raise PermanentError(
                    f"ValidationError: Stack [{name}] cannot be deleted while TerminationProtection is enabled"
                )
            if stack.parent_id:
                raise PermanentError(f"ValidationError: Stack [{name}] is a nested stack; delete its root stack")
            stack.tokens.add(token)
            stack.status_reason = ""
            self._start(account, stack, "delete", "DELETE_IN_PROGRESS", "DELETE_COMPLETE")

    def op_failure_cause(self, account_id: str, region: str, credentials: Credentials, name: str) -> StackEvent | None:
        self._enter("DescribeStackEvents", account_id, region, name)
        with self._lock:
            self._check_credentials(account_id, credentials)
            self._check_narrow("DescribeStackEvents", account_id, region, name)
            account = self._account(account_id)
            stack = self._live(account, region, name)
            if stack is None:
                return None
            return first_failure(operation_events(reversed(stack.events), stack.name), stack.name)

    def op_template_summary(self, account_id: str, region: str, credentials: Credentials, url: str) -> TemplateSummary:
        self._enter("GetTemplateSummary", account_id, region, url)
        with self._lock:
            self._check_credentials(account_id, credentials)
            template = self._templates.get(url)
            if template is None:
                raise PermanentError(f"ValidationError: S3 error: the template at {url} could not be read")
            return TemplateSummary(dict(template.parameters), tuple(sorted(template.capabilities)))

    def op_continue_rollback(
        self, account_id: str, region: str, credentials: Credentials, name: str, token: str
    ) -> None:
        self._enter("ContinueUpdateRollback", account_id, region, name)
        with self._lock:
            self._check_credentials(account_id, credentials)
            self._check_narrow("ContinueUpdateRollback", account_id, region, name)
            account = self._account(account_id)
            stack = self._live(account, region, name)
            if stack is None:
                raise StackNotFoundError(f"ValidationError: Stack [{name}] does not exist")
            if token in stack.tokens:
                return  # a retry of a request already taken: CloudFormation does not run it again
            if stack.status != "UPDATE_ROLLBACK_FAILED":
                raise ReconcileError(
                    f"ValidationError: Stack {name} is in {stack.status} state and cannot continue rollback"
                )
            stack.tokens.add(token)
            stack.status_reason = ""
            self._start(account, stack, "continue-rollback", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE")


#: What a tag value may hold on the strictest services a game server's resources use (CloudFormation copies
#: a stack's tags to them): letters, digits, spaces and _ . : / = + - @, at most 256 characters.
_RESOURCE_TAG_VALUE = re.compile(r"[A-Za-z0-9 _.:/=+\-@]{0,256}")


def resource_tag_problem(tags: dict[str, str]) -> str | None:
    """Why a resource would refuse one of these stack tags (the create then rolls back), or None."""
    for key, value in sorted(tags.items()):
        if not _RESOURCE_TAG_VALUE.fullmatch(value):
            return f"Tag value {value!r} of {key} does not satisfy the constraint of the resource's service"
    return None


def _short(operation: str) -> str:
    return {
        "CreateStack": "create",
        "UpdateStack": "update",
        "DeleteStack": "delete",
        "ContinueUpdateRollback": "continue-rollback",
        "DescribeStacks": "list",
        "ListStacks": "list",
        "DescribeStack": "describe",
        "AssumeRole": "assume-role",
    }.get(operation, operation)


class FakeGateway:
    """`StackGateway` over the fake cloud, bound to credentials for one account and region."""

    def __init__(self, cloud: FakeCloud, account_id: str, region: str, credentials: Credentials) -> None:
        self.cloud = cloud
        self.account_id = account_id
        self.region = region
        self.credentials = credentials

    def list_stacks(self) -> list[ObservedStack]:
        return self.cloud.op_list(self.account_id, self.region, self.credentials)

    def list_summaries(self) -> list[StackSummary]:
        return self.cloud.op_list_summaries(self.account_id, self.region, self.credentials)

    def describe(self, name: str) -> ObservedStack | None:
        return self.cloud.op_describe(self.account_id, self.region, self.credentials, name)

    def create(self, spec: StackSpec, token: str) -> str:
        return self.cloud.op_create(self.account_id, self.credentials, spec, token)

    def update(self, spec: StackSpec, token: str) -> str:
        return self.cloud.op_update(self.account_id, self.credentials, spec, token)

    def delete(self, name: str, token: str) -> None:
        self.cloud.op_delete(self.account_id, self.region, self.credentials, name, token)

    def continue_update_rollback(self, name: str, token: str) -> None:
        self.cloud.op_continue_rollback(self.account_id, self.region, self.credentials, name, token)

    def failure_cause(self, name: str) -> StackEvent | None:
        return self.cloud.op_failure_cause(self.account_id, self.region, self.credentials, name)

    def template_summary(self, url: str) -> TemplateSummary:
        return self.cloud.op_template_summary(self.account_id, self.region, self.credentials, url)


class FakeConnector:
    """`AccountConnector` over the fake cloud, with the same credentials cache the AWS connector uses."""

    def __init__(self, cloud: FakeCloud, cache: CredentialsCache | None = None, *, cache_size: int = 100_000) -> None:
        self.cloud = cloud
        # Large by default: the fake world of a test or a benchmark is one process standing in for all workers.
        self.cache = (
            cache if cache is not None else CredentialsCache(cloud.assume_role, clock=cloud.clock, max_size=cache_size)
        )

    def gateway(self, tenant: Tenant, region: str) -> FakeGateway:
        credentials = self.cache.get(tenant.role_arn, tenant.external_id, session_name(tenant.tenant_id))
        return FakeGateway(self.cloud, tenant.account_id, region, credentials)

    def invalidate(self, tenant: Tenant) -> None:
        self.cache.invalidate(tenant.role_arn, tenant.external_id)
