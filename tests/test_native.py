"""station.native: glibc's malloc arenas are capped in the station and its device host, and the
cap is harmless where there is no glibc."""

from __future__ import annotations

import subprocess
import sys

import pytest

from station import native


@pytest.mark.skipif(not native.is_glibc(), reason="glibc only")
def test_the_arena_cap_is_applied_on_glibc() -> None:
    # in a fresh process, as the station does at start
    code = "from station.native import limit_malloc_arenas; print(limit_malloc_arenas())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "True"


def test_elsewhere_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native.sys, "platform", "win32")
    assert native.limit_malloc_arenas() is False
    monkeypatch.setattr(native.sys, "platform", "darwin")
    assert native.limit_malloc_arenas() is False


def test_a_missing_c_library_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(*_: object, **__: object) -> object:
        raise OSError("no such library")

    monkeypatch.setattr(native, "is_glibc", lambda: True)
    monkeypatch.setattr(native.ctypes, "CDLL", no_libc)
    assert native.limit_malloc_arenas() is False


def test_children_get_the_cap_unless_the_user_set_one() -> None:
    assert native.child_environment({"A": "1"}) == {"A": "1", "MALLOC_ARENA_MAX": "2"}
    assert native.child_environment({"MALLOC_ARENA_MAX": "4"}) == {"MALLOC_ARENA_MAX": "4"}


def test_the_device_host_runs_with_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from station.flashing.host import _environment

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert _environment()["MALLOC_ARENA_MAX"] == "2"


def test_the_station_caps_its_arenas_before_anything_else(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from station import cli

    calls: list[str] = []
    monkeypatch.setattr(cli, "limit_malloc_arenas", lambda: calls.append("capped") or True)
    assert cli.main(["partitions", "/nonexistent/partitions.csv"]) == 2
    capsys.readouterr()
    assert calls == ["capped"]
