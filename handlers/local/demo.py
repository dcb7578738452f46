"""`stackherd-demo` (`make demo`): the whole system on moto in-process, converging through every trigger.

Three tenants in three accounts; servers put through the CLI's write path; the stream handler fed
real DynamoDB stream records; the sweep; a config change; drift and a deleted stack made by hand; a
deleted server; a stack that is not ours, which must survive. Exits non-zero unless it all converged.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, Any

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "sam" / "gameserver.yaml"
TENANTS = (
    ("alpha", "111111111111", "free"),
    ("bravo", "222222222222", "standard"),
    ("charlie", "333333333333", "premium"),
)
SERVERS = (
    ("alpha", "arena", "ana", ["difficulty=hard", "player_count=8", "seed=lava42"]),
    ("alpha", "lobby", "ana", ["difficulty=peaceful"]),
    ("bravo", "castle", "ben", ["difficulty=normal", "player_count=16", "seed=moat"]),
    ("bravo", "island", "bea", ["difficulty=easy", "player_count=4"]),
    ("charlie", "citadel", "cy", ["difficulty=hard", "player_count=64", "seed=x9"]),
)
FOREIGN = ("333333333333", "legacy-billing")  # a stack the tenant made itself: never ours to touch


class DemoFailedError(Exception):
    pass


class Demo:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.step_no = 0

    def step(self, title: str) -> None:
        self.step_no += 1
        self.out.write(f"\n==> {self.step_no}. {title}\n")

    def say(self, text: str) -> None:
        self.out.write(f"    {text}\n")

    def cli(self, *argv: str) -> int:
        from handlers.local.cli import main

        buffer = io.StringIO()
        code = main(list(argv), out=buffer, door="demo")
        for line in buffer.getvalue().splitlines():
            self.say(line)
        return code

    def must(self, *argv: str) -> None:
        code = self.cli(*argv)
        if code != 0:
            raise DemoFailedError(f"`stackherd {' '.join(argv)}` exited {code}")

    def run(self) -> None:
        from handlers.local.embedded import LocalContext, StreamPoller, tenant_cloudformation
        from handlers.runtime import runtime
        from handlers.stream import handler as stream_handler

        self.step("create the tables and the template bucket, publish template v1")
        self.must("init")
        self.must("templates", "publish", str(TEMPLATE), "--version", "v1")

        self.step("register three tenants, each in its own AWS account")
        for tenant_id, account, tier in TENANTS:
            self.must(
                "tenants",
                "add",
                tenant_id,
                "--account",
                account,
                "--tier",
                tier,
            )
        cfn_charlie = tenant_cloudformation(FOREIGN[0])
        cfn_charlie.create_stack(
            StackName=FOREIGN[1],
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[
                {"ParameterKey": "Difficulty", "ParameterValue": "easy"},
                {"ParameterKey": "PlayerCount", "ParameterValue": "2"},
                {"ParameterKey": "Seed", "ParameterValue": "theirs"},
            ],
        )
        self.say(f"charlie's account already holds a stack of its own: {FOREIGN[1]} (no stackherd tags)")

        poller = StreamPoller(runtime().settings.gameservers_table)
        context = LocalContext()

        def deliver() -> None:
            events = poller.events()
            total = sum(len(e["Records"]) for e in events)
            failures = 0
            for event in events:
                failures += len(stream_handler(event, context)["batchItemFailures"])
            self.say(f"stream delivered {total} record(s) to the stream handler; {failures} reported for retry")

        self.step("players ask for five game servers (the API's write path: validate, write DynamoDB)")
        for tenant_id, server, owner, sets in SERVERS:
            self.must("servers", "put", tenant_id, server, "--owner", owner, *[a for s in sets for a in ("--set", s)])
        self.step("the DynamoDB stream triggers reconciles: stacks are created in each tenant's account")
        deliver()
        self.step("the reconciler's own status writes come back on the stream and trigger nothing")
        deliver()
        self.step("the scheduled sweep observes the finished stacks and marks the servers Ready")
        self.must("sweep")
        self.must("servers", "list")

        self.step("a player changes a config (a MODIFY on the stream): only that stack is updated")
        self.must("servers", "put", "bravo", "castle", "--owner", "ben", "--set", "difficulty=hard")
        deliver()

        self.step("someone changes a parameter by hand, and deletes a stack by hand")
        cfn_bravo = tenant_cloudformation("222222222222")
        stack = cfn_bravo.describe_stacks(StackName="stackherd-bravo-island")["Stacks"][0]
        cfn_bravo.update_stack(
            StackName=stack["StackName"],
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[
                {"ParameterKey": "Difficulty", "ParameterValue": "hard"},
                {"ParameterKey": "PlayerCount", "ParameterValue": "4"},
                {"ParameterKey": "Seed", "ParameterValue": "default"},
            ],
            Tags=stack["Tags"],
        )
        self.say("bravo/island: Difficulty changed to 'hard' by hand")
        tenant_cloudformation("111111111111").delete_stack(StackName="stackherd-alpha-lobby")
        self.say("alpha/lobby: stack deleted by hand")
        self.step("the plan shows the drift (exit 2: changes pending)")
        for tenant_id in ("alpha", "bravo"):
            if self.cli("plan", tenant_id) != 2:
                raise DemoFailedError(f"plan of {tenant_id} should report pending changes")

        self.step("the sweep repairs both")
        self.must("sweep")

        self.step("a player deletes a server: the stack goes, then the record")
        self.must("servers", "delete", "alpha", "arena")
        deliver()
        self.must("sweep")
        deliver()

        self.step("one more sweep, then check that everything converged")
        self.must("sweep")
        self.must("sweep")
        self.must("servers", "list")
        self.verify()

    def verify(self) -> None:
        from handlers.local.embedded import tenant_cloudformation
        from handlers.runtime import runtime

        store = runtime().store
        problems: list[str] = []
        for tenant_id, account, _ in TENANTS:
            if self.cli("plan", tenant_id) != 0:
                problems.append(f"{tenant_id} is not in sync")
            stacks = {
                s["StackName"]: s
                for s in tenant_cloudformation(account).describe_stacks()["Stacks"]
                if s["StackStatus"] != "DELETE_COMPLETE"
            }
            servers = store.read_servers(tenant_id).servers
            for server in servers:
                name = f"stackherd-{tenant_id}-{server.gameserver_id}"
                stack = stacks.get(name)
                if stack is None:
                    problems.append(f"{name} is missing from account {account}")
                    continue
                params = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
                wanted = server.config.parameters() if server.config is not None else None
                if params != wanted:
                    problems.append(f"{name} has {params}, wants {wanted or server.unreadable}")
                if server.status.phase.value != "Ready":
                    problems.append(f"{tenant_id}/{server.gameserver_id} is {server.status.phase.value}")
            owned = {n for n, s in stacks.items() if _tag(s, "stackherd:tenant") == tenant_id}
            expected = {f"stackherd-{tenant_id}-{s.gameserver_id}" for s in servers}
            if owned != expected:
                problems.append(f"account {account} holds stacks {sorted(owned)}, expected {sorted(expected)}")
            foreign = {n for n, s in stacks.items() if _tag(s, "stackherd:tenant") not in (None, tenant_id)}
            if foreign:
                problems.append(f"account {account} holds another tenant's stacks: {sorted(foreign)}")
        if store.get_server("alpha", "arena") is not None:
            problems.append("alpha/arena was deleted but its record remains")
        account, name = FOREIGN
        if name not in {s["StackName"] for s in tenant_cloudformation(account).describe_stacks()["Stacks"]}:
            problems.append(f"the tenant's own stack {name} was touched")
        if problems:
            raise DemoFailedError("; ".join(problems))
        self.say(f"the tenant's own stack {name} was left alone")


def _tag(stack: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in stack.get("Tags", []) if t["Key"] == key), None)


def run_demo(out: IO[str]) -> int:
    import logging

    from handlers.local.embedded import embedded_aws

    if not TEMPLATE.exists():
        out.write(f"stackherd demo: the game-server template {TEMPLATE} is missing\n")
        return 1
    for name in ("stackherd.engine", "stackherd.store", "stackherd.desired", "stackherd.requeue"):
        logging.getLogger(name).setLevel(logging.ERROR)
    env = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR", "STACKHERD_REQUEUE_QUEUE_URL": ""}
    demo = Demo(out)
    try:
        with embedded_aws(env):
            demo.run()
    except DemoFailedError as error:
        out.write(f"\nDEMO FAILED: {error}\n")
        return 1
    out.write("\nconverged: every tenant's account matches its desired records.\n")
    return 0


def main() -> int:
    """`stackherd-demo` (what `make demo` runs)."""
    import sys

    return run_demo(sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
