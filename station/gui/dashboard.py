"""The Dashboard tab: the line's figures as charts (QtCharts), refreshed every few seconds.

The figures are read by :func:`station.ledger.stats.line_stats` on a one-thread pool of this
panel (never on the GUI thread: a PostgreSQL server across the factory may take a while to
answer); the finished, frozen :class:`~station.ledger.stats.LineStats` comes back through a
queued signal and the GUI thread only paints it. One thread means one database connection and
no two reads at once; a tick while a read is under way is skipped.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCharts import (
    QAreaSeries,
    QBarCategoryAxis,
    QBarSet,
    QBoxPlotSeries,
    QBoxSet,
    QChart,
    QChartView,
    QDateTimeAxis,
    QHorizontalBarSeries,
    QLineSeries,
    QValueAxis,
)
from PySide6.QtCore import (
    QAbstractTableModel,
    QDateTime,
    QMargins,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPointF,
    QRunnable,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from station.ledger import stats
from station.ledger.stats import LineStats, StationActivity, YieldLine

Index = QModelIndex | QPersistentModelIndex
ROOT = QModelIndex()
REFRESH_MS = 5000
PASS, FAIL, BOX = QColor("#16a34a"), QColor("#dc2626"), QColor("#2563eb")
TICKS = (900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)
LOW_YIELD = 0.9  # yield bars below this are drawn red
TWO_COLUMNS = 1000  # from this width on, the charts stand two abreast


class StationModel(QAbstractTableModel):
    """The stations on the line: state, last activity, passed/failed/in progress."""

    COLUMNS = ("Station", "Host", "State", "Last activity", "Passed", "Failed", "In progress")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[StationActivity] = []
        self._now = 0.0

    def set_stations(self, rows: Sequence[StationActivity], now: float) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._now = now
        self.endResetModel()

    def rowCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = ROOT) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(self.COLUMNS)
        ):
            return self.COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        st = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                st.station_id or "(unnamed)",
                ", ".join(st.hosts),
                st.state(self._now),
                stats.ago(self._now, st.last_activity),
                str(st.passed),
                str(st.failed),
                str(st.in_progress),
            )[col]
        if role == Qt.ItemDataRole.ToolTipRole and col == 3 and st.last_activity is not None:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.last_activity))
        if role == Qt.ItemDataRole.ForegroundRole and (
            (col == 5 and st.failed) or (col == 2 and st.state(self._now) == "quiet")
        ):
            return FAIL
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 4:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class _Relay(QObject):
    """Carries a finished read back to the GUI thread (queued connection)."""

    # generation, LineStats or None, error, (reader thread, seconds the read took)
    done = Signal(int, object, str, object)


class _ReadJob(QRunnable):
    def __init__(self, ledger: Any, generation: int, relay: _Relay) -> None:
        super().__init__()
        self.ledger, self.generation, self.relay = ledger, generation, relay

    def run(self) -> None:
        started = time.perf_counter()
        try:
            figures = stats.line_stats(self.ledger)
        except Exception as err:  # a lost server, a closed ledger: shown, the next tick retries
            text = (str(err).splitlines() or [type(err).__name__])[0][:200]
            took = (threading.get_ident(), time.perf_counter() - started)
            self.relay.done.emit(self.generation, None, text, took)
            return
        took = (threading.get_ident(), time.perf_counter() - started)
        self.relay.done.emit(self.generation, figures, "", took)


def _chart(title: str) -> tuple[QChart, QChartView]:
    chart = QChart()
    chart.setTitle(title)
    chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
    chart.setMargins(QMargins(4, 4, 4, 4))
    chart.legend().setVisible(False)
    view = QChartView(chart)
    view.setRenderHint(QPainter.RenderHint.Antialiasing)
    view.setMinimumSize(360, 240)
    return chart, view


def _clear(chart: QChart) -> None:
    chart.removeAllSeries()
    for axis in chart.axes():
        chart.removeAxis(axis)


def _blank(chart: QChart, title: str, note: str) -> bool:
    """An empty chart says so in its title instead of drawing meaningless axes; True if empty."""
    base = title.split(" — ")[0]
    chart.setTitle(f"{base} — {note}" if note else base)
    return bool(note)


def _unique(labels: Sequence[str], width: int = 48) -> list[str]:
    """Category labels elided to ``width``, escaped (an axis draws its labels as rich text, so
    a reason's "<port>" would vanish, and a unit id could bring markup) and made unique (a bar
    axis needs unique ones)."""
    out: list[str] = []
    for text in labels:
        label = html.escape(text if len(text) <= width else text[: width - 1] + "…")
        while label in out:
            label += " "
        out.append(label)
    return out


def _fit_rows(view: QChartView, rows: int) -> None:
    """Room for every category of a horizontal bar chart (else the axis elides them all)."""
    view.setMinimumHeight(max(240, 90 + 24 * rows))


class DashboardPanel(QWidget):
    """Charts and the station table of one lot's ledger; :meth:`set_ledger` starts it."""

    updated = Signal()  # new figures painted (for tests and other views)

    def __init__(self, parent: QWidget | None = None, *, refresh_ms: int = REFRESH_MS) -> None:
        super().__init__(parent)
        self.setObjectName("dashboard")
        self.ledger: Any | None = None
        self.figures: LineStats | None = None
        self.reader_threads: set[int] = set()  # which threads read the ledger (tests look)
        self._generation = 0
        self._busy = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._pool.setExpiryTimeout(-1)  # one thread, one connection, for the panel's life
        self._relay = _Relay(self)
        self._relay.done.connect(self._painted)
        self._timer = QTimer(self)
        self._refresh_ms = refresh_ms
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self.refresh)

        self.summary = QLabel("No lot open.")
        self.summary.setObjectName("dashboardSummary")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setWordWrap(True)  # the Lot dock beside the ports is narrow
        self.status = QLabel("")
        self.status.setObjectName("dashboardStatus")
        self.status.setTextFormat(Qt.TextFormat.PlainText)

        self.uph_chart, uph_view = _chart("Units per hour")
        self.slot_chart, slot_view = _chart("Yield per slot (%)")
        self.station_chart, station_view = _chart("Yield per station (%)")
        self.reason_chart, reason_view = _chart("Failures by reason (top ten)")
        self.phase_chart, phase_view = _chart("Time per phase (s): quartiles, 5–95 %")
        self._bar_views = {
            id(self.slot_chart): slot_view,
            id(self.station_chart): station_view,
            id(self.reason_chart): reason_view,
        }
        self.station_model = StationModel(self)
        self.station_view = QTableView()
        self.station_view.setObjectName("stationTable")
        self.station_view.setModel(self.station_model)
        self.station_view.verticalHeader().setVisible(False)
        self.station_view.horizontalHeader().setStretchLastSection(True)
        self.station_view.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.station_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.station_view.setMinimumHeight(120)
        self._cells: list[QWidget] = [
            uph_view,
            self.station_view,  # which station is quiet: next to the rate, above the fold
            slot_view,
            station_view,
            reason_view,
            phase_view,
        ]
        self._columns = 0
        self._upper: QLineSeries | None = None
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        inner = QWidget()
        inner.setLayout(self._grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        self._lay_out(1)

    # --- life --------------------------------------------------------------------------
    def set_ledger(self, ledger: Any | None) -> None:
        """Show this ledger's lot (None: nothing); reads at once, then every few seconds."""
        self.stop()
        self.ledger = ledger
        self.figures = None
        if ledger is None:
            self.summary.setText("No lot open.")
            self.status.setText("")
            return
        self.summary.setText(f"Lot {ledger.lot_name}: reading the ledger…")
        self._timer.start()
        self.refresh(hidden=True)

    def stop(self) -> None:
        """Stop reading and wait for a read under way (call before the ledger is closed)."""
        self._timer.stop()
        self._generation += 1
        self._pool.waitForDone()
        ledger = self.ledger
        if ledger is not None:  # the pool thread's connection, closed on that thread
            self._pool.start(ledger.release_thread)
            self._pool.waitForDone()
        self._busy = False
        self.ledger = None

    def refresh(self, *, hidden: bool = False) -> None:
        """Read the figures now (skipped while a read is under way, and while the panel is not
        on screen unless ``hidden``: a station PC flashing units reads nothing it does not show)."""
        if self.ledger is None or self._busy or not (hidden or self.isVisible()):
            return
        self._busy = True
        self._pool.start(_ReadJob(self.ledger, self._generation, self._relay))

    def _painted(
        self, generation: int, figures: LineStats | None, error: str, took: tuple[int, float]
    ) -> None:
        if generation != self._generation:
            return  # a read for a ledger no longer shown
        self._busy = False
        reader, seconds = took
        # a big lot on a slow server: read at most a tenth of the time (0.8 s for 100 000 units
        # on SQLite: every 8 s instead of 5)
        self._timer.setInterval(max(self._refresh_ms, int(seconds * 10_000)))
        if figures is None:
            self.status.setText(f"The ledger cannot be read right now: {error}. Trying again.")
            return
        self.reader_threads.add(reader)
        self.show_figures(figures)

    # --- painting ----------------------------------------------------------------------
    def show_figures(self, s: LineStats) -> None:
        """Paint these figures (GUI thread)."""
        self.figures = s
        st = s.states
        finished = s.passed + s.failed
        rate = f"{s.passed / finished:.1%}" if finished else "–"
        self.summary.setText(
            f"Lot {s.lot}: {st.get('done', 0)} of {s.total} done · {st.get('pending', 0)} "
            f"pending · {st.get('claimed', 0) + st.get('written', 0)} in progress · "
            f"{st.get('failed', 0)} rows failed · attempt yield {rate} · "
            f"{s.units_per_hour:.0f} units/h (last hour of work) · {len(s.stations)} station(s)"
        )
        self.status.setText(f"Read {time.strftime('%H:%M:%S', time.localtime(s.at))}")
        self._paint_throughput(s)
        self._paint_yield(self.slot_chart, s.slots)
        self._paint_yield(self.station_chart, s.stations_yield)
        self._paint_reasons(s)
        self._paint_phases(s)
        self.station_model.set_stations(s.stations, s.at)
        self.updated.emit()

    def _paint_throughput(self, s: LineStats) -> None:
        chart = self.uph_chart
        _clear(chart)
        tp = s.throughput
        chart.legend().setVisible(bool(tp.buckets))
        if _blank(chart, chart.title(), "" if tp.buckets else "no unit finished yet"):
            return
        passed, failed = QLineSeries(), QLineSeries()
        passed.setName("passed / h")
        failed.setName("failed / h")
        for b in tp.buckets:  # steps: a flat line over each bucket
            ms0, ms1 = b.start * 1000, (b.start + tp.bucket_seconds) * 1000
            for ms in (ms0, ms1):
                passed.append(QPointF(ms, tp.units_per_hour(b)))
                failed.append(QPointF(ms, b.failed * 3600.0 / tp.bucket_seconds))
        area = QAreaSeries(passed)
        self._upper = passed  # an area does not own its line: keep it alive while it is shown
        area.setName("passed / h")
        area.setColor(PASS.lighter(150))
        area.setBorderColor(PASS)
        failed.setPen(QPen(FAIL, 2))
        chart.addSeries(area)
        chart.addSeries(failed)
        x = QDateTimeAxis()
        first, end = tp.buckets[0].start, tp.buckets[-1].start + tp.bucket_seconds
        step = next((t for t in TICKS if (end - first) / t <= 8), TICKS[-1])
        lo, hi = first // step * step, -(-end // step) * step  # ticks on round times
        x.setFormat("HH:mm" if step < 86400 else "dd.MM")
        x.setTickCount(int((hi - lo) / step) + 1)
        x.setRange(
            QDateTime.fromMSecsSinceEpoch(int(lo * 1000)),
            QDateTime.fromMSecsSinceEpoch(int(hi * 1000)),
        )
        y = QValueAxis()
        peak = max((tp.units_per_hour(b) for b in tp.buckets), default=0.0)
        y.setRange(0, max(peak * 1.1, 1.0))
        y.applyNiceNumbers()
        y.setLabelFormat("%.0f")
        chart.addAxis(x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y, Qt.AlignmentFlag.AlignLeft)
        for series in (area, failed):
            series.attachAxis(x)
            series.attachAxis(y)
        chart.legend().setVisible(True)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)

    def _paint_yield(self, chart: QChart, lines: Sequence[YieldLine]) -> None:
        _clear(chart)
        if _blank(chart, chart.title(), "" if lines else "no attempt finished yet"):
            return
        bars = QBarSet("yield %")
        bars.setColor(PASS)
        for y in lines:
            bars.append(100.0 * (y.rate or 0.0))
        low = [i for i, y in enumerate(lines) if y.rate is not None and y.rate < LOW_YIELD]
        bars.setSelectedColor(FAIL)  # a slot or station well below the others stands out
        bars.selectBars(low)
        series = QHorizontalBarSeries()
        series.append(bars)
        series.setLabelsVisible(True)
        series.setLabelsFormat("@value %")
        series.setLabelsPrecision(3)
        chart.addSeries(series)
        cats = QBarCategoryAxis()
        cats.append(_unique([y.name for y in lines], 28))
        _fit_rows(self._bar_views[id(chart)], len(lines))
        value = QValueAxis()
        value.setRange(0, 100)
        value.setLabelFormat("%.0f")
        chart.addAxis(cats, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(value, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(cats)
        series.attachAxis(value)

    def _paint_reasons(self, s: LineStats) -> None:
        chart = self.reason_chart
        _clear(chart)
        if _blank(chart, chart.title(), "" if s.reasons else "no failures"):
            return
        reasons = list(reversed(s.reasons))  # the most frequent at the top
        bars = QBarSet("failures")
        bars.setColor(FAIL)
        for r in reasons:
            bars.append(float(r.count))
        series = QHorizontalBarSeries()
        series.append(bars)
        series.setLabelsVisible(True)
        chart.addSeries(series)
        cats = QBarCategoryAxis()
        cats.append(_unique([r.reason for r in reasons], 44))
        _fit_rows(self._bar_views[id(chart)], len(reasons))
        value = QValueAxis()
        value.setRange(0, max((r.count for r in reasons), default=1) * 1.15)
        value.applyNiceNumbers()
        value.setLabelFormat("%.0f")
        chart.addAxis(cats, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(value, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(cats)
        series.attachAxis(value)

    def _paint_phases(self, s: LineStats) -> None:
        chart = self.phase_chart
        _clear(chart)
        if _blank(chart, chart.title(), "" if s.phases else "no unit passed yet"):
            return
        series = QBoxPlotSeries()
        series.setBrush(BOX.lighter(170))
        series.setPen(QPen(BOX, 1.5))
        for p in s.phases:
            box = QBoxSet(p.p5, p.p25, p.p50, p.p75, p.p95, p.phase)
            series.append(box)
        chart.addSeries(series)
        cats = QBarCategoryAxis()
        cats.append(_unique([p.phase for p in s.phases]))
        value = QValueAxis()
        value.setRange(0, max((p.p95 for p in s.phases), default=1.0) * 1.1)
        value.applyNiceNumbers()
        value.setLabelFormat("%.1f")
        chart.addAxis(cats, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(value, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(cats)
        series.attachAxis(value)

    # --- layout ------------------------------------------------------------------------
    def _lay_out(self, columns: int) -> None:
        if columns == self._columns:
            return
        self._columns = columns
        for w in self._cells:
            self._grid.removeWidget(w)
        for i, w in enumerate(self._cells):
            self._grid.addWidget(w, i // columns, i % columns)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.refresh()  # the tab is opened: fresh figures now, not at the next tick

    def resizeEvent(self, event: Any) -> None:
        self._lay_out(2 if event.size().width() >= TWO_COLUMNS else 1)
        super().resizeEvent(event)
