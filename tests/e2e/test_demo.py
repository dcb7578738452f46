"""`make demo` (`stackherd-demo`) runs its whole scenario against `stackherd local` and exits 0 once converged."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.local_runtime import clean_env
from tests.e2e.moto_server import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_demo_converges_over_http_and_says_so() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handlers.local.demo"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "converged: every tenant's account matches its desired records." in output
    assert "DEMO FAILED" not in output
    # Players went through the API with tokens, and the runtime acted on it.
    assert "PUT /servers/arena -> 201" in output
    assert "bravo      island         update             done" in output
