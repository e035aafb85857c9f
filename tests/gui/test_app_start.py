"""Start-up: the window is on screen before the lot opens; the parser does not load Matter."""

from __future__ import annotations

import subprocess
import sys

from PySide6.QtWidgets import QApplication, QLabel, QMainWindow
from pytestqt.qtbot import QtBot

from station.gui.app import _FirstFrame


def test_the_lot_opens_after_the_window_s_first_frame(qtbot: QtBot, monkeypatch) -> None:
    monkeypatch.delenv("STATION_FIRST_FRAME", raising=False)
    window = QMainWindow()
    painted: list[bool] = []
    label = QLabel("station")
    label.paintEvent = lambda event: (painted.append(True), QLabel.paintEvent(label, event))
    window.setCentralWidget(label)
    qtbot.addWidget(window)
    opened: list[bool] = []
    app = QApplication.instance()
    first = _FirstFrame(app, window, lambda: opened.append(bool(painted)))
    app.installEventFilter(first)
    window.show()
    qtbot.waitUntil(lambda: bool(opened), timeout=10_000)
    assert opened == [True]  # painted before the lot was opened, and opened once
    app.removeEventFilter(first)


def test_building_the_command_line_does_not_import_the_matter_certificates() -> None:
    code = (
        "import sys, station.cli as c; c.build_parser(); "
        "wanted = ('station.matter.', 'cryptography.x509'); "
        "print(sorted(m for m in sys.modules if m.startswith(wanted)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['station.matter.options']"
