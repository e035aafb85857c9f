"""The window's link to the station session: ledger work on the session's worker thread, its
events delivered to the GUI thread.

:meth:`SessionLink.call` runs a session method on the worker and waits for it with a local event
loop that keeps painting and ticking (user input waits until it returns, so a key press is never
handled in the middle of another one): the window reads like synchronous code, and no ledger
call (a network round trip with PostgreSQL) runs on the GUI thread. :meth:`SessionLink.later`
does not wait; its callback runs on the GUI thread.

May import: PySide6, station.production (the session and its events), station.labels.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QEventLoop, QObject, Qt, Signal

from station.labels import LabelOutcome
from station.production.session import PortOffline, PortsPlugged, StationSession

T = TypeVar("T")


class SessionLink(QObject):
    """Session events to the bridge (port threads) or the GUI thread; calls to the worker."""

    posted = Signal(object)  # a session event for the GUI thread (new ports, label outcomes)
    _arrived = Signal(object)  # (queued to the GUI thread)
    _finished = Signal(object, object)  # future, callback: run the callback on the GUI thread

    def __init__(self, session: StationSession, bridge: Any, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session
        self.bridge = bridge
        self._finished.connect(self._run_callback, Qt.ConnectionType.QueuedConnection)
        self._arrived.connect(self._arrive, Qt.ConnectionType.QueuedConnection)
        self._waiting = 0  # calls waiting for the worker (nested)
        self._held: list[object] = []  # events that came while a call waited
        session.subscribe(self.on_event)

    def on_event(self, event: object) -> None:
        """Any thread: progress is folded by the bridge; what needs the GUI thread is posted."""
        if isinstance(event, PortsPlugged | LabelOutcome):
            self._arrived.emit(event)
        elif isinstance(event, PortOffline):
            self.bridge.set_offline(event.port, event.offline)
        else:
            self.bridge.on_event(event)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the session's worker; the GUI thread keeps painting until it returns."""
        future = self.session.submit(fn, *args, **kwargs)
        self._waiting += 1
        try:
            if not future.done():
                loop = QEventLoop()
                waker = _Waker()
                waker.done.connect(loop.quit, Qt.ConnectionType.QueuedConnection)
                future.add_done_callback(lambda _f: waker.done.emit())
                if not future.done():
                    loop.exec(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        finally:
            self._waiting -= 1
        if not self._waiting and self._held:
            held, self._held = self._held, []
            for event in held:
                self._arrived.emit(event)  # after the caller has shown its own answer
        return future.result()

    def _arrive(self, event: object) -> None:
        """A session event on the GUI thread; one that comes while a call waits is held until
        the call returns (its answer is shown first: "label sent", then "label failed")."""
        if self._waiting:
            self._held.append(event)
        else:
            self.posted.emit(event)

    def later(self, fn: Callable[..., T], *args: Any, then: Callable[[T], None]) -> None:
        """Run ``fn`` on the session's worker; ``then(result)`` on the GUI thread (not on an
        error: the next repaint asks again)."""
        future = self.session.submit(fn, *args)
        future.add_done_callback(lambda f: self._finished.emit(f, then))

    def _run_callback(self, future: concurrent.futures.Future[Any], then: Any) -> None:
        if future.exception() is None:
            then(future.result())

    def stop(self) -> None:
        self.session.unsubscribe(self.on_event)


class SessionRows:
    """The row table's source: the session's rows, counted on its worker when asked from the
    GUI thread (pages are read on the row model's own reader thread)."""

    def __init__(self, link: SessionLink) -> None:
        self.link = link
        self.session = link.session

    def count(self, state: str | None = None, search: str = "") -> int:
        if threading.current_thread() is threading.main_thread():
            return self.link.call(self.session.reads.count, state, search)
        return self.session.reads.count(state, search)

    def rows(
        self, offset: int, limit: int, state: str | None = None, search: str = ""
    ) -> list[Any]:
        if threading.current_thread() is threading.main_thread():
            return self.link.call(self.session.rows, offset, limit, state, search)
        return self.session.rows(offset, limit, state, search)


class _Waker(QObject):
    done = Signal()
