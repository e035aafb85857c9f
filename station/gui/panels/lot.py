"""The lot's partitions (table, flash map, how full the factory partition is) and its
problems (clickable: the file is shown with the line highlighted).

May import: PySide6, station.errors, station.partitions (read views), station.gui."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QLabel,
    QListView,
    QPlainTextEdit,
    QSplitter,
    QTableView,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from station.errors import Problem, StationError
from station.gui import theme
from station.gui.models import PartitionModel, ProblemModel
from station.gui.widgets import FlashMapWidget


class PartitionsPage(QWidget):
    """The partition table and the flash map, the factory partition highlighted."""

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.flash_map = FlashMapWidget()
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.model = PartitionModel(self)
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet(f"color: {theme.LOG_LEVEL['warning']};")
        layout.addWidget(self.flash_map)
        layout.addWidget(self.note)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.warnings)
        self.lot: Any | None = None
        self.used: int | None = None
        self._regions: tuple[list[Any], int | None] = ([], None)

    def show_lot(self, lot: Any) -> None:
        from station.partitions import flash_map, validate

        self.lot, self.used = lot, None
        table, factory = lot.table, lot.factory
        self.model.set_table(table.partitions, factory.name)
        flash_size = getattr(lot, "flash_size", None)
        try:
            regions = flash_map(table, flash_size, factory.name, chip=lot.settings.chip)
        except StationError as err:
            regions = []
            self.warnings.setText("\n".join(str(p) for p in err.problems))
        self._regions = (regions, flash_size)
        self.flash_map.set_map(regions, flash_size)
        self.note.setText(
            f"Factory data: partition “{factory.name}” at 0x{factory.offset:x}, "
            f"0x{factory.size:x} bytes ({factory.size // 4096} pages)."
        )
        self.warnings.setText("\n".join(str(p) for p in validate(table, flash_size)))
        self.view.resizeColumnsToContents()

    def show_usage(self, usage: Any) -> None:
        """Row 1's image built (on the session's worker): how full the partition is."""
        lot = self.lot
        if usage.lot is not lot or lot is None:
            return  # another lot by now
        factory = lot.factory
        if usage.error:
            self.note.setText(f"{self.note.text()} Row 1: {usage.error}")
            return
        regions, flash_size = self._regions
        self.flash_map.set_map(regions, flash_size, usage.used)
        self.used = usage.used
        self.note.setText(
            f"Factory data: partition “{factory.name}” at 0x{factory.offset:x}, "
            f"0x{factory.size:x} bytes. Row 1's NVS image fills {usage.used} bytes of it "
            f"({100 * usage.used / factory.size:.0f} %)."
        )


class ProblemsPage(QWidget):
    """Located problems; a click shows the file they are about at their line."""

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.model = ProblemModel(self)
        self.view = QListView()
        self.view.setObjectName("problemList")
        self.view.setModel(self.model)
        self.view.setWordWrap(True)
        self.view.activated.connect(self.show_problem)
        self.view.clicked.connect(self.show_problem)
        self.source = QPlainTextEdit()
        self.source.setReadOnly(True)
        self.source.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.source.setPlaceholderText("Click a problem to see the line it is about.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.view)
        split.addWidget(self.source)
        layout.addWidget(split)

    def set_problems(self, problems: list[Problem], *, show_first: bool = False) -> None:
        self.model.set_problems(problems)
        self.source.clear()
        if show_first and problems:
            self.view.setCurrentIndex(self.model.index(0, 0))
            self.show_problem(self.model.index(0, 0))

    def show_problem(self, index: QModelIndex) -> None:
        """Show the file a problem is about, with its line highlighted."""
        if not index.isValid():
            return
        problem: Problem = self.model.problem(index.row())
        path = Path(problem.file)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            self.source.setPlainText(f"{problem}\n\n(the file {path} cannot be read)")
            return
        self.source.setPlainText(text)
        if problem.line <= 0:
            return
        block = self.source.document().findBlockByLineNumber(problem.line - 1)
        cursor = QTextCursor(block)
        if problem.column > 0:
            cursor.movePosition(
                QTextCursor.MoveOperation.Right,
                QTextCursor.MoveMode.MoveAnchor,
                min(problem.column - 1, max(block.length() - 1, 0)),
            )
        self.source.setTextCursor(cursor)
        selection = QTextEdit.ExtraSelection()
        fmt = QTextCharFormat()
        fmt.setBackground(QColor("#fee2e2"))
        fmt.setProperty(QTextCharFormat.Property.FullWidthSelection, True)
        selection.format = fmt  # type: ignore[attr-defined]
        selection.cursor = QTextCursor(block)  # type: ignore[attr-defined]
        self.source.setExtraSelections([selection])
        self.source.centerCursor()
