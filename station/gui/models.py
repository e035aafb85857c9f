"""Qt item models over the core's read views. They hold no production logic: they page, cache
and format what the ledger, the lot and the log say."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor

from station.gui import theme
from station.gui.wording import for_operator, port_label
from station.mfg import MASK
from station.partitions.sizes import human_size

Index = QModelIndex | QPersistentModelIndex
ROOT = QModelIndex()

# filter name shown to the operator -> ledger state (None: all rows)
ROW_FILTERS: dict[str, str | None] = {
    "All": None,
    "Pending": "pending",
    "Done": "done",
    "Failed": "failed",
}


class RowSource(Protocol):
    """What the row table needs from the ledger (station.ledger.Ledger satisfies it)."""

    def count(self, state: str | None = None, search: str = "") -> int: ...

    def rows(
        self, offset: int, limit: int, state: str | None = None, search: str = ""
    ) -> Sequence[Any]: ...


class RowTableModel(QAbstractTableModel):
    """The lot's rows, virtualised: pages are fetched from the ledger as the view needs them and
    kept in a small LRU cache, so 100,000 rows scroll smoothly. Secret columns show a mask."""

    FIXED = ("#", "Unit", "Scan", "State", "MAC", "Port", "Tries", "Reason")
    PAGE = 200
    MAX_PAGES = 40

    def __init__(
        self,
        source: RowSource | None = None,
        *,
        value_columns: Sequence[str] = (),
        values: Callable[[int], Mapping[str, str]] | None = None,
        secret_columns: frozenset[str] = frozenset(),
        parent: QObject | None = None,
        background: bool = False,
    ) -> None:
        super().__init__(parent)
        self._source = source
        self._loader: _PageLoader | None = _PageLoader(self) if background else None
        self._generation = 0  # bumped whenever cached pages become invalid
        self._pending: set[int] = set()
        self._value_columns = tuple(value_columns)
        self._values = values
        self._secret = secret_columns
        self._state: str | None = None
        self._search = ""
        self._pages: OrderedDict[int, Sequence[Any]] = OrderedDict()
        self._count = source.count() if source is not None else 0
        self.fetches = 0  # pages read from the source (for tests and the benchmark)
        self.slots: Mapping[str, str] = {}  # port -> slot name (the window's; shown for ports)

    # --- configuration -------------------------------------------------------------------------
    def set_source(
        self,
        source: RowSource | None,
        *,
        value_columns: Sequence[str] = (),
        values: Callable[[int], Mapping[str, str]] | None = None,
        secret_columns: frozenset[str] = frozenset(),
    ) -> None:
        # counted before the reset: a source may answer through another thread (the window's
        # waits in an event loop), and a view must not paint a model in the middle of a reset
        count = source.count(self._state, self._search) if source is not None else 0
        self.beginResetModel()
        self._source = source
        self._value_columns = tuple(value_columns)
        self._values = values
        self._secret = secret_columns
        self._invalidate()
        self._count = count
        self.endResetModel()

    def set_filter(self, state: str | None, search: str | None = None) -> None:
        """Show only rows in ``state`` (None: all) matching ``search``."""
        search = self._search if search is None else search.strip()
        count = self._source.count(state, search) if self._source is not None else 0
        self._search = search
        self._state = state
        self.beginResetModel()
        self._invalidate()
        self._count = count
        self.endResetModel()

    def _invalidate(self) -> None:
        self._pages.clear()
        self._pending.clear()
        self._generation += 1

    def stop(self) -> None:
        """Stop the background page reader (joins its thread)."""
        if self._loader is not None:
            self._loader.stop()

    def _page_loaded(self, generation: int, page_no: int, page: object) -> None:
        if generation != self._generation:
            return  # read for a filter or a ledger state that is gone
        self._pending.discard(page_no)
        if isinstance(page, BaseException):
            return
        assert isinstance(page, list)
        self._store(page_no, page)
        first = page_no * self.PAGE
        last = min(first + len(page), self._count) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, self.columnCount() - 1))

    def _store(self, page_no: int, page: list[Any]) -> None:
        self._pages[page_no] = page
        while len(self._pages) > self.MAX_PAGES:
            self._pages.popitem(last=False)

    @property
    def state_filter(self) -> str | None:
        return self._state

    @property
    def search(self) -> str:
        return self._search

    def _recount(self) -> int:
        if self._source is None:
            return 0
        return self._source.count(self._state, self._search)

    def update_rows(self, indexes: Iterable[int], fetch: Callable[[int], Any]) -> bool:
        """Rows ``indexes`` changed in the ledger. Without a filter or search, re-read just those
        that are in the cache (one primary-key read each) and repaint them; returns False when a
        filter is on (a changed row may enter or leave it: the caller then calls :meth:`refresh`,
        throttled)."""
        if self._source is None:
            return True
        if self._state is not None or self._search:
            return False
        last = self.columnCount() - 1
        for idx in indexes:
            page_no, offset = divmod(idx, self.PAGE)
            page = self._pages.get(page_no)
            if page is None or offset >= len(page) or page[offset].index != idx:
                continue  # not on screen recently: it is read fresh when shown
            if not isinstance(page, list):
                page = list(page)
                self._pages[page_no] = page
            page[offset] = fetch(idx)
            self.dataChanged.emit(self.index(idx, 0), self.index(idx, last))
        return True

    def refresh(self) -> None:
        """The ledger changed: recount, drop the cache and repaint (keeps scroll and selection)."""
        if self._source is None:
            return
        new = self._recount()
        old = self._count
        self._invalidate()
        if new < old:
            self.beginRemoveRows(ROOT, new, old - 1)
            self._count = new
            self.endRemoveRows()
        elif new > old:
            self.beginInsertRows(ROOT, old, new - 1)
            self._count = new
            self.endInsertRows()
        if new:
            self.dataChanged.emit(self.index(0, 0), self.index(new - 1, self.columnCount() - 1))

    # --- access --------------------------------------------------------------------------------
    def record(self, row: int, *, wait: bool = False) -> Any | None:
        """The ledger record shown in ``row``. A page not in the cache is read on the page
        reader's thread (None until it arrives) unless ``wait`` or there is no reader."""
        if self._source is None or not 0 <= row < self._count:
            return None
        page_no = row // self.PAGE
        page = self._pages.get(page_no)
        if page is None:
            if self._loader is not None and not wait:
                # the page after it too (scrolling on), read after the one wanted now
                for p in (page_no + 1, page_no):
                    if p in self._pending or p in self._pages or p * self.PAGE >= self._count:
                        continue
                    self._pending.add(p)
                    self.fetches += 1
                    self._loader.request(
                        self._generation, p, self._source, self._state, self._search
                    )
                return None
            page = list(
                self._source.rows(page_no * self.PAGE, self.PAGE, self._state, self._search)
            )
            self.fetches += 1
            self._store(page_no, page)
        else:
            self._pages.move_to_end(page_no)
        offset = row - page_no * self.PAGE
        return page[offset] if offset < len(page) else None

    def row_of(self, row_index: int) -> int | None:
        """The table row showing lot row ``row_index``, if it is in a cached page."""
        for page_no, page in self._pages.items():
            for i, rec in enumerate(page):
                if rec.index == row_index:
                    return page_no * self.PAGE + i
        return None

    # --- Qt model API --------------------------------------------------------------------------
    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self.FIXED) + len(self._value_columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Vertical:
            return None
        names = self.FIXED + self._value_columns
        return names[section] if 0 <= section < len(names) else None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # called for every cell and role at each repaint (~1,000 calls for a screenful): the
        # roles are compared as plain ints and the brushes made once
        if role not in _ROW_ROLES or not index.isValid():
            return None
        rec = self.record(index.row())
        if rec is None:
            return "…" if role == _DISPLAY else None
        if role == _BACKGROUND:
            return _row_brush(rec.state)
        if role == _FOREGROUND:
            return _ROW_TEXT_BRUSH
        col = index.column()
        if role == _TOOLTIP:
            if col == 5:
                return rec.port or None
            return rec.reason or None
        if col == 5:
            return port_label(str(rec.port or ""), self.slots)
        if col == 7:
            return for_operator(str(rec.reason or ""), self.slots)
        if col < len(self.FIXED):
            return _fixed_cell(rec, col)
        name = self._value_columns[col - len(self.FIXED)]
        if name in self._secret:
            return MASK
        if self._values is None:
            return ""
        return str(self._values(rec.index).get(name, ""))

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return _ROW_FLAGS


_DISPLAY = Qt.ItemDataRole.DisplayRole.value
_BACKGROUND = Qt.ItemDataRole.BackgroundRole.value
_FOREGROUND = Qt.ItemDataRole.ForegroundRole.value
_TOOLTIP = Qt.ItemDataRole.ToolTipRole.value
_ROW_ROLES = frozenset({_DISPLAY, _BACKGROUND, _FOREGROUND, _TOOLTIP})
_ROW_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
_ROW_TEXT_BRUSH = QBrush(QColor(theme.ROW_TEXT))
_ROW_BRUSHES: dict[str, QBrush] = {}


def _row_brush(state: str) -> QBrush:
    brush = _ROW_BRUSHES.get(state)
    if brush is None:
        colour = theme.ROW_BACKGROUND.get(state, theme.ROW_BACKGROUND["pending"])
        brush = _ROW_BRUSHES[state] = QBrush(QColor(colour))
    return brush


class _PageLoader(QObject):
    """Reads row pages from the ledger on one background thread (SQLite paging over a big lot
    costs milliseconds; the GUI thread never waits for it). Newest request first."""

    loaded = Signal(int, int, object)  # generation, page number, list of records (or the error)

    def __init__(self, model: RowTableModel) -> None:
        super().__init__(model)
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int, Any, str | None, str]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.loaded.connect(model._page_loaded)

    def request(
        self, generation: int, page_no: int, source: Any, state: str | None, search: str
    ) -> None:
        with self._cond:
            self._queue.append((generation, page_no, source, state, search))
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="row pages", daemon=True)
                self._thread.start()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                generation, page_no, source, state, search = self._queue.pop()  # newest first
            size = RowTableModel.PAGE
            try:
                result: object = list(source.rows(page_no * size, size, state, search))
            except Exception as err:  # a closed ledger while the lot changes: drop the page
                result = err
            self.loaded.emit(generation, page_no, result)


def _fixed_cell(rec: Any, col: int) -> str:
    if col == 0:
        return str(rec.index + 1)
    if col == 1:
        return str(rec.unit_id or "")
    if col == 2:
        return str(rec.scan_value or "")
    if col == 3:
        return str(rec.state)
    if col == 4:
        return str(rec.mac or "")
    if col == 5:
        return str(rec.port or "")
    if col == 6:
        return str(rec.attempts or 0)
    return str(rec.reason or "")


# --- log ---
@dataclass(frozen=True)
class LogLine:
    """One log line as shown: wall-clock time, port ("" for the station), level, text."""

    time: float
    port: str
    level: str
    text: str


class LogBuffer(QObject):
    """A locked, bounded buffer of log lines. Writers (any thread) append; a payload-free
    ``updated`` signal (emitted once until the reader drains) tells the model to pull."""

    updated = Signal()

    def __init__(self, maxlen: int = 5000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._lines: deque[LogLine] = deque(maxlen=maxlen)
        self._serial = 0  # number of lines ever appended
        self._signalled = False

    def append(self, port: str, level: str, text: str) -> None:
        line = LogLine(time.time(), port, level, text)
        with self._lock:
            self._lines.append(line)
            self._serial += 1
            signal = not self._signalled
            self._signalled = True
        if signal:
            self.updated.emit()

    def since(self, serial: int, limit: int = 1000) -> tuple[int, list[LogLine], bool]:
        """Lines appended after line number ``serial``, at most ``limit``.

        Returns (the new line number, the lines, whether more are waiting). Lines that fell out of
        the bounded buffer before they were read are skipped."""
        with self._lock:
            self._signalled = False
            available = len(self._lines)
            new = self._serial - serial
            if new > available:
                serial, new = self._serial - available, available
            take = min(new, limit)
            start = available - new
            lines = [self._lines[i] for i in range(start, start + take)]
            return serial + take, lines, take < new


class _FixedColumns(QAbstractTableModel):
    """A table whose columns are the class's ``HEADERS``."""

    HEADERS: tuple[str, ...] = ()

    def columnCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section] if 0 <= section < len(self.HEADERS) else None
        return None


class LogModel(_FixedColumns):
    """The last ``maxlen`` log lines; pulls from a :class:`LogBuffer` in batches."""

    HEADERS = ("Time", "Port", "Level", "Message")

    def __init__(self, buffer: LogBuffer, maxlen: int = 2000, parent: QObject | None = None):
        super().__init__(parent)
        self._buffer = buffer
        self._maxlen = maxlen
        self._lines: list[LogLine] = []
        self._serial = 0
        self.slots: Mapping[str, str] = {}  # port -> slot name (the window's)
        buffer.updated.connect(self.pull)

    def pull(self) -> None:
        """Take new lines from the buffer (GUI thread)."""
        while True:
            self._serial, lines, more = self._buffer.since(self._serial, 500)
            if not lines:
                return
            overflow = len(self._lines) + len(lines) - self._maxlen
            if overflow > 0:
                cut = min(overflow, len(self._lines))
                if cut:
                    self.beginRemoveRows(ROOT, 0, cut - 1)
                    del self._lines[:cut]
                    self.endRemoveRows()
                lines = lines[-self._maxlen :]
            first = len(self._lines)
            self.beginInsertRows(ROOT, first, first + len(lines) - 1)
            self._lines.extend(lines)
            self.endInsertRows()
            if not more:
                return

    def line(self, row: int) -> LogLine:
        return self._lines[row]

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._lines)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        line = self._lines[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            col = index.column()
            if col == 0:
                return time.strftime("%H:%M:%S", time.localtime(line.time))
            if col == 1:
                return port_label(line.port, self.slots) or "station"
            if col == 2:
                return line.level
            return for_operator(line.text, self.slots)
        if role == Qt.ItemDataRole.ToolTipRole:
            if index.column() == 1:
                return line.port or None
            return line.text
        if role == Qt.ItemDataRole.ForegroundRole and line.level.lower() in {"error", "warning"}:
            return QBrush(QColor(theme.LOG_LEVEL[line.level.lower()]))
        return None


# --- failed units ---
class FailedModel(_FixedColumns):
    """Failed units with the reason (a snapshot of ``ledger.failed()``, refreshed on change)."""

    HEADERS = ("#", "Unit", "Scan", "Port", "Tries", "Reason")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []
        self.slots: Mapping[str, str] = {}  # port -> slot name (the window's)

    def set_rows(self, rows: Sequence[Any]) -> None:
        rows = list(rows)
        if rows == self._rows:
            # the list is re-read whenever a row in it changes: the same list must not reset
            # the operator's selection, nor size every row again (costly with 50 long reasons)
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def record(self, row: int) -> Any | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        rec = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(rec, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            if index.column() == 3:
                return rec.port or None
            return rec.reason or None
        return None

    def _text(self, rec: Any, column: int) -> str:
        """One cell's text; only that column's (the reason's wording is the costly one)."""
        if column < 3:  # #, Unit, Scan: as in the rows table
            return _fixed_cell(rec, column)
        if column == 3:
            return port_label(str(rec.port or ""), self.slots)
        if column == 4:
            return str(rec.attempts or 0)
        return for_operator(str(rec.reason or ""), self.slots)


# --- problems and partitions ---
class ProblemModel(QAbstractListModel):
    """Located problems (``file:line:column: key: message``); the row's UserRole is the Problem."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._problems: list[Any] = []

    def set_problems(self, problems: Sequence[Any]) -> None:
        self.beginResetModel()
        self._problems = list(problems)
        self.endResetModel()

    def problem(self, row: int) -> Any:
        return self._problems[row]

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._problems)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        problem = self._problems[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return str(problem)
        if role == Qt.ItemDataRole.UserRole:
            return problem
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(QColor(theme.LOG_LEVEL["error"]))
        return None


class PartitionModel(_FixedColumns):
    """The partition table as rows; the factory-data partition is shown in bold colour."""

    HEADERS = ("Name", "Type", "Subtype", "Offset", "Size", "Flags")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._parts: list[Any] = []
        self._factory: str | None = None

    def set_table(self, partitions: Sequence[Any], factory: str | None) -> None:
        self.beginResetModel()
        self._parts = list(partitions)
        self._factory = factory
        self.endResetModel()

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._parts)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        p = self._parts[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            flags = ", ".join(
                f for f, on in (("encrypted", p.encrypted), ("readonly", p.readonly)) if on
            )
            return (
                p.name,
                str(getattr(p, "type_name", p.type)),
                str(getattr(p, "subtype_name", p.subtype)),
                f"0x{p.offset:x}",
                f"0x{p.size:x} ({human_size(p.size)})",
                flags,
            )[index.column()]
        if role == Qt.ItemDataRole.BackgroundRole and p.name == self._factory:
            return QBrush(QColor(theme.FACTORY))
        return None
