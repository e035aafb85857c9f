"""Command-line contract shared by every command: errors become exit codes, never tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from station import cli
from station.errors import Problem, StationError

ROOT = Path(__file__).resolve().parents[1]


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


# --- first start: `pip install .` without the GUI extra ------------------------------------------


@pytest.mark.parametrize("argv", [[], ["gui"], ["--demo"], ["gui", "--demo"]])
def test_the_window_without_the_gui_extra_says_what_to_install(argv: list[str]) -> None:
    # a child without PySide6 (as after `pip install .`): this process has Qt loaded already
    prog = (
        "import sys; sys.modules['PySide6'] = None; from station.cli import main; "
        "raise SystemExit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", prog, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'station[gui]'" in done.stderr
    assert "Traceback" not in done.stderr and "ModuleNotFoundError" not in done.stderr


def test_an_unrelated_missing_module_is_not_blamed_on_the_extra() -> None:
    assert cli.missing_gui_extra(ModuleNotFoundError("x", name="PySide6.QtCore")) == "PySide6"
    assert cli.missing_gui_extra(ModuleNotFoundError("x", name="segno")) == "segno"
    assert cli.missing_gui_extra(ModuleNotFoundError("x", name="esptool")) is None
