"""The eFuse records (station.ledger.security_steps) go into the lot's journal too: a line lost
to a kill between the ledger's commit and the journal's append is journaled again at the next
open, ``station ledger check`` compares them, and ``station ledger rebuild`` restores them."""

from __future__ import annotations

from pathlib import Path

from station.cli import main
from station.ledger.lotfiles import journal_path
from station.ledger.security_steps import LedgerJournal
from station.production import open_lot
from tests.production.conftest import make_small_lot

MAC = "24:0a:c4:00:00:07"


def records(db: Path | None, lot_path: Path) -> tuple[list[tuple[object, ...]], dict]:  # type: ignore[type-arg]
    with open_lot(lot_path, db_url=str(db) if db else None) as lot:
        j = LedgerJournal(lot.ledger)
        return sorted(r[:4] for r in j.history()), j.keys()


def test_efuse_records_are_journaled_resynced_checked_and_rebuilt(
    tmp_path: Path, capsys: object
) -> None:
    lot_path = make_small_lot(tmp_path / "lot", 3, name="EF")
    with open_lot(lot_path) as lot:
        j = LedgerJournal(lot.ledger)
        assert j.record_key("SN0002", "xts", "ab" * 32) == "ab" * 32
        assert j.record_key("SN0002", "xts", "cd" * 32) == "ab" * 32  # the first one stays
        for step in ("xts_key", "crypt_cnt"):
            j.begin("SN0002", MAC, step)
            j.done("SN0002", MAC, step)
        j.begin("SN0002", MAC, "secure_boot")  # a burn that never ended
    journal = journal_path(lot_path.parent, "EF")
    lines = journal.read_bytes().splitlines(keepends=True)
    assert [b'"event":"efuse-' in line for line in lines].count(True) == 6
    assert b'"row":2' in lines[-1] and b'"state":"pending"' in lines[-1]  # the row untouched
    before = records(None, lot_path)
    assert before[0] == [
        (MAC, "SN0002", "crypt_cnt", "done"),
        (MAC, "SN0002", "secure_boot", "begun"),
        (MAC, "SN0002", "xts_key", "done"),
    ]
    # a kill between the ledger's commit and the journal's append: the last two lines lost
    journal.write_bytes(b"".join(lines[:-2]))
    assert main(["ledger", "check", str(lot_path)]) == 1
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "eFuse step secure_boot on 24:0a:c4:00:00:07: ledger begun, journal none" in out
    with open_lot(lot_path):  # a station opening the lot journals them again
        pass
    assert main(["ledger", "check", str(lot_path)]) == 0
    rebuilt = tmp_path / "rebuilt.db"
    assert main(["ledger", "rebuild", str(lot_path), "--db", str(rebuilt)]) == 0
    assert records(rebuilt, lot_path) == before
