"""The `StackGateway` / `AccountConnector` contract (reconciler/ports.py), run against both implementations:
the in-memory fake cloud and the boto3 adapter on moto. When the fake and moto disagree, one of them is
wrong about CloudFormation; a behaviour only one backend can show is marked here with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pytest

from models.records import Tenant, role_arn_for
from reconciler.errors import AccessDeniedError, AlreadyExistsError, NoUpdatesError, PermanentError, StackNotFoundError
from reconciler.ports import AccountConnector
from reconciler.rendering import template_url
from reconciler.stacks import StackSpec
from tests.conftest import REGION, STRING_PARAMETERS_TEMPLATE, TEMPLATE_BUCKET

ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
OTHER_REGION = "us-west-2"


class Backend(Protocol):
    name: str
    connector: AccountConnector
    url: str

    def tenant(self, tenant_id: str, account_id: str) -> Tenant: ...

    def settle(self) -> None:
        """Let every operation in flight finish."""

    def assume_calls(self) -> int: ...

    def list_pages(self) -> int:
        """How many DescribeStacks pages the gateways have fetched so far."""


def _tenant(tenant_id: str, account_id: str) -> Tenant:
    return Tenant(
        tenant_id=tenant_id,
        account_id=account_id,
        regions=(REGION,),
        role_arn=role_arn_for(account_id, "StackherdExecution"),
        external_id=f"ext-{tenant_id}",
    )


@dataclass
class FakeBackend:
    name: str = "fake"
    url: str = template_url(TEMPLATE_BUCKET, "v1")
    cloud: Any = None
    connector: Any = None

    def __post_init__(self) -> None:
        from reconciler.fakes.cloud import FakeCloud, FakeConnector

        self.cloud = FakeCloud()
        self.connector = FakeConnector(self.cloud)

    def tenant(self, tenant_id: str, account_id: str) -> Tenant:
        tenant = _tenant(tenant_id, account_id)
        self.cloud.add_account(account_id, external_id=tenant.external_id)
        return tenant

    def settle(self) -> None:
        self.cloud.settle_all()

    def assume_calls(self) -> int:
        return int(self.cloud.count("AssumeRole"))

    def list_pages(self) -> int:
        return int(self.cloud.count("DescribeStacks"))


@dataclass
class MotoBackend:
    """The boto3 adapter against moto; moto maps assumed-role credentials to the role's account."""

    name: str = "moto"
    url: str = ""
    connector: Any = None
    pages: list[str] = field(default_factory=list)
    assumes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        import boto3

        from reconciler.adapters.aws import AwsConnector
        from tests.conftest import gameserver_template

        session = boto3.Session(region_name=REGION)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=TEMPLATE_BUCKET)
        s3.put_object(Bucket=TEMPLATE_BUCKET, Key="gameserver/v1.yaml", Body=gameserver_template().encode())
        s3.put_object(Bucket=TEMPLATE_BUCKET, Key="gameserver/strings.yaml", Body=STRING_PARAMETERS_TEMPLATE.encode())
        self.url = template_url(TEMPLATE_BUCKET, "v1")
        # Count calls as botocore sends them: every client this session makes reports here.
        session.events.register("provide-client-params.cloudformation.DescribeStacks", self._on_describe)
        session.events.register("provide-client-params.sts.AssumeRole", self._on_assume)
        self.connector = AwsConnector(session)

    def _on_describe(self, params: dict[str, Any], **_: Any) -> None:
        if not params.get("StackName"):
            self.pages.append("page")

    def _on_assume(self, **_: Any) -> None:
        self.assumes.append("assume")

    def tenant(self, tenant_id: str, account_id: str) -> Tenant:
        return _tenant(tenant_id, account_id)

    def settle(self) -> None:
        """moto finishes every stack operation inside the call."""

    def assume_calls(self) -> int:
        return len(self.assumes)

    def list_pages(self) -> int:
        return len(self.pages)


@pytest.fixture(params=["fake", "moto"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        yield FakeBackend()
        return
    request.getfixturevalue("moto_aws")
    yield MotoBackend()


def spec(backend: Backend, name: str, *, region: str = REGION, url: str | None = None, **params: str) -> StackSpec:
    parameters = {"Difficulty": "normal", "PlayerCount": "4", "Seed": "default"}
    parameters.update(params)
    return StackSpec(
        name=name,
        region=region,
        template_url=url or backend.url,
        parameters=parameters,
        tags={"stackherd:installation": "contract", "stackherd:gameserver": name},
    )


def account_of(stack_id: str) -> str:
    """arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>"""
    return stack_id.split(":")[4]


# --- create ---------------------------------------------------------------------------------------


def test_create_returns_an_id_and_the_stack_lists_with_its_parameters_and_tags(backend: Backend) -> None:
    tenant = backend.tenant("alpha", ACCOUNT_A)
    gateway = backend.connector.gateway(tenant, REGION)
    wanted = spec(backend, "gs-one", Difficulty="hard", PlayerCount="12", Seed="abc123")

    stack_id = gateway.create(wanted, "create-gs-one-g1")
    backend.settle()

    assert stack_id.startswith("arn:aws:cloudformation:")
    assert account_of(stack_id) == ACCOUNT_A
    (listed,) = gateway.list_stacks()
    assert (listed.name, listed.stack_id, listed.status, listed.region) == (
        "gs-one",
        stack_id,
        "CREATE_COMPLETE",
        REGION,
    )
    assert listed.parameters == wanted.parameters
    assert listed.tags == wanted.tags
    assert gateway.describe("gs-one") == listed
    assert gateway.describe(stack_id) == listed, "describe accepts the stack id as well as the name"


def test_create_of_a_taken_name_raises_already_exists(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()

    with pytest.raises(AlreadyExistsError):
        gateway.create(spec(backend, "gs-one", Seed="other"), "create-gs-one-g2")


def test_create_of_a_taken_name_raises_already_exists_while_still_in_progress(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")

    with pytest.raises(AlreadyExistsError):
        gateway.create(spec(backend, "gs-one"), "create-gs-one-g2")


# Fake-only: CloudFormation treats a CreateStack retried with the same ClientRequestToken as the same
# request. moto ignores ClientRequestToken entirely and answers AlreadyExistsException (see
# test_moto_ignores_client_request_token below); the engine copes either way, since it turns
# AlreadyExistsError into a wait.
@pytest.mark.parametrize("backend", ["fake"], indirect=True)
def test_create_retried_with_the_same_token_returns_the_same_stack(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    first = gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")

    assert gateway.create(spec(backend, "gs-one"), "create-gs-one-g1") == first
    backend.settle()
    assert [s.name for s in gateway.list_stacks()] == ["gs-one"]


# --- update ---------------------------------------------------------------------------------------


def test_update_changes_parameters(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    stack_id = gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()

    changed = spec(backend, "gs-one", Difficulty="hard", PlayerCount="16")
    assert gateway.update(changed, "update-gs-one-g2") == stack_id
    backend.settle()

    observed = gateway.describe("gs-one")
    assert observed is not None
    assert observed.status == "UPDATE_COMPLETE"
    assert observed.parameters == changed.parameters
    assert observed.stack_id == stack_id


def test_update_replaces_tags(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()

    changed = spec(backend, "gs-one", Seed="new")
    changed.tags["stackherd:generation"] = "2"
    gateway.update(changed, "update-gs-one-g2")
    backend.settle()

    observed = gateway.describe("gs-one")
    assert observed is not None
    assert observed.tags == changed.tags


def test_update_of_a_missing_stack_raises_stack_not_found(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)

    with pytest.raises(StackNotFoundError):
        gateway.update(spec(backend, "gs-missing"), "update-gs-missing-g1")


# Fake-only with the real template: CloudFormation refuses an update that changes nothing. moto refuses it
# only when the same template body comes back AND every sent parameter equals moto's resolved value; the
# game-server template's PlayerCount is a Number, which moto resolves to an int and compares with the
# string that was sent, so moto accepts every no-op update of that template (the moto facts below show
# both sides of this).
@pytest.mark.parametrize("backend", ["fake"], indirect=True)
def test_update_with_an_identical_spec_raises_no_updates(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    wanted = spec(backend, "gs-one")
    gateway.create(wanted, "create-gs-one-g1")
    backend.settle()

    with pytest.raises(NoUpdatesError):
        gateway.update(wanted, "update-gs-one-g2")


def test_update_with_an_identical_spec_of_a_string_only_template_raises_no_updates(backend: Backend) -> None:
    """The part of the no-op contract moto can show: same body, same (string) parameters."""
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    wanted = spec(backend, "gs-one", url=template_url(TEMPLATE_BUCKET, "strings"))
    gateway.create(wanted, "create-gs-one-g1")
    backend.settle()

    with pytest.raises(NoUpdatesError):
        gateway.update(wanted, "update-gs-one-g2")


# --- delete and describe --------------------------------------------------------------------------


def test_delete_removes_the_stack(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    stack_id = gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    gateway.create(spec(backend, "gs-two"), "create-gs-two-g1")
    backend.settle()

    gateway.delete("gs-one", "delete-gs-one-g1")
    backend.settle()

    assert [s.name for s in gateway.list_stacks()] == ["gs-two"]
    assert gateway.describe("gs-one") is None
    assert gateway.describe(stack_id) is None, "a deleted stack's id describes as gone, not DELETE_COMPLETE"


def test_delete_by_stack_id_removes_the_stack(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    stack_id = gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()

    gateway.delete(stack_id, "delete-gs-one-g1")
    backend.settle()

    assert gateway.list_stacks() == []


def test_the_name_is_free_again_after_delete(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    first = gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()
    gateway.delete("gs-one", "delete-gs-one-g1")
    backend.settle()

    second = gateway.create(spec(backend, "gs-one"), "create-gs-one-g2")
    backend.settle()

    assert second != first
    observed = gateway.describe("gs-one")
    assert observed is not None
    assert observed.stack_id == second


def test_deleting_a_missing_stack_succeeds(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)

    gateway.delete("gs-never-existed", "delete-gs-never-existed-g1")
    gateway.delete("gs-never-existed", "delete-gs-never-existed-g1")
    backend.settle()

    assert gateway.list_stacks() == []


def test_describe_of_a_missing_stack_returns_none(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)

    assert gateway.describe("gs-missing") is None
    assert gateway.list_stacks() == []


def test_observing_does_not_change_anything(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()
    before = gateway.list_stacks()

    for _ in range(3):
        gateway.describe("gs-one")
        gateway.list_stacks()

    assert gateway.list_stacks() == before


# --- paging ---------------------------------------------------------------------------------------


def test_list_stacks_follows_every_page(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    names = [f"gs-{i:03d}" for i in range(57)]
    for name in names:
        gateway.create(spec(backend, name), f"create-{name}-g1")
    backend.settle()
    pages_before = backend.list_pages()

    listed = gateway.list_stacks()

    assert sorted(s.name for s in listed) == names
    assert len({s.stack_id for s in listed}) == len(names)
    assert backend.list_pages() - pages_before == 2, "57 stacks are two pages of 50"


# --- tenants, accounts, regions -------------------------------------------------------------------


def test_gateway_is_bound_to_the_tenants_account_and_region(backend: Backend) -> None:
    tenant = backend.tenant("alpha", ACCOUNT_A)

    gateway = backend.connector.gateway(tenant, OTHER_REGION)

    assert (gateway.account_id, gateway.region) == (ACCOUNT_A, OTHER_REGION)


def test_a_tenant_never_sees_or_touches_another_tenants_account(backend: Backend) -> None:
    alpha = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    bravo = backend.connector.gateway(backend.tenant("bravo", ACCOUNT_B), REGION)
    alpha_id = alpha.create(spec(backend, "gs-shared", Seed="alpha"), "create-gs-shared-g1")
    backend.settle()

    assert bravo.list_stacks() == []
    assert bravo.describe("gs-shared") is None
    assert bravo.describe(alpha_id) is None

    # The same name is free in the other account, and bravo's changes stay in bravo's account.
    bravo_id = bravo.create(spec(backend, "gs-shared", Seed="bravo"), "create-gs-shared-g1")
    backend.settle()
    assert (account_of(alpha_id), account_of(bravo_id)) == (ACCOUNT_A, ACCOUNT_B)
    bravo.update(spec(backend, "gs-shared", Seed="bravo2"), "update-gs-shared-g2")
    bravo.delete(alpha_id, "delete-by-foreign-id")
    backend.settle()

    (alpha_stack,) = alpha.list_stacks()
    assert (alpha_stack.stack_id, alpha_stack.parameters["Seed"]) == (alpha_id, "alpha")
    (bravo_stack,) = bravo.list_stacks()
    assert (bravo_stack.stack_id, bravo_stack.parameters["Seed"]) == (bravo_id, "bravo2")

    bravo.delete("gs-shared", "delete-gs-shared-g2")
    backend.settle()
    assert bravo.list_stacks() == []
    assert [s.stack_id for s in alpha.list_stacks()] == [alpha_id]


def test_a_role_in_another_account_than_the_tenants_is_refused(backend: Backend) -> None:
    """A tenant record that names account A but carries B's role (and external id) must not act in B."""
    backend.tenant("alpha", ACCOUNT_A)
    bravo_tenant = backend.tenant("bravo", ACCOUNT_B)
    misconfigured = replace(bravo_tenant, tenant_id="alpha", account_id=ACCOUNT_A)
    bravo = backend.connector.gateway(bravo_tenant, REGION)
    bravo.create(spec(backend, "gs-bravo"), "create-gs-bravo-g1")
    backend.settle()

    with pytest.raises(AccessDeniedError):
        backend.connector.gateway(misconfigured, REGION).list_stacks()
    with pytest.raises(AccessDeniedError):
        backend.connector.gateway(misconfigured, REGION).delete("gs-bravo", "delete-gs-bravo")
    assert [s.name for s in bravo.list_stacks()] == ["gs-bravo"]


def test_regions_are_separate(backend: Backend) -> None:
    tenant = backend.tenant("alpha", ACCOUNT_A)
    east = backend.connector.gateway(tenant, REGION)
    west = backend.connector.gateway(tenant, OTHER_REGION)
    east.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()

    assert west.list_stacks() == []
    assert west.describe("gs-one") is None
    (listed,) = east.list_stacks()
    assert listed.region == REGION


# --- credentials ----------------------------------------------------------------------------------


def test_credentials_are_assumed_once_per_tenant_and_again_after_invalidate(backend: Backend) -> None:
    alpha = backend.tenant("alpha", ACCOUNT_A)
    bravo = backend.tenant("bravo", ACCOUNT_B)

    for _ in range(3):
        backend.connector.gateway(alpha, REGION).list_stacks()
        backend.connector.gateway(alpha, OTHER_REGION).list_stacks()
        backend.connector.gateway(bravo, REGION).list_stacks()
    assert backend.assume_calls() == 2

    backend.connector.invalidate(alpha)
    backend.connector.gateway(alpha, REGION).list_stacks()
    backend.connector.gateway(alpha, OTHER_REGION).list_stacks()
    assert backend.assume_calls() == 3


# --- what moto does (so a moto upgrade that changes it is noticed) --------------------------------


@pytest.mark.usefixtures("moto_aws")
class TestMotoFacts:
    def _gateway(self) -> tuple[MotoBackend, Any]:
        backend = MotoBackend()
        return backend, backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)

    def test_moto_ignores_client_request_token(self) -> None:
        backend, gateway = self._gateway()
        gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")

        with pytest.raises(AlreadyExistsError):
            gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")

    def test_moto_accepts_a_no_op_update_when_a_parameter_is_a_number(self) -> None:
        backend, gateway = self._gateway()
        wanted = spec(backend, "gs-one")  # the game-server template: PlayerCount is a Number
        gateway.create(wanted, "create-gs-one-g1")

        gateway.update(wanted, "update-gs-one-g2")  # CloudFormation would refuse this

        observed = gateway.describe("gs-one")
        assert observed is not None
        assert observed.status == "UPDATE_COMPLETE"

    def test_moto_refuses_a_tag_only_update(self) -> None:
        """CloudFormation applies a change of stack tags alone; moto compares only body and parameters."""
        backend, gateway = self._gateway()
        wanted = spec(backend, "gs-one", url=template_url(TEMPLATE_BUCKET, "strings"))
        gateway.create(wanted, "create-gs-one-g1")
        retagged = replace(wanted, tags={**wanted.tags, "stackherd:generation": "2"})

        with pytest.raises(NoUpdatesError):
            gateway.update(retagged, "update-gs-one-g2")


# --- what a failed operation left, and the shapes of real CloudFormation --------------------------


def test_failure_cause_of_a_healthy_or_missing_stack_is_none(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    stack_id = gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()
    gateway.update(spec(backend, "gs-one", Seed="next"), "update-gs-one-g2")
    backend.settle()

    assert gateway.failure_cause("gs-one") is None
    assert gateway.failure_cause(stack_id) is None
    assert gateway.failure_cause("gs-missing") is None


# Fake-only: moto's DescribeStackEvents reports stack-level events only and none of its operations fail
# in CloudFormation's way; the part both share (no cause for a healthy or missing stack) is pinned above.
@pytest.mark.parametrize("backend", ["fake"], indirect=True)
def test_failure_cause_is_the_first_failed_resource_event_of_the_latest_operation(backend: Backend) -> None:
    from reconciler.fakes.cloud import FailureCause

    cloud = backend.cloud  # type: ignore[attr-defined]
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()
    cause = FailureCause("Server", "AWS::EC2::Instance", "The requested instance type is not supported")
    cloud.set_outcome(ACCOUNT_A, "gs-one", "update", "UPDATE_ROLLBACK_COMPLETE", cause=cause)
    gateway.update(spec(backend, "gs-one", Seed="next"), "update-gs-one-g2")
    assert gateway.failure_cause("gs-one") is None, "an operation in progress has no outcome yet"
    backend.settle()

    event = gateway.failure_cause("gs-one")
    assert event is not None
    assert (event.logical_id, event.resource_type, event.status, event.reason) == (
        "Server",
        "AWS::EC2::Instance",
        "UPDATE_FAILED",
        "The requested instance type is not supported",
    )

    gateway.update(spec(backend, "gs-one", Seed="again"), "update-gs-one-g3")
    backend.settle()
    assert gateway.failure_cause("gs-one") is None, "only the latest operation counts"


def test_listed_stacks_say_when_they_last_changed_and_are_root_unprotected_stacks(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()

    (listed,) = gateway.list_stacks()

    # AWS reports LastUpdatedTime only once a stack was updated (moto never in listings): CreationTime stands in.
    assert listed.changed_at is not None and listed.changed_at.tzinfo is not None
    assert (listed.parent_id, listed.nested, listed.termination_protection) == ("", False, False)


def test_a_template_url_in_the_regional_s3_form_is_resolved(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    regional = template_url(TEMPLATE_BUCKET, "v1", REGION)
    assert regional == f"https://{TEMPLATE_BUCKET}.s3.{REGION}.amazonaws.com/gameserver/v1.yaml"

    gateway.create(spec(backend, "gs-one", url=regional), "create-gs-one-g1")
    backend.settle()

    observed = gateway.describe("gs-one")
    assert observed is not None and observed.status == "CREATE_COMPLETE"


def test_create_and_update_send_the_capabilities_a_template_requires(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    needs = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")
    if backend.name == "fake":
        backend.cloud.register_template(  # type: ignore[attr-defined]
            backend.url, {"Difficulty": None, "PlayerCount": None, "Seed": None}, capabilities=needs
        )
        with pytest.raises(PermanentError) as refused:
            gateway.create(spec(backend, "gs-bare"), "create-gs-bare-g1")
        assert refused.value.code == "InsufficientCapabilities"

    gateway.create(replace(spec(backend, "gs-one"), capabilities=needs), "create-gs-one-g1")
    backend.settle()
    gateway.update(replace(spec(backend, "gs-one", Seed="next"), capabilities=needs), "update-gs-one-g2")
    backend.settle()

    observed = gateway.describe("gs-one")
    assert observed is not None and observed.parameters["Seed"] == "next"


# Fake-only: moto accepts EnableTerminationProtection but does not enforce it, nor does it make nested stacks
# or leave a stack in REVIEW_IN_PROGRESS from a change set in a way its listing reports with a ParentId.
@pytest.mark.parametrize("backend", ["fake"], indirect=True)
def test_termination_protection_refuses_a_delete_and_nested_stacks_list_their_parent(backend: Backend) -> None:
    cloud = backend.cloud  # type: ignore[attr-defined]
    tenant = backend.tenant("alpha", ACCOUNT_A)
    gateway = backend.connector.gateway(tenant, REGION)
    root = cloud.put_stack(ACCOUNT_A, REGION, "gs-root", termination_protection=True)
    cloud.put_stack(ACCOUNT_A, REGION, "gs-root-Storage-ABC123", parent_id=root)

    with pytest.raises(PermanentError, match="TerminationProtection"):
        gateway.delete("gs-root", "delete-gs-root-g1")
    listed = {s.name: s for s in gateway.list_stacks()}
    assert listed["gs-root"].termination_protection is True
    assert listed["gs-root-Storage-ABC123"].parent_id == root and listed["gs-root-Storage-ABC123"].nested


DEFAULTED_TEMPLATE = STRING_PARAMETERS_TEMPLATE.replace(
    "  Seed:\n    Type: String\n", "  Seed:\n    Type: String\n  MapSize:\n    Type: String\n    Default: medium\n"
)


def test_template_summary_reads_the_declared_parameters_with_their_defaults(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    url = template_url(TEMPLATE_BUCKET, "defaulted")
    declared = {"Difficulty": None, "PlayerCount": None, "Seed": None, "MapSize": "medium"}
    if backend.name == "fake":
        backend.cloud.register_template(url, declared)  # type: ignore[attr-defined]
    else:
        import boto3

        boto3.client("s3", region_name=REGION).put_object(
            Bucket=TEMPLATE_BUCKET, Key="gameserver/defaulted.yaml", Body=DEFAULTED_TEMPLATE.encode()
        )

    summary = gateway.template_summary(url)

    assert dict(summary.parameters) == declared
    assert summary.capabilities == ()


# --- observing with ListStacks (what the narrow tenant role allows) ------------------------------


def test_list_summaries_report_names_statuses_and_change_times_and_nothing_of_the_stack(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    stack_id = gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()

    (summary,) = gateway.list_summaries()

    assert (summary.name, summary.stack_id, summary.status, summary.region) == (
        "gs-one",
        stack_id,
        "CREATE_COMPLETE",
        REGION,
    )
    assert not summary.nested
    assert not hasattr(summary, "parameters") and not hasattr(summary, "tags")
    described = gateway.describe("gs-one")
    assert described is not None
    # A stack never updated has no LastUpdatedTime (moto never reports one): its creation time stands in, and
    # the listing and a describe by name agree on it, which is what lets a later listing say "unchanged".
    assert summary.changed_at is not None and summary.changed_at == described.changed_at


def test_list_summaries_leave_out_deleted_stacks(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    gateway.create(spec(backend, "gs-two"), "create-gs-two-g1")
    backend.settle()

    gateway.delete("gs-one", "delete-gs-one-g1")
    backend.settle()

    # ListStacks keeps deleted stacks for 90 days (moto too): they are absent, as DescribeStacks shows them.
    assert [s.name for s in gateway.list_summaries()] == ["gs-two"]


def test_an_update_shows_in_the_listing_as_a_new_status_or_change_time(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    gateway.create(spec(backend, "gs-one"), "create-gs-one-g1")
    backend.settle()
    (before,) = gateway.list_summaries()

    gateway.update(spec(backend, "gs-one", Seed="changed"), "update-gs-one-g2")
    backend.settle()
    (after,) = gateway.list_summaries()

    assert after.stack_id == before.stack_id
    assert (after.status, after.changed_at) != (before.status, before.changed_at)
    described = gateway.describe("gs-one")
    assert described is not None and (described.status, described.changed_at) == (after.status, after.changed_at)


def test_list_summaries_are_bound_to_the_tenants_account_and_region(backend: Backend) -> None:
    alpha = backend.tenant("alpha", ACCOUNT_A)
    bravo = backend.tenant("bravo", ACCOUNT_B)
    backend.connector.gateway(alpha, REGION).create(spec(backend, "gs-alpha"), "create-gs-alpha-g1")
    backend.settle()

    assert backend.connector.gateway(bravo, REGION).list_summaries() == []
    assert backend.connector.gateway(alpha, OTHER_REGION).list_summaries() == []
    assert [s.name for s in backend.connector.gateway(alpha, REGION).list_summaries()] == ["gs-alpha"]


def test_list_summaries_follow_every_page(backend: Backend) -> None:
    gateway = backend.connector.gateway(backend.tenant("alpha", ACCOUNT_A), REGION)
    names = [f"gs-{i:03d}" for i in range(105)]
    for name in names:
        gateway.create(spec(backend, name), f"create-{name}-g1")
    backend.settle()

    assert sorted(s.name for s in gateway.list_summaries()) == names


# Fake-only: moto does not evaluate IAM policies. The fake, in narrow-role mode, answers as IAM does for the
# tenant role that grants ListStacks on the account and every other action only on stack/<installation>-*.
@pytest.mark.parametrize("backend", ["fake"], indirect=True)
def test_a_narrow_role_lists_every_stack_but_reads_only_the_installations(backend: Backend) -> None:
    tenant = backend.tenant("alpha", ACCOUNT_A)
    gateway = backend.connector.gateway(tenant, REGION)
    ours = gateway.create(spec(backend, "contract-alpha-one"), "create-one-g1")
    gateway.create(spec(backend, "billing-db"), "create-billing-g1")
    backend.settle()
    cloud = backend.cloud  # type: ignore[attr-defined]
    cloud.narrow_role = "contract"

    assert sorted(s.name for s in gateway.list_summaries()) == ["billing-db", "contract-alpha-one"]
    described = gateway.describe("contract-alpha-one")
    assert described is not None and described.stack_id == ours
    assert gateway.describe(ours) is not None, "a stack id names the stack as well"
    with pytest.raises(AccessDeniedError, match="billing-db"):
        gateway.describe("billing-db")
    with pytest.raises(AccessDeniedError):
        gateway.list_stacks()
    with pytest.raises(AccessDeniedError):
        gateway.delete("billing-db", "delete-billing-g1")
    assert cloud.count("ListStacks") == 1
    assert cloud.count("DescribeStack") == 3
