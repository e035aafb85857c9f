"""The ledger: claims, states, invariants held by the database, re-open checks, recovery."""

from __future__ import annotations

import builtins
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from station.errors import StationError
from station.ledger import ClaimRefused, Ledger, LedgerRow

FAKE = "s3cr3t"  # a fake secret value


def rows(n: int, *, start: int = 0, secret: str = FAKE) -> list[LedgerRow]:
    return [
        LedgerRow(i, i + 2, f"SN{i:04d}", f"SN{i:04d}", [f"SN{i:04d}", f"{secret}{i}"])
        for i in range(start, start + n)
    ]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "lot.station.db", station_id="st1")
    led.import_lot("L1", "recipe", rows(5))
    yield led
    led.close()


def claim_done(led: Ledger, mac: str, port: str = "p1") -> int:
    c = led.claim_next(mac=mac, port=port)
    assert c is not None
    led.set_image(c, "ab" * 32)
    led.mark_written(c, {"writing": 1.0})
    led.complete(c, {"verifying": 0.5})
    return c.row_index


def test_rows_go_pending_claimed_written_done(ledger: Ledger) -> None:
    c = ledger.claim_next(mac="aa:01", port="p1", chip="esp32", operator="ann")
    assert c is not None and c.row_index == 0 and c.kind == "new"
    assert ledger.row(0).state == "claimed" and ledger.row(0).mac == "aa:01"
    ledger.set_image(c, "11" * 32)
    ledger.mark_written(c, {"writing": 2.0})
    assert ledger.row(0).state == "written"
    ledger.complete(c, {"verifying": 1.0}, chip="esp32")
    r = ledger.row(0)
    assert (r.state, r.mac, r.port, r.attempts) == ("done", "aa:01", "p1", 1)
    (a,) = ledger.attempts(0)
    assert a.result == "done" and a.operator == "ann" and a.station_id == "st1"
    assert a.image_sha256 == "11" * 32 and a.timings == {"writing": 2.0, "verifying": 1.0}
    assert ledger.counters().done == 1 and ledger.counters().remaining == 4


def test_next_claim_skips_taken_rows(ledger: Ledger) -> None:
    got = [ledger.claim_next(mac=f"m{i}", port="p") for i in range(5)]
    assert [c.row_index for c in got if c] == [0, 1, 2, 3, 4]
    assert ledger.claim_next(mac="m9", port="p") is None


def test_a_device_never_gets_a_second_row(ledger: Ledger) -> None:
    claim_done(ledger, "aa:01")
    with pytest.raises(ClaimRefused, match="already holds"):
        ledger.claim_next(mac="aa:01", port="p1")
    with pytest.raises(ClaimRefused):
        ledger.claim_row(3, mac="aa:01", port="p1")
    assert ledger.row(3).state == "pending"


def test_done_row_only_reworked_on_the_same_device(ledger: Ledger) -> None:
    i = claim_done(ledger, "aa:01")
    with pytest.raises(ClaimRefused, match="done on device aa:01"):
        ledger.claim_row(i, mac="bb:02", port="p2")
    c = ledger.claim_row(i, mac="aa:01", port="p1")
    assert c.kind == "rework"
    ledger.set_image(c, "ab" * 32)
    ledger.complete(c, {})
    assert ledger.row(i).state == "done" and ledger.row(i).attempts == 2


def test_failure_after_writing_keeps_the_row_on_that_device(ledger: Ledger) -> None:
    c = ledger.claim_next(mac="aa:01", port="p1")
    assert c is not None
    ledger.set_image(c, "ab" * 32)
    assert ledger.fail(c, "writing: timeout") == "failed"
    r = ledger.row(c.row_index)
    assert (r.state, r.mac, r.reason) == ("failed", "aa:01", "writing: timeout")
    assert ledger.failed() == [r]
    with pytest.raises(ClaimRefused, match="failed on device aa:01"):
        ledger.claim_row(c.row_index, mac="bb:02", port="p1")
    assert ledger.claim_next(mac="bb:02", port="p1").row_index == 1  # type: ignore[union-attr]
    retry = ledger.claim_row(c.row_index, mac="aa:01", port="p1")
    assert retry.kind == "retry"


def test_failure_before_writing_frees_the_row(ledger: Ledger) -> None:
    c = ledger.claim_next(mac="aa:01", port="p1")
    assert c is not None
    assert ledger.fail(c, "checking: lost connection") == "pending"
    assert ledger.row(0).mac is None
    assert ledger.claim_next(mac="bb:02", port="p2").row_index == 0  # type: ignore[union-attr]


def test_release_is_audited_and_needs_a_reason(ledger: Ledger) -> None:
    i = claim_done(ledger, "aa:01")
    with pytest.raises(ClaimRefused, match="reason"):
        ledger.release(i, "", "boss")
    ledger.release(i, "board scrapped (cracked)", "boss")
    assert ledger.row(i).state == "pending" and ledger.row(i).mac is None
    assert any(
        a.action == "release" and a.operator == "boss" and "scrapped" in a.detail
        for a in ledger.audit_log()
    )
    c = ledger.claim_row(i, mac="bb:02", port="p2")
    ledger.set_image(c, "cd" * 32)
    ledger.complete(c, {})
    assert ledger.row(i).mac == "bb:02"


def test_invariants_hold_in_the_database_itself(ledger: Ledger) -> None:
    """Even SQL that bypasses the Python code cannot break the rules."""
    claim_done(ledger, "aa:01")
    claim_done(ledger, "bb:02")
    con = sqlite3.connect(ledger.path)
    lot = ledger.lot_id
    with pytest.raises(sqlite3.IntegrityError):  # a second live device for row 0
        con.execute(
            "INSERT INTO devices (lot_id, mac, row_idx, bound_at) VALUES (?, 'cc', 0, 1)", (lot,)
        )
    with pytest.raises(sqlite3.IntegrityError):  # a MAC bound to a second row
        con.execute(
            "INSERT INTO devices (lot_id, mac, row_idx, bound_at) VALUES (?, 'aa:01', 3, 1)", (lot,)
        )
    with pytest.raises(sqlite3.IntegrityError):  # one MAC on two rows
        con.execute("UPDATE rows SET state = 'done', mac = 'aa:01' WHERE idx = 4")
    with pytest.raises(sqlite3.IntegrityError):  # claimed without an attempt
        con.execute("UPDATE rows SET state = 'claimed', mac = 'zz' WHERE idx = 4")
    con.execute(
        "INSERT INTO attempts (lot_id, row_idx, kind, port, mac, started_at)"
        " VALUES (?, 4, 'new', 'p', 'x1', 1)",
        (lot,),
    )
    with pytest.raises(sqlite3.IntegrityError):  # two active claims on one row
        con.execute(
            "INSERT INTO attempts (lot_id, row_idx, kind, port, mac, started_at)"
            " VALUES (?, 4, 'new', 'p', 'x2', 1)",
            (lot,),
        )
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("UPDATE rows SET state = 'bogus' WHERE idx = 4")
    con.close()


def test_unchanged_reopen_imports_nothing(tmp_path: Path) -> None:
    with Ledger(tmp_path / "db") as led:
        assert led.import_lot("L1", "r", rows(5)).created
    with Ledger(tmp_path / "db") as led:
        s = led.import_lot("L1", "r", rows(5))
        assert (s.created, s.imported, s.total) == (False, 0, 5)


def test_changes_before_production_are_reimported(tmp_path: Path) -> None:
    with Ledger(tmp_path / "db") as led:
        led.import_lot("L1", "r", rows(5))
    with Ledger(tmp_path / "db") as led:
        s = led.import_lot("L1", "r2", rows(3, secret="other"))
        assert (s.imported, s.total, s.started) == (3, 3, False)
        assert led.count() == 3


def test_changed_rows_after_start_are_refused_with_their_lines(tmp_path: Path) -> None:
    with Ledger(tmp_path / "db") as led:
        led.import_lot("L1", "r", rows(5))
        claim_done(led, "aa:01")
    changed = rows(5)
    changed[2] = LedgerRow(2, 4, "SN0002", "SN0002", ["SN0002", "different"])
    with Ledger(tmp_path / "db") as led, pytest.raises(StationError) as err:
        led.import_lot("L1", "r", changed, values_file="values.csv")
    assert "values.csv:4:0: row 3: changed after production started" in str(err.value)
    with Ledger(tmp_path / "db") as led, pytest.raises(StationError, match="removed"):
        led.import_lot("L1", "r", rows(4))
    with Ledger(tmp_path / "db") as led, pytest.raises(StationError, match="inputs"):
        led.import_lot("L1", "other-recipe", rows(5))


def test_appended_rows_are_accepted_after_start(tmp_path: Path) -> None:
    with Ledger(tmp_path / "db") as led:
        led.import_lot("L1", "r", rows(5))
        claim_done(led, "aa:01")
    with Ledger(tmp_path / "db") as led:
        s = led.import_lot("L1", "r", rows(5) + rows(3, start=5))
        assert (s.imported, s.total, s.started) == (3, 8, True)
        assert led.count("pending") == 7 and led.row(0).state == "done"
        assert any("appended" in a.detail for a in led.audit_log())


def test_no_secret_value_reaches_the_database(tmp_path: Path) -> None:
    with Ledger(tmp_path / "db") as led:
        led.import_lot("L1", "r", rows(50, secret="TopSecretValue"))
        claim_done(led, "aa:01")
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"TopSecretValue" not in blob
    assert b"SN0001" in blob  # sanity: the file is readable as bytes at all


def test_paging_search_and_scan(ledger: Ledger) -> None:
    claim_done(ledger, "aa:01")
    assert [r.index for r in ledger.rows(1, 2)] == [1, 2]
    assert ledger.count("pending") == 4 and ledger.count("done") == 1
    assert ledger.count(search="SN000") == 5 and ledger.count(search="aa:01") == 1
    assert ledger.count(search="%") == 0  # LIKE wildcards are literal
    assert ledger.find_scan("SN0003").index == 3  # type: ignore[union-attr]
    assert ledger.find_scan("nope") is None


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_any_pending_answers_whether_a_row_is_left_to_claim(ledger: Ledger) -> None:
    claims = [ledger.claim_next(mac=f"aa:0{i}", port="p1") for i in range(4)]
    assert ledger.any_pending()
    last = ledger.claim_next(mac="aa:09", port="p1")
    assert last is not None and not ledger.any_pending()  # claimed rows are not pending
    ledger.fail(last, "no answer", {})  # failed before writing: the row is pending again
    assert ledger.any_pending() and ledger.count("pending") == 1
    assert all(c is not None for c in claims)


def test_recovery_resolves_claims_of_a_dead_run(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "db")
    led.import_lot("L1", "r", rows(5))
    run = led.start_run()
    early = led.claim_next(mac="aa:01", port="p1", run_id=run)  # nothing written yet
    late = led.claim_next(mac="bb:02", port="p2", run_id=run)  # writing had started
    assert early is not None and late is not None
    led.set_image(late, "ab" * 32)
    con = sqlite3.connect(led.path)
    con.execute("UPDATE runs SET pid = ? WHERE id = ?", (_dead_pid(), run))
    con.commit()
    con.close()
    recovered = {r.attempt.row_index: r.row_state for r in led.recover()}
    assert recovered == {0: "pending", 1: "failed"}
    assert led.row(0).mac is None
    assert led.row(1).mac == "bb:02" and "interrupted" in led.row(1).reason
    assert {a.result for a in led.attempts()} == {"interrupted"}
    assert led.recover() == []  # idempotent
    # the device that may hold row 1 gets it back (and only it)
    assert led.claim_row(1, mac="bb:02", port="p2").kind == "retry"
    led.close()


def test_recovery_leaves_live_runs_alone(ledger: Ledger) -> None:
    run = ledger.start_run()
    ledger.claim_next(mac="aa:01", port="p1", run_id=run)
    assert ledger.recover() == []
    ledger.end_run(run)
    assert [r.row_state for r in ledger.recover()] == ["pending"]


def test_counters_units_per_hour(ledger: Ledger) -> None:
    for i in range(3):
        claim_done(ledger, f"m{i}")
    c = ledger.counters()
    assert (c.done, c.failed, c.remaining, c.total) == (3, 0, 2, 5)
    assert c.units_per_hour == pytest.approx(180.0)  # 3 units, measured over at least a minute


def test_not_a_ledger_file_is_a_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StationError, match="not a station ledger"):
        Ledger(bad)


def test_postgresql_url_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(StationError, match="PostgreSQL"):
        Ledger("postgresql://user@db.example/lots")


def test_a_postgresql_ledger_without_a_client_library_says_what_to_install(monkeypatch) -> None:
    def no_libpq(name: str, *args: object, **kwargs: object) -> object:
        if name == "psycopg":
            raise ImportError(
                "no pq wrapper available.\nAttempts made:\n"
                "- couldn't import psycopg 'python' implementation: libpq library not found"
            )
        return real_import(name, *args, **kwargs)

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", no_libpq)
    with pytest.raises(StationError) as err:
        Ledger("postgresql://user:secret@db.example/lots")
    text = str(err.value)
    assert "libpq5" in text and "libpq library not found" in text
    assert err.value.problems[0].key == "db" and "secret" not in text


def test_a_units_key_hash_is_recorded_once(ledger: Ledger, tmp_path: Path) -> None:
    assert ledger.key_hash(2) is None
    assert ledger.record_key_hash(2, "aa" * 32) == "aa" * 32
    assert ledger.record_key_hash(2, "bb" * 32) == "aa" * 32  # the first one stays
    assert ledger.key_hash(2) == "aa" * 32 and ledger.key_hash(3) is None
    other = Ledger(tmp_path / "lot.station.db")
    other.import_lot("L1", "recipe", rows(5))
    assert other.key_hash(2) == "aa" * 32  # durable, seen by another connection
    other.close()
