"""`stackherd-demo` (`make demo`): the whole system on one machine (`stackherd local`), driven as a real client.

It starts the local runtime (moto, the HTTP API behind the JWT authorizer, the stream, requeue and sweep
triggers) on free ports, then plays players and an operator over HTTP with tokens: five game servers in three
tenants' accounts, a config change, drift and a deleted stack made by hand with boto3 in a tenant account, a
deleted server, and a stack that is not ours, which must survive. It waits for phases through the API only, and
exits non-zero unless everything converged.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import IO, Any

from handlers.local.runner import TEMPLATE

TENANTS = (("alpha", "111111111111"), ("bravo", "222222222222"), ("charlie", "333333333333"))
SERVERS = (
    ("alpha", "arena", "ana", {"difficulty": "hard", "player_count": 8, "seed": "lava42"}),
    ("alpha", "lobby", "ana", {"difficulty": "peaceful"}),
    ("bravo", "castle", "ben", {"difficulty": "normal", "player_count": 16, "seed": "moat"}),
    ("bravo", "island", "bea", {"difficulty": "easy", "player_count": 4}),
    ("charlie", "citadel", "cy", {"difficulty": "hard", "player_count": 8, "seed": "x9"}),
)
FOREIGN = ("333333333333", "legacy-billing")  # a stack the tenant made itself: never ours to touch
WAIT_S = 90


class DemoFailedError(Exception):
    pass


class Client:
    """The API over HTTP, with a bearer token per caller."""

    def __init__(self, api: str, tokens: Callable[[str, str | None, bool], str]) -> None:
        self.api = api
        self.tokens = tokens

    def call(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


class Demo:
    def __init__(self, out: IO[str], client: Client, aws: str) -> None:
        self.out = out
        self.client = client
        self.aws = aws
        self.step_no = 0
        self.admin = client.tokens("operator", None, True)

    def step(self, title: str) -> None:
        self.step_no += 1
        self.out.write(f"\n==> {self.step_no}. {title}\n")
        self.out.flush()

    def say(self, text: str) -> None:
        self.out.write(f"    {text}\n")
        self.out.flush()

    def player(self, tenant: str, user: str) -> str:
        return self.client.tokens(user, tenant, False)

    def cfn(self, account: str) -> Any:
        """CloudFormation inside a tenant's account on the runtime's moto (moto maps assumed roles to accounts)."""
        import boto3

        base = {"region_name": "us-east-1", "endpoint_url": self.aws}
        creds = boto3.client("sts", **base).assume_role(  # type: ignore[call-overload]
            RoleArn=f"arn:aws:iam::{account}:role/OperatorByHand", RoleSessionName="by-hand"
        )["Credentials"]
        return boto3.client(  # type: ignore[call-overload]
            "cloudformation",
            **base,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def stacks(self, account: str) -> dict[str, dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(5):
            try:
                found = self.cfn(account).describe_stacks()["Stacks"]
                return {s["StackName"]: s for s in found if s["StackStatus"] != "DELETE_COMPLETE"}
            except (BotoCoreError, ClientError):
                # moto's server may answer a read that races a stack operation with a 500; look again.
                if attempt == 4:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def must(self, expected: int, method: str, path: str, token: str, body: Any = None) -> Any:
        status, answer = self.client.call(method, path, token, body)
        if status != expected:
            raise DemoFailedError(f"{method} {path} answered {status}, not {expected}: {answer}")
        return answer

    def wait(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + WAIT_S
        started = time.monotonic()
        while time.monotonic() < deadline:
            found = check()
            if found:
                self.say(f"{what}: after {time.monotonic() - started:.1f} s")
                return found
            time.sleep(0.25)
        raise DemoFailedError(f"{what}: not within {WAIT_S} s")

    def phase(self, tenant: str, user: str, server: str) -> tuple[str, int, int] | None:
        status, body = self.client.call("GET", f"/servers/{server}", self.player(tenant, user))
        if status != 200:
            return None
        return body["status"]["phase"], body["generation"], body["status"]["observed_generation"]

    def converged(self, tenant: str, user: str, server: str) -> bool:
        found = self.phase(tenant, user, server)
        return found is not None and found[0] == "Ready" and found[1] == found[2]

    def wait_ready(self, tenant: str, user: str, server: str) -> None:
        self.wait(f"{tenant}/{server} Ready", lambda: self.converged(tenant, user, server))

    def run(self) -> None:
        self.step("charlie's account already holds a stack of its own (no stackherd tags)")
        self.cfn(FOREIGN[0]).create_stack(
            StackName=FOREIGN[1],
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[
                {"ParameterKey": k, "ParameterValue": v}
                for k, v in {"Difficulty": "easy", "PlayerCount": "2", "Seed": "theirs"}.items()
            ],
        )
        self.say(f"{FOREIGN[1]} in account {FOREIGN[0]}")

        self.step("players ask for five game servers over HTTP (PUT /servers/<id> with their tokens)")
        for tenant, server, user, config in SERVERS:
            self.must(201, "PUT", f"/servers/{server}", self.player(tenant, user), {"config": config})
            self.say(f"{user}@{tenant}: PUT /servers/{server} -> 201")
        self.step("the stream triggers reconciles; the requeue looks again; every server reaches Ready")
        for tenant, server, user, _ in SERVERS:
            self.wait_ready(tenant, user, server)

        self.step("a player changes a config (a MODIFY on the stream): only that stack is updated")
        self.must(
            200,
            "PUT",
            "/servers/castle",
            self.player("bravo", "ben"),
            {"config": {"difficulty": "hard", "seed": "moat"}},
        )
        self.wait("bravo/castle Ready at generation 2", lambda: self.phase("bravo", "ben", "castle") == ("Ready", 2, 2))
        self.expect_parameter("222222222222", "stackherd-bravo-castle", "Difficulty", "hard")

        self.step("someone changes a parameter by hand, and deletes a stack by hand (boto3 in the tenant accounts)")
        bravo = self.cfn("222222222222")
        stack = bravo.describe_stacks(StackName="stackherd-bravo-island")["Stacks"][0]
        bravo.update_stack(
            StackName="stackherd-bravo-island",
            TemplateBody=TEMPLATE.read_text(),
            Parameters=[
                {"ParameterKey": "Difficulty", "ParameterValue": "hard"},
                {"ParameterKey": "PlayerCount", "ParameterValue": "4"},
                {"ParameterKey": "Seed", "ParameterValue": "default"},
            ],
            Tags=stack["Tags"],
        )
        self.say("bravo/island: Difficulty changed to 'hard' by hand")
        self.cfn("111111111111").delete_stack(StackName="stackherd-alpha-lobby")
        self.say("alpha/lobby: stack deleted by hand")
        self.step("the scheduled sweep finds both and repairs them")
        self.wait(
            "bravo/island's Difficulty back to easy",
            lambda: _params(self.stacks("222222222222").get("stackherd-bravo-island")).get("Difficulty") == "easy",
        )
        self.wait("alpha/lobby's stack back", lambda: "stackherd-alpha-lobby" in self.stacks("111111111111"))
        self.wait_ready("bravo", "bea", "island")
        self.wait_ready("alpha", "ana", "lobby")

        self.step("a player deletes a server: the stack goes, then the record")
        self.must(202, "DELETE", "/servers/arena", self.player("alpha", "ana"))
        self.wait("alpha/arena's stack gone", lambda: "stackherd-alpha-arena" not in self.stacks("111111111111"))
        self.wait("alpha/arena's record gone (404)", lambda: self.phase("alpha", "ana", "arena") is None)

        self.step("an admin's dry run of every tenant plans nothing (GET /tenants/<id>/plan)")
        self.verify()

    def expect_parameter(self, account: str, stack: str, key: str, value: str) -> None:
        found = _params(self.stacks(account).get(stack)).get(key)
        if found != value:
            raise DemoFailedError(f"{stack}: {key} is {found!r}, not {value!r}")
        self.say(f"{stack}: {key}={value}")

    def verify(self) -> None:
        problems: list[str] = []
        for tenant, account in TENANTS:
            plan = self.must(200, "GET", f"/tenants/{tenant}/plan", self.admin)
            if plan["verdict"] != "in_sync":
                pending = [a for a in plan["actions"] if a["kind"] != "no-op"]
                problems.append(f"{tenant} is {plan['verdict']}: {pending or plan.get('error')}")
            servers = self.must(200, "GET", f"/tenants/{tenant}/servers?limit=100", self.admin)["items"]
            stacks = self.stacks(account)
            for server in servers:
                name = f"stackherd-{tenant}-{server['gameserver_id']}"
                if name not in stacks:
                    problems.append(f"{name} is missing from account {account}")
                if server["status"]["phase"] != "Ready":
                    problems.append(f"{tenant}/{server['gameserver_id']} is {server['status']['phase']}")
            owned = {n for n, s in stacks.items() if _tag(s, "stackherd:tenant") == tenant}
            expected = {f"stackherd-{tenant}-{s['gameserver_id']}" for s in servers}
            if owned != expected:
                problems.append(f"account {account} holds stacks {sorted(owned)}, expected {sorted(expected)}")
            foreign = {n for n, s in stacks.items() if _tag(s, "stackherd:tenant") not in (None, tenant)}
            if foreign:
                problems.append(f"account {account} holds another tenant's stacks: {sorted(foreign)}")
            self.say(f"{tenant}: {len(servers)} servers, {len(owned)} stacks, nothing to do")
        account, name = FOREIGN
        if name not in self.stacks(account):
            problems.append(f"the tenant's own stack {name} was touched")
        if problems:
            raise DemoFailedError("; ".join(problems))
        self.say(f"the tenant's own stack {name} was left alone")


def _params(stack: dict[str, Any] | None) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in (stack or {}).get("Parameters", [])}


def _tag(stack: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in stack.get("Tags", []) if t["Key"] == key), None)


def run_demo(out: IO[str]) -> int:
    import os

    from handlers.local.gateway import LocalAuthorizer, signing_key
    from handlers.local.runner import LocalOptions, LocalRuntime, banner

    if not TEMPLATE.exists():
        out.write(f"stackherd demo: the game-server template {TEMPLATE} is missing\n")
        return 1
    with tempfile.TemporaryDirectory(prefix="stackherd-demo-") as state:
        os.environ["STACKHERD_LOCAL_DIR"] = state
        local = LocalRuntime(LocalOptions(port=0, tenants=len(TENANTS), sweep_every_s=3), out)
        try:
            endpoints = local.start()
            out.write(banner(endpoints) + "\n")
            authorizer = LocalAuthorizer(signing_key())

            def tokens(user: str, tenant: str | None, admin: bool) -> str:
                return authorizer.issue(user, tenant, admin=admin)

            Demo(out, Client(endpoints.api, tokens), endpoints.aws).run()
        except DemoFailedError as error:
            out.write(f"\nDEMO FAILED: {error}\n")
            return 1
        finally:
            local.stop()
    out.write("\nconverged: every tenant's account matches its desired records.\n")
    return 0


def main() -> int:
    """`stackherd-demo` (what `make demo` runs)."""
    import sys

    return run_demo(sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
