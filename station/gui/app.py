"""`station`, `station gui [LOT]` and `station --demo`: start the station window."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from station.errors import StationError
from station.gui.resources import app_icon, resources_dir, style_sheet
from station.gui.settings import DEMO_PIN, StationSettings

DEMO_PORTS = 4


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
    start ``ports`` simulated devices with distinct MACs and prepare demo settings (PIN 1234)."""
    source = sample_lot_dir()
    lots = sorted(source.glob("*.toml")) if source.is_dir() else []
    if not lots:
        raise StationError.at(
            str(source), "the sample lot is missing from this installation", key="demo"
        )
    work = Path(tempfile.mkdtemp(prefix="station-demo-")) if folder is None else folder
    shutil.copytree(source, work / "lot", dirs_exist_ok=True)
    qs = QSettings(str(work / "station-demo.ini"), QSettings.Format.IniFormat)
    settings = StationSettings(qs)
    settings.set_pin(DEMO_PIN)
    settings.auto_start = True
    settings.hot_plug = False
    settings.operator = "demo"
    demo = Demo(work, work / "lot" / lots[0].name, settings)
    try:
        from station.flashing import start_simulated_devices

        demo.devices = list(start_simulated_devices(ports))
    except BaseException:
        demo.stop()
        raise
    settings.ports = [d.port for d in demo.devices]
    settings.sync()
    return demo


def make_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("station")
    app.setOrganizationName("station")
    app.setWindowIcon(app_icon())
    app.setStyleSheet(style_sheet())
    return app


def run(args: argparse.Namespace) -> int:
    """Show the station window; with ``args.demo`` on simulated devices and the sample lot."""
    from station.gui.window import MainWindow

    app = make_application()
    demo: Demo | None = None
    try:
        if getattr(args, "demo", False):
            demo = start_demo()
            window = MainWindow(demo.settings, title_suffix=f" (demo — engineer PIN {DEMO_PIN})")
            if window.open_lot(str(demo.lot_path)):
                first = window.lot.ledger.rows(0, 1, "pending") if window.lot else []
                code = first[0].scan_value if first else ""
                window.show_hint(f"Demo: type {code} and Enter, or press F6 for the next row")
        else:
            settings = StationSettings()
            window = MainWindow(settings)
            lot = getattr(args, "lot", None) or settings.last_lot
            if lot and (getattr(args, "lot", None) or Path(lot).is_file()):
                window.open_lot(str(lot))
        window.show()
        code = app.exec()
        window.shutdown()
        return int(code)
    finally:
        if demo is not None:
            demo.stop()
