"""The admin CLI run in-process against a moto server on loopback, as an operator runs it against a real
endpoint (the `endpoint` fixture in conftest.py aims the environment at the server)."""

from __future__ import annotations

import io

from handlers.local.cli import main
from tests.e2e.moto_server import ROOT

TEMPLATE = ROOT / "infra" / "sam" / "gameserver.yaml"
ACCOUNTS = {"alpha": "111111111111", "bravo": "222222222222", "charlie": "333333333333"}


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def ok(*argv: str) -> str:
    code, output = cli(*argv)
    assert code == 0, f"stackherd {' '.join(argv)} exited {code}: {output}"
    return output
