"""Qt fixtures: every test here runs offscreen and must leave no QTimer, QThread, thread-pool job
or Python thread running (the window must shut its workers down)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, QThread, QThreadPool, QTimer

from station.gui.settings import StationSettings
from station.production.engineer import PinStore

_timers: list[weakref.ref[QTimer]] = []
_qthreads: list[weakref.ref[QThread]] = []
_timer_start = QTimer.start
_qthread_start = QThread.start


def _tracked_timer_start(self: QTimer, *args: object) -> None:
    _timers.append(weakref.ref(self))
    _timer_start(self, *args)


def _tracked_qthread_start(self: QThread, *args: object) -> None:
    _qthreads.append(weakref.ref(self))
    _qthread_start(self, *args)


# Record every QTimer/QThread started during a test, so the fixture below can find those left
# running (Qt keeps no list of them).
QTimer.start = _tracked_timer_start  # type: ignore[method-assign]
QThread.start = _tracked_qthread_start  # type: ignore[method-assign]


def _alive(obj: object | None) -> bool:
    return obj is not None and shiboken6.isValid(obj)


@pytest.fixture(autouse=True)
def nothing_left_running(qapp: object) -> Iterator[None]:
    """Fail the test if it leaves a QTimer, QThread, thread-pool job or thread running."""
    _timers.clear()
    _qthreads.clear()
    before = set(threading.enumerate())
    yield
    # pytest-qt has closed the test's widgets by now; let their deleteLater() happen.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    left = []
    for ref in _timers:
        timer = ref()
        if _alive(timer) and timer.isActive():  # type: ignore[union-attr]
            left.append(f"QTimer {timer.objectName() or timer!r} still active")
    for ref in _qthreads:
        thread = ref()
        if _alive(thread) and thread.isRunning():  # type: ignore[union-attr]
            left.append(f"QThread {thread!r} still running")
    active = QThreadPool.globalInstance().activeThreadCount()
    if active:
        left.append(f"{active} QThreadPool job(s) still running")
    for t in threading.enumerate():
        if t not in before and t is not threading.current_thread():
            t.join(2.0)  # a thread that ends by itself (a watchdog winding down) is fine
            if t.is_alive():
                left.append(f"thread {t.name!r} still running")
    if left:
        pytest.fail("left running after the test:\n" + "\n".join(left), pytrace=False)


@pytest.fixture
def settings(tmp_path: Path) -> StationSettings:
    """Station settings in an INI file of this test (never the user's real settings)."""
    qs = QSettings(str(tmp_path / "station.ini"), QSettings.Format.IniFormat)
    s = StationSettings(qs, PinStore(tmp_path / "engineer-pin"))
    s.sound = False
    s.hot_plug = False
    return s
