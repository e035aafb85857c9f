"""Command-line contract shared by every command: errors become exit codes, never tracebacks."""

from __future__ import annotations

import pytest

from station import cli
from station.errors import Problem, StationError


def test_every_command_has_a_handler() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) <= set(cli.HANDLERS)


def test_station_error_becomes_exit_code(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def boom(args):
        raise StationError(
            [
                Problem("lot.csv", 3, 7, "serial", "not an integer"),
                Problem("lot.csv", 4, 1, "mac", "odd hex"),
            ]
        )

    monkeypatch.setattr(cli, "_handler", lambda command: boom)
    assert cli.main(["report", "x.toml"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "lot.csv:3:7: serial: not an integer",
        "lot.csv:4:1: mac: odd hex",
    ]
    assert "Traceback" not in err
