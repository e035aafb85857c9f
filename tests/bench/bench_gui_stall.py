"""Event-loop stalls of the station window while 8 simulated devices flash, 100,000-row lot open.

Run by hand (offscreen is fine):  QT_QPA_PLATFORM=offscreen python tests/bench/bench_gui_stall.py

A 1 ms QTimer measures the gaps between its ticks on the GUI thread; a gap far above 1 ms is a
stall an operator would feel. While the devices flash, the benchmark also scrolls the row table
(as an operator looking for a unit would) and scans a code every second. Three runs, same
process, same lot size:

  idle      the window with the lot open, nothing flashing (the floor)
  bare      no window: the orchestrator flashing on threads, the meter alone on the main thread
  window    the real window: esptool sessions in the device host (a child process),
            orchestrator events folded by the bridge, 4 Hz repaint
  inproc    the window as it was before the device host: esptool on 8 threads of the window's
            process, competing with the GUI thread for the GIL on every cell Qt paints
  naive     inproc, and every orchestrator event queued to the GUI thread to repaint its card
            at once (what connecting a signal per event gives)

Figures are printed, never asserted (tests/gui/test_flow.py checks a generous bound).

``--split`` pins the simulated chips to their own core(s) and the station (window and device
host) to the others, so the window's figures are the station's own; each run then also prints
the CPU every process used per unit (window, device host, chips). See tests/bench/cpusplit.py.
For CPU figures set BENCH_NOSCROLL=1: the scrolling alone costs the window ~0.3-0.5 s per second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QEventLoop, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import cpusplit  # noqa: E402  (tests/bench/, this script's folder)

from station.gui.app import SIMULATED_NICE  # noqa: E402
from station.gui.resources import style_sheet  # noqa: E402
from station.gui.settings import StationSettings  # noqa: E402
from station.gui.window import MainWindow  # noqa: E402

SAMPLE = ROOT / "resources" / "sample_lot"
NICE_DEVICES = False
SPLIT: cpusplit.Split | None = None
POLL: float | None = None  # the orchestrator's poll interval (None: the station's own)


def make_lot(folder: Path, rows: int) -> Path:
    """A lot like the sample one with ``rows`` rows (the soak driver's, named BENCH)."""
    from soak import make_lot as soak_lot  # tests/bench/ is this script's folder: on the path

    return soak_lot(folder, rows, name="BENCH")


class StallMeter(QObject):
    """A 1 ms timer on the GUI thread; records the gap between consecutive ticks (ms), and the
    CPU the GUI thread used in each (a gap far longer than its CPU: the thread waited, for the
    GIL or for a core the device host also wants)."""

    def __init__(self) -> None:
        super().__init__()
        self.gaps: list[float] = []
        self.cpu: list[float] = []
        self.clock = QElapsedTimer()
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(1)
        self.timer.timeout.connect(self._tick)
        self._last = 0

    def start(self) -> None:
        self.gaps.clear()
        self.cpu.clear()
        self.clock.start()
        self._last = self.clock.nsecsElapsed()
        self._last_cpu = time.thread_time()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now, cpu = self.clock.nsecsElapsed(), time.thread_time()
        self.gaps.append((now - self._last) / 1e6)
        self.cpu.append((cpu - self._last_cpu) * 1000)
        self._last, self._last_cpu = now, cpu

    def summary(self) -> str:
        if not self.gaps:
            return "no ticks"
        g = sorted(self.gaps)
        p99 = g[min(len(g) - 1, int(len(g) * 0.99))]
        return (
            f"{sum(g) / 1000:5.1f} s, ticks {len(g):6d}  median {statistics.median(g):6.2f} ms  "
            f"p99 {p99:7.2f} ms  max {g[-1]:7.2f} ms"
        )

    def worst(self, n: int = 5) -> str:
        """The n longest gaps and when they ended (s after the start)."""
        ends, t = [], 0.0
        for gap in self.gaps:
            t += gap
            ends.append((gap, t / 1000))
        top = sorted(zip(ends, self.cpu, strict=True), reverse=True)[:n]
        return ", ".join(f"{gap:.0f} ms at {at:.1f} s (CPU {cpu:.0f})" for (gap, at), cpu in top)


class NaiveRelay(QObject):
    """The alternative: one queued signal per orchestrator event, each repainting its card."""

    event = Signal(object)

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.window = window
        self.event.connect(self._apply, Qt.ConnectionType.QueuedConnection)

    def _apply(self, ev: Any) -> None:
        if type(ev).__name__ != "PortUpdate":
            return
        card = self.window.cards.get(ev.port)
        if card is not None:
            card.set_view(card.view.with_update(ev))
            card.repaint()
        self.window.row_model.refresh()


def run(
    app: QApplication, lot: Path, mode: str, ports: int, seconds: float, db: Path
) -> tuple[str, int, int]:

    qs = QSettings(str(db.with_suffix(".ini")), QSettings.Format.IniFormat)
    settings = StationSettings(qs)
    settings.sound = False
    settings.hot_plug = False
    settings.continuous = mode != "idle"  # every port flashes the next pending row by itself
    # the simulated chips are Python processes on the same CPU cores; real devices are not.
    # Lowering their priority (as the demo does) shows the window's own cost, not the chips'.
    nice = SIMULATED_NICE if NICE_DEVICES else 0
    devices = cpusplit.start_chips(ports, nice=nice) if mode != "idle" else []
    cpusplit.pin_chips(SPLIT, (d.pid for d in devices))
    cpu = cpusplit.CpuMeter()
    try:
        settings.ports = []  # the devices are plugged in once the window is up (below)
        window = MainWindow(settings)
        window.use_device_host = mode == "window"
        window.resize(1366, 740)
        window.show()
        t0 = time.perf_counter()
        window.open_lot(str(lot), db_url=str(db))
        opened = time.perf_counter() - t0
        if POLL is not None and window.orchestrator is not None:
            window.orchestrator.poll_interval = POLL
        if window.device_host is not None:
            window.device_host.wait_ready()  # its start-up is not per-unit work
        settle = time.monotonic() + 1.0  # the first paint of the lot, before any port works
        while time.monotonic() < settle:
            app.processEvents()
        if mode == "naive":
            relay = NaiveRelay(window)
            window.orchestrator._emit_raw = lambda ev: (  # type: ignore[union-attr]
                window.bridge.on_event(ev),
                relay.event.emit(ev),
            )
        meter = StallMeter()
        scroll = QTimer()
        scroll.setInterval(50)
        rows = window.row_model.rowCount()
        step = [0]

        def scroll_rows() -> None:  # an operator paging through the lot
            step[0] += 1
            window.row_view.scrollTo(window.row_model.index((step[0] * 7919) % rows, 0))

        scroll.timeout.connect(scroll_rows)
        meter.start()
        if not os.environ.get("BENCH_NOSCROLL"):
            scroll.start()
        # eight devices plugged in (a hub): in continuous mode each port starts at once
        plug_t0 = time.perf_counter()
        window.add_ports([(d.port, None) for d in devices])
        while getattr(window.ports, "plugging", False):  # cards are built over a few turns
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
        plugged_ms = (time.perf_counter() - plug_t0) * 1000
        # CPU from here: plugging in the ports (32 cards built) is not per-unit work
        cpu_t0 = time.perf_counter()
        host_pid = window.device_host.pid if window.device_host is not None else None
        cpu.start(
            {
                "window": [os.getpid()],
                "host": [host_pid] if host_pid else [],
                "chips": [d.pid for d in devices if d.pid],
            }
        )
        # the real event loop (a busy processEvents() loop would compete for the GIL itself)
        loop = QEventLoop()
        done = [0]

        def check() -> None:
            c = window._counters
            done[0] = (c.done + c.failed) if c is not None else 0
            if mode != "idle" and done[0] >= ports:
                loop.quit()

        checker = QTimer()
        checker.timeout.connect(check)
        checker.start(100)
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()
        checker.stop()
        done = done[0]
        meter.stop()
        cpu.stop()
        cpu_wall = time.perf_counter() - cpu_t0
        scroll.stop()
        window.shutdown()
        window.deleteLater()
        app.processEvents()
        if os.environ.get("BENCH_WORST"):
            print(f"  worst gaps ({mode}): {meter.worst()}")
            print(f"  plugging {ports} ports took the window {plugged_ms:.0f} ms to show them")
        if mode != "idle":
            print(f"  {mode}: {cpu.report(done)} in {cpu_wall:.1f} s")
        return f"{mode:7s} {meter.summary()}  (lot opened in {opened:.1f} s)", done, rows
    finally:
        for d in devices:
            d.stop()


def run_bare(lot: Path, ports: int, seconds: float, db: Path) -> tuple[str, int, int]:
    """The floor under load: the same flashing with no window at all (events dropped), only
    the stall meter on the main thread."""
    from station.production import Orchestrator, open_lot

    devices = cpusplit.start_chips(ports, nice=SIMULATED_NICE if NICE_DEVICES else 0)
    cpusplit.pin_chips(SPLIT, (d.pid for d in devices))
    cpu = cpusplit.CpuMeter()
    try:
        t0 = time.perf_counter()
        opened_lot = open_lot(lot, db_url=str(db))
        opened = time.perf_counter() - t0
        orch = Orchestrator(opened_lot, on_event=lambda ev: None, auto_start=True)
        if POLL is not None:
            orch.poll_interval = POLL
        meter = StallMeter()
        cpu.start({"engine": [os.getpid()], "chips": [d.pid for d in devices if d.pid]})
        meter.start()
        for d in devices:
            orch.add_port(d.port)
        loop = QEventLoop()

        def check() -> None:
            if orch.units_done + orch.units_failed >= ports:
                loop.quit()

        checker = QTimer()
        checker.timeout.connect(check)
        checker.start(100)
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()
        checker.stop()
        meter.stop()
        cpu.stop()
        done = orch.units_done + orch.units_failed
        orch.close()
        rows = opened_lot.ledger.count()
        opened_lot.close()
        if os.environ.get("BENCH_WORST"):
            print(f"  worst gaps (bare): {meter.worst()}")
        print(f"  bare: {cpu.report(done)}")
        return f"bare    {meter.summary()}  (lot opened in {opened:.1f} s)", done, rows
    finally:
        for d in devices:
            d.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--ports", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0, help="upper bound per run")
    parser.add_argument(
        "--modes", default="idle,bare,window,inproc,naive", help="runs, in order (repeats allowed)"
    )
    parser.add_argument(
        "--switch",
        type=float,
        default=None,
        help="sys.setswitchinterval for this run (CPython's default: 5 ms; 1 ms made no difference "
        "beyond the noise on the CI machine)",
    )
    parser.add_argument(
        "--nice-devices",
        action="store_true",
        dest="nice",
        help="run the simulated chips at a low CPU priority, as station --demo does",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=None,
        help="seconds between a finished port's looks for its next device (station: 1 s; each "
        "look at a device still plugged in is a connect, which --poll 60 keeps out of the CPU "
        "per unit)",
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="simulated chips on their own core(s), the station on the others",
    )
    parser.add_argument(
        "--chip-cpus", type=int, default=None, help="with --split: cores for the chips (half)"
    )
    args = parser.parse_args()
    global NICE_DEVICES, SPLIT, POLL
    NICE_DEVICES = args.nice
    POLL = args.poll
    if args.split:
        SPLIT = cpusplit.plan(args.chip_cpus)
        cpusplit.pin_station(SPLIT)
        print(SPLIT.describe())
    print(cpusplit.load())
    app = QApplication.instance() or QApplication([])
    app.setStyleSheet(style_sheet())  # the station's own: it costs in every paint
    with tempfile.TemporaryDirectory(prefix="bench-gui-") as tmp:
        t0 = time.perf_counter()
        lot = make_lot(Path(tmp) / "lot", args.rows)
        print(f"lot of {args.rows} rows written in {time.perf_counter() - t0:.1f} s")
        if args.switch is not None:
            sys.setswitchinterval(args.switch)
        print(f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms")
        for n, mode in enumerate(args.modes.split(",")):
            # each run its own copy: a lot that has produced units is bound to its ledger
            run_lot = Path(shutil.copytree(lot.parent, Path(tmp) / f"{mode}-{n}")) / lot.name
            db = Path(tmp) / f"{mode}-{n}.station.db"
            if mode == "bare":
                line, done, rows = run_bare(run_lot, args.ports, args.seconds, db)
            else:
                seconds = 5.0 if mode == "idle" else args.seconds
                line, done, rows = run(app, run_lot, mode, args.ports, seconds, db)
            print(
                f"{line}  units finished {done}/{args.ports if mode != 'idle' else 0}, rows {rows}"
            )
        print(cpusplit.load())


if __name__ == "__main__":
    main()
