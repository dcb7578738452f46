"""The boto3 adapters: `AwsConnector` (STS AssumeRole through the credentials cache) and `AwsGateway`
(CloudFormation in one tenant account and region).

One client per (account, region), reused while its credentials last, the `cache_size` most recently used
kept (least recently used evicted first, like the credentials), so a warm worker serving any number of
tenants stays flat in memory (a boto3 CloudFormation client costs about 0.3 MB); botocore's `standard` retry mode
and paginators do the retrying and paging. With a rate limiter, every HTTP request a CloudFormation client
sends (each page of a listing, each retry) first takes a token of its account's bucket. Every SDK error
leaves here classified (see `errors.classify`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from models.records import Tenant
from reconciler.credentials import DEFAULT_CACHE_SIZE, Credentials, CredentialsCache
from reconciler.errors import (
    AccessDeniedError,
    ReconcileError,
    StackNotFoundError,
    UnknownRegionError,
    classify_exception,
)
from reconciler.naming import session_name
from reconciler.regions import partition_of, region_problem
from reconciler.stacks import (
    ObservedStack,
    StackEvent,
    StackSpec,
    StackSummary,
    TemplateSummary,
    first_failure,
    is_operation_start,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.literals import StackStatusType
    from mypy_boto3_cloudformation.type_defs import StackSummaryTypeDef, StackTypeDef

    from reconciler.pacing import AccountRateLimiter

#: Every stack status but DELETE_COMPLETE: the filter of the listing that observes an account.
LIVE_STATUSES: list[StackStatusType] = [
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "CREATE_COMPLETE",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE",
    "DELETE_IN_PROGRESS",
    "DELETE_FAILED",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_COMPLETE",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE",
    "REVIEW_IN_PROGRESS",
    "IMPORT_IN_PROGRESS",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
]

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=20)


@contextmanager
def translated(what: str, region: str | None = None) -> Iterator[None]:
    """Re-raise SDK errors as classified `ReconcileError`s (see `errors.classify_exception`)."""
    try:
        yield
    except ReconcileError:
        raise
    except Exception as error:
        classified = classify_exception(error, what)
        if classified is None:
            raise
        if region is not None and classified.retryable and region_problem(region) is not None:
            # A connection that fails to a region botocore does not know is no network blip: it never works.
            classified = UnknownRegionError(f"{what}: {region_problem(region)}")
        raise classified from error


def observed_from(raw: StackTypeDef, region: str) -> ObservedStack:
    return ObservedStack(
        name=raw["StackName"],
        stack_id=raw.get("StackId", ""),
        status=raw["StackStatus"],
        region=region,
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in raw.get("Parameters", [])},
        tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
        status_reason=raw.get("StackStatusReason", ""),
        parent_id=raw.get("ParentId", "") or raw.get("RootId", ""),
        termination_protection=bool(raw.get("EnableTerminationProtection", False)),
        # AWS reports LastUpdatedTime once a stack has been updated; before that (and on moto, which never
        # does in listings) the creation time is when it last changed.
        changed_at=raw.get("LastUpdatedTime") or raw.get("CreationTime"),
    )


def summary_from(raw: StackSummaryTypeDef, region: str) -> StackSummary:
    return StackSummary(
        name=raw["StackName"],
        stack_id=raw.get("StackId", ""),
        status=raw["StackStatus"],
        region=region,
        status_reason=raw.get("StackStatusReason", ""),
        parent_id=raw.get("ParentId", "") or raw.get("RootId", ""),
        # As for DescribeStacks: no LastUpdatedTime until the stack is first updated (and never on moto).
        changed_at=raw.get("LastUpdatedTime") or raw.get("CreationTime"),
    )


def arn_account(arn: str) -> str:
    """The account field of an ARN (`arn:partition:service:region:account:resource`); "" when absent."""
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 and parts[0] == "arn" else ""


class AwsGateway:
    def __init__(self, client: CloudFormationClient, account_id: str, region: str) -> None:
        self.client = client
        self.account_id = account_id
        self.region = region

    def list_stacks(self) -> list[ObservedStack]:
        stacks: list[ObservedStack] = []
        with translated("DescribeStacks", self.region):
            for page in self.client.get_paginator("describe_stacks").paginate():
                stacks.extend(
                    observed_from(s, self.region) for s in page["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"
                )
        return stacks

    def list_summaries(self) -> list[StackSummary]:
        summaries: list[StackSummary] = []
        with translated("ListStacks", self.region):
            # Filtered by status so the stacks deleted in the last 90 days (which ListStacks keeps) cost no pages.
            pages = self.client.get_paginator("list_stacks").paginate(StackStatusFilter=LIVE_STATUSES)
            for page in pages:
                summaries.extend(
                    summary_from(s, self.region)
                    for s in page.get("StackSummaries", [])
                    if s["StackStatus"] != "DELETE_COMPLETE"
                )
        return summaries

    def describe(self, name: str) -> ObservedStack | None:
        try:
            with translated("DescribeStacks", self.region):
                found = self.client.describe_stacks(StackName=name)["Stacks"]
        except StackNotFoundError:
            return None
        live = [s for s in found if s["StackStatus"] != "DELETE_COMPLETE"]
        return observed_from(live[0], self.region) if live else None

    def _arguments(self, spec: StackSpec, token: str) -> dict[str, Any]:
        return {
            "StackName": spec.name,
            "TemplateURL": spec.template_url,
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(spec.parameters.items())],
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(spec.tags.items())],
            "ClientRequestToken": token,
            **({"Capabilities": list(spec.capabilities)} if spec.capabilities else {}),
        }

    def create(self, spec: StackSpec, token: str) -> str:
        with translated("CreateStack", self.region):
            return self.client.create_stack(**self._arguments(spec, token))["StackId"]

    def update(self, spec: StackSpec, token: str) -> str:
        with translated("UpdateStack", self.region):
            return self.client.update_stack(**self._arguments(spec, token))["StackId"]

    def delete(self, name: str, token: str) -> None:
        with translated("DeleteStack", self.region):
            self.client.delete_stack(StackName=name, ClientRequestToken=token)

    def continue_update_rollback(self, name: str, token: str) -> None:
        with translated("ContinueUpdateRollback", self.region):
            self.client.continue_update_rollback(StackName=name, ClientRequestToken=token)

    def failure_cause(self, name: str) -> StackEvent | None:
        # Events come newest first; the walk (and the paging) stops at the event that opened the stack's
        # latest operation, so a stack with a long history costs one or two pages.
        events: list[StackEvent] = []
        stack_name = ""
        try:
            with translated("DescribeStackEvents"):
                for page in self.client.get_paginator("describe_stack_events").paginate(StackName=name):
                    for raw in page.get("StackEvents", []):
                        stack_name = stack_name or raw.get("StackName", name)
                        event = StackEvent(
                            logical_id=raw.get("LogicalResourceId", ""),
                            resource_type=raw.get("ResourceType", ""),
                            status=raw.get("ResourceStatus", ""),
                            reason=raw.get("ResourceStatusReason", ""),
                            timestamp=raw.get("Timestamp"),
                        )
                        events.append(event)
                        if is_operation_start(event, stack_name):
                            break
                    else:
                        continue
                    break
        except StackNotFoundError:
            return None
        return first_failure(events[::-1], stack_name)

    def template_summary(self, url: str) -> TemplateSummary:
        with translated("GetTemplateSummary", self.region):
            summary = self.client.get_template_summary(TemplateURL=url)
        parameters = {
            str(p["ParameterKey"]): (None if p.get("DefaultValue") is None else str(p["DefaultValue"]))
            for p in summary.get("Parameters", [])
        }
        return TemplateSummary(parameters, tuple(sorted(summary.get("Capabilities", []))))


class AwsConnector:
    """Assumes each tenant's role (always with its ExternalId) through a shared credentials cache."""

    def __init__(
        self,
        session: boto3.Session | None = None,
        *,
        cache: CredentialsCache | None = None,
        duration_seconds: int = 3600,
        limiter: AccountRateLimiter | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, not {cache_size}")
        self._session = session or boto3.Session()
        # STS on the regional endpoint whatever the environment or botocore's default says: tokens of the
        # global endpoint are refused in opt-in regions (InvalidClientTokenId).
        self._session._session.set_config_variable("sts_regional_endpoints", "regional")
        self._duration = duration_seconds
        self._limiter = limiter
        self._lock = threading.Lock()  # the session, which is not thread-safe
        self._clients_lock = threading.Lock()  # the client cache: one client per key, even under a burst
        self._sts: Any = None
        self.cache = cache if cache is not None else CredentialsCache(self._assume, max_size=cache_size)
        self.cache_size = cache_size
        # (account, region) -> (access key the client signs with, client), least recently used first
        self._clients: OrderedDict[tuple[str, str], tuple[str, CloudFormationClient]] = OrderedDict()
        self.client_evictions = 0

    def _client(self, service: str, **kwargs: Any) -> Any:
        with self._lock:  # boto3 sessions are not thread-safe; the clients they make are
            if service == "sts":
                kwargs.setdefault("region_name", self._session.region_name or "us-east-1")
            return self._session.client(service, config=CLIENT_CONFIG, **kwargs)  # type: ignore[call-overload]

    def _assume(self, role_arn: str, external_id: str, name: str) -> Credentials:
        with self._clients_lock:
            if self._sts is None:
                # The regional STS endpoint of the control plane's region: its tokens are valid in every region
                # the account has enabled, opt-in regions included (the global endpoint's are not).
                with translated("STS client"):
                    self._sts = self._client("sts")
            sts = self._sts
        with translated("AssumeRole"):
            response = sts.assume_role(
                RoleArn=role_arn, RoleSessionName=name, ExternalId=external_id, DurationSeconds=self._duration
            )
        raw = response["Credentials"]
        return Credentials(raw["AccessKeyId"], raw["SecretAccessKey"], raw["SessionToken"], raw["Expiration"])

    def gateway(self, tenant: Tenant, region: str) -> AwsGateway:
        # Credentials act in the account of the role they were assumed from. A tenant record naming one
        # account and another account's role would otherwise act, unseen, in the other account.
        role_account = arn_account(tenant.role_arn)
        if role_account != tenant.account_id:
            raise AccessDeniedError(
                f"AccessDenied: role {tenant.role_arn} is in account {role_account or '?'}, not in the tenant's "
                f"account {tenant.account_id}; fix the tenant's role",
                code="RoleAccountMismatch",
            )
        problem = region_problem(region, partition_of(tenant.role_arn))
        if problem:
            raise UnknownRegionError(problem)
        credentials = self.cache.get(tenant.role_arn, tenant.external_id, session_name(tenant.tenant_id))
        key = (tenant.account_id, region)
        with self._clients_lock, translated("CloudFormation client", region):
            cached = self._clients.get(key)
            if cached is None or cached[0] != credentials.access_key_id:
                client = self._client(
                    "cloudformation",
                    region_name=region,
                    aws_access_key_id=credentials.access_key_id,
                    aws_secret_access_key=credentials.secret_access_key,
                    aws_session_token=credentials.session_token,
                )
                if self._limiter is not None:
                    limiter, account_id = self._limiter, tenant.account_id
                    client.meta.events.register("before-send.cloudformation", lambda **_: limiter.acquire(account_id))
                cached = (credentials.access_key_id, client)
                self._clients[key] = cached
            self._clients.move_to_end(key)
            while len(self._clients) > self.cache_size:
                self._clients.popitem(last=False)
                self.client_evictions += 1
        return AwsGateway(cached[1], tenant.account_id, region)

    @property
    def cached_clients(self) -> list[tuple[str, str]]:
        """The (account, region) keys of the cached clients, least recently used first."""
        with self._clients_lock:
            return list(self._clients)

    def invalidate(self, tenant: Tenant) -> None:
        self.cache.invalidate(tenant.role_arn, tenant.external_id)
        with self._clients_lock:
            for key in [k for k in self._clients if k[0] == tenant.account_id]:
                del self._clients[key]


def s3_client(session: boto3.Session | None = None) -> Any:
    return (session or boto3.Session()).client("s3", config=CLIENT_CONFIG)


__all__ = ["AwsConnector", "AwsGateway", "ReconcileError", "s3_client"]
