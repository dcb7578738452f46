"""Lambda's Invoke API on loopback, for handlers that invoke other functions (a plan asked of the worker, a
dispatcher handing the rest of its work on to itself): boto3 reaches it through `AWS_ENDPOINT_URL_LAMBDA`,
moto's own Lambda needing Docker to run anything.

`POST /2015-03-31/functions/<name or ARN>/invocations` runs the named function's handler: synchronously for
`RequestResponse` (200 with its result; an exception becomes `X-Amz-Function-Error: Unhandled` with Lambda's
error body), on a thread for `Event` (202), not at all for `DryRun` (204). A function is known by its
deployed name (`<installation>-worker`) or its bare one (`worker`).
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

#: The functions of a deployment, by the suffix of their name, and their handlers.
FUNCTIONS = {
    "stream": "handlers.stream.handler",
    "sweep": "handlers.sweep.handler",
    "requeue": "handlers.requeue.handler",
    "admin": "handlers.admin.handler",
    "worker": "handlers.worker.handler",
}
_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


def function_name(raw: str) -> str:
    """The name in a function name, a partial or full ARN, with any version or alias dropped."""
    name = unquote(raw)
    if ":function:" in name:
        name = name.split(":function:", 1)[1]
    elif name.startswith("function:"):
        name = name[len("function:") :]
    return name.split(":", 1)[0]


class LambdaEndpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        installation: str,
        functions: Mapping[str, str] = FUNCTIONS,
        report: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(address, _InvokeHandler)
        self.installation = installation
        self.functions = dict(functions)
        self.report = report
        self.threads: list[threading.Thread] = []

    def resolve(self, name: str) -> str | None:
        bare = name.removeprefix(f"{self.installation}-")
        return self.functions.get(bare)

    def invoke(self, name: str, payload: Any) -> Any:
        from handlers.local.esm import InvocationContext, load_handler

        dotted = self.resolve(name)
        if dotted is None:
            raise LookupError(name)
        return load_handler(dotted)(payload, InvocationContext(name))


class _InvokeHandler(BaseHTTPRequestHandler):
    server: LambdaEndpoint
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        match = _PATH.match(self.path.split("?", 1)[0])
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if match is None:
            self._send(404, {"Type": "User", "message": f"unknown path {self.path}"}, error="UnknownOperationException")
            return
        name = function_name(match.group(1))
        if self.server.resolve(name) is None:
            self._send(
                404,
                {"Type": "User", "Message": f"Function not found: {name}"},
                error="ResourceNotFoundException",
            )
            return
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            self._send(
                400, {"Type": "User", "message": "the payload is not JSON"}, error="InvalidRequestContentException"
            )
            return
        kind = self.headers.get("x-amz-invocation-type") or "RequestResponse"
        if kind == "DryRun":
            self._send(204, None)
            return
        if kind == "Event":
            thread = threading.Thread(target=self._run_async, args=(name, payload), name=f"invoke-{name}", daemon=True)
            self.server.threads.append(thread)
            thread.start()
            self._send(202, None)
            return
        try:
            result = self.server.invoke(name, payload)
        except Exception as error:
            body = {
                "errorMessage": str(error),
                "errorType": type(error).__name__,
                "stackTrace": traceback.format_tb(error.__traceback__),
            }
            self._send(200, body, headers={"X-Amz-Function-Error": "Unhandled"})
            return
        self._send(200, result)

    def _run_async(self, name: str, payload: Any) -> None:
        try:
            self.server.invoke(name, payload)
        except Exception as error:  # an asynchronous invocation's error goes to the log, as on Lambda
            if self.server.report is not None:
                self.server.report(f"{name}: asynchronous invocation failed: {type(error).__name__}: {error}")

    def _send(self, status: int, body: Any, *, error: str | None = None, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None and status in (202, 204) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Amz-Executed-Version", "$LATEST")
        if error is not None:
            self.send_header("X-Amzn-ErrorType", error)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the invoked handlers' actions are reported by the runtime."""
