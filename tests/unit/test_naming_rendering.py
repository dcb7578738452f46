"""Stack names, ownership, idempotency tokens and the rendering of a record into a stack spec."""

from __future__ import annotations

import re

import pytest

from models.config import GameServerConfig
from models.records import DesiredServer, Tenant
from reconciler import naming
from reconciler.rendering import render, template_key, template_url
from reconciler.stacks import STACK_RESOURCE_TYPE, StackEvent

#: CloudFormation's ClientRequestToken: [a-zA-Z0-9][-a-zA-Z0-9]*, 1 to 128 characters.
TOKEN = re.compile(r"[a-zA-Z0-9][-a-zA-Z0-9]*")
TENANT = Tenant(
    tenant_id="acme",
    account_id="111111111111",
    regions=("us-east-1", "eu-west-1"),
    role_arn="arn:aws:iam::111111111111:role/StackherdExecution",
    external_id="ext-acme",
    template_version="v7",
)
LONGEST_NAME = naming.stack_name("stackherd", "t" * 40, "g" * 40)


def server(**changes: object) -> DesiredServer:
    fields: dict[str, object] = {
        "tenant_id": "acme",
        "gameserver_id": "gs-1",
        "username": "alice",
        "config": GameServerConfig(difficulty="hard", player_count=16, seed="Xyz9"),
        "generation": 4,
        "incarnation": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    }
    fields.update(changes)
    return DesiredServer(**fields)  # type: ignore[arg-type]


def test_stack_name_joins_installation_tenant_and_server() -> None:
    assert naming.stack_name("stackherd", "acme", "gs-1") == "stackherd-acme-gs-1"


def test_longest_stack_name_fits_cloudformation() -> None:
    # Stack names: 128 characters, a letter first, then letters, digits and hyphens.
    assert len(LONGEST_NAME) <= 128
    assert re.fullmatch(r"[A-Za-z][-A-Za-z0-9]*", LONGEST_NAME)


OWNED = {naming.TAG_INSTALLATION: "stackherd", naming.TAG_TENANT: "acme", naming.TAG_GAMESERVER: "gs-1"}


@pytest.mark.parametrize(
    ("tags", "owned"),
    [
        pytest.param(OWNED, True, id="our-installation-and-tenant"),
        pytest.param({naming.TAG_INSTALLATION: "stackherd", naming.TAG_TENANT: "acme"}, True, id="minimal-tags"),
        pytest.param({}, False, id="untagged"),
        pytest.param({naming.TAG_TENANT: "acme"}, False, id="tenant-tag-only"),
        pytest.param({naming.TAG_INSTALLATION: "stackherd"}, False, id="installation-tag-only"),
        pytest.param({**OWNED, naming.TAG_INSTALLATION: "stackherd-staging"}, False, id="other-installation"),
        pytest.param({**OWNED, naming.TAG_TENANT: "globex"}, False, id="other-tenant"),
        pytest.param({**OWNED, naming.TAG_TENANT: "ACME"}, False, id="tag-values-are-exact"),
    ],
)
def test_is_owned(tags: dict[str, str], owned: bool) -> None:
    assert naming.is_owned(tags, "stackherd", "acme") is owned


def test_request_token_is_the_same_for_the_same_intent() -> None:
    first = naming.request_token("create", "stackherd-acme-gs-1", 3)

    assert first == naming.request_token("create", "stackherd-acme-gs-1", 3)
    assert first == naming.request_token("create", "stackherd-acme-gs-1", "3")


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(("create", "stackherd-acme-gs-1", 4, ""), id="generation"),
        pytest.param(("update", "stackherd-acme-gs-1", 3, ""), id="operation"),
        pytest.param(("create", "stackherd-acme-gs-2", 3, ""), id="name"),
        pytest.param(("create", "stackherd-acme-gs-1", 3, "DELETE_FAILED|1"), id="extra"),
    ],
)
def test_request_token_differs_for_a_different_intent(other: tuple[str, str, int, str]) -> None:
    assert naming.request_token(*other) != naming.request_token("create", "stackherd-acme-gs-1", 3)


def test_request_token_differs_by_extra_value() -> None:
    assert naming.request_token("delete", "n", 1, extra="a|DELETE_FAILED|1") != naming.request_token(
        "delete", "n", 1, extra="a|DELETE_FAILED|2"
    )


@pytest.mark.parametrize(
    ("operation", "name", "generation", "extra"),
    [
        pytest.param("create", "stackherd-acme-gs-1", 1, "", id="short"),
        pytest.param("delete", "stackherd-acme-gs-1", "orphan", "arn:aws:x|DELETE_FAILED|2", id="orphan-with-extra"),
        pytest.param("update", LONGEST_NAME, 10**9, "CREATE_COMPLETE|parameters.Seed: 'a' -> 'b'", id="longest-ids"),
        pytest.param("rollback", "n" * 300, 12, "x", id="truncated"),
    ],
)
def test_request_token_fits_cloudformation(operation: str, name: str, generation: int | str, extra: str) -> None:
    token = naming.request_token(operation, name, generation, extra=extra)

    assert 1 <= len(token) <= 128
    assert TOKEN.fullmatch(token), token


def test_truncated_tokens_stay_distinct() -> None:
    """Two long names sharing the first 128 characters must not share a token."""
    a = naming.request_token("create", "n" * 200 + "a", 1)
    b = naming.request_token("create", "n" * 200 + "b", 1)

    assert len(a) == len(b) == 128
    assert a != b


def test_session_name_names_the_tenant_within_stss_limit() -> None:
    assert naming.session_name("acme") == "stackherd-acme"
    assert len(naming.session_name("t" * 80)) == 64


def test_template_url_is_the_standard_s3_form() -> None:
    assert template_key("v2") == "gameserver/v2.yaml"
    assert (
        template_url("stackherd-templates", "v2") == "https://stackherd-templates.s3.amazonaws.com/gameserver/v2.yaml"
    )


def test_render_maps_config_to_parameters_and_sets_ownership_tags() -> None:
    url = template_url("bucket", "v7")

    spec = render(TENANT, server(), installation="stackherd", url=url)

    assert spec.name == "stackherd-acme-gs-1"
    assert spec.region == "us-east-1"
    assert spec.template_url == "https://bucket.s3.amazonaws.com/gameserver/v7.yaml"
    assert spec.parameters == {"Difficulty": "hard", "PlayerCount": "16", "Seed": "Xyz9"}
    assert all(isinstance(v, str) for v in spec.parameters.values())
    assert spec.tags == {
        "stackherd:installation": "stackherd",
        "stackherd:tenant": "acme",
        "stackherd:gameserver": "gs-1",
        "stackherd:generation": "4",
        "stackherd:template-version": "v7",
        "stackherd:owner": "alice-2bd806c97f",  # a tag-safe encoding; the record keeps the name
        "stackherd:incarnation": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    }
    assert naming.is_owned(spec.tags, "stackherd", "acme")


def test_render_uses_the_servers_region_when_pinned() -> None:
    assert render(TENANT, server(region="eu-west-1"), installation="stackherd", url="u").region == "eu-west-1"


def test_render_uses_the_installation_name() -> None:
    spec = render(TENANT, server(), installation="staging", url="u")

    assert spec.name == "staging-acme-gs-1"
    assert spec.tags[naming.TAG_INSTALLATION] == "staging"


def test_render_is_deterministic() -> None:
    assert render(TENANT, server(), installation="stackherd", url="u") == render(
        TENANT, server(), installation="stackherd", url="u"
    )


# --- stack events: what made an operation fail ------------------------------------------------------


def _event(logical: str, status: str, reason: str = "", kind: str = "AWS::EC2::Instance") -> StackEvent:
    return StackEvent(logical, STACK_RESOURCE_TYPE if logical == "s" else kind, status, reason)


@pytest.mark.parametrize(
    ("events", "cause"),
    [
        pytest.param(
            [
                ("s", "UPDATE_IN_PROGRESS", "User Initiated"),
                ("A", "UPDATE_FAILED", "first"),
                ("B", "UPDATE_FAILED", "Resource update cancelled"),
                ("s", "UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) failed to update: [A]"),
                ("s", "UPDATE_ROLLBACK_COMPLETE"),
            ],
            ("A", "first"),
            id="update-rolled-back-first-resource",
        ),
        pytest.param(
            [
                ("s", "CREATE_IN_PROGRESS", "User Initiated"),
                ("s", "ROLLBACK_IN_PROGRESS", "why"),
                ("s", "ROLLBACK_COMPLETE"),
            ],
            ("s", "why"),
            id="stack-level-only-falls-back-to-the-stack-reason",
        ),
        pytest.param(
            [
                ("s", "DELETE_IN_PROGRESS", "User Initiated"),
                ("R", "DELETE_FAILED", "not empty"),
                ("s", "DELETE_FAILED"),
            ],
            ("R", "not empty"),
            id="delete-failed",
        ),
        pytest.param(
            [("s", "UPDATE_ROLLBACK_IN_PROGRESS", "User Initiated"), ("s", "UPDATE_ROLLBACK_COMPLETE")],
            None,
            id="continued-rollback-that-completes-is-no-failure",
        ),
        pytest.param(
            [("s", "UPDATE_IN_PROGRESS", "User Initiated"), ("A", "UPDATE_COMPLETE"), ("s", "UPDATE_COMPLETE")],
            None,
            id="success",
        ),
        pytest.param(
            [("s", "UPDATE_IN_PROGRESS", "User Initiated"), ("A", "UPDATE_FAILED", "x")],
            None,
            id="still-running-has-no-outcome",
        ),
    ],
)
def test_first_failure_of_an_operation(events: list[tuple[str, ...]], cause: tuple[str, str] | None) -> None:
    from reconciler.stacks import first_failure, operation_events

    newest_first = [_event(*e) for e in reversed(events)]
    found = first_failure(operation_events(newest_first, "s"), "s")
    assert (found and (found.logical_id, found.reason)) == cause
