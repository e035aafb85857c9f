"""No claim gets stuck (a run is host + PID + start time), and every state of a ledger file
that cannot be used gets its own message (never "delete it")."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from station.cli import main
from station.errors import StationError
from station.ledger import ClaimOfAnotherStation, ClaimRefused, Ledger, LedgerRow
from station.ledger.lotfiles import Journal, JournalEntry, last_seq, read_journal
from station.production import open_lot
from tests.production.conftest import make_small_lot

ROWS = [LedgerRow(i, i + 2, f"SN{i}", f"SN{i}", [f"SN{i}", "x"]) for i in range(5)]


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not a station run (it has some PID and its own start time)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


def add_run(db: Path, run_id: str, pid: int, started: float | None, host: str = "") -> None:
    con = sqlite3.connect(db)
    con.execute(
        "INSERT INTO runs (id, lot_id, station_id, host, pid, started_at, proc_started)"
        " VALUES (?, 1, 'st', ?, ?, 0, ?)",
        (run_id, host or socket.gethostname(), pid, started),
    )
    con.commit()
    con.close()


def ledger_with_claim(tmp_path: Path, run_id: str) -> Ledger:
    led = Ledger(tmp_path / "l.db")
    led.import_lot("L", "r", ROWS)
    c = led.claim_next(mac="24:0a:c4:00:00:01", port="p1", run_id=run_id)
    assert c is not None
    led.set_image(c, "ab" * 32)
    return led


def test_a_reused_pid_does_not_keep_a_dead_runs_claim(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    """The run's PID now belongs to another process (as after a reboot): the run is dead."""
    led = ledger_with_claim(tmp_path, "dead-run")
    started = psutil.Process(other_process.pid).create_time()
    add_run(tmp_path / "l.db", "dead-run", other_process.pid, started - 3600.0)
    (rec,) = led.recover()
    assert rec.attempt.run_id == "dead-run" and rec.row_state == "failed"
    r = led.row(0)
    assert (r.state, r.mac) == ("failed", "24:0a:c4:00:00:01")
    led.close()


def test_a_live_run_keeps_its_claim_and_cannot_be_released(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    led = ledger_with_claim(tmp_path, "live-run")
    started = psutil.Process(other_process.pid).create_time()
    add_run(tmp_path / "l.db", "live-run", other_process.pid, started)
    assert led.recover() == []
    with pytest.raises(ClaimRefused, match=r"right now \(run on .*alive\)"):
        led.release(0, "stuck?", "boss")
    assert led.row(0).state == "claimed"
    led.close()


def test_a_supervisor_releases_a_dead_runs_claim(
    tmp_path: Path, other_process: subprocess.Popen[bytes]
) -> None:
    led = ledger_with_claim(tmp_path, "dead-run")
    add_run(tmp_path / "l.db", "dead-run", other_process.pid, 1.0)
    led.release(0, "board lost", "boss")
    r = led.row(0)
    assert (r.state, r.mac) == ("pending", None)
    (a,) = led.attempts(0)
    assert a.result == "interrupted" and "released by boss: board lost" in a.reason
    audit = led.audit_log()[-1]
    assert audit.action == "release" and audit.operator == "boss"
    assert "not alive" in audit.detail
    led.close()


def test_another_hosts_claim_needs_the_supervisors_word(tmp_path: Path) -> None:
    led = ledger_with_claim(tmp_path, "far-run")
    add_run(tmp_path / "l.db", "far-run", 4242, 1.0, host="line-pc-7")
    assert led.recover() == []  # only that host can tell whether its run is alive
    with pytest.raises(ClaimOfAnotherStation, match=r"line-pc-7.*--station-gone"):
        led.release(0, "pc died", "boss")
    led.release(0, "pc died", "boss", station_gone=True)
    assert led.row(0).state == "pending"
    led.close()


def test_station_ledger_release_frees_a_stuck_claim(
    tmp_path: Path, other_process: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    lot = make_small_lot(tmp_path / "lot", 3, name="REL")
    with open_lot(lot) as opened:
        c = opened.ledger.claim_next(mac="24:0a:c4:00:00:09", port="p", run_id="gone")
        assert c is not None
        opened.ledger.set_image(c, "cd" * 32)
    add_run(lot.parent / "REL.station.db", "gone", other_process.pid, 1.0, host="line-pc-2")
    args = ["ledger", "release", str(lot), "SN0001", "--reason", "pc scrapped"]
    assert main([*args, "--operator", "boss"]) == 2
    assert "--station-gone" in capsys.readouterr().err
    assert main([*args, "--operator", "boss", "--station-gone"]) == 0
    assert "row 1 (SN0001) released (was claimed on 24:0a:c4:00:00:09)" in capsys.readouterr().out
    with open_lot(lot) as opened:
        assert opened.ledger.row(0).state == "pending"
    # the journal has the release; the ledger and the journal agree
    assert main(["ledger", "check", str(lot)]) == 0


# --- ledger files the station cannot use --------------------------------------------------
def messages(err: pytest.ExceptionInfo[StationError]) -> str:
    text = "\n".join(str(p) for p in err.value.problems)
    assert "delete" not in text.lower()
    return text


def made_ledger(tmp_path: Path, rows: int = 5) -> Path:
    db = tmp_path / "l.db"
    led = Ledger(db)
    led.import_lot("L", "r", [LedgerRow(i, i, f"SN{i:06d}", None, [str(i)]) for i in range(rows)])
    led.close()
    return db


def test_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = made_ledger(tmp_path)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: mode != os.W_OK and real(p, mode))
    with pytest.raises(StationError) as err:
        Ledger(db)
    assert "the ledger is read-only" in messages(err)


def test_read_only_as_sqlite_says_it(tmp_path: Path) -> None:
    from station.ledger.ledger import sqlite_state

    db = made_ledger(tmp_path)
    err = sqlite3.OperationalError("attempt to write a readonly database")
    assert sqlite_state(db, err).startswith("is read-only")


def test_disk_full_on_first_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's own "database or disk is full" (a page limit stands in for the disk)."""
    real = Ledger._connect

    def small_disk(self: Ledger) -> Any:
        con = real(self)
        con.execute("PRAGMA max_page_count=2")
        return con

    monkeypatch.setattr(Ledger, "_connect", small_disk)
    with pytest.raises(StationError) as err:
        Ledger(tmp_path / "l.db")
    assert "cannot be written: the disk is full" in messages(err)


def test_disk_full_for_the_lots_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import station.ledger.lotfiles as lotfiles

    lot = make_small_lot(tmp_path / "lot", 2, name="FULL")

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lotfiles.os, "write", full)
    with pytest.raises(StationError) as err:
        open_lot(lot)
    text = messages(err)
    assert "FULL.station.lot:0:0:" in text and "cannot be written: the disk is full" in text


def test_corrupted_names_the_backup_and_the_rebuild(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "lot", 300, name="BAD")
    open_lot(lot).close()
    open_lot(lot).close()  # two opens: two backups
    db = lot.parent / "BAD.station.db"
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for n in range(2, len(data) // page):  # every b-tree page but the schema's
        data[n * page : n * page + 16] = b"\x0d\xff" * 8
    db.write_bytes(bytes(data))
    with pytest.raises(StationError) as err:
        open_lot(lot)
    text = messages(err)
    assert "the ledger is corrupted" in text
    assert "BAD.station.backup/BAD.station.db.1" in text
    assert f"station ledger rebuild {lot}" in text


def test_truncated_through_open_lot(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "lot", 400, name="CUT")
    open_lot(lot).close()
    db = lot.parent / "CUT.station.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    with pytest.raises(StationError) as err:
        open_lot(lot)
    text = messages(err)
    assert "the ledger is truncated" in text and "station ledger rebuild" in text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"serial_no,key\nSN1,abc\n", "not an SQLite database at all"),
        (None, "an SQLite database without the station's tables"),
    ],
)
def test_not_a_station_ledger(tmp_path: Path, content: bytes | None, expected: str) -> None:
    db = tmp_path / "l.db"
    if content is None:
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE photos (name TEXT)")
        con.commit()
        con.close()
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    with pytest.raises(StationError) as err:
        Ledger(db)
    assert f"the ledger is not a station ledger: {expected}" in messages(err)
    assert db.read_bytes() == before


def test_locked_waits_with_a_message_then_a_clear_error(tmp_path: Path) -> None:
    db = made_ledger(tmp_path)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    told: list[str] = []
    with pytest.raises(StationError) as err:
        Ledger(db, notify=told.append, lock_wait=0.2)
    assert "locked by another program" in messages(err)
    assert len(told) == 1 and "waiting up to" in told[0]
    # released while the station waits: it goes on
    told.clear()
    led = Ledger(db, notify=lambda text: (told.append(text), other.execute("COMMIT")))
    assert len(told) == 1
    led.attach("L")
    assert led.count() == 5
    led.close()
    other.close()


# --- the journal ------------------------------------------------------------------------------
def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.append([JournalEntry(seq=n, t=1.0, lot="x", row=0, unit="u", state="claimed", event="claim")
              for n in (1, 2)])  # fmt: skip
    j.close()
    with path.open("ab") as f:
        f.write(b'{"seq":3,"t":1.0,"lot":"x","ro')
    assert [e.seq for e in read_journal(path)] == [1, 2]
    assert last_seq(path, "x") == 2


def test_the_key_is_needed_to_derive(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.db")
    led.import_lot("L", "r", ROWS, key=b"k" * 32)
    con = sqlite3.connect(tmp_path / "l.db")
    assert con.execute("SELECT fingerprint_key FROM lots").fetchone()[0] == ""
    con.close()
    other = Ledger(tmp_path / "l.db")
    other.attach("L")
    with pytest.raises(RuntimeError, match="key"):
        other.derive("hap-salt", "SN1")
    other.close()
    led.close()
