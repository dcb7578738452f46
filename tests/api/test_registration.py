"""Registration that matches IAM: only the deployment's TenantRoleName in the tenant's account, external ids of at
least 128 bits that are unique per tenant, and shown only on registration or an explicit admin read."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from models.config import MIN_EXTERNAL_ID, TenantSpec, WeakSecretError
from reconciler.desired import DesiredWrites, trail
from reconciler.fakes.memory import MemoryStore
from reconciler.writes import ExternalIdTakenError
from tests.api.conftest import ON_BOTH_STORES, ROOT, ApiClient

ACCOUNT = "333333333333"
STRONG = "Zq3v-8Hk_2mNp4Rs6Tu0Wx9Yb1Cd5Ef7Gh"


def _tenant(tenant_id: str = "initech", account: str = ACCOUNT, **extra: object) -> dict[str, object]:
    return {"tenant_id": tenant_id, "account_id": account, **extra}


@pytest.mark.parametrize(
    "role",
    [
        f"arn:aws:iam::{ACCOUNT}:role/SomethingElse",
        f"arn:aws:iam::{ACCOUNT}:role/team/StackherdExecution",
        f"arn:aws:iam::{ACCOUNT}:role/StackherdExecution2",
        "AdminRole",
    ],
)
def test_role_iam_will_refuse_is_refused_at_registration(api: ApiClient, role: str) -> None:
    response = api.post("/tenants", _tenant(role=role))
    assert response.status == 422, response.text
    body = response.json()
    assert body["details"][0]["field"] == "role"
    assert f"arn:<partition>:iam::{ACCOUNT}:role/StackherdExecution" in body["message"]
    assert api.get("/tenants/initech", ROOT).status == 404


@pytest.mark.parametrize(
    "role", [None, "StackherdExecution", f"arn:aws:iam::{ACCOUNT}:role/StackherdExecution"], ids=str
)
def test_the_deployments_role_is_accepted(api: ApiClient, role: str | None) -> None:
    response = api.post("/tenants", _tenant(**({"role": role} if role else {})))
    assert response.status == 201, response.text
    assert response.json()["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/StackherdExecution"


def test_the_role_name_setting_is_the_one_accepted() -> None:
    writes = DesiredWrites(MemoryStore(), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC), tenant_role_name="GameRunner")
    who = trail("root", "cli")
    with pytest.raises(ValueError, match="role/GameRunner"):
        writes.register_tenant(TenantSpec(tenant_id="a", account_id=ACCOUNT, role="StackherdExecution"), trail=who)
    tenant, created = writes.register_tenant(TenantSpec(tenant_id="a", account_id=ACCOUNT), trail=who)
    assert created and tenant.role_arn == f"arn:aws:iam::{ACCOUNT}:role/GameRunner"
    gov = TenantSpec(
        tenant_id="g",
        account_id="444444444444",
        regions=("us-gov-west-1",),
        role="arn:aws-us-gov:iam::444444444444:role/GameRunner",
    )
    assert writes.register_tenant(gov, trail=who)[1]


def test_generated_external_id_has_at_least_128_bits(api: ApiClient) -> None:
    ids = set()
    for index in range(5):
        response = api.post("/tenants", _tenant(f"t{index}", f"55555555555{index}"))
        assert response.status == 201, response.text
        external = response.json()["external_id"]
        assert len(external) * 6 >= 128  # base64url: 6 bits a character
        assert set(external) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        ids.add(external)
    assert len(ids) == 5


@pytest.mark.parametrize(
    "weak", ["ab", "ext-initech", "a" * 40, "abcdefghijabcdefghijab"[:21], "tooshort but spaced x"]
)
def test_weak_external_id_is_refused_saying_how_long_and_which_characters(api: ApiClient, weak: str) -> None:
    response = api.post("/tenants", _tenant(external_id=weak))
    assert response.status == 400, response.text
    body = response.json()
    assert body["details"][0]["field"] == "external_id"
    assert f"{MIN_EXTERNAL_ID} to 1224 characters" in body["message"] and "letters, digits" in body["message"]
    assert weak not in body["message"]
    assert api.get("/tenants/initech", ROOT).status == 404


def test_a_strong_external_id_may_be_given(api: ApiClient) -> None:
    response = api.post("/tenants", _tenant(external_id=STRONG))
    assert response.status == 201, response.text
    assert response.json()["external_id"] == STRONG


@ON_BOTH_STORES
def test_external_id_of_another_tenant_is_refused(api: ApiClient) -> None:
    assert api.post("/tenants", _tenant("first", "666666666661", external_id=STRONG)).status == 201
    second = api.post("/tenants", _tenant("second", "666666666662", external_id=STRONG))
    assert second.status == 409, second.text
    assert STRONG not in second.text and "first" not in second.json()["message"]
    assert api.get("/tenants/second", ROOT).status == 404
    # The claim items are no tenants: listings skip them.
    listed = [t["tenant_id"] for t in api.get("/tenants", ROOT).json()["items"]]
    assert listed == ["acme", "first", "globex"]


def test_external_id_of_a_tenant_registered_before_the_claims_is_refused() -> None:
    from models.records import tenant_from_spec

    store = MemoryStore()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store.put_tenant(tenant_from_spec(TenantSpec(tenant_id="old", account_id="777777777771"), external_id=STRONG), now)
    store.external_ids.clear()  # an item from before external ids were claimed
    writes = DesiredWrites(store, clock=lambda: now)
    with pytest.raises(ExternalIdTakenError):
        writes.register_tenant(
            TenantSpec(tenant_id="new", account_id="777777777772", external_id=STRONG), trail=trail("root", "cli")
        )


@ON_BOTH_STORES
def test_external_ids_are_never_in_listings_or_reads(api: ApiClient) -> None:
    created = api.post("/tenants", _tenant(external_id=STRONG))
    assert created.status == 201 and created.json()["external_id"] == STRONG
    for response in (
        api.get("/tenants", ROOT),
        api.get("/tenants/initech", ROOT),
        api.get("/tenants/acme", ROOT),
        api.patch("/tenants/initech", {"paused": True}, ROOT),
    ):
        assert response.status == 200, response.text
        assert "external_id" not in response.text and STRONG not in response.text and "ext-acme" not in response.text
    explicit = api.get("/tenants/initech/external-id", ROOT)
    assert explicit.status == 200
    assert explicit.json() == {
        "tenant_id": "initech",
        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/StackherdExecution",
        "external_id": STRONG,
    }
    assert api.get("/tenants/nobody/external-id", ROOT).status == 404


def test_weak_secret_is_its_own_error() -> None:
    from models.config import check_external_id

    with pytest.raises(WeakSecretError):
        check_external_id("short")
    assert check_external_id(STRONG) == STRONG
    assert json.dumps(STRONG)
