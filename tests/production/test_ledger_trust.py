"""Losing or replacing the ledger must not restart the lot; the journal rebuilds it.

On in-memory devices (fast); tests/production/test_simulated.py runs the same story on
simulated chips end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from station.cli import main
from station.errors import StationError
from station.ledger.lotfiles import journal_path, marker_path, read_journal
from station.production import Orchestrator, open_lot
from tests.production.conftest import make_small_lot
from tests.production.fakes import FakeBench, FakeDevice


def produce(lot_file: Path, bench: FakeBench, ports: list[str], db: str | None = None) -> None:
    """Flash whatever device sits on each port, once."""
    with open_lot(lot_file, db_url=db) as lot:
        with Orchestrator(lot, on_event=lambda e: None, opener=bench.opener) as orch:
            for port in ports:
                orch.add_port(port)
            orch.start_all()
            assert orch.wait_idle(30)


@pytest.fixture
def started(tmp_path: Path) -> tuple[Path, FakeBench, list[FakeDevice]]:
    """A lot of 6 rows with rows 1 and 2 done on two boards."""
    lot = make_small_lot(tmp_path / "lot", 6, name="TRUST")
    bench = FakeBench()
    boards = [FakeDevice(f"24:0a:c4:00:00:{i:02x}") for i in range(2)]
    bench.put("fake://1", boards[0])
    bench.put("fake://2", boards[1])
    produce(lot, bench, ["fake://1", "fake://2"])
    return lot, bench, boards


def refused(lot: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """`station run` on the lot: exit 2, nothing written; returns stderr."""
    before = {p: p.stat().st_mtime_ns for p in lot.parent.iterdir() if p.is_file()}
    assert main(["run", str(lot), "--port", "fake://9", *extra]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    after = {p: p.stat().st_mtime_ns for p in lot.parent.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing created
    return err


def test_the_marker_binds_the_lot_and_keeps_the_key_out_of_the_ledger(
    started: tuple[Path, FakeBench, list[FakeDevice]],
) -> None:
    lot, _, _ = started
    marker = json.loads(marker_path(lot.parent, "TRUST").read_text())
    assert oct(marker_path(lot.parent, "TRUST").stat().st_mode & 0o777) == "0o600"
    db = lot.parent / "TRUST.station.db"
    con = sqlite3.connect(db)
    (stored,) = con.execute("SELECT fingerprint_key FROM lots").fetchone()
    (ledger_id,) = con.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()
    con.close()
    assert stored == ""  # a copy of the ledger alone cannot brute-force the rows' secrets
    assert marker["fingerprint_key"] not in db.read_bytes().hex()
    assert marker["ledger_id"] == ledger_id


@pytest.mark.parametrize("how", ["emptied", "deleted", "other-db", "old-backup"])
def test_a_lost_or_replaced_ledger_is_refused(
    started: tuple[Path, FakeBench, list[FakeDevice]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    how: str,
) -> None:
    lot, bench, _ = started
    db = lot.parent / "TRUST.station.db"
    extra: list[str] = []
    if how == "emptied":
        db.write_bytes(b"")
        for side in ("-wal", "-shm"):
            Path(str(db) + side).unlink(missing_ok=True)
    elif how == "deleted":
        for p in lot.parent.glob("TRUST.station.db*"):
            p.unlink()
    elif how == "other-db":
        extra = ["--db", str(lot.parent / "other.db")]
    else:  # a copy taken after row 1, put back after row 2 was done
        old = tmp_path / "old.db"
        con = sqlite3.connect(db)
        con.execute("VACUUM INTO ?", (str(old),))
        con.close()
        bench.put("fake://3", FakeDevice("24:0a:c4:00:00:33"))
        produce(lot, bench, ["fake://3"])
        for p in lot.parent.glob("TRUST.station.db*"):
            p.unlink()
        shutil.copy(old, db)
        con = sqlite3.connect(db)
        con.execute("PRAGMA journal_mode=WAL")  # as the ledger was (mtimes are compared)
        con.close()
    err = refused(lot, capsys, *extra)
    assert "This lot has produced units and was started with the ledger" in err
    assert str(db.resolve()) in err
    assert "station ledger rebuild" in err and "delete" not in err
    if how == "old-backup":
        assert "behind the lot's journal" in err
    assert not (lot.parent / "other.db").exists()


def test_rebuild_from_the_journal_then_continue_without_reprogramming(
    started: tuple[Path, FakeBench, list[FakeDevice]], capsys: pytest.CaptureFixture[str]
) -> None:
    lot, bench, boards = started
    db = lot.parent / "TRUST.station.db"
    macs = {r: b.mac for r, b in zip((0, 1), boards, strict=True)}
    with open_lot(lot) as opened:
        held = {i: opened.ledger.row(i).mac for i in range(2)}
    assert sorted(held.values()) == sorted(macs.values())
    db.write_bytes(b"")  # someone "cleans up"
    assert main(["ledger", "check", str(lot)]) == 2  # an empty ledger cannot be compared
    capsys.readouterr()
    assert main(["ledger", "rebuild", str(lot), "--operator", "boss"]) == 0
    out = capsys.readouterr().out
    assert "2 done, 0 failed, 4 pending" in out and "moved to" in out
    assert list(lot.parent.glob("TRUST.station.db.replaced-*"))  # kept, never deleted
    assert main(["ledger", "check", str(lot)]) == 0
    assert "agree" in capsys.readouterr().out
    writes = [b.writes for b in boards]
    # the same two boards come back, and two new ones
    new = [FakeDevice(f"24:0a:c4:00:01:{i:02x}") for i in range(2)]
    for i, dev in enumerate([*boards, *new]):
        bench.put(f"fake://{i + 1}", dev)
    produce(lot, bench, [f"fake://{i + 1}" for i in range(4)])
    assert [b.writes for b in boards] == writes  # not re-programmed
    with open_lot(lot) as opened:
        led = opened.ledger
        assert {led.row(i).mac for i in range(2)} == set(held.values())
        assert {led.row(i).mac for i in (2, 3)} == {d.mac for d in new}
        assert led.count("done") == 4
        for i in range(2):  # the boards' second look wrote nothing, and says so
            last = led.attempts(i)[-1]
            assert (last.kind, last.result, last.wrote) == ("rework", "done", False)
        assert any(a.action == "rebuild" and a.operator == "boss" for a in led.audit_log())
    assert main(["ledger", "check", str(lot)]) == 0


def test_the_journal_holds_no_secret_and_one_line_per_change(
    started: tuple[Path, FakeBench, list[FakeDevice]],
) -> None:
    lot, _, _ = started
    text = journal_path(lot.parent, "TRUST").read_text()
    values = (lot.parent / "values.csv").read_text().splitlines()[1:]
    for line in values:
        _serial, key, _ = line.split(",")
        assert key not in text and key.upper() not in text
    entries = list(read_journal(journal_path(lot.parent, "TRUST")))
    assert [e.event for e in entries if e.row == 0] == ["claim", "image", "written", "done"]
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    done = [e for e in entries if e.event == "done"]
    assert all(e.mac and e.sha256 and e.unit.startswith("SN") for e in done)


def test_check_lists_every_difference(
    started: tuple[Path, FakeBench, list[FakeDevice]], capsys: pytest.CaptureFixture[str]
) -> None:
    lot, _, _ = started
    con = sqlite3.connect(lot.parent / "TRUST.station.db")
    con.execute("UPDATE rows SET state = 'pending', mac = NULL WHERE idx = 1")
    con.execute("UPDATE rows SET state = 'failed', mac = 'aa:bb' WHERE idx = 4")
    con.commit()
    con.close()
    assert main(["ledger", "check", str(lot)]) == 1
    out = capsys.readouterr().out
    assert "row 2 (SN0002): ledger pending, journal done on 24:0a:c4:00:00:0" in out
    assert "row 5 (SN0005): ledger failed on aa:bb, not in the journal" in out


def test_a_missing_marker_with_a_journal_is_refused(
    started: tuple[Path, FakeBench, list[FakeDevice]], capsys: pytest.CaptureFixture[str]
) -> None:
    lot, _, _ = started
    for p in lot.parent.glob("TRUST.station.db*"):
        p.unlink()
    marker_path(lot.parent, "TRUST").unlink()
    err = refused(lot, capsys)
    assert "the lot's marker is missing, but its journal" in err
    assert "TRUST.station.backup" in err


def test_rolling_backups_and_the_marker_beside_them(
    started: tuple[Path, FakeBench, list[FakeDevice]],
) -> None:
    lot, _, _ = started
    folder = lot.parent / "TRUST.station.backup"
    assert (folder / "TRUST.station.lot").read_bytes() == marker_path(
        lot.parent, "TRUST"
    ).read_bytes()
    for _ in range(4):
        open_lot(lot).close()
    assert sorted(p.name for p in folder.iterdir()) == [
        "TRUST.station.db.1",
        "TRUST.station.db.2",
        "TRUST.station.db.3",
        "TRUST.station.lot",
    ]
    con = sqlite3.connect(folder / "TRUST.station.db.1")
    assert con.execute("SELECT COUNT(*) FROM rows WHERE state = 'done'").fetchone()[0] == 2
    con.close()


def test_a_legacy_ledger_gives_its_key_to_a_new_marker(tmp_path: Path) -> None:
    """A ledger made before markers (its key inside) is adopted: same fingerprints."""
    lot = make_small_lot(tmp_path / "lot", 3, name="OLD")
    with open_lot(lot) as opened:
        key = opened.link.marker.key if opened.link else b""
    con = sqlite3.connect(lot.parent / "OLD.station.db")
    con.execute("UPDATE lots SET fingerprint_key = ?", (key.hex(),))
    con.execute(
        "INSERT INTO attempts (lot_id, row_idx, kind, port, mac, started_at, result, ended_at)"
        " VALUES (1, 0, 'new', 'p', 'm', 0, 'failed', 0)"
    )
    con.commit()
    con.close()
    marker_path(lot.parent, "OLD").unlink()
    with open_lot(lot) as opened:
        assert opened.link is not None and opened.link.marker.key == key
        assert opened.link.marker.bound  # it had started: bound at once
    con = sqlite3.connect(lot.parent / "OLD.station.db")
    assert con.execute("SELECT fingerprint_key FROM lots").fetchone()[0] == ""
    con.close()


def test_report_never_creates_a_ledger_and_reads_a_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lot = make_small_lot(tmp_path / "lot", 3, name="REP")
    assert main(["report", str(lot)]) == 2
    assert "there is no ledger here" in capsys.readouterr().err
    assert not (lot.parent / "REP.station.db").exists()
    open_lot(lot).close()
    db = lot.parent / "REP.station.db"
    before = db.stat().st_mtime_ns
    os.chmod(lot.parent, 0o500)  # the report works where it cannot write (root ignores it)
    try:
        assert main(["report", str(lot), "--json"]) == 0
    finally:
        os.chmod(lot.parent, 0o700)
    assert json.loads(capsys.readouterr().out)["summary"]["ledger"] == str(db)
    assert db.stat().st_mtime_ns == before


def test_open_refuses_before_validation_writes_nothing(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "lot", 3, name="BAD")
    (lot.parent / "values.csv").write_text("serial_no,device_key,hw_rev\nSN1,zz,1\n")
    with pytest.raises(StationError):
        open_lot(lot)
    assert not marker_path(lot.parent, "BAD").exists()
    assert not (lot.parent / "BAD.station.db").exists()


def test_a_journal_line_lost_to_a_kill_is_written_again(
    started: tuple[Path, FakeBench, list[FakeDevice]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed between the ledger's commit and the journal's append: the ledger is ahead; the
    next open journals the row again, and the two agree."""
    lot, _, _ = started
    path = journal_path(lot.parent, "TRUST")
    lines = path.read_bytes().splitlines(keepends=True)
    assert b'"event":"done"' in lines[-1]
    path.write_bytes(b"".join(lines[:-1]))
    assert main(["ledger", "check", str(lot)]) == 1
    assert "journal written on" in capsys.readouterr().out
    open_lot(lot).close()
    assert main(["ledger", "check", str(lot)]) == 0
    last = list(read_journal(path))[-1]
    assert (last.event, last.state) == ("done", "done") and last.sha256


def test_unit_key_files_are_evidence_for_a_rebuild(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per-unit keys: a row whose key file exists but which the journal never saw claimed may
    be on a device; the rebuilt ledger keeps it away from new devices (failed on none)."""
    lot = make_small_lot(
        tmp_path / "lot",
        4,
        name="KEYS",
        nvs_keys="encrypted",
        extra="encryption = { keygen = true }\n",
    )
    bench = FakeBench()
    bench.put("fake://1", FakeDevice("24:0a:c4:00:00:01"))
    produce(lot, bench, ["fake://1"])
    with open_lot(lot) as opened:
        opened.keys_for(opened.row(2))  # row 3's keys made (e.g. a claim lost with the ledger)
        key_file = opened.key_file(opened.row(2))
        digest = opened.ledger.key_hash(2)
    assert key_file.exists() and digest
    for p in lot.parent.glob("KEYS.station.db*"):
        p.unlink()
    assert main(["ledger", "rebuild", str(lot)]) == 0
    captured = capsys.readouterr()
    assert "1 done, 1 failed, 2 pending" in captured.out
    assert "row 3: its key file keys-SN0003.bin exists" in captured.err
    with open_lot(lot) as opened:
        r = opened.ledger.row(2)
        assert (r.state, r.mac) == ("failed", None) and "may be on a device" in r.reason
        assert opened.ledger.key_hash(2) == digest
        assert opened.ledger.key_hash(0) is not None


def test_a_full_journal_disk_stops_before_the_device_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal cannot be written: the unit fails before any byte reaches the device."""

    from station.ledger.lotfiles import Journal

    lot = make_small_lot(tmp_path / "lot", 2, name="JFULL")
    bench = FakeBench()
    dev = FakeDevice("24:0a:c4:00:00:01")
    bench.put("fake://1", dev)
    real = Journal.append

    def full(self: Journal, entries: object) -> None:
        items = list(entries)  # type: ignore[call-overload]
        if any(e.event == "image" for e in items):
            raise StationError.at(str(self.path), "the lot's journal cannot be written: disk full")
        real(self, items)

    monkeypatch.setattr(Journal, "append", full)
    produce(lot, bench, ["fake://1"])
    assert dev.writes == 0 and bench.write_calls == []
    with open_lot(lot) as opened:
        assert opened.ledger.row(0).state != "done"


def test_two_stations_cannot_bind_one_lot_to_two_ledgers(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "lot", 3, name="TWO")
    a = open_lot(lot)
    b = open_lot(lot, db_url=str(lot.parent / "b.db"))
    try:
        assert a.ledger.claim_next(mac="m1", port="p") is not None
        with pytest.raises(StationError, match="another station has just started this lot"):
            b.ledger.claim_next(mac="m2", port="p")
        assert b.ledger.count("claimed") == 0
    finally:
        a.close()
        b.close()


def test_a_second_station_without_the_marker_is_told_to_copy_it(
    started: tuple[Path, FakeBench, list[FakeDevice]], tmp_path: Path
) -> None:
    """A copy of the lot folder without its marker, on the same (shared) ledger."""
    lot, _, _ = started
    copy = tmp_path / "station2"
    shutil.copytree(lot.parent, copy, ignore=shutil.ignore_patterns("*.station.*"))
    with pytest.raises(StationError, match=r"copy TRUST\.station\.lot from the station"):
        open_lot(copy / "lot.toml", db_url=str(lot.parent / "TRUST.station.db"))
    assert not marker_path(copy, "TRUST").exists()
