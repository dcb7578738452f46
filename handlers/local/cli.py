"""`stackherd`: the admin and scripting CLI, against whatever AWS endpoint the environment points at
(`AWS_ENDPOINT_URL`, `AWS_PROFILE`, `AWS_REGION`).

Bad arguments and invalid input exit 1 with a one-line message, never a traceback. `--json` prints
machine-readable JSON only, an error included (`{"error": ..., "error_code": ..., "exit_code": 1}`). `plan` exits
0 when every server is converged and nothing is pending, 2 when changes are pending (a paused tenant's too), 1 when
a server is Failed or Held or the tenant errored; `reconcile` exits 1 when an action failed or a server ends
Failed or Held.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import IO, Any, NoReturn

from models.config import ConfigError, parse_assignments, validate_id, validate_stored_id, validate_tenant
from models.records import DesiredServer, Tenant, TenantState, WriteTrail

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


class CliError(Exception):
    """A problem to report on one line and exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit 2 with a usage block
        self.exit(EXIT_ERROR, f"stackherd: {message} (see `{self.prog} --help`)\n")


def _now() -> datetime:
    return datetime.now(UTC)


def _trail(args: argparse.Namespace) -> WriteTrail:
    """Who writes: the operator's login (the CLI has no other identity), the door it came through (`cli`, or
    `demo` when the demo drives the CLI: `main(door=...)`), and a new correlation id."""
    import getpass

    from reconciler.desired import trail

    try:
        actor = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        actor = "operator"
    return trail(actor or "operator", args.door)


def _print_json(data: Any, out: IO[str]) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str], out: IO[str]) -> None:
    cells = [[str(h) for h in headers], *[[("" if c is None else str(c)) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        if index == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def tenant_dict(tenant: Tenant, state: TenantState | None = None, *, with_external_id: bool = False) -> dict[str, Any]:
    """A tenant as the CLI prints it; the external id (a secret) only on registration and `tenants external-id`."""
    data: dict[str, Any] = {
        "tenant_id": tenant.tenant_id,
        "account_id": tenant.account_id,
        "regions": list(tenant.regions),
        "role_arn": tenant.role_arn,
        **({"external_id": tenant.external_id} if with_external_id else {}),
        "tier": tenant.tier,
        "template_version": tenant.template_version,
        "paused": tenant.paused,
        "quarantined": tenant.quarantined,
        "quarantined_at": tenant.quarantined_at,
        "unreadable": tenant.unreadable,
    }
    if state is not None:
        brake = state.deletion_brake
        data["deletion_brake"] = {
            "held": len(brake.held),
            "held_since": brake.held_since,
            "held_servers": sorted(h.gameserver_id for h in brake.held),
        }
        data["quarantined_regions"] = state.quarantined_regions()
    return data


def server_dict(server: DesiredServer) -> dict[str, Any]:
    status = server.status
    return {
        "tenant_id": server.tenant_id,
        "gameserver_id": server.gameserver_id,
        "username": server.username,
        "config": server.config.model_dump() if server.config is not None else server.raw_config,
        "unreadable": server.unreadable,
        "incarnation": server.incarnation,
        "last_write": (
            {"actor": server.trail.actor, "door": server.trail.door, "correlation_id": server.trail.correlation_id}
            if server.trail is not None
            else None
        ),
        "region": server.region,
        "generation": server.generation,
        "deletion_requested": server.deletion_requested,
        "created_at": server.created_at,
        "updated_at": server.updated_at,
        "status": {
            "phase": status.phase.value,
            "observed_generation": status.observed_generation,
            "stack_id": status.stack_id,
            "stack_status": status.stack_status,
            "last_error": status.last_error,
            "attempts": status.attempts,
            "last_transition_time": status.last_transition_time,
            "next_retry_at": status.next_retry_at,
            "drift": status.drift,
            "tries": status.tries,
            "cause": status.cause,
            "conditions": [
                {
                    "type": c.type,
                    "status": c.status,
                    "reason": c.reason,
                    "message": c.message,
                    "last_transition_time": c.last_transition_time,
                }
                for c in status.conditions
            ],
        },
    }


# --- commands --------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, out: IO[str]) -> int:
    from botocore.exceptions import ClientError

    from handlers.runtime import runtime
    from models.tables import create_tables

    rt = runtime()
    created = create_tables()
    s3 = rt.templates.s3
    bucket = rt.settings.template_bucket
    try:
        s3.head_bucket(**rt.templates.owned())
    except ClientError:
        if rt.settings.region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": rt.settings.region},  # type: ignore[typeddict-item]
            )
        created.append(f"s3://{bucket}")
    # Published versions are pinned to the S3 object version their upload creates: the bucket keeps versions.
    s3.put_bucket_versioning(**rt.templates.owned(VersioningConfiguration={"Status": "Enabled"}))
    if args.json:
        _print_json({"created": created}, out)
    else:
        out.write(("created: " + ", ".join(created) if created else "already initialised: nothing to create") + "\n")
    return EXIT_OK


REQUIRED_PARAMETERS = ("Difficulty", "PlayerCount", "Seed")


def cmd_templates_publish(args: argparse.Namespace, out: IO[str]) -> int:
    import re

    from handlers.runtime import runtime
    from models.config import VERSION_PATTERN

    if not re.fullmatch(VERSION_PATTERN, args.version):
        raise CliError(f"--version {args.version!r} is invalid: use letters, digits, '.', '_' or '-', such as v2")
    try:
        with open(args.file, "rb") as handle:
            body = handle.read()
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error.strerror}") from None
    catalog = runtime().templates
    summary = None
    if getattr(catalog, "cloudformation", None) is not None:
        from reconciler.errors import ReconcileError

        # CloudFormation reads the template: a template it refuses is never published, and the parameters
        # it declares (with their defaults) and the capabilities it needs are stored with the version.
        try:
            summary = catalog.summarize(body)
        except ReconcileError as error:
            raise CliError(f"{args.file}: {error}") from None
        declared = summary["parameters"]
        missing = [p for p in REQUIRED_PARAMETERS if p not in declared]
    else:
        text = body.decode("utf-8", errors="replace")
        missing = [p for p in REQUIRED_PARAMETERS if p not in text]
    if missing:
        raise CliError(
            f"{args.file} does not declare the parameters {', '.join(missing)} that game-server configs map to"
        )
    url = catalog.publish(body, args.version, summary) if summary is not None else catalog.publish(body, args.version)
    if args.json:
        _print_json({"version": args.version, "url": url}, out)
    else:
        out.write(f"published template {args.version}, pinned to its S3 object version: {url}\n")
    return EXIT_OK


def cmd_templates_verify(args: argparse.Namespace, out: IO[str]) -> int:
    """Read each version as the reconciler does: its pinned body checked against its recorded digest, and
    its key checked for an overwrite since publishing. Exits 1 when any version would not be deployed as
    published or its key was written since."""
    from handlers.runtime import runtime
    from reconciler.errors import TemplateNotFoundError

    catalog = runtime().templates
    rows = []
    for version in args.versions or catalog.versions():
        try:
            described = catalog.describe(version)
        except TemplateNotFoundError as error:
            rows.append({"version": version, "state": error.code, "detail": str(error)})
            continue
        overwritten = catalog.overwritten.get(version)
        rows.append(
            {
                "version": version,
                "state": "Overwritten" if overwritten else "Pinned",
                "url": described.url,
                "detail": (
                    f"the key was written after publishing (it now holds {overwritten}); stacks keep the pinned body"
                    if overwritten
                    else "the pinned body matches its recorded SHA-256"
                ),
            }
        )
    if args.json:
        _print_json({"versions": rows}, out)
    else:
        for row in rows:
            out.write(f"{row['version']}  {row['state']}  {row['detail']}\n")
    return EXIT_OK if all(row["state"] == "Pinned" for row in rows) else EXIT_ERROR


def _tenant(tenant_id: str) -> Tenant:
    from handlers.runtime import runtime

    validate_id(tenant_id, "tenant id")
    tenant = runtime().store.get_tenant(tenant_id)
    if tenant is None:
        raise CliError(f"tenant {tenant_id!r} not found; add it with `stackherd tenants add`")
    return tenant


def cmd_tenants_add(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime

    raw: dict[str, Any] = {"tenant_id": args.tenant, "account_id": args.account}
    if args.region:
        raw["regions"] = args.region
    for key, value in (
        ("role", args.role_name),
        ("external_id", args.external_id),
        ("tier", args.tier),
        ("template_version", args.template_version),
    ):
        if value is not None:
            raw[key] = value
    spec = validate_tenant(raw)
    tenant, created = runtime().writes.register_tenant(spec, trail=_trail(args), repeat_ok=True)
    if args.json:
        _print_json(tenant_dict(tenant, with_external_id=created), out)
    else:
        verb = "added" if created else "already registered"
        secret = (
            f"external id {tenant.external_id}"
            if created
            else f"external id: `stackherd tenants external-id {tenant.tenant_id}`"
        )
        out.write(f"tenant {tenant.tenant_id} {verb}: account {tenant.account_id}, role {tenant.role_arn}, {secret}\n")
    return EXIT_OK


def cmd_tenants_external_id(args: argparse.Namespace, out: IO[str]) -> int:
    tenant = _tenant(args.tenant)
    if args.json:
        _print_json(
            {"tenant_id": tenant.tenant_id, "role_arn": tenant.role_arn, "external_id": tenant.external_id}, out
        )
    else:
        out.write(f"{tenant.external_id}\n")
    return EXIT_OK


def cmd_tenants_update(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime

    tenant = _tenant(args.tenant)
    updated = runtime().writes.update_tenant(
        tenant.tenant_id,
        trail=_trail(args),
        tier=args.tier,
        template_version=args.template_version,
        regions=tuple(args.region) if args.region is not None else None,
    )
    if args.json:
        _print_json(tenant_dict(updated), out)
    else:
        before = tenant_dict(tenant)
        changes = {k: v for k, v in tenant_dict(updated).items() if before.get(k) != v}
        out.write(f"tenant {tenant.tenant_id} updated: {changes or 'no change'}\n")
    return EXIT_OK


def cmd_tenants_list(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime
    from reconciler.errors import UnreadableItemError

    store = runtime().store
    tenants = store.list_tenants()
    states: dict[str, TenantState] = {}
    problems: dict[str, str] = {}  # tenant id -> why its reconciler state cannot be read: listed, not fatal
    for t in tenants:
        try:
            states[t.tenant_id] = store.get_tenant_state(t.tenant_id)
        except UnreadableItemError as error:
            problems[t.tenant_id] = str(error)
    if args.json:
        listed = []
        for t in tenants:
            data = tenant_dict(t, states.get(t.tenant_id))
            if t.tenant_id in problems:
                data["unreadable"] = "; ".join(filter(None, (t.unreadable, problems[t.tenant_id])))
            listed.append(data)
        _print_json(listed, out)
        return EXIT_OK
    rows = []
    for t in tenants:
        state = states.get(t.tenant_id, TenantState())
        regions = state.quarantined_regions()
        unreadable = "; ".join(filter(None, (t.unreadable, problems.get(t.tenant_id))))
        reason = (
            unreadable or t.quarantined or "; ".join(f"{r} quarantined: {why}" for r, why in sorted(regions.items()))
        )
        held = state.deletion_brake.held
        rows.append(
            (
                t.tenant_id,
                t.account_id,
                ",".join(t.regions),
                t.tier,
                t.template_version,
                "unreadable"
                if unreadable
                else ("paused" if t.paused else ("quarantined" if t.quarantined else "active")),
                f"{len(held)} since {state.deletion_brake.held_since}" if held else "",
                reason or "",
            )
        )
    _table(rows, ("TENANT", "ACCOUNT", "REGIONS", "TIER", "TEMPLATE", "STATE", "HELD DELETIONS", "REASON"), out)
    return EXIT_OK


def _set_tenant_flags(
    args: argparse.Namespace, out: IO[str], *, paused: bool | None = None, clear_quarantine: bool = False
) -> int:
    from handlers.runtime import runtime

    tenant_id = args.tenant
    _tenant(tenant_id)
    store = runtime().store
    said = []
    if paused is not None:
        writes = runtime().writes
        (writes.pause_tenant if paused else writes.resume_tenant)(tenant_id, trail=_trail(args))
        said.append(f"tenant {tenant_id} {'paused' if paused else 'resumed'}")
    if clear_quarantine:
        store.set_quarantine(tenant_id, None, _now())
        store.clear_region_quarantine(tenant_id)
        said.append(f"tenant {tenant_id} and its regions released from quarantine; the next sweep includes them")
    if args.json:
        _print_json(tenant_dict(_tenant(tenant_id)), out)
    else:
        out.write("".join(line + "\n" for line in said))
    return EXIT_OK


def cmd_servers_put(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime

    tenant = _tenant(args.tenant)
    raw = parse_assignments(args.set or [])
    result = runtime().writes.put_server(
        tenant, args.server, args.owner, raw, trail=_trail(args), merge=True, region=args.region
    )
    if args.json:
        _print_json({**server_dict(result.server), "created": result.created, "changed": result.changed}, out)
    else:
        verb = "created" if result.created else ("updated" if result.changed else "unchanged")
        out.write(
            f"{verb} {tenant.tenant_id}/{result.server.gameserver_id} (generation {result.server.generation}): "
            f"{server_dict(result.server)['config']}\n"
        )
    return EXIT_OK


def cmd_servers_list(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime

    store = runtime().store
    tenants = [_tenant(args.tenant)] if args.tenant else store.list_tenants()
    servers = [s for t in tenants for s in store.read_servers(t.tenant_id).servers]
    if args.json:
        _print_json([server_dict(s) for s in servers], out)
        return EXIT_OK
    rows = [
        (
            s.tenant_id,
            s.gameserver_id,
            s.username,
            s.generation,
            s.status.observed_generation,
            s.status.phase.value,
            s.status.stack_status or "",
            (s.status.last_error or "")[:60],
        )
        for s in servers
    ]
    _table(rows, ("TENANT", "SERVER", "OWNER", "GEN", "OBSERVED", "PHASE", "STACK STATUS", "LAST ERROR"), out)
    return EXIT_OK


def cmd_servers_show(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime

    _tenant(args.tenant)
    validate_stored_id(args.server, "gameserver id")
    server = runtime().store.get_server(args.tenant, args.server)
    if server is None:
        raise CliError(f"game server {args.tenant}/{args.server} not found")
    data = server_dict(server)
    if args.json:
        _print_json(data, out)
        return EXIT_OK
    status = data["status"]
    out.write(f"{server.tenant_id}/{server.gameserver_id}  owner {server.username}\n")
    out.write(f"  desired      {data['config']}  (generation {server.generation})\n")
    if server.unreadable:
        out.write(f"  unreadable   {server.unreadable}\n")
    if server.deletion_requested:
        out.write("  deletion     requested\n")
    out.write(f"  phase        {status['phase']}  (observed generation {status['observed_generation']})\n")
    out.write(f"  stack        {status['stack_status'] or '-'}  {status['stack_id'] or ''}\n")
    if status["drift"]:
        out.write(f"  drift        {status['drift']}\n")
    if status["last_error"]:
        out.write(f"  last error   {status['last_error']}\n")
    if status["cause"]:
        out.write(f"  cause        {status['cause']}  ({status['tries']} operations this generation)\n")
    if status["next_retry_at"]:
        out.write(f"  next try     after {status['next_retry_at']}\n")
    for condition in status["conditions"]:
        out.write(
            f"  condition    {condition['type']}={condition['status']} {condition['reason']}: {condition['message']}"
            f" (since {condition['last_transition_time']})\n"
        )
    return EXIT_OK


def cmd_servers_delete(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime
    from reconciler.writes import NotFoundError

    tenant = _tenant(args.tenant)
    try:
        result = runtime().writes.delete_server(tenant, args.server, trail=_trail(args))
    except NotFoundError:
        raise CliError(f"game server {args.tenant}/{args.server} not found") from None
    if args.json:
        _print_json(server_dict(result.server), out)
    else:
        out.write(f"deletion of {args.tenant}/{args.server} requested; its stack is removed on the next reconcile\n")
    return EXIT_OK


def cmd_servers_retry(args: argparse.Namespace, out: IO[str]) -> int:
    """Give a server (or an orphan stack of that id) a fresh failure budget and no backoff, after an operator
    fixed what made it fail, so it is tried again."""
    from handlers.runtime import runtime
    from reconciler.naming import stack_name
    from reconciler.writes import NotFoundError

    tenant = _tenant(args.tenant)
    validate_stored_id(args.server, "gameserver id")
    rt = runtime()
    writes = rt.writes
    # A stack of this name without a record (or left in a region the server moved from) keeps its budget
    # with the tenant: it gets a fresh one too.
    name = stack_name(rt.settings.installation, args.tenant, args.server)
    orphan_reset = writes.retry_orphan(tenant, name)
    try:
        server = writes.retry_server(tenant, args.server, trail=_trail(args))
    except NotFoundError:
        if not orphan_reset:
            raise CliError(
                f"game server {args.tenant}/{args.server} not found, and no orphan stack {name} is held"
            ) from None
        if args.json:
            _print_json({"tenant_id": args.tenant, "orphan_stack": name, "reset": True}, out)
        else:
            out.write(
                f"orphan stack {name}: failure budget reset; run `stackherd reconcile {args.tenant}` to act now\n"
            )
        return EXIT_OK
    if args.json:
        _print_json(server_dict(server), out)
    else:
        out.write(f"{args.tenant}/{args.server}: retries reset; run `stackherd reconcile {args.tenant}` to act now\n")
    return EXIT_OK


def _print_result(data: dict[str, Any], out: IO[str], *, planned: bool) -> None:
    actions = data.get("actions", [])
    if data.get("error"):
        out.write(f"tenant {data['tenant_id']}: {data['error']}\n")
    if data.get("quarantined"):
        out.write(f"tenant {data['tenant_id']} is quarantined: {data['quarantined']}\n")
    for region, why in data.get("unobserved_regions", {}).items():
        out.write(f"  region {region} not observed: {why}\n")
    if not actions:
        out.write(f"tenant {data['tenant_id']}: no game servers and no owned stacks\n")
        return
    for action in actions:
        outcome = "" if planned else f"  [{action['outcome']}]"
        line = f"  {action['kind']:<18} {action['gameserver_id'] or '-':<24} {action['reason']}{outcome}"
        if action.get("diff"):
            line += f"\n  {'':<18} {'':<24} {action['diff']}"
        detail = action.get("detail")
        if detail and action["outcome"] != "done" and detail != action["reason"]:
            line += f"\n  {'':<18} {'':<24} {detail}"
        out.write(line + "\n")
    brake = data.get("deletion_brake")
    if brake and brake.get("held"):
        out.write(
            f"deletion brake: {brake['held']} deletions held since {brake['held_since']} "
            f"({brake['deletions_in_window']} of {brake['max_deletions']} allowed deletions made in the last "
            f"{brake['window_seconds']} s); release exactly these with "
            f"`stackherd reconcile {data['tenant_id']} --confirm-deletions`\n"
        )


_EXIT_FOR = {"in_sync": EXIT_OK, "pending": EXIT_PENDING, "failed": EXIT_ERROR}
#: Action kinds (or what a paused tenant's action would be) that leave a server not converging.
_BLOCKED_KINDS = ("fail", "hold", "backoff")


def _verdict_line(data: dict[str, Any]) -> str:
    verdict = data["verdict"]
    tenant_id = data["tenant_id"]
    if verdict == "in_sync":
        return "in sync"
    if verdict == "pending":
        if data.get("paused"):
            return (
                f"changes pending: tenant {tenant_id} is paused, so nothing is changed until "
                f"`stackherd tenants resume {tenant_id}`"
            )
        return "changes pending"
    blocked = sorted(
        {
            a["gameserver_id"] or a["stack_name"]
            for a in data["actions"]
            if a["outcome"] in ("failed", "held") or a["kind"] in _BLOCKED_KINDS or a.get("would") in _BLOCKED_KINDS
        }
        | set(data.get("failing", []))
    )
    if data.get("error"):
        return f"error: {data['error']}"
    if data.get("quarantined") and not blocked:
        return (
            f"not converging: tenant {tenant_id} is quarantined, so sweeps skip it; once its account lets "
            f"stackherd in again, `stackherd tenants unquarantine {tenant_id}` (or `stackherd reconcile "
            f"{tenant_id}`) releases it"
        )
    regions = sorted(data.get("unobserved_regions", {}))
    if not blocked and regions:
        return (
            f"not converging: region {', '.join(regions)} of tenant {tenant_id} could not be observed; see the "
            "reason above (nothing there is changed or deleted until it can be)"
        )
    backing_off = sorted(
        {a["gameserver_id"] or a["stack_name"] for a in data["actions"] if "backoff" in (a["kind"], a.get("would"))}
    )
    if backing_off and set(backing_off) == set(blocked):
        return (
            f"not converging: {', '.join(blocked)} failed and back off before the next try; see the reasons "
            f"above (`stackherd reconcile {tenant_id} --force` tries now)"
        )
    return f"not converging: {', '.join(blocked)} failed or held; see the reasons above (an operator must act)"


def cmd_plan(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime

    _tenant(args.tenant)
    result = runtime().engine.reconcile_tenant(args.tenant, dry_run=True)
    data = result.to_dict()
    code = _EXIT_FOR[result.verdict]
    if args.json:
        _print_json({**data, "exit_code": code}, out)
    else:
        _print_result(data, out, planned=True)
        out.write(_verdict_line(data) + "\n")
    return code


def cmd_reconcile(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime

    _tenant(args.tenant)
    rt = runtime()
    result = rt.engine.reconcile_tenant(args.tenant, confirm_deletions=args.confirm_deletions, force=args.force)
    data = result.to_dict()
    # A reconcile that did what it could exits 0 even while stacks are still changing; a failed action or a
    # server left Failed or Held does not.
    code = EXIT_ERROR if result.verdict == "failed" else EXIT_OK
    if args.json:
        _print_json({**data, "exit_code": code}, out)
    else:
        _print_result(data, out, planned=False)
        if result.stopped:
            out.write(f"stopped: {result.stopped}; the changes marked [skipped] were not made\n")
        if code != EXIT_OK:
            out.write(_verdict_line(data) + "\n")
    return code


def cmd_sweep(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.runtime import runtime

    rt = runtime()
    from handlers.rollouts import advance_rollouts

    advance_rollouts(rt)
    progress: Callable[[Any], None] | None = None
    if not args.json and sys.stderr.isatty():
        total = len(rt.store.list_tenants())
        done = [0]

        def progress(result: Any) -> None:
            done[0] += 1
            mark = "!" if result.error else "."
            sys.stderr.write(f"\r  sweeping {done[0]}/{total} tenants {mark} {result.tenant_id:<40}")
            sys.stderr.flush()

    result = rt.engine.sweep(concurrency=args.concurrency or rt.settings.sweep_concurrency, progress=progress)
    if progress is not None:
        sys.stderr.write("\n")
    summary = result.summary()
    if args.json:
        _print_json(summary.to_dict(), out)
    else:
        actions = ", ".join(f"{k} {v}" for k, v in summary.actions.items()) or "none"
        out.write(f"swept {summary.reconciled} of {summary.tenants} tenants; actions: {actions}\n")
        for tenant_id in summary.skipped:
            out.write(
                f"  skipped {tenant_id}: quarantined; `stackherd plan {tenant_id}` shows why, "
                f"`stackherd tenants unquarantine {tenant_id}` releases it\n"
            )
        for tenant_id, error in summary.failures.items():
            out.write(f"  failed  {tenant_id}: {error}\n")
        for tenant_id, ids in summary.not_converging.items():
            out.write(f"  not converging {tenant_id}: {', '.join(ids)}; `stackherd plan {tenant_id}` shows why\n")
    return EXIT_OK if summary.ok else EXIT_ERROR


def cmd_token(args: argparse.Namespace, out: IO[str]) -> int:
    """A token the local runtime's authorizer accepts, on stdout and nothing else (for `$(stackherd token ...)`)."""
    from handlers.local.gateway import LocalAuthorizer, signing_key
    from models.config import validate_owner

    if args.tenant is None and not args.admin:
        raise CliError("give --tenant (a player's token) or --admin (an admin's token), or both")
    if args.tenant is not None:
        validate_id(args.tenant, "--tenant")
    validate_owner(args.user)
    if not 60 <= args.ttl <= 7 * 24 * 3600:
        raise CliError("--ttl must be between 60 and 604800 seconds")
    token = LocalAuthorizer(signing_key()).issue(args.user, args.tenant, admin=args.admin, ttl_s=args.ttl)
    out.write(token + "\n")
    return EXIT_OK


def cmd_local(args: argparse.Namespace, out: IO[str]) -> int:
    from handlers.local.runner import LocalOptions, serve

    for name in ("port", "aws_port"):
        value = getattr(args, name)
        if not 0 <= value <= 65535:
            raise CliError(f"--{name.replace('_', '-')} must be a port number (0 to 65535), not {value}")
    if not 1 <= args.tenants <= 50:
        raise CliError("--tenants must be between 1 and 50")
    if not 1 <= args.sweep_every <= 86400:
        raise CliError("--sweep-every must be between 1 and 86400 seconds")
    options = LocalOptions(port=args.port, aws_port=args.aws_port, tenants=args.tenants, sweep_every_s=args.sweep_every)
    try:
        return serve(options, out)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise CliError(
                f"a port is already in use (--port {args.port}, --aws-port {args.aws_port}): "
                "stop what listens there, or choose other ports"
            ) from None
        raise


# --- rollouts --------------------------------------------------------------------------------------


def _rollout_dict(rollout: Any) -> dict[str, Any]:
    from handlers.rollouts import rollout_dict

    return rollout_dict(rollout)


def _rollouts() -> Any:
    from handlers.rollouts import rollout_service
    from handlers.runtime import runtime

    return rollout_service(runtime())


def _list_arg(value: str | None, what: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise CliError(f"{what} needs at least one name, comma-separated (for example a,b)")
    return items


def cmd_rollout_start(args: argparse.Namespace, out: IO[str]) -> int:
    if args.bake < 0:
        raise CliError("--bake must be 0 or more seconds")
    rollout = _rollouts().start(
        args.version,
        trail=_trail(args),
        tenants=_list_arg(args.tenants, "--tenants"),
        canary=_list_arg(args.canary, "--canary"),
        wave_sizes=_list_arg(args.wave_size, "--wave-size") or ["1"],
        failure_tolerance=args.failure_tolerance,
        bake_s=args.bake,
        auto_rollback=args.auto_rollback,
    )
    if args.json:
        _print_json(_rollout_dict(rollout), out)
    else:
        out.write(rollout.rollout_id + "\n")
    return EXIT_OK


def _print_rollout(rollout: Any, out: IO[str]) -> None:
    out.write(
        f"rollout {rollout.rollout_id}: {rollout.target_version} {rollout.state.value}, wave "
        f"{max(rollout.current_wave + 1, 0)} of {len(rollout.waves)}; started {rollout.created_at}"
        + (f" by {rollout.created_by}" if rollout.created_by else "")
        + "\n"
    )
    out.write(
        f"  tolerance {rollout.failure_tolerance} ({rollout.failures} failed), bake {rollout.bake_s}s, "
        f"auto-rollback {'on' if rollout.auto_rollback else 'off'}"
        + (f", next wave after {rollout.bake_until}" if rollout.bake_until else "")
        + "\n"
    )
    if rollout.reason:
        out.write(f"  reason: {rollout.reason}\n")
    by_id = {t.tenant_id: t for t in rollout.tenants}
    for index, wave in enumerate(rollout.waves):
        label = f"wave {index + 1}" + (" (canary)" if index == 0 and rollout.has_canary else "")
        if len(wave) <= 8:
            shown = ", ".join(f"{t} {by_id[t].outcome.value}" for t in wave)
        else:
            counts: dict[str, int] = {}
            for t in wave:
                counts[by_id[t].outcome.value] = counts.get(by_id[t].outcome.value, 0) + 1
            shown = f"{len(wave)} tenants: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
        out.write(f"  {label}: {shown}\n")
    problems = [t for t in rollout.tenants if t.cause and t.outcome.value in ("failed", "rolled-back", "skipped")]
    if problems:
        out.write("  causes:\n")
        for t in problems:
            out.write(f"    {t.tenant_id} (wave {t.wave + 1}, {t.outcome.value}): {t.cause}\n")


_ROLLOUT_FAILED = ("Halted", "RolledBack")


def cmd_rollout_status(args: argparse.Namespace, out: IO[str]) -> int:
    import time

    service = _rollouts()
    rollout_id = args.rollout
    if rollout_id is None:
        found = service.list()
        if not found:
            raise CliError("no rollout yet; start one with `stackherd rollout start VERSION`")
        rollout_id = next((r for r in found if r.active), found[0]).rollout_id
    while True:
        rollout = service.get(rollout_id)
        if args.json:
            data = _rollout_dict(rollout)
            out.write(json.dumps(data, sort_keys=True, default=str) + "\n") if args.watch else _print_json(data, out)
        else:
            _print_rollout(rollout, out)
        out.flush()
        if not args.watch or not rollout.active or rollout.state.value == "Paused":
            break
        time.sleep(args.interval)
    return EXIT_ERROR if rollout.state.value in _ROLLOUT_FAILED else EXIT_OK


def cmd_rollout_list(args: argparse.Namespace, out: IO[str]) -> int:
    rollouts = _rollouts().list()
    if args.json:
        _print_json(
            [
                {
                    "rollout_id": r.rollout_id,
                    "target_version": r.target_version,
                    "state": r.state.value,
                    "wave": r.current_wave + 1,
                    "waves": len(r.waves),
                    "tenants": len(r.tenants),
                    "failures": r.failures,
                    "created_at": r.created_at,
                }
                for r in rollouts
            ],
            out,
        )
        return EXIT_OK
    _table(
        [
            (
                r.rollout_id,
                r.target_version,
                r.state.value,
                f"{r.current_wave + 1}/{len(r.waves)}",
                len(r.tenants),
                r.failures,
                r.created_at,
            )
            for r in rollouts
        ],
        ("ROLLOUT", "VERSION", "STATE", "WAVE", "TENANTS", "FAILED", "STARTED"),
        out,
    )
    return EXIT_OK


def _rollout_action(name: str) -> Callable[[argparse.Namespace, IO[str]], int]:
    def run(args: argparse.Namespace, out: IO[str]) -> int:
        result = getattr(_rollouts(), name)(args.rollout, trail=_trail(args))
        rollout = getattr(result, "rollout", result)  # a rollback says what it left alone, with the rollout
        notes = getattr(result, "notes", ())
        if args.json:
            _print_json({**_rollout_dict(rollout), "notes": list(notes)}, out)
        else:
            out.write(f"rollout {rollout.rollout_id}: {rollout.state.value}\n")
            for note in notes:
                out.write(f"  {note}\n")
        return EXIT_OK

    return run


# --- parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stackherd", description="Converge desired game servers into tenant CloudFormation stacks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(
        name: str, func: Callable[..., int], help_: str, into: Any = sub, *, json_output: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = into.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func, json=False)
        if json_output:
            p.add_argument("--json", action="store_true", help="print machine-readable JSON only")
        return p

    command("init", cmd_init, "create the tables and the template bucket (idempotent)")

    templates = sub.add_parser("templates", help="game-server template versions").add_subparsers(
        dest="subcommand", required=True, parser_class=_Parser
    )
    publish = command("publish", cmd_templates_publish, "upload a template version to the template bucket", templates)
    publish.add_argument("file")
    publish.add_argument("--version", required=True)
    verify = command(
        "verify", cmd_templates_verify, "check published versions' pinned bodies and report overwritten keys", templates
    )
    verify.add_argument("versions", nargs="*", metavar="VERSION", help="the versions to check (default: all)")

    tenants = sub.add_parser("tenants", help="tenant accounts").add_subparsers(
        dest="subcommand", required=True, parser_class=_Parser
    )
    add = command("add", cmd_tenants_add, "register a tenant account", tenants)
    add.add_argument("tenant")
    add.add_argument("--account", required=True, help="12-digit AWS account id")
    add.add_argument("--region", action="append", help="a region (repeatable); the first is the default")
    add.add_argument(
        "--role-name",
        help="role to assume in the tenant account: the deployment's TenantRoleName (the default), or its ARN",
    )
    add.add_argument(
        "--external-id",
        help="the ExternalId the role's trust policy expects: generated if omitted; given, at least 22 characters",
    )
    add.add_argument("--tier", help="free, standard or premium")
    add.add_argument("--template-version", help="pinned game-server template version")
    update = command("update", cmd_tenants_update, "change a tenant's tier, regions or template version", tenants)
    update.add_argument("tenant")
    update.add_argument("--region", action="append")
    update.add_argument("--tier")
    update.add_argument("--template-version")
    command("list", cmd_tenants_list, "list tenants", tenants)
    secret = command("external-id", cmd_tenants_external_id, "print a tenant's external id (a secret)", tenants)
    secret.add_argument("tenant")
    for name, help_, flags in (
        ("pause", "stop changing a tenant's stacks (observe and report only)", {"paused": True}),
        ("resume", "resume reconciling a paused tenant", {"paused": False}),
        ("unquarantine", "release a quarantined tenant so sweeps include it again", {"clear_quarantine": True}),
    ):
        p = command(
            name,
            lambda a, o, _f=flags: _set_tenant_flags(a, o, **_f),
            help_,
            tenants,
        )
        p.add_argument("tenant")

    servers = sub.add_parser("servers", help="desired game servers").add_subparsers(
        dest="subcommand", required=True, parser_class=_Parser
    )
    put = command("put", cmd_servers_put, "create or change a game server's desired config", servers)
    put.add_argument("tenant")
    put.add_argument("server")
    put.add_argument("--owner", required=True, help="the player who owns the server")
    put.add_argument("--set", action="append", metavar="KEY=VALUE", help="difficulty, player_count or seed")
    put.add_argument("--region", help="one of the tenant's regions (default: its first)")
    lst = command("list", cmd_servers_list, "list game servers and their phases", servers)
    lst.add_argument("tenant", nargs="?")
    show = command("show", cmd_servers_show, "desired config, generation, status and conditions", servers)
    show.add_argument("tenant")
    show.add_argument("server")
    delete = command("delete", cmd_servers_delete, "request a game server's deletion", servers)
    delete.add_argument("tenant")
    delete.add_argument("server")

    retry = command(
        "retry", cmd_servers_retry, "give a failed or held server (or orphan) a fresh failure budget", servers
    )
    retry.add_argument("tenant")
    retry.add_argument("server")

    plan = command(
        "plan", cmd_plan, "dry run: what a reconcile would do (exit 0 in sync, 2 pending, 1 failed, held or error)"
    )
    plan.add_argument("tenant")
    rec = command("reconcile", cmd_reconcile, "reconcile one tenant now and print the actions taken")
    rec.add_argument("tenant")
    rec.add_argument(
        "--confirm-deletions", action="store_true", help="release the deletions the brake holds now (exactly those)"
    )
    rec.add_argument("--force", action="store_true", help="act now on servers waiting out a failed attempt's backoff")
    local = command(
        "local", cmd_local, "run the whole system on this machine (moto, the API, the triggers)", json_output=False
    )
    local.add_argument("--port", type=int, default=8080, help="the API's port on 127.0.0.1 (default 8080)")
    local.add_argument("--aws-port", type=int, default=0, help="the embedded AWS endpoint's port (default: a free one)")
    local.add_argument("--tenants", type=int, default=3, help="sample tenants, each in its own account (default 3)")
    local.add_argument("--sweep-every", type=float, default=60.0, help="seconds between scheduled sweeps (default 60)")
    token = command("token", cmd_token, "print a token the local runtime accepts", json_output=False)
    token.add_argument("--tenant", help="the player's tenant (custom:tenant_id)")
    token.add_argument("--user", required=True, help="the user name (cognito:username)")
    token.add_argument("--admin", action="store_true", help="in the admins group")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until it expires (default 12 hours)")
    rollout = sub.add_parser("rollout", help="move tenants to a template version in waves").add_subparsers(
        dest="subcommand", required=True, parser_class=_Parser
    )
    start = command("start", cmd_rollout_start, "start a rollout of VERSION; prints its id", rollout)
    start.add_argument("version")
    start.add_argument("--tenants", help="comma-separated tenants (default: every tenant not paused or quarantined)")
    start.add_argument("--canary", help="comma-separated canary tenants, the first wave (default: the first tenant)")
    start.add_argument(
        "--wave-size", help="tenants per wave: N or P%%; several (5%%,25%%) size the first waves, the last repeats"
    )
    start.add_argument("--failure-tolerance", default="0", help="failed tenants allowed before halting: N or P%%")
    start.add_argument("--bake", type=int, default=0, metavar="SECONDS", help="wait between waves")
    start.add_argument("--auto-rollback", action="store_true", help="on a halt, pin failed and in-flight tenants back")
    status = command("status", cmd_rollout_status, "a rollout's state, waves and failures", rollout)
    status.add_argument("rollout", nargs="?", help="default: the active rollout, else the newest")
    status.add_argument("--watch", action="store_true", help="show it again every --interval until it ends")
    status.add_argument("--interval", type=float, default=10.0, help=argparse.SUPPRESS)
    command("list", cmd_rollout_list, "list rollouts, newest first", rollout)
    for name, help_ in (
        ("pause", "stop starting waves until resumed"),
        ("resume", "go on with a paused rollout"),
        ("abort", "stop the rollout; what is pinned stays"),
        ("rollback", "pin every tenant the rollout moved back to its previous version"),
    ):
        command(name, _rollout_action(name), help_, rollout).add_argument("rollout")

    sweep = command("sweep", cmd_sweep, "advance the active rollouts and reconcile every tenant")
    sweep.add_argument("--concurrency", type=int, help="tenants reconciled at once (default 8)")
    return parser


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None, *, door: str = "cli") -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from handlers.runtime import SettingsError
    from reconciler.errors import ReconcileError
    from reconciler.writes import WriteError

    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    args.door = door

    def fail(message: str, code: str) -> int:
        sys.stderr.write(f"stackherd: {message}\n")
        if getattr(args, "json", False):  # a script reading --json gets the error on stdout, as JSON
            _print_json({"error": message, "error_code": code, "exit_code": EXIT_ERROR}, out)
        return EXIT_ERROR

    if getattr(args, "watch", False) and not 0 < args.interval <= 3600:
        return fail("--interval must be between 0 and 3600 seconds", "InvalidArgument")
    if getattr(args, "concurrency", None) is not None and not 1 <= args.concurrency <= 64:
        return fail("--concurrency must be between 1 and 64", "InvalidArgument")
    try:
        return int(args.func(args, out))
    except (CliError, ConfigError, WriteError, SettingsError, ReconcileError) as error:
        return fail(str(error), getattr(error, "code", None) or type(error).__name__.removesuffix("Error") or "Error")
    except ClientError as error:
        info = error.response.get("Error", {})
        return fail(f"AWS refused the request: {info.get('Code')}: {info.get('Message')}", str(info.get("Code")))
    except BotoCoreError as error:
        return fail(f"cannot reach AWS: {error}", type(error).__name__)
    except KeyboardInterrupt:
        return fail("interrupted", "Interrupted")
    except Exception as error:  # a defect, or data no check foresaw: one line, the traceback only on request
        if os.environ.get("STACKHERD_DEBUG"):
            raise
        return fail(
            f"unexpected {type(error).__name__}: {error} (set STACKHERD_DEBUG=1 for the traceback)", "InternalError"
        )


if __name__ == "__main__":
    raise SystemExit(main())
