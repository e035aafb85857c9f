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


# --- every command in README.md and docs/*.md runs as written ------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# positionals that take a plain word; every other one names a file or folder, so a bare word
# there is a sub-command that does not exist (e.g. `station partitions check`)
WORD_POSITIONALS = {"prefix"}


def _doc_commands() -> list[tuple[str, str]]:
    """(file:line, command) for each `station …` in a code block or a code span of the docs."""
    import re

    found = []
    for path in DOCS:
        fenced = False
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, start=1):
            where = f"{path.relative_to(ROOT)}:{n}"
            if fenced and line.rstrip().endswith("\\"):
                continue  # a shell line continued: read with the line that ends it
            while fenced and n >= 2 and lines[n - 2].rstrip().endswith("\\"):
                n -= 1
                line = lines[n - 1].rstrip()[:-1] + " " + line.strip()
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            pieces = [line] if fenced else re.findall(r"`([^`]+)`", line)
            for piece in pieces:
                for part in piece.split("&&"):
                    part = part.strip()
                    if re.match(r"^station(\s|$)", part):
                        found.append((where, part))
    return found


def _synopsis_to_args(command: str) -> list[str]:
    """A documented command as arguments: comments, [optional parts], "…" and alternatives
    ("a | b" or "a|b": the first) taken out; placeholders stay as they are."""
    import re
    import shlex

    text = re.sub(r"\s#\s.*$", "", command)  # a trailing comment
    while re.search(r"\[[^\[\]]*\]", text):  # optional parts, innermost first
        text = re.sub(r"\[[^\[\]]*\]", "", text)
    text = re.sub(r"\s*\\?\|\s*\S+", "", text)  # "a | b" -> "a"
    text = text.replace("…", " ").replace("...", " ")
    words = shlex.split(text, posix=True)[1:]
    return [w.split("|")[0] for w in words]


def _named_in_prose(parser: object, args: list[str], said: str) -> bool:
    """`station nvs --keygen` in a sentence: an existing command and options of it, without
    the arguments a real call needs."""
    if "the following arguments are required" not in said or not args:
        return False
    sub = next(a for a in parser._actions if a.dest == "command")  # type: ignore[attr-defined]
    command = sub.choices.get(args[0])
    if command is None:
        return False
    known = {o for a in command._actions for o in a.option_strings}
    return all(a in known for a in args[1:] if a.startswith("-"))


def test_the_docs_name_commands_that_exist() -> None:
    assert len(_doc_commands()) > 40  # the extraction finds the docs' commands


@pytest.mark.parametrize(("where", "command"), _doc_commands())
def test_every_documented_command_parses_as_written(where: str, command: str) -> None:
    import contextlib
    import io

    args = _synopsis_to_args(command)
    if args[:1] == ["-m"]:  # the frozen program runs a module: it must exist
        import importlib.util

        assert importlib.util.find_spec(args[1]) is not None, f"{where}: {command}"
        return
    parser = cli.build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ns = parser.parse_args(args)
        except SystemExit as exit_:
            # a command named in prose (`station run`) may leave out its required arguments
            said = err.getvalue()
            assert exit_.code == 0 or _named_in_prose(parser, args, said), (
                f"{where}: {command}\n{said}"
            )
            return
    sub = next(a for a in parser._actions if a.dest == "command")
    if ns.command is None:
        return
    for action in sub.choices[ns.command]._actions:  # type: ignore[index]
        if action.option_strings or action.dest not in vars(ns):
            continue
        values = getattr(ns, action.dest)
        for value in values if isinstance(values, list) else [values]:
            if value is None or action.dest in WORD_POSITIONALS:
                continue
            if action.choices is not None and value in action.choices:
                continue  # one of the words it takes (`station ledger check`)
            text = str(value)
            looks_like_a_placeholder = text.isupper() or text.upper() == text
            looks_like_a_path = any(c in text for c in "./\\~") or text.startswith("0x")
            assert looks_like_a_placeholder or looks_like_a_path or text.isdigit(), (
                f"{where}: {command}: {action.dest} = {text!r} is neither a file nor a placeholder "
                "(a sub-command that does not exist?)"
            )


def test_every_command_answers_help() -> None:
    """`--help` of each command (the level at which a hardware command is run here)."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in [None, *sub.choices]:
        argv = ["--help"] if name is None else [name, "--help"]
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 0, name


def test_documented_scripts_exist() -> None:
    import re

    for path in DOCS:
        for script in re.findall(r"python (tests/[\w/]+\.py)", path.read_text(encoding="utf-8")):
            assert (ROOT / script).is_file(), f"{path.name}: {script}"
        for name in re.findall(r"`(bench_\w+\.py)`", path.read_text(encoding="utf-8")):
            assert (ROOT / "tests" / "bench" / name).is_file(), f"{path.name}: {name}"


# commands that need a device, a display, minutes, a person at the keyboard (engineer-pin) or a
# lot with a production history (ledger): checked above at the parser's level only
NEEDS_HARDWARE = {"run", "flash", "gui", "engineer-pin", "ledger"}


def _runnable_doc_commands() -> list[tuple[str, list[str]]]:
    """Documented commands whose files all exist in the sample lot's folder: run for real."""
    import contextlib
    import io

    sample = ROOT / "resources" / "sample_lot"
    runnable = []
    for where, command in _doc_commands():
        args = _synopsis_to_args(command)
        if not args or args[0] in NEEDS_HARDWARE or args[0].startswith("-"):
            continue
        if any(a.isalpha() and a.isupper() for a in args) or args in [r[1] for r in runnable]:
            continue  # a synopsis (LOT, TABLE; checked by the parser test), or run already
        parser = cli.build_parser()
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                ns = parser.parse_args(args)
        except SystemExit:
            continue  # named in prose: checked by the parser test
        words = [a for a in args[1:] if not a.startswith("-")]
        files = [a for a in words if ("." in a or "/" in a) and a != "out.csv"]
        options_with_files = ("--inputkey", "--key", "--kp_hmac_inputkey", "--slots", "--firmware")
        if any(getattr(ns, o.lstrip("-"), None) for o in options_with_files):
            continue
        if all((sample / f).exists() for f in files if not f.startswith("0x")):
            runnable.append((where, args))
    return runnable


def test_some_documented_commands_run_for_real() -> None:
    assert len(_runnable_doc_commands()) >= 5


@pytest.mark.parametrize(("where", "args"), _runnable_doc_commands())
def test_documented_commands_run_on_the_sample_lot(
    where: str, args: list[str], tmp_path: Path
) -> None:
    """Run as written, in a copy of the sample lot's folder (its files are the docs' names)."""
    import shutil

    shutil.copytree(ROOT / "resources" / "sample_lot", tmp_path / "lot")
    if args[0] == "report":  # a report reads the ledger production made; it never makes one
        from station.production import open_lot

        with open_lot(tmp_path / "lot" / "lot.toml"):
            pass
    done = subprocess.run(
        [sys.executable, "-m", "station", *args],
        cwd=tmp_path / "lot",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{where}: station {' '.join(args)}\n{done.stderr}"
    assert "Traceback" not in done.stderr
