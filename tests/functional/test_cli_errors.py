"""The CLI's last line of defence: whatever goes wrong, one line on stderr and exit 1, no traceback."""

from __future__ import annotations

import io

import pytest

from handlers.local import cli


def test_an_unforeseen_error_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object) -> int:
        raise RuntimeError("the unforeseen")

    monkeypatch.setattr(cli, "cmd_tenants_list", broken)
    monkeypatch.delenv("STACKHERD_DEBUG", raising=False)

    assert cli.main(["tenants", "list"], out=io.StringIO()) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err == "stackherd: unexpected RuntimeError: the unforeseen (set STACKHERD_DEBUG=1 for the traceback)\n"


def test_stackherd_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> int:
        raise RuntimeError("the unforeseen")

    monkeypatch.setattr(cli, "cmd_tenants_list", broken)
    monkeypatch.setenv("STACKHERD_DEBUG", "1")

    with pytest.raises(RuntimeError, match="the unforeseen"):
        cli.main(["tenants", "list"], out=io.StringIO())
