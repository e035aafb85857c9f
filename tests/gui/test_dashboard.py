"""The Dashboard tab: figures read off the GUI thread, painted as charts, refreshed by a timer."""

from __future__ import annotations

import html
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCharts import QAreaSeries, QBoxPlotSeries, QHorizontalBarSeries

from station.gui.dashboard import DashboardPanel, StationModel
from station.ledger import Ledger
from station.ledger.readonly import open_read_only
from tests.ledger.line import Clock, busy_line, rows

SCREENSHOTS = Path(__file__).resolve().parents[2] / "resources" / "screenshots"


@pytest.fixture
def line_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    start = time.time() - 6 * 3600 + 120  # six hours up to a minute ago, as on a live line
    clock = Clock(start)
    with monkeypatch.context() as m:
        m.setattr("station.ledger.connection.time", clock)
        busy_line(str(tmp_path / "line.db"), clock, start=start)
    return tmp_path / "line.db"


def shown(qtbot: Any, panel: DashboardPanel, ledger: Any) -> None:
    with qtbot.waitSignal(panel.updated, timeout=20000):
        panel.set_ledger(ledger)


def bars(chart: Any) -> tuple[list[str], list[float]]:
    (series,) = chart.series()
    assert isinstance(series, QHorizontalBarSeries)
    (axis,) = [a for a in chart.axes() if a.orientation().name == "Vertical"]
    values = series.barSets()[0]
    return list(axis.categories()), [values.at(i) for i in range(values.count())]


def test_the_dashboard_paints_the_figures_read_off_the_gui_thread(
    qtbot: Any, qtmodeltester: Any, line_db: Path
) -> None:
    panel = DashboardPanel(refresh_ms=60000)
    qtbot.addWidget(panel)
    ledger = open_read_only(line_db, "LINE-1")
    try:
        shown(qtbot, panel, ledger)
        s = panel.figures
        assert s is not None and s.total == 1200
        assert threading.get_ident() not in panel.reader_threads and len(panel.reader_threads) == 1
        assert "Lot LINE-1" in panel.summary.text() and "3 station(s)" in panel.summary.text()
        assert f"{s.units_per_hour:.0f} units/h (last hour of work)" in panel.summary.text()
        # units per hour: a step line over every bucket, in the chart's time axis
        area = next(x for x in panel.uph_chart.series() if isinstance(x, QAreaSeries))
        points = area.upperSeries().points()
        assert len(points) == 2 * len(s.throughput.buckets)
        assert points[0].x() == s.throughput.buckets[0].start * 1000
        # yield per slot and per station, the bad slot among them
        names, values = bars(panel.slot_chart)
        assert len(names) == 12 and "line-b / slot 3" in names
        assert values[names.index("line-b / slot 3")] == pytest.approx(
            100 * next(y.rate for y in s.slots if y.name == "line-b / slot 3")
        )
        (slot_bars,) = panel.slot_chart.series()[0].barSets()
        assert slot_bars.isBarSelected(names.index("line-b / slot 3"))  # drawn red
        assert not slot_bars.isBarSelected(names.index("line-a / slot 1"))
        names, values = bars(panel.station_chart)
        assert names == ["line-a", "line-b", "line-c"] and min(values) > 80
        # failures by reason: the top ones, most frequent at the top (last category)
        names, values = bars(panel.reason_chart)
        assert (
            html.unescape(names[-1]).startswith(s.reasons[0].reason[:20])
            and values[-1] == s.reasons[0].count
        )
        # time per phase: one box per phase
        (box,) = panel.phase_chart.series()
        assert isinstance(box, QBoxPlotSeries)
        phases = ["connecting", "checking", "writing", "verifying", "resetting"]  # as timed
        assert [b.label() for b in box.boxSets()] == [p.phase for p in s.phases] == phases
        writing = box.boxSets()[2]
        assert writing.at(2) == pytest.approx(s.phases[2].p50)
        # the stations, in a model
        model = panel.station_model
        qtmodeltester.check(model)
        assert model.rowCount() == 3
        assert [model.index(r, 2).data() for r in range(3)] == ["stopped", "stopped", "running"]
        panel.resize(1400, 1000)
        panel.show()
        qtbot.waitExposed(panel)
        qtbot.waitUntil(lambda: panel._columns == 2)
        image = panel.grab()
        assert image.width() == 1400
        build = SCREENSHOTS.parent.parent / "build"
        if build.is_dir():  # for a person to look at (resources/screenshots/take.py keeps one)
            image.save(str(build / "dashboard.png"))
    finally:
        panel.stop()
        ledger.close()


def test_it_refreshes_by_itself_and_shows_a_ledger_it_cannot_read(
    qtbot: Any, tmp_path: Path
) -> None:
    led = Ledger(tmp_path / "l.db", station_id="st1")
    led.import_lot("L1", "r", rows(5))
    panel = DashboardPanel(refresh_ms=50)
    qtbot.addWidget(panel)
    panel.show()  # ticks read only while the panel is on screen
    try:
        shown(qtbot, panel, led)
        assert panel.figures is not None and panel.figures.passed == 0
        c = led.claim_next(mac="24:0a:c4:00:00:01", port="p", slot="slot 1")
        assert c is not None
        led.complete(c, {"writing": 1.0})
        qtbot.waitUntil(lambda: panel.figures is not None and panel.figures.passed == 1)
        with qtbot.waitSignal(panel._relay.done, timeout=5000):
            led.close()  # the next read fails: said, and tried again
        qtbot.waitUntil(lambda: "cannot be read" in panel.status.text())
    finally:
        panel.stop()
        led.close()
    assert panel.ledger is None


def test_station_model_without_stations(qtmodeltester: Any) -> None:
    model = StationModel()
    qtmodeltester.check(model)
    assert model.rowCount() == 0 and model.columnCount() == len(StationModel.COLUMNS)


def test_the_window_has_a_dashboard_tab_for_its_lot(
    qtbot: Any, settings: Any, tmp_path: Path
) -> None:
    from station.gui.resources import resources_dir
    from station.gui.window import MainWindow

    shutil.copytree(resources_dir() / "sample_lot", tmp_path / "lot")
    settings.ports = []
    settings.auto_start = False
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    try:
        with qtbot.waitSignal(w.dashboard.updated, timeout=20000):
            assert w.open_lot(str(tmp_path / "lot" / "lot.toml"))
        tabs = [w.tabs.tabText(i) for i in range(w.tabs.count())]
        assert "&Dashboard" in tabs
        assert w.dashboard.figures is not None and w.dashboard.figures.total == 200
        # nothing done yet: the charts say so rather than draw empty axes
        d = w.dashboard
        for chart in (d.uph_chart, d.slot_chart, d.reason_chart, d.phase_chart):
            assert chart.series() == [] and chart.axes() == [] and " — " in chart.title()
        assert d.uph_chart.title() == "Units per hour — no unit finished yet"
        w.close_lot()
        assert w.dashboard.ledger is None  # stopped before the lot's ledger closed
    finally:
        w.shutdown()
