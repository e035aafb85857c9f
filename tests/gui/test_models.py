"""The Qt models: virtualised rows over a paging source, the log buffer, failed units, problems
and partitions. Each passes qtmodeltester."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableView
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from station.errors import Problem
from station.gui.models import (
    MASK,
    FailedModel,
    LogBuffer,
    LogModel,
    PartitionModel,
    ProblemModel,
    RowTableModel,
)


@dataclass(frozen=True)
class Rec:
    index: int
    unit_id: str
    scan_value: str | None
    state: str
    mac: str | None = None
    port: str | None = None
    attempts: int = 0
    reason: str = ""
    updated_at: float = 0.0


class PagingSource:
    """An in-memory stand-in for the ledger's read view (count + rows pages)."""

    def __init__(self, n: int) -> None:
        self.recs = [Rec(i, f"U{i:06d}", f"SN-{i:06d}", "pending") for i in range(n)]
        self.calls = 0

    def _select(self, state: str | None, search: str) -> list[Rec]:
        if state is None and not search:
            return self.recs
        return [
            r
            for r in self.recs
            if (state is None or r.state == state) and search in (r.scan_value or "")
        ]

    def count(self, state: str | None = None, search: str = "") -> int:
        return len(self._select(state, search))

    def rows(
        self, offset: int, limit: int, state: str | None = None, search: str = ""
    ) -> Sequence[Rec]:
        self.calls += 1
        return self._select(state, search)[offset : offset + limit]


def _values(i: int) -> dict[str, str]:
    return {"serial_no": f"SN-{i:06d}", "wifi_psk": f"secret{i}"}


def _model(n: int) -> tuple[RowTableModel, PagingSource]:
    src = PagingSource(n)
    m = RowTableModel(
        src,
        value_columns=("serial_no", "wifi_psk"),
        values=_values,
        secret_columns=frozenset({"wifi_psk"}),
    )
    return m, src


def test_row_model_passes_modeltester(qtmodeltester: ModelTester) -> None:
    m, _ = _model(500)
    qtmodeltester.check(m)


def test_row_model_pages_lazily_over_100k_rows(qtbot: QtBot) -> None:
    m, src = _model(100_000)
    assert m.rowCount() == 100_000
    assert src.calls == 0  # nothing fetched before a cell is shown
    assert m.data(m.index(99_999, 1)) == "U099999"
    assert m.data(m.index(50_000, 2)) == "SN-050000"
    assert src.calls == 2
    for row in range(50_000, 50_000 + m.PAGE):  # the same page: cached
        m.data(m.index(row, 0))
    assert src.calls == 2
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(m)
    view.resize(800, 600)
    view.show()
    view.scrollToBottom()
    qtbot.waitExposed(view)
    assert src.calls < 10  # the view only asked for what it shows


def test_row_model_cache_is_bounded() -> None:
    m, _ = _model(100_000)
    for row in range(0, 100_000, m.PAGE):
        m.data(m.index(row, 0))
    assert len(m._pages) <= m.MAX_PAGES


def test_secret_columns_are_masked() -> None:
    m, _ = _model(3)
    cols = [m.headerData(c, Qt.Orientation.Horizontal) for c in range(m.columnCount())]
    psk, sn = cols.index("wifi_psk"), cols.index("serial_no")
    assert m.data(m.index(1, psk)) == MASK
    assert m.data(m.index(1, sn)) == "SN-000001"
    shown = [m.data(m.index(r, c)) for r in range(3) for c in range(m.columnCount())]
    assert not any("secret" in str(v) for v in shown)


def test_filter_search_and_refresh(qtmodeltester: ModelTester) -> None:
    m, src = _model(1000)
    for i in (3, 10, 11):
        src.recs[i] = replace(src.recs[i], state="failed", reason="no answer")
    m.set_filter("failed")
    assert m.rowCount() == 3
    assert m.data(m.index(0, 3)) == "failed"
    assert m.data(m.index(0, 0), Qt.ItemDataRole.ToolTipRole) == "no answer"
    qtmodeltester.check(m)
    m.set_filter(None, "SN-00099")
    assert m.rowCount() == 10
    m.set_filter("pending", "")
    assert m.rowCount() == 997
    src.recs[0] = replace(src.recs[0], state="done")
    m.refresh()
    assert m.rowCount() == 996
    assert m.data(m.index(0, 2)) == "SN-000001"
    qtmodeltester.check(m)


def test_state_colours_differ() -> None:
    m, src = _model(2)
    src.recs[1] = replace(src.recs[1], state="failed")
    m.refresh()
    a = m.data(m.index(0, 0), Qt.ItemDataRole.BackgroundRole).color()
    b = m.data(m.index(1, 0), Qt.ItemDataRole.BackgroundRole).color()
    assert a != b


def test_log_buffer_is_bounded_and_pulled_in_batches(
    qtbot: QtBot, qtmodeltester: ModelTester
) -> None:
    buf = LogBuffer(maxlen=100)
    model = LogModel(buf, maxlen=50)
    signals: list[int] = []
    buf.updated.connect(lambda: signals.append(1))
    workers = [
        threading.Thread(
            target=lambda k=k: [buf.append(f"p{k}", "info", f"line {i}") for i in range(300)]
        )
        for k in range(4)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    qtbot.waitUntil(lambda: model.rowCount() == 50)
    assert len(signals) < 1200  # payload-free and not once per line
    assert model.data(model.index(49, 3)).startswith("line ")
    buf.append("", "error", "last one")
    qtbot.waitUntil(lambda: model.data(model.index(49, 3)) == "last one")
    assert model.data(model.index(49, 1)) == "station"
    qtmodeltester.check(model)


def test_log_buffer_since_skips_lost_lines() -> None:
    buf = LogBuffer(maxlen=3)
    for i in range(5):
        buf.append("", "info", str(i))
    serial, lines, more = buf.since(0, limit=2)
    assert [x.text for x in lines] == ["2", "3"] and more
    serial, lines, more = buf.since(serial)
    assert [x.text for x in lines] == ["4"] and not more and serial == 5


def test_failed_problem_and_partition_models(qtmodeltester: ModelTester) -> None:
    failed = FailedModel()
    failed.set_rows(
        [Rec(4, "U4", "SN-4", "failed", port="COM3", attempts=2, reason="device stopped answering")]
    )
    assert failed.data(failed.index(0, 5)) == "device stopped answering"
    qtmodeltester.check(failed)

    resets: list[int] = []
    failed.modelReset.connect(lambda: resets.append(1))
    failed.set_rows([replace(failed.record(0))])  # type: ignore[type-var]  # the same, read again
    assert resets == []  # the operator's selection stays, no row is sized again
    failed.set_rows([Rec(4, "U4", "SN-4", "failed", port="COM3", attempts=3, reason="again")])
    assert resets == [1] and failed.data(failed.index(0, 4)) == "3"

    problems = ProblemModel()
    p = Problem("values.csv", 3, 7, "serial_no", "duplicate value")
    problems.set_problems([p])
    assert problems.data(problems.index(0, 0)) == "values.csv:3:7: serial_no: duplicate value"
    assert problems.data(problems.index(0, 0), Qt.ItemDataRole.UserRole) is p
    qtmodeltester.check(problems)

    @dataclass(frozen=True)
    class Part:
        name: str
        type: int
        subtype: int
        offset: int
        size: int
        encrypted: bool = False
        readonly: bool = False

    parts = PartitionModel()
    parts.set_table(
        [Part("nvs", 1, 2, 0x9000, 0x6000), Part("fctry", 1, 2, 0xF000, 0x6000, readonly=True)],
        "fctry",
    )
    assert parts.data(parts.index(1, 3)) == "0xf000"
    assert parts.data(parts.index(1, 4)) == "0x6000 (24 KiB)"
    assert parts.data(parts.index(1, 0), Qt.ItemDataRole.BackgroundRole) is not None
    assert parts.data(parts.index(0, 0), Qt.ItemDataRole.BackgroundRole) is None
    qtmodeltester.check(parts)


def test_background_pages_arrive_without_blocking(qtbot: QtBot, qtmodeltester: ModelTester) -> None:
    src = PagingSource(100_000)
    m = RowTableModel(src, background=True)
    try:
        assert m.data(m.index(50_000, 1)) == "…"  # asked for, not waited for
        qtbot.waitUntil(lambda: m.data(m.index(50_000, 1)) == "U050000")
        # the next page was read too: scrolling on shows no placeholder
        qtbot.waitUntil(lambda: m.data(m.index(50_000 + m.PAGE, 1)) == f"U{50_000 + m.PAGE:06d}")
        m.set_filter("failed")  # pages of the old filter that arrive late are dropped
        assert m.rowCount() == 0
        qtmodeltester.check(m)
    finally:
        m.stop()


def test_a_failed_row_is_shown_in_the_window_s_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each cell says its own column; the reason's wording (the costly part) runs for the
    reason's cell only, not for the five others of each row painted."""
    from station.gui import models

    worded: list[str] = []
    wording = models.for_operator
    monkeypatch.setattr(
        models, "for_operator", lambda text, slots: worded.append(text) or wording(text, slots)
    )
    failed = FailedModel()
    failed.slots = {"COM3": "Slot 2"}
    failed.set_rows(
        [Rec(4, "U4", "SN-4", "failed", port="COM3", attempts=2, reason="COM3: no answer")]
    )
    cells = [failed.data(failed.index(0, c)) for c in range(5)]
    assert cells == ["5", "U4", "SN-4", "Slot 2", "2"] and worded == []
    assert failed.data(failed.index(0, 5)) == "Slot 2: no answer" and len(worded) == 1
