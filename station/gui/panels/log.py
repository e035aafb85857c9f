"""The log: the station's and the ports' lines, newest at the bottom (the model pulls from
the locked buffer in batches). May import: PySide6, station.gui (models)."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QTableView, QWidget

from station.gui.models import LogBuffer, LogModel


class LogPanel(QTableView):
    def __init__(self, buffer: LogBuffer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_ = LogModel(buffer, parent=self)
        self.setObjectName("logView")
        self.setModel(self.model_)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        self.horizontalHeader().setStretchLastSection(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setWordWrap(False)
        self.model_.rowsInserted.connect(lambda *_: self.scrollToBottom())
