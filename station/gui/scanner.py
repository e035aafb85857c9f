"""Barcode scanners: keyboard-wedge scanners anywhere in the window, and serial-port scanners.

A keyboard-wedge scanner "types" the code fast and presses Enter. :class:`ScanEventFilter` follows
the focus and makes a scan work wherever the focus is: keys typed while no text field has
the focus go to the scan field (so a scan, or a slow human, always lands there); keys typed into
another text field are left alone unless they arrive as a burst (every gap under ``max_gap``)
ended by Enter, which :class:`ScanDetector` recognises and which is then taken out of that field.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

ENTER_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


class ScanDetector:
    """Recognises a scanner burst: at least ``min_length`` characters, each within ``max_gap``
    seconds of the previous one, and Enter within ``max_gap`` of the last character."""

    def __init__(
        self,
        *,
        max_gap: float = 0.05,
        min_length: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_gap = max_gap
        self.min_length = min_length
        self.clock = clock
        self._chars: list[str] = []
        self._last = -1e9

    def key(self, text: str) -> None:
        """Record one typed character."""
        now = self.clock()
        if now - self._last > self.max_gap:
            self._chars = []
        self._chars.append(text)
        self._last = now

    def enter(self) -> str | None:
        """Enter was pressed: the scanned code if this ends a burst, else None. Resets."""
        now = self.clock()
        code = "".join(self._chars)
        fast = now - self._last <= self.max_gap
        self.reset()
        if fast and len(code) >= self.min_length:
            return code
        return None

    def reset(self) -> None:
        self._chars = []
        self._last = -1e9


def _is_text_input(widget: QWidget | None) -> bool:
    return isinstance(widget, (QLineEdit, QPlainTextEdit, QTextEdit, QAbstractSpinBox)) or (
        isinstance(widget, QComboBox) and widget.isEditable()
    )


def _printable(event: QKeyEvent) -> str:
    mods = event.modifiers() & ~(
        Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier
    )
    text = event.text()
    if mods or len(text) != 1 or not text.isprintable():
        return ""
    return text


class ScanEventFilter(QObject):
    """Application event filter that routes barcode scans to ``on_scan`` wherever the focus is.

    ``window`` is the station window: scans only count while it (not a dialog) is active.
    ``field`` is its scan field; it handles its own Enter.
    """

    def __init__(
        self,
        window: QWidget,
        field: QLineEdit,
        on_scan: Callable[[str], None],
        detector: ScanDetector | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.field = field
        self.on_scan = on_scan
        self.detector = detector or ScanDetector()

    def attach(self) -> None:
        """Start routing scans. The filter sits on the widget with the focus (following it) and
        on the window, where key presses go first, rather than on the application: an
        application filter is a Python call for every event of every object (paints, timers,
        the port threads' queued signals), which cost the GUI thread more than the 32 ports'
        cards while they flash."""
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        app.focusChanged.connect(self._focus_changed)
        self.window.installEventFilter(self)
        focus = app.focusWidget()
        if focus is not None:
            focus.installEventFilter(self)

    def detach(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            with contextlib.suppress(RuntimeError, TypeError):
                app.focusChanged.disconnect(self._focus_changed)
            focus = app.focusWidget()
            if focus is not None:
                focus.removeEventFilter(self)
        self.window.removeEventFilter(self)

    def _focus_changed(self, old: QWidget | None, new: QWidget | None) -> None:
        if old is not None and old is not self.window:
            with contextlib.suppress(RuntimeError):  # a widget deleted meanwhile
                old.removeEventFilter(self)
        if new is not None:
            new.installEventFilter(self)

    def _target(self) -> QWidget | None:
        focus = QApplication.focusWidget()
        return focus if focus is not None else QApplication.activeWindow()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.KeyPress or not isinstance(obj, QWidget):
            return False
        # A key press is offered to each widget up the parent chain; count it once, at the
        # widget it is meant for, and only inside the station window (never inside a dialog).
        if obj is not self._target() or QApplication.activeModalWidget() is not None:
            return False
        if obj.window() is not self.window or obj is self.field:
            return False
        assert isinstance(event, QKeyEvent)
        if event.key() in ENTER_KEYS:
            return self._enter(obj)
        text = _printable(event)
        if not text:
            return False
        self.detector.key(text)
        if _is_text_input(obj):
            return False  # the field gets the key; a scan burst is taken back out at Enter
        self.field.insert(text)  # no text field has the focus: typing goes to the scan field
        return True

    def _enter(self, obj: QWidget) -> bool:
        code = self.detector.enter()
        if not _is_text_input(obj):
            pending = self.field.text().strip()
            if not pending:
                return False  # Enter on a button or a table: leave it to them
            self.field.clear()
            self.on_scan(pending)
            return True
        if code is None:
            return False
        if isinstance(obj, QLineEdit):
            text, pos = obj.text(), obj.cursorPosition()
            if text[:pos].endswith(code):
                obj.setText(text[: pos - len(code)] + text[pos:])
                obj.setCursorPosition(pos - len(code))
        elif isinstance(obj, QPlainTextEdit | QTextEdit):
            cursor = obj.textCursor()
            for _ in code:
                cursor.deletePreviousChar()
        self.on_scan(code)
        return True


class SerialScanner(QObject):
    """Reads codes (one per line) from a serial-port scanner on a reader thread.

    ``scanned`` is emitted from the reader thread and so arrives queued in the GUI thread.
    ``failed`` carries an operator message when the port cannot be opened or goes away.
    """

    scanned = Signal(str)
    failed = Signal(str)
    ready = Signal()  # the port is open (input sent before this may be lost)

    def __init__(self, port: str, baud: int = 9600, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.port = port
        self.baud = baud
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"scanner {self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading and join the reader thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        import serial  # pyserial: imported here so the window starts without touching ports

        try:
            conn = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as err:
            self.failed.emit(f"Scanner port {self.port} cannot be opened: {err}")
            return
        self.ready.emit()
        buffer = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.read(256)
                except (serial.SerialException, OSError) as err:
                    self.failed.emit(f"Scanner port {self.port} stopped: {err}")
                    return
                if not chunk:
                    continue
                buffer += chunk
                while True:
                    cut = min(
                        (i for i in (buffer.find(b"\r"), buffer.find(b"\n")) if i >= 0), default=-1
                    )
                    if cut < 0:
                        break
                    line, buffer = buffer[:cut], buffer[cut + 1 :]
                    code = line.decode("utf-8", "replace").strip()
                    if code:
                        self.scanned.emit(code)
        finally:
            conn.close()
