"""The lot's rows (filter, search, Next) and the failed units (Retry, Reprint, Release).

Pages of rows are read by the row model's own reader thread; the failed list is what the
session's worker read. May import: PySide6, station.gui (models)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from station.gui.models import ROW_FILTERS, FailedModel, RowTableModel


class RowsPage(QWidget):
    """Every row of the lot, virtualised; the selection is what Next (F6) sends."""

    def __init__(self, window: Any) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.filter_box = QComboBox()
        self.filter_box.addItems(list(ROW_FILTERS))
        self.filter_box.setToolTip("Show pending, done, failed or all rows")
        self.filter_box.currentTextChanged.connect(self.filter_changed)
        self.search_field = QLineEdit()
        self.search_field.setPlaceholderText("search unit, scan code, MAC (Ctrl+F)")
        self.search_field.setClearButtonEnabled(True)
        self.search_field.returnPressed.connect(self.filter_changed)
        self.next_button = QPushButton("Next → port (F6)")
        self.next_button.clicked.connect(window.assign_selected)
        bar.addWidget(self.filter_box)
        bar.addWidget(self.search_field, 1)
        bar.addWidget(self.next_button)
        layout.addLayout(bar)
        self.model = RowTableModel(parent=self, background=True)
        self.view = QTableView()
        self.view.setObjectName("rowTable")
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setWordWrap(False)
        self.view.doubleClicked.connect(lambda _i: window.assign_selected())
        self.search_timer = QTimer(self)
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(300)
        self.search_timer.timeout.connect(self.filter_changed)
        self.search_field.textChanged.connect(lambda _t: self.search_timer.start())
        layout.addWidget(self.view, 1)

    def show_lot(self, lot: Any, source: Any) -> None:
        """The lot's rows; ``source`` reads them (on the session's worker, or on the model's
        own page reader thread), never the ledger on the GUI thread."""
        mfg = lot.mfg
        self.model.set_source(
            source,
            value_columns=mfg.columns,
            values=lambda i: mfg.rows[i].values,
            secret_columns=frozenset(lot.secret_columns),
        )
        self.model.record(0, wait=True)  # the first page now, so columns fit its contents
        header = self.view.horizontalHeader()
        header.resizeSections(QHeaderView.ResizeMode.ResizeToContents)
        fm = self.view.fontMetrics()
        header.resizeSection(4, fm.horizontalAdvance("24:0a:c4:00:00:00") + 12)  # MAC
        header.resizeSection(5, fm.horizontalAdvance("COM10") + 12)  # port (tooltip: full)

    def stop(self) -> None:
        self.search_timer.stop()
        self.model.stop()  # its reader thread uses the ledger: stop it before closing
        self.model.set_source(None)

    def filter_changed(self, *_: Any) -> None:
        self.search_timer.stop()
        self.model.set_filter(ROW_FILTERS[self.filter_box.currentText()], self.search_field.text())

    def selected_index(self) -> int | None:
        """The lot row selected (None: no selection)."""
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        rec = self.model.record(rows[0].row(), wait=True)
        return None if rec is None else int(rec.index)

    def show_row(self, row_index: int) -> None:
        """Bring a scanned unit's row into view without selecting it: a selection is the
        operator's own choice of what F6 sends next, and a scan must not make it."""
        model = self.model
        row: int | None = row_index
        if model.state_filter is not None or model.search:
            row = model.row_of(row_index)
        self.view.clearSelection()
        if row is not None and 0 <= row < model.rowCount():
            index = model.index(row, 0)
            self.view.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.NoUpdate
            )
            self.view.scrollTo(index)


class FailedPage(QWidget):
    """Failed units with the reason; Retry, Reprint and Release act on the selected one."""

    def __init__(self, window: Any) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.model = FailedModel(self)
        self.view = QTableView()
        self.view.setObjectName("failedTable")
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setWordWrap(True)  # the reason is what the operator reads here
        self.model.modelReset.connect(self._size_columns)
        layout.addWidget(self.view, 1)
        buttons = QHBoxLayout()
        self.retry_button = QPushButton("Retry (Ctrl+R)")
        self.retry_button.clicked.connect(window.retry_selected)
        self.reprint_button = QPushButton("Reprint label (Ctrl+P)")
        self.reprint_button.clicked.connect(window.reprint_selected)
        self.release_button = QPushButton("Release row… (supervisor)")
        self.release_button.clicked.connect(window.release_selected)
        for b in (self.retry_button, self.reprint_button, self.release_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.indexes: set[int] = set()

    def set_rows(self, rows: Sequence[Any]) -> None:
        self.indexes = {r.index for r in rows}
        self.model.set_rows(rows)

    def selected_index(self) -> int | None:
        rows = self.view.selectionModel().selectedRows()
        rec = self.model.record(rows[0].row()) if rows else None
        return None if rec is None else int(rec.index)

    def first_index(self) -> int | None:
        rec = self.model.record(0)
        return None if rec is None else int(rec.index)

    def _size_columns(self) -> None:
        header = self.view.horizontalHeader()
        fm = self.view.fontMetrics()
        for col, sample in enumerate(("00000", "SN00000000", "SN00000000", "COM10", "Tries")):
            header.resizeSection(col, fm.horizontalAdvance(sample) + 16)
        self.view.resizeRowsToContents()
