"""The ledger's SQL on a real PostgreSQL: schema, invariants, claims with FOR UPDATE SKIP LOCKED.

Runs only where a server is given (``STATION_TEST_POSTGRES=postgresql://user@host:port/db``) and
psycopg is installed; the SQLite tests cover the same statements everywhere else. Each test works
in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from station.ledger import sql

URL = os.environ.get("STATION_TEST_POSTGRES", "")
pytestmark = pytest.mark.skipif(not URL, reason="STATION_TEST_POSTGRES is not set")
D = sql.POSTGRESQL


@pytest.fixture
def pg() -> Iterator[tuple[Any, str]]:
    psycopg = pytest.importorskip("psycopg")
    schema = f"station_test_{secrets.token_hex(4)}"
    admin = psycopg.connect(URL, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        con = psycopg.connect(URL, options=f"-c search_path={schema}")
        with con.transaction():
            for statement in D.schema():
                con.execute(statement)
            con.execute(D.sql(sql.META_INIT))
            con.execute(D.sql(sql.META_INIT))  # idempotent
        yield con, schema
        con.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def make_lot(con: Any, rows: int) -> int:
    now = time.time()
    with con.transaction():
        lot = con.execute(D.sql(sql.LOT_INSERT), ("L1", "r", "00" * 32, now, now)).fetchone()[0]
        with con.cursor() as cur:
            cur.executemany(
                D.sql(sql.ROW_INSERT),
                [(lot, i, i + 2, str(i), None, "fp", now) for i in range(rows)],
            )
    return int(lot)


def claim(con: Any, lot: int, mac: str) -> int | None:
    """One claim as the ledger makes it, in one transaction; the row index or None."""
    now = time.time()
    with con.transaction():
        found = con.execute(D.claim_next(), (lot,)).fetchone()
        if found is None:
            return None
        index = found[0]
        attempt = con.execute(
            D.sql(sql.ATTEMPT_INSERT), (lot, index, "new", "p", "", mac, "", "", "", "", now)
        ).fetchone()[0]
        n = con.execute(
            D.sql(sql.CLAIM_ROW_UPDATE), (mac, "p", attempt, now, lot, index, mac)
        ).rowcount
        assert n == 1
    with con.transaction():
        con.execute(D.sql(sql.ATTEMPT_FINISH), ("done", "", "{}", now, attempt))
        con.execute(D.sql(sql.DEVICE_BIND), (lot, mac, "", index, now))
        con.execute(D.sql(sql.ROW_DONE), (now, lot, index, attempt))
    return int(index)


def test_schema_holds_the_invariants(pg: tuple[Any, str]) -> None:
    import psycopg

    con, _ = pg
    lot = make_lot(con, 3)
    assert claim(con, lot, "aa") == 0
    with pytest.raises(psycopg.errors.UniqueViolation), con.transaction():
        con.execute(D.sql(sql.DEVICE_BIND), (lot, "bb", "", 0, 1.0))  # row 0 on a second MAC
    with pytest.raises(psycopg.errors.UniqueViolation), con.transaction():
        con.execute(D.sql(sql.DEVICE_BIND), (lot, "aa", "", 1, 1.0))  # MAC aa on a second row
    with pytest.raises(psycopg.errors.CheckViolation), con.transaction():
        con.execute("UPDATE rows SET state = 'claimed', mac = 'zz' WHERE idx = 2")
    with pytest.raises(psycopg.errors.UniqueViolation), con.transaction():
        con.execute("UPDATE rows SET state = 'done', mac = 'aa' WHERE idx = 2")
    with con.transaction():
        con.execute(D.sql(sql.ATTEMPT_INSERT), (lot, 2, "new", "p", "", "x1", "", "", "", "", 1.0))
    with pytest.raises(psycopg.errors.UniqueViolation), con.transaction():
        con.execute(D.sql(sql.ATTEMPT_INSERT), (lot, 2, "new", "p", "", "x2", "", "", "", "", 1.0))
    query, args = sql.rows_query(sql.ROW_COLUMNS, "done", "a_%")
    assert con.execute(D.sql(query), [lot, *args]).fetchall() == []


def test_concurrent_claims_skip_locked_rows(pg: tuple[Any, str]) -> None:
    import psycopg

    con, schema = pg
    rows = 600
    lot = make_lot(con, rows)
    done: list[tuple[int, str]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        c = psycopg.connect(URL, options=f"-c search_path={schema}")
        n = 0
        while (index := claim(c, lot, f"{name}-{n}")) is not None:
            with lock:
                done.append((index, f"{name}-{n}"))
            n += 1
        c.close()

    threads = [threading.Thread(target=claimer, args=(f"t{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(Counter(i for i, _ in done)) == list(range(rows))
    assert max(Counter(i for i, _ in done).values()) == 1
    assert con.execute("SELECT COUNT(*) FROM rows WHERE state = 'done'").fetchone()[0] == rows
    assert con.execute("SELECT COUNT(DISTINCT mac) FROM devices").fetchone()[0] == rows


def test_the_ledger_class_on_postgresql(pg: tuple[Any, str]) -> None:
    from station.ledger import ClaimRefused, Ledger, LedgerRow

    _, schema = pg
    url = URL + ("&" if "?" in URL else "?") + f"options=-csearch_path%3D{schema}"
    led = Ledger(url, station_id="st1")
    assert led.dialect is sql.POSTGRESQL
    rows = [LedgerRow(i, i + 2, f"SN{i}", f"SN{i}", [f"SN{i}", "secret"]) for i in range(300)]
    assert led.import_lot("L1", "r", rows).created
    assert led.import_lot("L1", "r", rows).imported == 0
    assert led.any_pending()
    done: list[tuple[int, str]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        mine = Ledger(url)
        mine.attach("L1")
        n = 0
        while (c := mine.claim_next(mac=f"{name}-{n}", port=name)) is not None:
            mine.set_image(c, "ab" * 32)
            mine.complete(c, {"writing": 1.0})
            with lock:
                done.append((c.row_index, c.mac))
            n += 1
        mine.close()

    threads = [threading.Thread(target=claimer, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i for i, _ in done) == list(range(300))
    assert led.counters().done == 300 and not led.any_pending()
    with pytest.raises(ClaimRefused, match="done on device"):
        led.claim_row(0, mac="other", port="p")
    assert led.claim_row(0, mac=led.row(0).mac or "", port="p").kind == "rework"
    led.release(1, "scrapped", "boss")
    assert led.row(1).state == "pending" and led.count(search="SN1") > 1
    assert led.any_pending()
    led.close()


def _url(schema: str) -> str:
    return URL + ("&" if "?" in URL else "?") + f"options=-csearch_path%3D{schema}"


def test_a_lot_on_postgresql_is_bound_journaled_and_rebuilt(
    pg: tuple[Any, str], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lot on PostgreSQL keeps its marker and journal; an older schema is migrated; another
    database is refused once units were made; the journal rebuilds the ledger there."""
    import psycopg

    from station.cli import main
    from station.ledger import Ledger
    from station.production import open_lot
    from tests.production.conftest import make_small_lot

    con, schema = pg
    with con.transaction():  # a ledger of schema 1: runs had no process start time
        con.execute("ALTER TABLE runs DROP COLUMN proc_started")
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    url = _url(schema)
    lot = make_small_lot(tmp_path / "lot", 4, name="PG")
    with open_lot(lot, db_url=url) as opened:
        led = opened.ledger
        for n in range(2):
            c = led.claim_next(mac=f"24:0a:c4:00:00:0{n}", port="p", run_id=led.start_run())
            assert c is not None
            led.set_image(c, "ab" * 32)
            led.mark_written(c, {})
            led.complete(c, {})
    found = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
    assert found == sql.SCHEMA_VERSION
    (stored,) = con.execute("SELECT fingerprint_key FROM lots").fetchone()
    assert stored == ""
    other = f"{schema}_other"
    admin = psycopg.connect(URL, autocommit=True)
    admin.execute(f"CREATE SCHEMA {other}")
    try:
        assert main(["run", str(lot), "--port", "fake://1", "--db", _url(other)]) == 2
        assert "started with the ledger postgresql" in capsys.readouterr().err
        assert main(["ledger", "rebuild", str(lot), "--db", _url(other)]) == 0
        assert "2 done, 0 failed, 2 pending" in capsys.readouterr().out
        assert main(["ledger", "check", str(lot), "--db", _url(other)]) == 0
        rebuilt = Ledger(_url(other))
        rebuilt.attach("PG")
        assert {rebuilt.row(i).mac for i in range(2)} == {"24:0a:c4:00:00:00", "24:0a:c4:00:00:01"}
        rebuilt.close()
    finally:
        admin.execute(f"DROP SCHEMA {other} CASCADE")
        admin.close()
