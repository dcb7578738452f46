"""The CLI's writes go through the one write service, on the fake world: the same rules and errors as the API."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from handlers.local import cli
from reconciler.fakes.world import FakeWorld

ACCOUNT = "111111111111"


def run(*argv: str, door: str = "cli") -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out=out, door=door), out.getvalue()


@pytest.fixture
def alpha(installed: FakeWorld) -> FakeWorld:
    installed.add_tenant("alpha", ACCOUNT, tier="free")
    return installed


def test_servers_put_on_a_server_whose_deletion_was_requested_is_refused_like_the_api(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """`servers put` used to clear the deletion request (the next pass re-created the server); the API
    refused the same change with 409."""
    assert run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "seed=abc")[0] == cli.EXIT_OK
    assert run("servers", "delete", "alpha", "s0")[0] == cli.EXIT_OK
    deleting = alpha.server("alpha", "s0")

    code, _ = run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "seed=other")

    assert code == cli.EXIT_ERROR
    assert "stackherd: game server 's0' is being deleted; create it again once it is gone" in capsys.readouterr().err
    assert alpha.server("alpha", "s0") == deleting
    assert deleting is not None and deleting.deletion_requested


def test_servers_put_set_on_an_unreadable_config_is_refused_and_writes_no_defaults(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stored config that no longer validates (a migration wrote a seed with a space) used to be merged with
    the defaults: `--set seed=fixed` wrote player_count 4 over the stored 7 and shrank the running server."""
    run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "player_count=7", "--set", "difficulty=hard")
    key = ("alpha", "s0")
    stored = {"difficulty": "hard", "player_count": 7, "seed": "has space"}
    alpha.store.servers[key] = replace(
        alpha.store.servers[key], config=None, raw_config=stored, unreadable="stored config.seed: bad pattern"
    )

    code, _ = run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "seed=fixed")

    assert code == cli.EXIT_ERROR
    assert "replace the whole config" in capsys.readouterr().err
    assert alpha.store.servers[key].raw_config == stored
    shown = json.loads(run("servers", "show", "alpha", "s0", "--json")[1])
    assert (shown["config"], shown["unreadable"]) == (stored, "stored config.seed: bad pattern")


def test_servers_put_with_every_key_replaces_an_unreadable_config(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal above tells the operator to give every key; the CLI (always a merge) refused that too, so an
    unreadable config could only be fixed by deleting the server."""
    run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "player_count=7")
    key = ("alpha", "s0")
    alpha.store.servers[key] = replace(
        alpha.store.servers[key],
        config=None,
        raw_config={"difficulty": "hard", "player_count": 7, "seed": "has space"},
        unreadable="stored config.seed: bad pattern",
    )

    code, _ = run(
        "servers", "put", "alpha", "s0", "--owner", "ana", "--set", "difficulty=hard", "--set", "player_count=7",
        "--set", "seed=fixed",
    )  # fmt: skip

    assert code == cli.EXIT_OK, capsys.readouterr().err
    shown = json.loads(run("servers", "show", "alpha", "s0", "--json")[1])
    assert shown["config"] == {"difficulty": "hard", "player_count": 7, "seed": "fixed"}
    assert shown["unreadable"] is None
    assert shown["generation"] == 2


def test_servers_put_in_a_tenant_that_cannot_be_read_is_refused_saying_why(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tenant item without regions made creating a server crash (IndexError: the primary region)."""
    alpha.store.tenants["alpha"] = replace(alpha.store.tenants["alpha"], regions=())

    code, _ = run("servers", "put", "alpha", "s0", "--owner", "ana")

    assert code == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "tenant 'alpha' cannot be read (stored tenant has no regions" in err
    assert "unexpected" not in err
    assert alpha.server("alpha", "s0") is None


def test_servers_put_set_parses_values_as_the_schemas_types(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "player_count=abc")

    assert code == cli.EXIT_ERROR
    assert "player_count must be an integer" in capsys.readouterr().err
    assert alpha.server("alpha", "s0") is None
    assert run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "player_count=8")[0] == cli.EXIT_OK
    server = alpha.server("alpha", "s0")
    assert server is not None and server.config is not None and server.config.player_count == 8


def test_the_quota_and_the_account_rule_hold_for_the_cli_too(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(3):
        assert run("servers", "put", "alpha", f"s{index}", "--owner", "ana")[0] == cli.EXIT_OK
    assert run("servers", "put", "alpha", "s3", "--owner", "ana")[0] == cli.EXIT_ERROR
    assert "free tier's maximum of 3" in capsys.readouterr().err

    assert run("tenants", "add", "bravo", "--account", ACCOUNT)[0] == cli.EXIT_ERROR
    assert "already tenant 'alpha'" in capsys.readouterr().err


def test_every_cli_write_records_the_operator_the_door_and_a_correlation_id(alpha: FakeWorld) -> None:
    run("servers", "put", "alpha", "s0", "--owner", "ana")
    run("servers", "put", "alpha", "s1", "--owner", "ana", door="demo")

    s0, s1 = alpha.server("alpha", "s0"), alpha.server("alpha", "s1")
    assert s0 is not None and s0.trail is not None and s1 is not None and s1.trail is not None
    assert (s0.trail.door, s1.trail.door) == ("cli", "demo")
    assert s0.trail.actor and len(s0.trail.correlation_id) == 32
    assert s0.trail.correlation_id != s1.trail.correlation_id
    entry = alpha.store.history("alpha", "s0", s0.incarnation).entries[0]
    assert (entry.door, entry.correlation_id) == ("cli", s0.trail.correlation_id)


def test_pause_resume_and_retry_go_through_the_write_service(alpha: FakeWorld) -> None:
    assert run("tenants", "pause", "alpha")[0] == cli.EXIT_OK
    tenant = alpha.store.get_tenant("alpha")
    assert tenant is not None and tenant.paused
    assert run("tenants", "resume", "alpha")[0] == cli.EXIT_OK
    run("servers", "put", "alpha", "s0", "--owner", "ana")
    server = alpha.server("alpha", "s0")
    assert server is not None
    alpha.store.write_status(server, replace(server.status, attempts=3))

    assert run("servers", "retry", "alpha", "s0")[0] == cli.EXIT_OK

    retried = alpha.server("alpha", "s0")
    assert retried is not None and retried.status.attempts == 0


def test_tenants_list_shows_an_unreadable_tenant_and_why(alpha: FakeWorld) -> None:
    tenant = alpha.store.get_tenant("alpha")
    assert tenant is not None
    alpha.store.tenants["alpha"] = replace(tenant, tier="gold", unreadable="stored tier 'gold' is not one of ...")

    code, out = run("tenants", "list")

    assert code == cli.EXIT_OK
    header, _, row = out.splitlines()
    assert row[header.index("STATE") :].split()[0] == "unreadable"
    assert row[header.index("REASON") :].rstrip() == "stored tier 'gold' is not one of ..."


def test_tenants_list_shows_a_tenant_whose_reconciler_state_cannot_be_read(
    alpha: FakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.errors import UnreadableItemError

    def unreadable_state(tenant_id: str) -> None:
        raise UnreadableItemError(f"the reconciler state of tenant {tenant_id} cannot be read (bad map)")

    monkeypatch.setattr(alpha.store, "get_tenant_state", unreadable_state)

    code, out = run("tenants", "list")
    assert code == cli.EXIT_OK
    header, _, row = out.splitlines()
    assert row[header.index("STATE") :].split()[0] == "unreadable"
    assert row[header.index("REASON") :].rstrip() == "the reconciler state of tenant alpha cannot be read (bad map)"

    code, out = run("tenants", "list", "--json")
    assert code == cli.EXIT_OK
    [listed] = json.loads(out)
    assert listed["unreadable"] == "the reconciler state of tenant alpha cannot be read (bad map)"


def test_tenants_add_with_a_region_named_twice_is_refused(
    installed: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(
        "tenants", "add", "beta", "--account", "222222222222", "--region", "us-east-1", "--region", "us-east-1"
    )

    assert code == cli.EXIT_ERROR
    assert "regions name us-east-1 more than once" in capsys.readouterr().err
    assert installed.store.get_tenant("beta") is None


def test_tenants_update_to_a_template_version_that_is_not_published_is_refused(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("tenants", "update", "alpha", "--template-version", "v9")

    assert code == cli.EXIT_ERROR
    assert "template version 'v9' is not published" in capsys.readouterr().err
    assert alpha.store.get_tenant("alpha").template_version == "v1"  # type: ignore[union-attr]
    alpha.templates.add("v9")
    assert run("tenants", "update", "alpha", "--template-version", "v9")[0] == cli.EXIT_OK


def test_a_tenant_that_cannot_be_read_can_still_be_paused_and_corrected(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every change of a tenant re-validated every stored field: a tenant whose stored tier no longer exists
    could not even be paused ("tenant.tier: Input should be ..." for a change that names no tier)."""
    from models.records import tenant_problem

    broken = replace(alpha.store.tenants["alpha"], tier="gold")
    alpha.store.tenants["alpha"] = replace(broken, unreadable=tenant_problem(broken))

    assert run("tenants", "pause", "alpha")[0] == cli.EXIT_OK, capsys.readouterr().err
    paused = alpha.store.get_tenant("alpha")
    assert paused is not None and (paused.paused, paused.tier) == (True, "gold")
    assert run("tenants", "update", "alpha", "--tier", "platinum")[0] == cli.EXIT_ERROR  # a change is still checked
    assert "tier" in capsys.readouterr().err

    assert run("tenants", "update", "alpha", "--tier", "free")[0] == cli.EXIT_OK
    fixed = alpha.store.get_tenant("alpha")
    assert fixed is not None and (fixed.tier, fixed.paused, fixed.unreadable) == ("free", True, None)


def test_servers_delete_accepts_a_stored_legacy_id(alpha: FakeWorld) -> None:
    """A record an older version stored as `Legacy_1` could not be deleted: the CLI checked the id against
    today's creation pattern before looking for the record."""
    run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "seed=abc")
    record = alpha.store.servers.pop(("alpha", "s0"))
    alpha.store.servers[("alpha", "Legacy_1")] = replace(
        record, gameserver_id="Legacy_1", unreadable="the stored gameserver_id 'Legacy_1' is not today's pattern"
    )

    code, out = run("servers", "delete", "alpha", "Legacy_1")

    assert code == cli.EXIT_OK, out
    assert "deletion of alpha/Legacy_1 requested" in out
    stored = alpha.server("alpha", "Legacy_1")
    assert stored is not None and stored.deletion_requested
    alpha.converge("alpha")
    assert alpha.server("alpha", "Legacy_1") is None


def test_servers_show_and_retry_accept_a_stored_legacy_id_but_put_refuses_it(
    alpha: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    run("servers", "put", "alpha", "s0", "--owner", "ana", "--set", "seed=abc")
    record = alpha.store.servers.pop(("alpha", "s0"))
    alpha.store.servers[("alpha", "Legacy_1")] = replace(record, gameserver_id="Legacy_1")

    assert run("servers", "show", "alpha", "Legacy_1")[0] == cli.EXIT_OK
    assert run("servers", "retry", "alpha", "Legacy_1")[0] == cli.EXIT_OK
    code, _ = run("servers", "put", "alpha", "Legacy_2", "--owner", "ana", "--set", "seed=abc")
    assert code != cli.EXIT_OK
    assert "1-40 lowercase letters" in capsys.readouterr().err
    code, _ = run("servers", "delete", "alpha", "has space")
    assert code != cli.EXIT_OK
    assert "printable ASCII" in capsys.readouterr().err


def test_cli_shows_the_external_id_only_on_registration_and_when_asked(
    installed: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    code, added = run("tenants", "add", "initech", "--account", "333333333333", "--json")
    assert code == cli.EXIT_OK
    secret = json.loads(added)["external_id"]
    assert len(secret) * 6 >= 128

    code, listed = run("tenants", "list", "--json")
    assert code == cli.EXIT_OK and secret not in listed and "external_id" not in listed
    code, again = run("tenants", "add", "initech", "--account", "333333333333")
    assert code == cli.EXIT_OK and secret not in again
    code, asked = run("tenants", "external-id", "initech")
    assert (code, asked.strip()) == (cli.EXIT_OK, secret)


def test_cli_refuses_a_weak_external_id_and_a_role_iam_would_refuse(
    installed: FakeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("tenants", "add", "initech", "--account", "333333333333", "--external-id", "x-initech")
    assert code == cli.EXIT_ERROR
    assert "at least 10 different characters" in capsys.readouterr().err
    code, _ = run("tenants", "add", "initech", "--account", "333333333333", "--role-name", "Other")
    assert code == cli.EXIT_ERROR
    assert "arn:<partition>:iam::333333333333:role/StackherdExecution" in capsys.readouterr().err
    assert installed.store.get_tenant("initech") is None
