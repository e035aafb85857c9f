"""Barcode scanners: a keyboard-wedge burst is a scan wherever the focus is; serial scanners."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QPushButton, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from station.gui.scanner import ScanDetector, ScanEventFilter, SerialScanner


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_detector_burst_is_a_scan() -> None:
    clock = FakeClock()
    d = ScanDetector(clock=clock, max_gap=0.05)
    for ch in "SN-0042":
        clock.now += 0.01
        d.key(ch)
    clock.now += 0.01
    assert d.enter() == "SN-0042"
    assert d.enter() is None  # reset after a scan


def test_detector_human_typing_is_not_a_scan() -> None:
    clock = FakeClock()
    d = ScanDetector(clock=clock, max_gap=0.05)
    for ch in "hello":
        clock.now += 0.2
        d.key(ch)
    clock.now += 0.01
    assert d.enter() is None


def test_detector_slow_enter_and_short_codes_are_not_scans() -> None:
    clock = FakeClock()
    d = ScanDetector(clock=clock, max_gap=0.05, min_length=3)
    for ch in "ABCD":
        clock.now += 0.01
        d.key(ch)
    clock.now += 1.0
    assert d.enter() is None
    for ch in "AB":
        clock.now += 0.01
        d.key(ch)
    clock.now += 0.01
    assert d.enter() is None


def test_detector_burst_after_typing_starts_fresh() -> None:
    clock = FakeClock()
    d = ScanDetector(clock=clock, max_gap=0.05)
    for ch in "ab":  # a human typed a little, then a scan came
        clock.now += 0.5
        d.key(ch)
    clock.now += 0.5
    for ch in "X123":
        d.key(ch)
        clock.now += 0.005
    assert d.enter() == "X123"


class Station(QWidget):
    """A window with a scan field, another text field and a button, like the station's."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.scans: list[str] = []
        self.field = QLineEdit()
        self.search = QLineEdit()
        self.button = QPushButton("Start")
        layout = QVBoxLayout(self)
        for w in (self.field, self.search, self.button):
            layout.addWidget(w)
        self.field.returnPressed.connect(
            lambda: (self.scans.append(self.field.text()), self.field.clear())
        )
        self.filter = ScanEventFilter(
            self, self.field, self.scans.append, ScanDetector(clock=clock)
        )
        self.filter.attach()

    def closeEvent(self, event: object) -> None:
        self.filter.detach()


@pytest.fixture
def station(qtbot: QtBot) -> Iterator[tuple[Station, FakeClock]]:
    clock = FakeClock()
    w = Station(clock)
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitActive(w)
    yield w, clock


def _type(qtbot: QtBot, widget: QWidget, text: str, clock: FakeClock, gap: float) -> None:
    for ch in text:
        clock.now += gap
        qtbot.keyClick(widget, ch)
    clock.now += gap
    qtbot.keyClick(widget, Qt.Key.Key_Return)


def test_scan_while_a_button_has_focus(qtbot: QtBot, station: tuple[Station, FakeClock]) -> None:
    w, clock = station
    w.button.setFocus()
    qtbot.waitUntil(w.button.hasFocus)
    _type(qtbot, w.button, "SN-0003", clock, 0.005)
    assert w.scans == ["SN-0003"]
    assert w.field.text() == ""


def test_slow_typing_without_a_text_field_goes_to_the_scan_field(
    qtbot: QtBot, station: tuple[Station, FakeClock]
) -> None:
    w, clock = station
    w.button.setFocus()
    qtbot.waitUntil(w.button.hasFocus)
    _type(qtbot, w.button, "SN-7", clock, 0.4)  # a human typing a code by hand
    assert w.scans == ["SN-7"]


def test_scan_into_another_text_field_is_taken_out_of_it(
    qtbot: QtBot, station: tuple[Station, FakeClock]
) -> None:
    w, clock = station
    w.search.setFocus()
    qtbot.waitUntil(w.search.hasFocus)
    _type(qtbot, w.search, "abc", clock, 0.4)  # the engineer types a search by hand …
    assert w.scans == [] and w.search.text() == "abc"
    clock.now += 1
    for ch in "SN-0009":  # … and a scan arrives while the search field has the focus
        clock.now += 0.004
        qtbot.keyClick(w.search, ch)
    clock.now += 0.004
    qtbot.keyClick(w.search, Qt.Key.Key_Return)
    assert w.scans == ["SN-0009"]
    assert w.search.text() == "abc"


def test_scan_field_handles_its_own_enter(qtbot: QtBot, station: tuple[Station, FakeClock]) -> None:
    w, clock = station
    w.field.setFocus()
    qtbot.waitUntil(w.field.hasFocus)
    _type(qtbot, w.field, "SN-0001", clock, 0.005)
    assert w.scans == ["SN-0001"]  # once, not twice


def test_serial_scanner_reads_lines(qtbot: QtBot) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    scanner = SerialScanner(f"socket://127.0.0.1:{port}")
    codes: list[str] = []
    scanner.scanned.connect(codes.append)
    try:
        with qtbot.waitSignal(scanner.ready, timeout=5000):
            scanner.start()
        server.settimeout(10)
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"SN-0001\r\nSN-00")
            conn.sendall(b"02\n\r\n")
            qtbot.waitUntil(lambda: len(codes) == 2, timeout=5000)
    finally:
        scanner.stop()
        server.close()
    assert codes == ["SN-0001", "SN-0002"]
    assert not scanner.running


def test_serial_scanner_reports_a_port_that_cannot_open(qtbot: QtBot) -> None:
    scanner = SerialScanner("socket://127.0.0.1:1")
    with qtbot.waitSignal(scanner.failed, timeout=5000) as blocker:
        scanner.start()
    scanner.stop()
    assert "cannot be opened" in blocker.args[0]


def test_the_filter_sees_the_focused_widget_only(
    qtbot: QtBot, station: tuple[Station, FakeClock]
) -> None:
    """It follows the focus instead of filtering every event of the application (a Python
    call per paint, timer and queued signal while 32 ports flash)."""
    from PySide6.QtCore import QEvent

    w, clock = station
    seen: list[QObject] = []
    real = w.filter.eventFilter

    def counting(obj: QObject, event: QEvent) -> bool:
        seen.append(obj)
        return real(obj, event)

    w.filter.eventFilter = counting  # type: ignore[method-assign]
    w.button.setFocus()
    qtbot.waitUntil(w.button.hasFocus)
    seen.clear()
    QApplication.sendEvent(w.search, QEvent(QEvent.Type.User))  # not focused: not filtered
    assert w.search not in seen
    QApplication.sendEvent(w.button, QEvent(QEvent.Type.User))
    assert seen == [w.button]
    w.search.setFocus()  # the filter moves with the focus
    qtbot.waitUntil(w.search.hasFocus)
    seen.clear()
    QApplication.sendEvent(w.button, QEvent(QEvent.Type.User))
    assert w.button not in seen
    _type(qtbot, w.search, "SN-0042", clock, 0.004)
    assert w.scans == ["SN-0042"]
