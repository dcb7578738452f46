"""`stackherd local`: the whole system on one machine, with no AWS account and no Docker.

One process holds a moto server on loopback (the embedded AWS: tables, the template bucket with the published
template, the queues, N tenants in N accounts), the HTTP API behind a local JWT authorizer
(`handlers.local.gateway`) and the triggers as event source mappings (`handlers.local.esm`): the desired
table's stream into `handlers.stream.handler`, the requeue queue into `handlers.requeue.handler`, the work
queue into `handlers.worker.handler`, and the schedule into `handlers.sweep.handler`.
Every handler is the real one, configured by the real settings pointing at the moto server.

The console gets one line per action (tenant, server, action, outcome) and per request. SIGINT or SIGTERM
stops everything: the HTTP server, the pollers, then moto; no thread, port or child process remains.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "sam" / "gameserver.yaml"
TEMPLATE_VERSION = "v1"
NAMES = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
)
REGION = "us-east-1"
#: The retries a queue message gets before its queue's RedrivePolicy moves it to the dead-letter queue
#: (the deployed template's default).
MAX_RECEIVE_COUNT = 5
LOCAL_REQUEUE_AFTER_S = 2
#: Short, so a message a handler failed comes back within seconds on a laptop (Lambda's is the function's timeout).
VISIBILITY_TIMEOUT_S = 10


def tenant_names(count: int) -> list[tuple[str, str]]:
    """`count` sample tenants, each with an account of its own: (tenant id, account id)."""
    tenants = []
    for index in range(count):
        name = NAMES[index] if index < len(NAMES) else f"tenant{index + 1}"
        account = str(index + 1) * 12 if index < 9 else f"{100000000000 + index:012d}"
        tenants.append((name, account))
    return tenants


@dataclass
class LocalOptions:
    port: int = 8080
    aws_port: int = 0
    tenants: int = 3
    sweep_every_s: float = 60.0
    host: str = "127.0.0.1"
    #: print a line for every successful read too (the dashboard reads every few seconds: off by default)
    report_reads: bool = False


@dataclass
class Endpoints:
    api: str
    aws: str
    dashboard: str
    admin_token: str
    tenants: list[tuple[str, str]] = field(default_factory=list)
    queues: dict[str, str] = field(default_factory=dict)


class Console:
    """One line per event, timestamped, written whole (threads share it)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        with self._lock:
            self.out.write(f"{stamp}  {text}\n")
            self.out.flush()


def report_actions(engine: Any, console: Console) -> None:
    """Print one line per action every reconcile of `engine` takes (a no-op is not an action), whichever
    trigger called it. The sweep reaches the same method, so wrapping it on the instance covers every pass."""
    original: Callable[..., Any] = engine.reconcile_tenant
    # A server failing or held the same way pass after pass is printed once, not on every pass.
    last: dict[tuple[str, str], str] = {}
    lock = threading.Lock()

    def say(tenant_id: str, server: str, text: str) -> None:
        with lock:
            if last.get((tenant_id, server)) == text:
                return
            last[(tenant_id, server)] = text
        console.line(f"{tenant_id:<10} {server:<14} {text}")

    def reconcile_tenant(tenant_id: str, *args: Any, **kwargs: Any) -> Any:
        result = original(tenant_id, *args, **kwargs)
        if kwargs.get("dry_run"):
            return result
        if result.error:
            say(tenant_id, "-", f"{'pass':<18} error: {result.error}")
        for outcome in result.results:
            action = outcome.action
            server = action.gameserver_id or action.stack_name
            if action.kind.value == "no-op":
                with lock:
                    last.pop((tenant_id, server), None)
                continue
            detail = f" ({outcome.detail})" if outcome.detail else ""
            say(tenant_id, server, f"{action.kind.value:<18} {outcome.outcome.value}{detail}")
        return result

    engine.reconcile_tenant = reconcile_tenant


class LocalRuntime:
    """Start with `start()`, stop with `stop()` (idempotent)."""

    def __init__(self, options: LocalOptions, out: IO[str]) -> None:
        self.options = options
        self.console = Console(out)
        self._moto: Any = None
        self._lambda: Any = None
        self._gateway: Any = None
        self._gateway_thread: threading.Thread | None = None
        self._pollers: list[Any] = []
        self.endpoints: Endpoints | None = None
        self.stream_mapping: Any = None

    # --- start ---------------------------------------------------------------------------------------

    def start(self) -> Endpoints:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Endpoints:
        from moto.server import ThreadedMotoServer

        from handlers.local.gateway import Gateway, LocalAuthorizer, signing_key

        if not TEMPLATE.exists():
            raise RuntimeError(f"the game-server template {TEMPLATE} is missing")
        options = self.options
        aws_port = options.aws_port or _free_port(options.host)
        aws = f"http://{options.host}:{aws_port}"
        # Before any handler module is imported: Powertools reads its settings when its logger is built.
        self._configure_environment(aws)
        # Bind the API's port first: a port in use is reported before anything else starts.
        from handlers.api.app import handler as api_handler

        authorizer = LocalAuthorizer(signing_key())
        self._gateway = Gateway(
            (options.host, options.port),
            api_handler,
            authorizer,
            report=self.console.line,
            report_reads=options.report_reads,
        )
        api_port = self._gateway.server_address[1]

        # moto binds in its own thread and would wait forever on a port in use: find out first.
        _check_free(options.host, aws_port)
        self._moto = ThreadedMotoServer(ip_address=options.host, port=aws_port, verbose=False)
        self._moto.start()
        from handlers.local.lambdas import LambdaEndpoint

        installation = os.environ.get("STACKHERD_INSTALLATION", "stackherd")
        self._lambda = LambdaEndpoint((options.host, 0), installation, report=self.console.line)
        threading.Thread(target=self._lambda.serve_forever, name="lambda", daemon=True).start()
        lambda_url = f"http://{options.host}:{self._lambda.server_address[1]}"
        # boto3 sends Lambda's calls here, and every other service's to moto.
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = lambda_url
        os.environ.setdefault("STACKHERD_WORKER_FUNCTION", f"{installation}-worker")
        queues = self._create_queues()
        os.environ["STACKHERD_REQUEUE_QUEUE_URL"] = queues["requeue"]
        os.environ["STACKHERD_WORK_QUEUE_URL"] = queues["work"]
        from handlers.runtime import reset_runtime, runtime

        reset_runtime()
        tenants = tenant_names(options.tenants)
        self._provision(tenants)
        report_actions(runtime().engine, self.console)
        self._start_triggers(queues)

        self._gateway_thread = threading.Thread(target=self._gateway.serve_forever, name="api", daemon=True)
        self._gateway_thread.start()
        api = f"http://{options.host}:{api_port}"
        token = authorizer.issue("local-admin", admin=True)
        self.endpoints = Endpoints(
            api=api,
            aws=aws,
            dashboard=f"{api}/dashboard#token={token}",
            admin_token=token,
            tenants=tenants,
            queues=queues,
        )
        return self.endpoints

    def _configure_environment(self, aws: str) -> None:
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": aws,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
            }
        )
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            os.environ.pop(name, None)
        # The console carries one line per action; metrics and INFO logs would bury them.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
        # moto finishes every stack operation at once: look again after seconds, not the deployed 30.
        os.environ.setdefault("STACKHERD_REQUEUE_AFTER_SECONDS", str(LOCAL_REQUEUE_AFTER_S))
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        for name in ("stackherd.engine", "stackherd.store", "stackherd.desired", "stackherd.requeue"):
            logging.getLogger(name).setLevel(logging.ERROR)

    def _create_queues(self) -> dict[str, str]:
        """The requeue delay queue, the stream's on-failure destination and the FIFO work queue; each queue a
        handler consumes has a dead-letter queue through its RedrivePolicy."""
        import json

        import boto3

        sqs = boto3.client("sqs", region_name=REGION)
        installation = os.environ.get("STACKHERD_INSTALLATION", "stackherd")

        def queue(name: str, dlq: str | None = None, **attributes: str) -> str:
            if dlq is not None:
                arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                attributes["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                )
            return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])  # type: ignore[arg-type]

        visibility = str(VISIBILITY_TIMEOUT_S)
        queues = {"requeue-dlq": queue(f"{installation}-requeue-dlq")}
        queues["requeue"] = queue(f"{installation}-requeue", queues["requeue-dlq"], VisibilityTimeout=visibility)
        queues["stream-failures"] = queue(f"{installation}-stream-failures")
        fifo = {"FifoQueue": "true"}
        queues["work-dlq"] = queue(f"{installation}-work-dlq.fifo", **fifo)
        queues["work"] = queue(f"{installation}-work.fifo", queues["work-dlq"], VisibilityTimeout=visibility, **fifo)
        return queues

    def _provision(self, tenants: list[tuple[str, str]]) -> None:
        from handlers.local.cli import main as cli

        steps = [["init"], ["templates", "publish", str(TEMPLATE), "--version", TEMPLATE_VERSION]]
        for index, (tenant, account) in enumerate(tenants):
            tier = ("premium", "standard", "free")[index % 3]
            steps.append(["tenants", "add", tenant, "--account", account, "--tier", tier])
        for argv in steps:
            buffer = io.StringIO()
            if cli(argv, out=buffer, door="local") != 0:
                raise RuntimeError(f"`stackherd {' '.join(argv)}` failed: {buffer.getvalue().strip()}")

    def _start_triggers(self, queues: dict[str, str]) -> None:
        import boto3

        from handlers.local.esm import (
            DynamoStreamReader,
            Poller,
            Schedule,
            SqsMapping,
            StreamMapping,
            load_handler,
            on_failure_to_sqs,
        )
        from handlers.runtime import runtime

        sqs = boto3.client("sqs", region_name=REGION)
        installation = runtime().settings.installation
        table = runtime().settings.gameservers_table
        stream_arn = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=table)["Table"][
            "LatestStreamArn"
        ]
        reader = DynamoStreamReader(boto3.client("dynamodbstreams", region_name=REGION), stream_arn, REGION)
        say = self.console.line
        self.stream_mapping = StreamMapping(
            reader,
            load_handler("handlers.stream.handler"),
            function_name=f"{installation}-stream",
            batch_size=100,
            maximum_retry_attempts=3,
            bisect_on_error=True,
            on_failure=on_failure_to_sqs(sqs, queues["stream-failures"]),
            report=say,
        )
        self._pollers.append(Poller("stream", self.stream_mapping, 0.5, say))
        requeue = SqsMapping(
            sqs, queues["requeue"], load_handler("handlers.requeue.handler"), f"{installation}-requeue", report=say
        )
        self._pollers.append(Poller("requeue", requeue, 0.2, say))
        worker = SqsMapping(
            sqs, queues["work"], load_handler("handlers.worker.handler"), f"{installation}-worker", report=say
        )
        self._pollers.append(Poller("worker", worker, 0.2, say))
        sweep = Schedule(load_handler("handlers.sweep.handler"), f"{installation}-sweep", report=say)
        sweep_poller = Poller("sweep", sweep, self.options.sweep_every_s, say)
        for poller in self._pollers:
            poller.start()
        sweep_poller.start(first_after=self.options.sweep_every_s)
        self._pollers.append(sweep_poller)

    # --- stop ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        for poller in self._pollers:  # all at once: each finishes the poll in hand
            poller.signal()
        if self._gateway is not None:
            if self._gateway_thread is not None:
                self._gateway.shutdown()
                self._gateway_thread.join(10)
            self._gateway.server_close()
            self._gateway = None
        for poller in self._pollers:
            poller.stop()
        self._pollers = []
        if self._lambda is not None:
            self._lambda.shutdown()
            self._lambda.server_close()
            self._lambda = None
        if self._moto is not None:
            self._moto.stop()
            server = getattr(self._moto, "_server", None)
            if server is not None:  # stop() leaves the listening socket open
                server.server_close()
            self._moto = None


def _check_free(host: str, port: int) -> None:
    """Raise OSError(EADDRINUSE) when something listens on the port."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def banner(endpoints: Endpoints) -> str:
    tenants = ", ".join(f"{t} (account {a})" for t, a in endpoints.tenants)
    return "\n".join(
        [
            "stackherd local is running (Ctrl-C stops it)",
            f"  API:        {endpoints.api}",
            f"  AWS (moto): {endpoints.aws}   e.g. aws --endpoint-url {endpoints.aws} dynamodb list-tables",
            f"  tenants:    {tenants}",
            f"  stream on-failure destination: {endpoints.queues['stream-failures']}",
            f"  dashboard:  {endpoints.dashboard}",
            "  a token:    stackherd token --tenant alpha --user ana   (add --admin for the admin routes)",
            "",
        ]
    )


def serve(options: LocalOptions, out: IO[str] | None = None) -> int:
    """Run until SIGINT or SIGTERM; 0 after a clean stop."""
    out = out or sys.stdout
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    local = LocalRuntime(options, out)
    started = time.monotonic()
    try:
        endpoints = local.start()
        out.write(banner(endpoints) + "\n")
        out.write(f"ready in {time.monotonic() - started:.1f} s\n")
        out.flush()
        while not stopping.wait(0.5):
            pass
        out.write("stopping...\n")
        out.flush()
    finally:
        local.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.write("stopped\n")
    out.flush()
    return 0
