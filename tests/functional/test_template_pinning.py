"""The engine and the write path on the in-memory catalog: stacks are made from the pinned object version of
their template, an overwritten key changes nothing deployed, and a body that is not the one published (or a
version never pinned) fails the tenant's servers with a message that says what to do, never the pass."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.config import ConfigError
from models.records import Phase
from reconciler.desired import trail
from reconciler.errors import TemplateIntegrityError
from reconciler.fakes.world import FakeWorld

ACCOUNT = "111111111111"
REGION = "us-east-1"
MUTATING = ("CreateStack", "UpdateStack", "DeleteStack")


def converged(world: FakeWorld, servers: int = 2) -> None:
    world.add_tenant("alpha", ACCOUNT)
    for index in range(servers):
        world.put("alpha", f"s{index}", seed=f"seed{index}")
    world.converge("alpha")


def url_of(world: FakeWorld, gameserver_id: str) -> str:
    return world.cloud.template_url_of(ACCOUNT, REGION, f"stackherd-alpha-{gameserver_id}")


def test_stacks_are_created_with_the_template_url_of_the_pinned_object_version(world: FakeWorld) -> None:
    converged(world, servers=1)

    assert (
        url_of(world, "s0") == "https://stackherd-templates.s3.us-east-1.amazonaws.com/gameserver/v1.yaml?versionId=1"
    )


def test_overwriting_a_published_key_leaves_created_and_updated_stacks_on_the_pinned_body(world: FakeWorld) -> None:
    converged(world, servers=1)
    pinned = url_of(world, "s0")

    new_object = world.templates.overwrite("v1", b"Resources: {Miner: {Type: AWS::EC2::Instance}}\n")
    world.put("alpha", "s0", seed="changed")  # an update
    world.put("alpha", "s1", seed="fresh")  # a create
    world.converge("alpha")

    assert new_object == "2"
    assert url_of(world, "s0") == url_of(world, "s1") == pinned
    assert world.templates.overwritten == {"v1": "2"}
    for gameserver_id in ("s0", "s1"):
        server = world.server("alpha", gameserver_id)
        assert server is not None and server.status.phase is Phase.READY


def test_a_template_body_changed_after_publishing_fails_the_servers_and_touches_no_stack(world: FakeWorld) -> None:
    converged(world, servers=2)
    world.cloud.reset_calls()
    world.templates.corrupt("v1", b"Resources: {Miner: {Type: AWS::EC2::Instance}}\n")
    world.put("alpha", "s0", seed="changed")

    result = world.engine.reconcile_tenant("alpha")

    assert result.error_code is None
    assert sum(world.cloud.count(op) for op in MUTATING) == 0
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.FAILED
    error = server.status.last_error or ""
    assert "'v1'" in error and "changed after publishing" in error and "under a new version" in error


def test_a_version_uploaded_without_a_pin_is_not_deployed_until_published_again_with_its_body(
    world: FakeWorld,
) -> None:
    body = b"# v2, copied into the bucket by hand\n"
    converged(world, servers=1)
    world.templates.upload_unpinned("v2", body)
    tenant = world.store.get_tenant("alpha")
    assert tenant is not None
    world.store.put_tenant(replace(tenant, template_version="v2"))

    world.engine.reconcile_tenant("alpha")
    server = world.server("alpha", "s0")
    assert server is not None and server.status.phase is Phase.FAILED
    assert "no recorded S3 object version" in (server.status.last_error or "")
    assert "stackherd templates publish FILE --version v2" in (server.status.last_error or "")
    assert url_of(world, "s0").endswith("v1.yaml?versionId=1")

    world.templates.publish(body, "v2")
    world.converge("alpha")
    assert url_of(world, "s0").endswith("v2.yaml?versionId=1")


def test_pinning_a_tenant_to_a_version_that_was_never_pinned_is_refused(world: FakeWorld) -> None:
    converged(world, servers=0)
    world.templates.upload_unpinned("v2")

    with pytest.raises(ConfigError, match="no recorded S3 object version"):
        world.writes.update_tenant("alpha", trail=trail("admin", "test"), template_version="v2")


def test_a_version_described_again_after_its_declaration_or_body_changed_is_read_afresh(world: FakeWorld) -> None:
    catalog = world.templates
    first = catalog.describe("v1")
    assert catalog.describe("v1") is first and first.parameters is None

    catalog.declared["v1"] = replace(first, parameters={"Seed": None})
    assert catalog.describe("v1").parameters == {"Seed": None}

    catalog.corrupt("v1", b"Resources: {}\n")
    with pytest.raises(TemplateIntegrityError):
        catalog.describe("v1")
