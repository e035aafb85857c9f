"""Fixtures for the mfg layer: a lot folder as the working directory, and the command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from station.cli import main


@pytest.fixture
def lotdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder that is also the working directory (mfg_gen reads files relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def station(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Runs ``station ARGS…``; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def files_under(folder: Path) -> dict[str, bytes]:
    """Relative path -> content of every file below ``folder``."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
