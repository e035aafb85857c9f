"""The security layer's step journal in the ledger, on SQLite and (where a server is given with
``STATION_TEST_POSTGRES``) on PostgreSQL: key hashes first-wins, steps begun then done per
device, shared between two ledger connections (two stations)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from station.ledger import Ledger, LedgerRow
from station.ledger.security_steps import LedgerJournal


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "lot.station.db")
    return str(request.getfixturevalue("pg_schema_url"))


def open_ledger(url: str) -> Ledger:
    led = Ledger(url, station_id="st1")
    rows = [LedgerRow(i, i + 2, f"SN{i}", f"SN{i}", [f"SN{i}"]) for i in range(3)]
    led.import_lot("L1", "r", rows)
    return led


def test_keys_and_steps_are_recorded(ledger_url: str) -> None:
    led = open_ledger(ledger_url)
    j = LedgerJournal(led)
    a, b = "a" * 64, "b" * 64
    assert j.record_key("SN0", "xts", a) == a
    assert j.record_key("SN0", "xts", b) == a  # the first record wins: a changed file is caught
    assert j.record_key("SN1", "xts", b) == b
    assert j.steps("24:0a:c4:00:00:01") == {}
    j.begin("SN0", "24:0a:c4:00:00:01", "flash_encryption.key")
    assert j.steps("24:0a:c4:00:00:01") == {"flash_encryption.key": "begun"}
    j.begin("SN0", "24:0a:c4:00:00:01", "flash_encryption.key")  # a resume: one record
    j.done("SN0", "24:0a:c4:00:00:01", "flash_encryption.key")
    j.begin("SN0", "24:0a:c4:00:00:01", "flash_encryption.enable")
    assert j.steps("24:0a:c4:00:00:01") == {
        "flash_encryption.key": "done",
        "flash_encryption.enable": "begun",
    }
    j.begin("SN0", "24:0a:c4:00:00:01", "flash_encryption.key")  # never undoes "done"
    assert j.steps("24:0a:c4:00:00:01")["flash_encryption.key"] == "done"
    assert j.devices() == {"24:0a:c4:00:00:01": "SN0"}
    assert j.keys() == {("SN0", "xts"): a, ("SN1", "xts"): b}
    history = j.history()
    assert [(m, u, s, st) for m, u, s, st, _, _ in history] == [
        ("24:0a:c4:00:00:01", "SN0", "flash_encryption.key", "done"),
        ("24:0a:c4:00:00:01", "SN0", "flash_encryption.enable", "begun"),
    ]
    assert history[0][5] is not None and history[1][5] is None

    # another station (another connection, the tables made already) sees the same records
    other = Ledger(ledger_url, station_id="st2")
    other.attach("L1")
    j2 = LedgerJournal(other)
    assert j2.steps("24:0a:c4:00:00:01")["flash_encryption.key"] == "done"
    assert j2.record_key("SN0", "xts", b) == a
    other.close()
    led.close()


def test_the_records_survive_reopening(ledger_url: str) -> None:
    led = open_ledger(ledger_url)
    LedgerJournal(led).begin("SN2", "m", "secure_boot.digest0")
    led.close()
    again = open_ledger(ledger_url)
    assert LedgerJournal(again).steps("m") == {"secure_boot.digest0": "begun"}
    again.close()


def test_concurrent_first_records_agree(ledger_url: str) -> None:
    """Two threads (two connections) recording a unit's key at once: one hash wins for both."""
    led = open_ledger(ledger_url)
    j = LedgerJournal(led)
    got: list[str] = []
    lock = threading.Lock()

    def record(h: str) -> None:
        r = j.record_key("SN1", "hmac", h)
        with lock:
            got.append(r)
        led.release_thread()

    threads = [threading.Thread(target=record, args=(c * 64,)) for c in "cdef"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got) == 4
    led.close()
