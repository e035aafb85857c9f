"""`station`, `station gui [LOT]` and `station --demo`: start the station window."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QApplication

from station.errors import StationError
from station.gui.resources import app_icon, resources_dir, style_sheet
from station.gui.settings import DEMO_PIN, StationSettings
from station.production.engineer import PinStore

DEMO_PORTS = 4
# The demo's simulated chips run at a low CPU priority: real chips bring their own CPU, and at the
# window's priority eight Python chips on a two-core PC would take its cores.
SIMULATED_NICE = 10


@dataclass
class Demo:
    """A demo station: simulated devices, a working copy of the sample lot, demo settings."""

    folder: Path
    lot_path: Path
    settings: StationSettings
    devices: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the simulated devices and remove the working folder."""
        for device in self.devices:
            device.stop()
        self.devices.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def sample_lot_dir() -> Path:
    return resources_dir() / "sample_lot"


def start_demo(ports: int = DEMO_PORTS, folder: Path | None = None) -> Demo:
    """Copy the sample lot to a working folder (its ledger must not go into the install folder),
    start ``ports`` simulated devices with distinct MACs and prepare demo settings (PIN 123456)."""
    source = sample_lot_dir()
    lots = sorted(source.glob("*.toml")) if source.is_dir() else []
    if not lots:
        raise StationError.at(
            str(source), "the sample lot is missing from this installation", key="demo"
        )
    work = Path(tempfile.mkdtemp(prefix="station-demo-")) if folder is None else folder
    shutil.copytree(source, work / "lot", dirs_exist_ok=True)
    qs = QSettings(str(work / "station-demo.ini"), QSettings.Format.IniFormat)
    settings = StationSettings(qs, PinStore(work / "engineer-pin"))  # the demo's own PIN
    settings.set_pin(DEMO_PIN)
    settings.auto_start = True
    settings.hot_plug = False
    settings.operator = "demo"
    # a label on each pass, as a PDF in the demo's folder (one file per unit)
    (work / "labels").mkdir(exist_ok=True)
    settings.label_output = f"pdf:{work / 'labels' / '{unit_id}.pdf'}"
    settings.print_on_pass = True
    demo = Demo(work, work / "lot" / lots[0].name, settings)
    try:
        from station.flashing import start_simulated_devices

        demo.devices = list(start_simulated_devices(ports, nice=SIMULATED_NICE))
    except BaseException:
        demo.stop()
        raise
    settings.ports = [d.port for d in demo.devices]
    settings.sync()
    return demo


class DemoSwapper(QObject):
    """Plays the operator's hands in the demo: a moment after a device passes, it is taken off
    and a fresh simulated device (a new MAC) is plugged into the same slot, so the demo can run
    through the whole lot one scan at a time."""

    swapped = Signal(str, object)  # old port, the new SimulatedDevice (from a worker thread)

    # how long a PASS stays on the card before the board is "taken off": long enough to see
    DELAY_MS = 6000

    def __init__(self, window: Any, demo: Demo, delay_ms: int = DELAY_MS) -> None:
        super().__init__(window)
        self.window = window
        self.demo = demo
        self.delay_ms = delay_ms
        self._timers: dict[str, QTimer] = {}
        self._threads: list[threading.Thread] = []
        self._started: list[Any] = []  # devices this swapper started
        self._stopping = False
        window.bridge.port_finished.connect(self._finished)
        self.swapped.connect(self._plug)

    def _finished(self, port: str, state: str) -> None:
        if state != "passed" or self._stopping or port in self._timers:
            return
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(lambda: self._unplug(port))
        timer.start(self.delay_ms)
        self._timers[port] = timer

    def _unplug(self, port: str) -> None:
        self._timers.pop(port, None)
        old = next((d for d in self.demo.devices if d.port == port), None)
        if old is None or self._stopping:
            return
        self.window.bridge.set_offline(port, True)
        self.window.log(
            "info", "demo: the finished device is taken off, a new one plugged in", port
        )
        thread = threading.Thread(target=self._swap, args=(old,), name="demo swap", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _swap(self, old: Any) -> None:
        from station.flashing import start_simulated_devices

        old.stop()
        if self._stopping:
            return
        try:
            new = start_simulated_devices(1, nice=SIMULATED_NICE)[0]
        except Exception as err:  # the demo goes on with one port less
            self.swapped.emit(old.port, err)
            return
        self._started.append(new)
        self.swapped.emit(old.port, new)

    def _plug(self, old_port: str, new: Any) -> None:
        self.demo.devices = [d for d in self.demo.devices if d.port != old_port]
        if isinstance(new, BaseException):
            self.window.log("error", f"demo: no new simulated device ({new})", old_port)
            return
        self.demo.devices.append(new)
        if self._stopping:
            return
        self.window.replace_port(old_port, new.port)

    def stop(self) -> None:
        """No more swaps; wait for the ones under way (their devices are stopped by the demo)."""
        self._stopping = True
        for timer in self._timers.values():
            timer.stop()
        self._timers.clear()
        for thread in self._threads:
            thread.join(30.0)
        self._threads.clear()
        for device in self._started:  # started, but never plugged into the window
            if device not in self.demo.devices:
                device.stop()


def x11_platform_expected(environ: dict[str, str] | None = None) -> bool:
    """Whether Qt will use its X11 (xcb) plugin here: Linux, no other platform chosen, and not a
    Wayland session (Qt prefers Wayland there)."""
    env = dict(os.environ) if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":")[0].split(";")[0] == "xcb"
    return not (env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland")


def check_platform_libraries() -> None:
    """Refuse to start (exit 2, what to install) where Qt's X11 plugin lacks system libraries:
    Qt would otherwise abort with a core dump and a misleading message."""
    from station.selftest import missing_xcb_libraries, xcb_advice

    if not x11_platform_expected() or QApplication.instance() is not None:
        return
    missing = missing_xcb_libraries()
    if missing:
        raise StationError.at("station", xcb_advice(missing), key="display")


def demo_hint(code: str) -> str:
    """The demo's first step, where scan results appear."""
    return f"Demo: type {code} and Enter, or press F6. Each pass prints a label (see the Log)."


def make_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("station")
    app.setOrganizationName("station")
    app.setWindowIcon(app_icon())
    app.setStyleSheet(style_sheet())
    return app


class _FirstFrame(QObject):
    """Calls ``then`` once the window has painted its first frame: the lot opens after the
    window is on screen, not before (the operator sees the station start at once).

    ``STATION_FIRST_FRAME=1`` (tests/bench/bench_start.py, the frozen bundle's measure): print
    the seconds from process start to the first frame and to the lot shown, then quit."""

    def __init__(self, app: QApplication, window: Any, then: Any) -> None:
        super().__init__(app)
        self.app, self.window, self.then, self.seen = app, window, then, False
        self.measure = bool(os.environ.get("STATION_FIRST_FRAME"))

    def eventFilter(self, obj: Any, event: Any) -> bool:
        from PySide6.QtCore import QEvent
        from PySide6.QtWidgets import QWidget

        if (
            not self.seen
            and event.type() == QEvent.Type.Paint
            and isinstance(obj, QWidget)
            and obj.window() is self.window
        ):
            self.seen = True
            self.app.removeEventFilter(self)
            QTimer.singleShot(0, self._painted)  # after this paint pass
        return False

    def _painted(self) -> None:
        if self.measure:
            print(
                f"station: first frame {_since_start():.3f} s after the process started "
                f"(CPU {time.process_time():.3f} s)"
            )
        self.then()
        if self.measure:
            self.app.processEvents()
            print(
                f"station: lot shown {_since_start():.3f} s after the process started "
                f"(CPU {time.process_time():.3f} s)"
            )
            sys.stdout.flush()
            self.app.quit()


def _since_start() -> float:
    import psutil

    return time.time() - psutil.Process().create_time()


def run(args: argparse.Namespace) -> int:
    """Show the station window; with ``args.demo`` on simulated devices and the sample lot."""
    from station.gui.window import MainWindow

    check_platform_libraries()
    app = make_application()
    if getattr(args, "watch", False):  # a supervisor's read-only view (station.gui.watch)
        from station.gui.watch import run_watch

        return run_watch(app, args)
    demo: Demo | None = None
    try:
        if getattr(args, "demo", False):
            demo = start_demo()
            window = MainWindow(demo.settings, title_suffix=f" (demo — engineer PIN {DEMO_PIN})")
            swapper = DemoSwapper(window, demo)
            window.closing.connect(swapper.stop)
            lot_path: str | None = str(demo.lot_path)
        else:
            settings = StationSettings()
            window = MainWindow(settings)
            lot = getattr(args, "lot", None) or settings.last_lot
            given = lot and (getattr(args, "lot", None) or Path(lot).is_file())
            lot_path = str(lot) if given else None

        def open_lot() -> None:
            if lot_path is None:
                return
            if demo is not None:
                if window.open_lot(lot_path):  # the first pending row, read off the GUI thread
                    window.link.later(
                        window.session.rows,
                        0,
                        1,
                        "pending",
                        then=lambda first: window.show_hint(
                            demo_hint(first[0].scan_value if first else "")
                        ),
                    )
            else:
                window.open_lot(lot_path, db_url=getattr(args, "db", None))

        app.installEventFilter(_FirstFrame(app, window, open_lot))
        window.show()
        code = app.exec()
        window.shutdown()
        return int(code)
    finally:
        if demo is not None:
            demo.stop()
