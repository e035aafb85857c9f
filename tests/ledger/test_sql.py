"""The SQL module: one statement set, two dialects."""

from __future__ import annotations

import re
import sqlite3

from station.ledger import sql


def test_postgresql_claim_skips_locked_rows() -> None:
    q = sql.POSTGRESQL.claim_next()
    assert q.endswith("FOR UPDATE SKIP LOCKED") and "%s" in q and "?" not in q
    assert sql.POSTGRESQL.claim_row().endswith("FOR UPDATE")
    assert sql.SQLITE.claim_next() == sql.CLAIM_NEXT_SELECT


def test_every_statement_has_placeholders_postgresql_accepts() -> None:
    statements = [v for k, v in vars(sql).items() if k.isupper() and isinstance(v, str)]
    assert len(statements) > 30
    for s in statements:
        pg = sql.POSTGRESQL.sql(s)
        assert "?" not in pg
        assert pg.count("%s") == s.count("?")
        assert "INSERT OR" not in s  # SQLite-only syntax stays out of the shared statements


def test_schema_is_valid_sqlite_and_free_of_sqlite_only_types() -> None:
    con = sqlite3.connect(":memory:")
    for s in sql.SQLITE.schema():
        con.execute(s)
    for s in sql.POSTGRESQL.schema():
        assert "AUTOINCREMENT" not in s
        assert not re.search(r"\bREAL\b", s)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"row_bound_once", "mac_bound_once", "rows_mac_live", "one_active_attempt"} <= names
