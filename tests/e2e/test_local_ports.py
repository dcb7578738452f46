"""`stackherd local` refuses ports in use and bad arguments with one line and exit 1, never a traceback or a hang."""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.local_runtime import clean_env
from tests.e2e.moto_server import ROOT, free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("flag", ["--port", "--aws-port"])
def test_a_port_in_use_is_one_clear_line_and_exit_1(flag: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = free_port()
        ports = {"--port": other, "--aws-port": other, flag: port}
        done = subprocess.run(
            [sys.executable, "-m", "handlers.local.cli", "local", *[str(x) for kv in ports.items() for x in kv]],
            cwd=ROOT,
            env={**clean_env(), "STACKHERD_LOCAL_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "already in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tenants", "0"], "--tenants must be between 1 and 50"),
        (["--port", "70000"], "--port must be a port number"),
        (["--sweep-every", "0"], "--sweep-every must be between 1 and 86400"),
        (["--tenants", "many"], "invalid int value"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from handlers.local.cli import main

    # argparse refuses a value of the wrong type itself (exit 1); the CLI checks the ranges.
    with pytest.raises(SystemExit) if "invalid" in message else contextlib.nullcontext():
        assert main(["local", *argv], out=io.StringIO()) == 1
    assert message in capsys.readouterr().err
