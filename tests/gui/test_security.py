"""The engineer PIN: a salted scrypt hash, checked in constant time, kept machine-wide (not in
the user's settings), at least 6 digits, wrong tries delayed more and more."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from station.cli import main
from station.gui.settings import DEMO_PIN, StationSettings
from station.production.engineer import (
    PIN_FILE_ENV,
    PinError,
    PinStore,
    check_pin,
    hash_pin,
    machine_pin_file,
    pin_problem,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hash_is_salted_and_checks() -> None:
    a, b = hash_pin("471100"), hash_pin("471100")
    assert a != b  # a fresh salt each time
    assert "471100" not in a
    assert check_pin("471100", a) and check_pin("471100", b)
    assert not check_pin("471200", a)
    assert not check_pin("", a)


def test_malformed_hashes_never_match() -> None:
    for stored in ("", "4711", "scrypt$x$8$1$00$00", "md5$1$1$1$00$00", "scrypt$16384$8$1$zz$00"):
        assert not check_pin("4711", stored)


@pytest.mark.parametrize("pin", ["", "1234", "12345", "12345a", "１２３４５６", "12 3456"])
def test_a_pin_needs_six_digits(pin: str, tmp_path: Path) -> None:
    assert pin_problem(pin) is not None
    store = PinStore(tmp_path / "pin")
    with pytest.raises(PinError, match="at least 6 digits"):
        store.set(pin)
    assert not store.has_pin


def test_the_demo_pin_is_a_valid_pin() -> None:
    assert pin_problem(DEMO_PIN) is None and DEMO_PIN == "123456"


def test_settings_keep_only_the_hash_and_not_in_the_user_settings(
    settings: StationSettings,
) -> None:
    assert not settings.has_pin
    settings.set_pin("246813")
    assert settings.has_pin
    stored = settings.pins.path.read_text(encoding="ascii")
    assert "246813" not in stored and stored.startswith("scrypt$")
    assert stat.S_IMODE(settings.pins.path.stat().st_mode) == 0o644
    assert settings.check_pin("246813")
    assert not settings.check_pin("135799")
    settings.sync()
    ini = Path(settings.qs.fileName()).read_text(encoding="utf-8")
    assert "pin" not in ini.lower() and "scrypt" not in ini


def test_deleting_the_user_settings_does_not_let_anyone_choose_a_new_pin(
    settings: StationSettings,
) -> None:
    """Today's hole: the hash was a line of the user's own settings file; deleting it let
    the station ask for a new PIN."""
    settings.set_pin("246813")
    settings.qs.clear()
    settings.sync()
    Path(settings.qs.fileName()).unlink()
    fresh = StationSettings(
        QSettings(settings.qs.fileName(), QSettings.Format.IniFormat), PinStore(settings.pins.path)
    )
    assert fresh.has_pin
    assert fresh.check_pin("246813")


def test_the_default_pin_file_is_machine_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PIN_FILE_ENV)
    path = machine_pin_file()
    if sys.platform == "win32":
        assert str(path).lower().startswith(os.environ["PROGRAMDATA"].lower())
    elif sys.platform == "darwin":
        assert path == Path("/Library/Application Support/station/engineer-pin")
    else:
        assert path == Path("/etc/station/engineer-pin")
    monkeypatch.setenv(PIN_FILE_ENV, "/somewhere/else/pin")
    assert machine_pin_file() == Path("/somewhere/else/pin")
    assert StationSettings(QSettings("x", "y")).pins.path == Path("/somewhere/else/pin")


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="needs a non-root POSIX user"
)
def test_a_pin_file_the_account_cannot_write_is_not_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    store = PinStore(folder / "engineer-pin")
    store.set("246813")
    folder.chmod(0o555)
    (folder / "engineer-pin").chmod(0o444)
    try:
        with pytest.raises(PinError, match="cannot change"):
            PinStore(folder / "engineer-pin").set("111111")
    finally:
        folder.chmod(0o755)
    assert store.check("246813")


def test_a_pin_file_that_cannot_be_made_is_a_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    store = PinStore(blocker / "engineer-pin")
    with pytest.raises(PinError, match=r"cannot change.*station engineer-pin"):
        store.set("246813")
    assert not store.has_pin


def test_an_unreadable_pin_file_still_counts_as_set(tmp_path: Path) -> None:
    """A PIN file this account cannot read must not let the window ask for a new PIN."""
    path = tmp_path / "engineer-pin"
    path.mkdir()  # unreadable as a file
    store = PinStore(path)
    assert store.has_pin and not store.check("246813")


def test_wrong_tries_wait_longer_and_longer(tmp_path: Path) -> None:
    clock = Clock()
    store = PinStore(tmp_path / "pin", clock=clock)
    store.set("246813")
    waits = []
    for _ in range(3):
        assert not store.check("000000")
        waits.append(store.wait())
    assert waits == [0.0, 0.0, 2.0]  # three free tries, then a delay
    assert not store.check("246813")  # during the delay even the right PIN is not checked
    assert store.wait() == 2.0
    clock.now += 2.0
    assert not store.check("000000")
    assert store.wait() == 4.0
    clock.now += 4.0
    assert not store.check("000000")
    assert store.wait() == 8.0
    for _ in range(20):
        clock.now += store.wait()
        assert not store.check("000000")
    assert store.wait() == 300.0  # capped at five minutes
    clock.now += 300.0
    assert store.check("246813")
    assert store.wait() == 0.0
    assert not store.check("000000") and store.wait() == 0.0  # a right PIN starts afresh


def test_engineer_pin_command_sets_the_machine_pin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["975310", "975310"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["engineer-pin"]) == 0
    assert PinStore().check("975310")
    answers = iter(["1234"])
    assert main(["engineer-pin"]) == 2
    assert "at least 6 digits" in capsys.readouterr().err
    assert PinStore().check("975310")


def test_settings_persist(settings: StationSettings) -> None:
    settings.ports = ["COM7", "socket://127.0.0.1:9001"]
    settings.baud = 921600
    settings.auto_start = False
    settings.scanner_port = "COM3"
    settings.sync()
    again = StationSettings(type(settings.qs)(settings.qs.fileName(), settings.qs.format()))
    assert again.ports == ["COM7", "socket://127.0.0.1:9001"]
    assert again.baud == 921600
    assert again.auto_start is False
    assert again.scanner_port == "COM3"
