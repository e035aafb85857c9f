"""``station gui LOT --db URL --watch``: the dashboard and the rows of a line, read-only; the
ledger is the same before and after (SQLite: a read-only file; PostgreSQL: every table)."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from station.cli import build_parser
from station.errors import StationError
from station.gui.models import ROW_FILTERS
from station.gui.resources import resources_dir
from station.gui.watch import WatchWindow, watched_ledger
from station.ledger.readonly import open_read_only
from tests.conftest import pg_schema
from tests.ledger.line import Clock, busy_line

TABLES = ("meta", "lots", "rows", "devices", "attempts", "runs", "audit")


def watch(qtbot: Any, qtmodeltester: Any, ledger: Any) -> WatchWindow:
    w = WatchWindow(ledger, refresh_ms=100)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.dashboard.updated, timeout=20000):
        w.show()
    assert "read-only" in w.windowTitle()
    assert w.dashboard.figures is not None and w.dashboard.figures.total == 300
    assert w.row_model.rowCount() == 300
    w.tabs.setCurrentIndex(1)  # the rows: refreshed by the timer while shown
    with qtbot.waitSignal(w.row_model.dataChanged, timeout=5000):
        pass
    qtbot.waitUntil(lambda: w.row_model.data(w.row_model.index(0, 1)) == "SN0000")
    w.filter_box.setCurrentText(next(t for t in ROW_FILTERS if ROW_FILTERS[t] == "done"))
    assert 0 < w.row_model.rowCount() < 300
    qtmodeltester.check(w.row_model)
    return w


@pytest.fixture
def line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clock = Clock()
    with monkeypatch.context() as m:
        m.setattr("station.ledger.connection.time", clock)
        busy_line(str(tmp_path / "line.db"), clock, hours=1, lot_rows=300)
    return tmp_path / "line.db"


def test_watching_a_read_only_sqlite_ledger_writes_nothing(
    qtbot: Any, qtmodeltester: Any, line: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "ro" / "line.db"
    copy.parent.mkdir()
    src, dst = sqlite3.connect(line), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    copy.chmod(0o444)
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    w = watch(qtbot, qtmodeltester, open_read_only(copy, "LINE-1"))
    w.shutdown()
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    wal = copy.with_name("line.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_the_lot_to_watch_comes_from_a_lot_file_or_a_name_and_a_url(tmp_path: Path) -> None:
    args = build_parser().parse_args(["gui", "L1", "--db", "postgresql://u@h/db", "--watch"])
    assert (args.lot, args.db, args.watch) == ("L1", "postgresql://u@h/db", True)
    with pytest.raises(StationError, match="--watch needs the lot file"):
        watched_ledger("L1", None)
    lot = tmp_path / "lot"
    shutil.copytree(resources_dir() / "sample_lot", lot)
    with pytest.raises(StationError, match="no ledger database"):
        watched_ledger(str(lot / "lot.toml"), None)  # no station has opened the lot yet


@pytest.fixture
def pg_url() -> Iterator[tuple[str, Any]]:
    with pg_schema() as (url, schema, admin):
        yield (
            url,
            lambda: {
                t: admin.execute(
                    f"SELECT md5(COALESCE(string_agg(x::text, '|' ORDER BY x::text), ''))"  # noqa: S608
                    f" FROM {schema}.{t} x"
                ).fetchone()[0]
                for t in TABLES
            },
        )


def test_watching_a_postgresql_line_writes_nothing(
    qtbot: Any, qtmodeltester: Any, pg_url: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, tables = pg_url
    clock = Clock()
    with monkeypatch.context() as m:
        m.setattr("station.ledger.connection.time", clock)
        busy_line(url, clock, hours=1, lot_rows=300)
    before = tables()
    w = watch(qtbot, qtmodeltester, watched_ledger("LINE-1", url))
    w.shutdown()
    assert tables() == before
