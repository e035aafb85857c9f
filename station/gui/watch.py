"""``station gui LOT --db URL --watch``: a supervisor's window on a line, without ports.

It opens the lot's ledger read-only (:mod:`station.ledger.readonly`: the database refuses any
write) and shows the Dashboard and the rows, refreshed every few seconds. No orchestrator, no
device host, no scanner: nothing here can claim a row or touch a device.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from station.errors import StationError
from station.gui.dashboard import REFRESH_MS, DashboardPanel
from station.gui.models import ROW_FILTERS, RowTableModel
from station.ledger.ledger import display_url, is_postgresql
from station.ledger.readonly import ReadOnlyLedger, open_read_only


class WatchWindow(QMainWindow):
    """The dashboard and the rows of one lot, read-only."""

    def __init__(self, ledger: ReadOnlyLedger, *, refresh_ms: int = REFRESH_MS) -> None:
        super().__init__()
        self.ledger = ledger
        self._closed = False
        self.setObjectName("watchWindow")
        self.setWindowTitle(f"Station – {ledger.lot_name} (watching, read-only)")
        self.tabs = QTabWidget()
        self.dashboard = DashboardPanel(refresh_ms=refresh_ms)
        self.tabs.addTab(self.dashboard, "&Dashboard")

        rows_page = QWidget()
        rl = QVBoxLayout(rows_page)
        rl.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.filter_box = QComboBox()
        self.filter_box.addItems(list(ROW_FILTERS))
        self.filter_box.currentTextChanged.connect(self._filter_changed)
        self.search_field = QLineEdit()
        self.search_field.setPlaceholderText("search unit, scan code, MAC, port")
        self.search_field.setClearButtonEnabled(True)
        self.search_field.returnPressed.connect(self._filter_changed)
        bar.addWidget(self.filter_box)
        bar.addWidget(self.search_field, 1)
        rl.addLayout(bar)
        self.row_model = RowTableModel(ledger, parent=self, background=True)
        self.row_view = QTableView()
        self.row_view.setObjectName("rowTable")
        self.row_view.setModel(self.row_model)
        self.row_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.row_view.verticalHeader().setVisible(False)
        self.row_view.horizontalHeader().setStretchLastSection(True)
        self.row_view.setWordWrap(False)
        self.row_view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.row_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.row_model.record(0, wait=True)  # the first page now, so columns fit its contents
        self.row_view.horizontalHeader().resizeSections(QHeaderView.ResizeMode.ResizeToContents)
        mac = self.fontMetrics().horizontalAdvance("24:0a:c4:00:00:00") + 12
        self.row_view.horizontalHeader().resizeSection(4, mac)
        rl.addWidget(self.row_view, 1)
        self.tabs.addTab(rows_page, "&Rows")
        self.setCentralWidget(self.tabs)

        where = display_url(ledger.url) if is_postgresql(ledger.url) else str(ledger.path)
        self.statusBar().addWidget(QLabel(f"Watching lot {ledger.lot_name} at {where}, read-only"))
        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self._refresh_rows)
        self.timer.start()
        self.dashboard.set_ledger(ledger)
        self.resize(1366, 740)

    def _filter_changed(self, *_: Any) -> None:
        self.row_model.set_filter(
            ROW_FILTERS[self.filter_box.currentText()], self.search_field.text()
        )

    def _refresh_rows(self) -> None:
        if self.tabs.currentIndex() != 1:  # the rows are not on screen
            return
        try:
            self.row_model.refresh()
        except Exception as err:  # the server went away: said; the next tick tries again
            first = (str(err).splitlines() or [type(err).__name__])[0][:200]
            self.statusBar().showMessage(f"The ledger cannot be read right now: {first}", 10000)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop the timers and readers, close the ledger."""
        if self._closed:
            return
        self._closed = True
        self.timer.stop()
        self.dashboard.stop()
        self.row_model.stop()
        self.row_model.set_source(None)
        self.ledger.close()


def watched_ledger(lot: str | None, db: str | None) -> ReadOnlyLedger:
    """The ledger a watch opens: from a lot file (its ledger, or ``db``), or a lot's name
    with ``db``."""
    from station.production.lot import read_lot_file

    if lot and Path(lot).is_file():
        settings = read_lot_file(lot)
        return open_read_only(db or settings.default_db, settings.name)
    if lot and db:
        return open_read_only(db, lot)
    raise StationError.at(
        lot or "LOT",
        "--watch needs the lot file (lot.toml), or the lot's name with --db URL",
        key="watch",
    )


def run_watch(app: Any, args: argparse.Namespace) -> int:
    """Show the watch window until it is closed."""
    window = WatchWindow(watched_ledger(getattr(args, "lot", None), getattr(args, "db", None)))
    window.show()
    code = app.exec()
    window.shutdown()
    return int(code)
