"""The bridge from the orchestrator's worker threads to the GUI thread.

The orchestrator calls :meth:`EventBridge.on_event` from its worker threads. Progress is folded
into per-port state under a lock (never queued one by one: a flashing port reports hundreds of
times a second); the window's 4 Hz timer takes a snapshot. Events that need an answer or a
repaint of the lot (decisions, row changes) are announced with queued, payload-free signals.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from station.gui.models import LogBuffer
from station.gui.widgets import PortView


@dataclass(frozen=True)
class Snapshot:
    """What changed since the last :meth:`EventBridge.take` (None / False: nothing)."""

    ports: dict[str, PortView] | None  # the ports whose view changed, with their views
    counters: Any | None
    rows: dict[int, str]  # row index -> its new state, for rows that changed

    @property
    def rows_changed(self) -> bool:
        return bool(self.rows)


class EventBridge(QObject):
    """Thread-safe sink for orchestrator events; the GUI thread pulls with :meth:`take`."""

    rows_changed = Signal()  # a row changed state (emitted once until the next take)
    decision = Signal(object)  # a production Decision: the operator must answer
    port_finished = Signal(str, str)  # port, "passed" | "failed": for sounds and the failed list
    unit_passed = Signal(str, int)  # port, row index: the unit's label may be printed

    def __init__(self, log: LogBuffer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log = log
        self._lock = threading.Lock()
        self._views: dict[str, PortView] = {}
        self._dirty: set[str] = set()  # ports whose view changed since the last take
        self._counters: Any | None = None
        self._counters_seq = 0  # the newest CountersUpdate.seq seen
        self._rows: dict[int, str] = {}
        self._rows_signalled = False
        self.events = 0  # events received (for the benchmark)
        self._ledger_offline = False  # shown on every card while the ledger's database is away

    # --- ports known to the window -------------------------------------------------------------
    def add_port(self, port: str, slot: str = "", *, passed: int = 0, failed: int = 0) -> None:
        with self._lock:
            if port not in self._views:
                self._views[port] = PortView(
                    port=port,
                    slot=slot,
                    passed_count=passed,
                    failed_count=failed,
                    ledger_offline=self._ledger_offline,
                )
                self._dirty.add(port)

    def remove_port(self, port: str) -> None:
        with self._lock:
            self._views.pop(port, None)
            self._dirty.discard(port)

    def set_offline(self, port: str, offline: bool) -> None:
        with self._lock:
            view = self._views.get(port)
            if view is not None:
                self._views[port] = replace(
                    view,
                    state="offline" if offline else "idle",
                    message="Device unplugged" if offline else "",
                )
                self._dirty.add(port)

    def view(self, port: str) -> PortView | None:
        with self._lock:
            return self._views.get(port)

    # --- any thread ----------------------------------------------------------------------------
    def on_event(self, event: object) -> None:
        """Called by the orchestrator from any thread; never blocks on the GUI."""
        kind = type(event).__name__
        signal_rows = False
        finished: tuple[str, str] | None = None
        passed_row: int | None = None
        with self._lock:
            self.events += 1
            if kind == "PortUpdate":
                ev: Any = event
                old = self._views.get(ev.port) or PortView(
                    port=ev.port, slot=ev.slot or "", ledger_offline=self._ledger_offline
                )
                new = replace(old.with_update(ev), received=time.monotonic())
                if ev.state != old.state and ev.state in ("passed", "failed"):
                    if ev.state == "passed":
                        new = replace(new, passed_count=old.passed_count + 1)
                    else:
                        new = replace(new, failed_count=old.failed_count + 1)
                    finished = (ev.port, ev.state)
                    if ev.state == "passed" and ev.row_index is not None:
                        passed_row = int(ev.row_index)
                self._views[ev.port] = new
                self._dirty.add(ev.port)
            elif kind == "LedgerStatus":
                self._ledger_offline = bool(event.offline)  # type: ignore[attr-defined]
                for port, view in self._views.items():
                    self._views[port] = replace(view, ledger_offline=self._ledger_offline)
                self._dirty.update(self._views)
            elif kind == "RowUpdate":
                self._rows[ev_row(event)] = event.state  # type: ignore[attr-defined]
                signal_rows = not self._rows_signalled
                self._rows_signalled = True
            elif kind == "CountersUpdate":
                seq = event.seq  # type: ignore[attr-defined]
                if not seq or seq > self._counters_seq:  # an older count arriving late is stale
                    self._counters = event
                    self._counters_seq = max(seq, self._counters_seq)
        if kind == "LogEvent":
            ev = event
            self.log.append(ev.port or "", ev.level, ev.text)
        elif kind == "Decision":
            self.decision.emit(event)
        if signal_rows:
            self.rows_changed.emit()
        if finished is not None:
            self.port_finished.emit(*finished)
        if finished is not None and passed_row is not None:
            self.unit_passed.emit(finished[0], passed_row)

    # --- GUI thread ----------------------------------------------------------------------------
    def take(self) -> Snapshot:
        """What changed since the last call (the window's 4 Hz timer): only the ports that had
        an event, so 32 cards are not all compared and updated on every tick."""
        with self._lock:
            ports = {p: self._views[p] for p in self._dirty} if self._dirty else None
            self._dirty = set()
            counters, self._counters = self._counters, None
            rows, self._rows = self._rows, {}
            self._rows_signalled = False
        return Snapshot(ports, counters, rows)

    def mark_rows_changed(self, row_index: int, state: str = "") -> None:
        """The GUI changed a row itself (assign, release): repaint it on the next tick."""
        with self._lock:
            self._rows[row_index] = state or self._rows.get(row_index, "")


def ev_row(event: Any) -> int:
    return int(event.row_index)
