"""The whole-tenant fast path of the planner plans exactly what the full, server-by-server decision plans.

`plan` first tries `_in_sync_plan` (every server in sync, no orphan) and falls back to `_plan_each`; the
two must never disagree, whatever the records and stacks. Tenants are drawn mostly in sync, with one
thing at a time perturbed, since that is where a fast path that accepts too much would show.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from models.config import GameServerConfig
from models.records import DesiredServer, Tenant
from reconciler import naming
from reconciler.planner import GONE_STATUSES, ActionKind, PlanSettings, _plan_each, plan
from reconciler.stacks import ObservedStack, TemplateVersion

URL = "https://templates.s3.amazonaws.com/gameserver/v1.yaml"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
IDS = ("a", "b", "c", "d")
STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_IN_PROGRESS", "DELETE_COMPLETE", "ROLLBACK_COMPLETE")

#: What may be wrong with one server's stack (None: nothing, the stack matches its record).
PERTURBATIONS = (
    None,
    "missing",
    "status",
    "parameter",
    "extra-parameter",
    "tag-installation",
    "tag-tenant",
    "tag-gameserver",
    "tag-version",
    "tag-incarnation",
    "foreign",
    "nested",
    "other-region",
    "duplicate-elsewhere",
)

configs = st.builds(
    GameServerConfig,
    difficulty=st.sampled_from(["easy", "hard"]),
    player_count=st.sampled_from([4, 32, 64]),
    seed=st.sampled_from(["abc", "xyz"]),
)


@st.composite
def tenants(draw: Any, clean: bool) -> Tenant:
    tenant = Tenant(
        tenant_id="acme",
        account_id="111111111111",
        regions=tuple(draw(st.sampled_from([REGIONS[:1], REGIONS[:2]]))),
        role_arn="arn:aws:iam::111111111111:role/StackherdExecution",
        external_id="ext",
        tier=draw(st.sampled_from(["standard", "standard", "premium", "free", "retired"])),
        template_version="v1",
        paused=draw(st.integers(0, 4)) == 0,
    )
    return replace(tenant, tier="standard", paused=False) if clean else tenant


def owned_stack(tenant: Tenant, server: DesiredServer, region: str) -> ObservedStack:
    name = naming.stack_name("stackherd", tenant.tenant_id, server.gameserver_id)
    tags = {
        naming.TAG_INSTALLATION: "stackherd",
        naming.TAG_TENANT: tenant.tenant_id,
        naming.TAG_GAMESERVER: server.gameserver_id,
        naming.TAG_GENERATION: str(server.generation),
        naming.TAG_TEMPLATE_VERSION: tenant.template_version,
        naming.TAG_OWNER: "alice",
    }
    if server.incarnation:
        tags[naming.TAG_INCARNATION] = server.incarnation
    assert server.config is not None
    return ObservedStack(
        name=name,
        stack_id=f"arn:aws:cloudformation:{region}:111111111111:stack/{name}/{server.gameserver_id}",
        status="CREATE_COMPLETE",
        region=region,
        parameters=server.config.parameters(),
        tags=tags,
    )


def perturbed(stack: ObservedStack, how: str | None, draw: Any) -> list[ObservedStack]:
    if how is None:
        return [stack]
    if how == "missing":
        return []
    if how == "status":
        return [replace(stack, status=draw(st.sampled_from(STATUSES)))]
    if how == "parameter":
        return [replace(stack, parameters={**stack.parameters, "Seed": "drifted"})]
    if how == "extra-parameter":
        return [replace(stack, parameters={**stack.parameters, "Extra": "x"})]
    if how.startswith("tag-"):
        tag = {
            "tag-installation": naming.TAG_INSTALLATION,
            "tag-tenant": naming.TAG_TENANT,
            "tag-gameserver": naming.TAG_GAMESERVER,
            "tag-version": naming.TAG_TEMPLATE_VERSION,
            "tag-incarnation": naming.TAG_INCARNATION,
        }[how]
        return [replace(stack, tags={**stack.tags, tag: "other"})]
    if how == "foreign":
        return [replace(stack, tags={})]
    if how == "nested":
        return [replace(stack, parent_id="arn:aws:cloudformation:us-east-1:111111111111:stack/root/1")]
    if how == "other-region":
        return [replace(stack, region="eu-west-1" if stack.region != "eu-west-1" else "us-east-1")]
    assert how == "duplicate-elsewhere"
    return [stack, replace(stack, region="ap-south-1", stack_id=stack.stack_id + "-old")]


@st.composite
def worlds(draw: Any) -> dict[str, Any]:
    # Half the worlds are clean (a tenant in good standing, every record readable and in its tenant's regions,
    # every region listed) with at most one server's stack perturbed: that is where a fast path that accepts
    # too much would show. The other half draw everything freely.
    clean = draw(st.booleans())
    tenant = draw(tenants(clean))
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, min_size=1 if clean else 0, max_size=4))
    spoiled = draw(st.sampled_from(ids)) if ids and clean else None
    desired: list[DesiredServer] = []
    observed: list[ObservedStack] = []
    for gameserver_id in ids:
        config = draw(configs)
        server = DesiredServer(
            tenant_id=tenant.tenant_id,
            gameserver_id=gameserver_id,
            username="alice",
            config=config if not clean else config.model_copy(update={"player_count": 4}),
            generation=draw(st.integers(1, 3)),
            incarnation=draw(st.sampled_from(["", "inc1"])),
            region=draw(st.sampled_from([None, None, *tenant.regions] if clean else [None, None, *REGIONS])),
            deletion_requested=not clean and draw(st.integers(0, 9)) == 0,
        )
        if not clean and draw(st.integers(0, 14)) == 0:
            server = replace(server, config=None, unreadable="the stored config cannot be read")
        desired.append(server)
        if server.config is None:
            continue
        if clean:
            how = draw(st.sampled_from(PERTURBATIONS)) if gameserver_id == spoiled else None
            event(f"clean world, one stack: {how}")
        else:
            how = draw(st.sampled_from(PERTURBATIONS)) if draw(st.booleans()) else None
        region = server.region or tenant.primary_region
        observed.extend(perturbed(owned_stack(tenant, server, region), how, draw))
    if draw(st.integers(0, 4)) == 0:  # an orphan of ours, or a stack that is not ours
        ghost = DesiredServer(tenant.tenant_id, "z", "alice", GameServerConfig())
        stack = owned_stack(tenant, ghost, tenant.primary_region)
        observed.append(
            draw(st.sampled_from([stack, replace(stack, tags={}), replace(stack, status="DELETE_COMPLETE")]))
        )
    template = draw(
        st.sampled_from(
            [
                None,
                TemplateVersion("v1", URL),
                TemplateVersion("v1", URL, {"Difficulty": None, "PlayerCount": None, "Seed": None}),
                TemplateVersion("v1", URL, {"Difficulty": None, "PlayerCount": None, "Seed": None, "Extra": "x"}),
            ]
        )
    )
    return {
        "tenant": tenant,
        "desired": draw(st.permutations(desired)),
        "observed": draw(st.permutations(observed)),
        "template": template,
        "template_url": None if template is not None else draw(st.sampled_from([URL, URL, None])),
        "unobserved": {} if clean else draw(st.sampled_from([{}, {}, {"eu-west-1": "AccessDenied"}])),
        "complete": draw(st.booleans()),
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_the_whole_tenant_fast_path_plans_exactly_what_the_full_decision_plans(world: dict[str, Any]) -> None:
    plan_settings = PlanSettings()
    got = plan(
        world["tenant"],
        world["desired"],
        world["observed"],
        settings=plan_settings,
        template_url=world["template_url"],
        desired_complete=world["complete"],
        unobserved=world["unobserved"],
        now=NOW,
        template=world["template"],
    )
    by_place = {(s.region, s.name): s for s in world["observed"] if not s.parent_id and s.status not in GONE_STATUSES}
    full = _plan_each(
        world["tenant"],
        world["desired"],
        by_place,
        plan_settings,
        world["template_url"] or (world["template"].url if world["template"] else None),
        None,
        world["complete"],
        None,
        None,
        world["unobserved"],
        NOW,
        world["template"],
        None,
    )

    assert got == full
    assert [a.to_dict() for a in got.actions] == [a.to_dict() for a in full.actions]


def test_a_tenant_in_sync_takes_the_fast_path_and_one_stray_stack_does_not() -> None:
    # Guards the property above against a generator that never reaches the fast path: it does here, and
    # an orphan next to the same servers sends the plan through the full decision (which deletes it).
    tenant = Tenant("acme", "111111111111", ("us-east-1",), "arn:aws:iam::111111111111:role/R", "ext")
    servers = [DesiredServer("acme", gid, "alice", GameServerConfig(), incarnation="inc1") for gid in IDS]
    stacks = [owned_stack(tenant, s, "us-east-1") for s in servers]
    orphan = owned_stack(tenant, DesiredServer("acme", "z", "alice", GameServerConfig()), "us-east-1")

    from reconciler.planner import _in_sync_plan

    by_place = {(s.region, s.name): s for s in stacks}
    fast = _in_sync_plan(tenant, servers, by_place, "stackherd", None)
    with_orphan = plan(tenant, servers, [*stacks, orphan], settings=PlanSettings(), template_url=URL)

    assert fast is not None
    assert fast == plan(tenant, servers[::-1], stacks, settings=PlanSettings(), template_url=URL)
    assert [a.kind for a in fast.actions] == [ActionKind.NOOP] * len(IDS)
    assert _in_sync_plan(tenant, servers, {**by_place, ("us-east-1", orphan.name): orphan}, "stackherd", None) is None
    assert [a.kind for a in with_orphan.actions] == [ActionKind.NOOP] * len(IDS) + [ActionKind.DELETE]
