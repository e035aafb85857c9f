"""The engineer PIN is stored as a salted scrypt hash and checked in constant time."""

from __future__ import annotations

from station.gui.security import check_pin, hash_pin
from station.gui.settings import StationSettings


def test_hash_is_salted_and_checks() -> None:
    a, b = hash_pin("4711"), hash_pin("4711")
    assert a != b  # a fresh salt each time
    assert "4711" not in a
    assert check_pin("4711", a) and check_pin("4711", b)
    assert not check_pin("4712", a)
    assert not check_pin("", a)


def test_malformed_hashes_never_match() -> None:
    for stored in ("", "4711", "scrypt$x$8$1$00$00", "md5$1$1$1$00$00", "scrypt$16384$8$1$zz$00"):
        assert not check_pin("4711", stored)


def test_settings_keep_only_the_hash(settings: StationSettings) -> None:
    assert not settings.has_pin
    settings.set_pin("2468")
    assert settings.has_pin
    stored = settings.qs.value("security/pin_hash")
    assert isinstance(stored, str) and "2468" not in stored and stored.startswith("scrypt$")
    assert settings.check_pin("2468")
    assert not settings.check_pin("1357")


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
