"""The station session: what any front end drives (the window, ``station run``).

One Qt-free object owns the open lot, its orchestrator, the device host (the opener the ports
use), the label service and the station's rules: which port a scan goes to, which row Next (F6)
sends, that a done unit is never re-flashed from a scan, when a label is printed, what engineer
mode allows, which ports were plugged in or out. Front ends show what it says and pass on what
the operator asks.

Threads: orchestrator events arrive on port threads and go to :meth:`StationSession.deliver`,
which applies the session's rules (the label on a pass, the ports' states) and passes each
event on to every subscriber. The session's own methods run on the calling thread; a front end
with an event loop runs them on the session's one worker thread instead (:meth:`submit`), so no
ledger call (a network round trip with PostgreSQL) happens on its GUI thread.

May import: station.errors, station.ledger, station.labels, station.nvs, station.flashing (lazily:
esptool is heavy) and station.production. Never PySide6.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from station.errors import StationError
from station.production.lot import Lot, open_lot
from station.production.orchestrator import (
    CountersUpdate,
    Decision,
    LogEvent,
    Orchestrator,
    PortUpdate,
)
from station.production.session_hotplug import HotPlug
from station.production.session_labels import LabelPolicy
from station.production.session_reads import LotReads

T = TypeVar("T")
Listener = Callable[[object], None]


def first_message(err: StationError) -> str:
    """The first problem's message (and how many more there are): one line for a banner."""
    p = err.problems[0]
    return p.message if len(err.problems) == 1 else f"{p.message} (+{len(err.problems) - 1} more)"


# --- configuration and session-level events ------------------------------------------------------
@dataclass(frozen=True)
class SessionConfig:
    """The station's settings that are not view: how ports run and labels print."""

    baud: int = 460800
    operator: str = ""
    continuous: bool = False  # every port flashes whatever device it has (orchestrator auto mode)
    auto_start: bool = True  # a port starts as soon as a unit is assigned to it
    label_output: str = ""  # pdf:PATH, zpl:tcp://HOST:9100, zpl:/dev/…, printer:[NAME]
    print_on_pass: bool = False
    no_stub: bool = False
    max_units: int | None = None
    auto_retry: int = 1
    poll_interval: float = 1.0

    @property
    def orchestrator_key(self) -> tuple[int, bool, str, bool, int | None, int, float]:
        """What an orchestrator is built with: a change needs a new one (:meth:`restart`)."""
        return (
            self.baud,
            self.continuous,
            self.operator,
            self.no_stub,
            self.max_units,
            self.auto_retry,
            self.poll_interval,
        )


@dataclass(frozen=True)
class Outcome:
    """What became of an operator's request: accepted or refused, and the words to show."""

    ok: bool
    message: str
    port: str = ""
    row_index: int | None = None
    question: str = ""  # set when the request needs a yes from the operator first


@dataclass(frozen=True)
class PortsPlugged:
    """Devices appeared on ports this station has no slot for yet: the front end adds them."""

    ports: tuple[tuple[str, str | None], ...]  # (port, slot name from the slot map)


@dataclass(frozen=True)
class PortOffline:
    """A known port's device was unplugged (True) or plugged in again (False)."""

    port: str
    offline: bool


@dataclass
class _PortState:
    slot: str
    state: str = "idle"
    row_index: int | None = None
    offline: bool = False


@dataclass
class _Lot:
    """What the session holds for the open lot."""

    lot: Lot
    orchestrator: Orchestrator
    key: tuple[Any, ...]


class StationSession:
    """One station: the open lot, its orchestrator, the device host and the label service."""

    def __init__(
        self,
        config: SessionConfig | None = None,
        *,
        opener: Any | None = None,
        use_device_host: bool = False,
        station_id: str | None = None,
        label_renderer: Callable[[], None] | None = None,
    ) -> None:
        self.config = config or SessionConfig()
        self._opener = opener  # a given opener (tests, a jig) wins over the device host
        self.use_device_host = use_device_host
        self.station_id = station_id
        self.device_host: Any | None = None
        self.engineer = False
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._ports: dict[str, _PortState] = {}  # port -> what its last event said
        self._open: _Lot | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        if label_renderer is not None:
            label_renderer()
        self.label_policy = LabelPolicy(self)
        self.labels = self.label_policy.service
        self.hot_plug = HotPlug(self)  # start_hot_plug(): the serial ports watched
        self.reads = LotReads(self)  # counts, records, row 1's image usage

    # --- events --------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every event (from whatever thread it happens on)."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def emit(self, event: object) -> None:
        """Pass an event to every subscriber (a broken one does not stop the others)."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as err:  # a subscriber must not kill a port thread
                if not isinstance(event, LogEvent):
                    self.emit(LogEvent("", "error", f"event handler failed: {err!r}"))

    def log(self, level: str, text: str, port: str = "") -> None:
        self.emit(LogEvent(port, level, text))

    def deliver(self, event: object) -> None:
        """An orchestrator event (any thread): the session's rules see it, then subscribers."""
        passed: PortUpdate | None = None
        if isinstance(event, PortUpdate):
            with self._lock:
                st = self._ports.get(event.port)
                if st is None:
                    st = self._ports[event.port] = _PortState(event.slot or event.port)
                if event.state == "passed" and st.state != "passed" and event.row_index is not None:
                    passed = event
                st.state, st.row_index, st.offline = event.state, event.row_index, False
                if event.slot:
                    st.slot = event.slot
        self.emit(event)
        if passed is not None:
            self.label_policy.on_pass(passed)

    # --- the worker thread ---------------------------------------------------------------------
    def submit(
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the session's one worker thread (in order); the result as a future."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="session"
                )
            return self._executor.submit(fn, *args, **kwargs)

    # --- configuration -------------------------------------------------------------------------
    def configure(self, config: SessionConfig) -> None:
        """New settings; those of the orchestrator apply with :meth:`restart` (see
        :attr:`needs_restart`), the label policy at once."""
        self.config = config

    @property
    def needs_restart(self) -> bool:
        """The running orchestrator was built with other settings (baud, continuous, …)."""
        return self._open is not None and self._open.key != self.config.orchestrator_key

    # --- the lot -------------------------------------------------------------------------------
    @property
    def lot(self) -> Lot | None:
        return self._open.lot if self._open is not None else None

    @property
    def orchestrator(self) -> Orchestrator | None:
        return self._open.orchestrator if self._open is not None else None

    def open(self, path: str, *, db_url: str | None = None, **kwargs: Any) -> Lot:
        """Open and validate a lot, then start an orchestrator on it (the current lot is closed
        first). Problems raise StationError and leave no lot open."""
        if self._open is not None and self.busy_ports():
            raise StationError.at("lot", "Finish or stop the running jobs first", key="lot")
        lot = open_lot(path, db_url=db_url, **kwargs) if db_url else open_lot(path, **kwargs)
        self.set_lot(lot)
        return lot

    def set_lot(self, lot: Lot) -> None:
        """Use an opened lot (replaces the current one)."""
        self.close_lot()
        self.label_policy.set_lot(lot)
        if self.device_host is None and self.use_device_host and self._opener is None:
            from station.flashing.host import DeviceHost

            self.device_host = DeviceHost()
        orchestrator = self._orchestrator(lot)
        self._open = _Lot(lot, orchestrator, self.config.orchestrator_key)

    def _orchestrator(self, lot: Lot) -> Orchestrator:
        c = self.config
        opener = opener_for(lot, self._opener, self.device_host)
        return Orchestrator(
            lot,
            on_event=self.deliver,
            baud=c.baud,
            operator=c.operator,
            station_id=self.station_id,
            auto_start=c.continuous,
            no_stub=c.no_stub,
            max_units=c.max_units,
            auto_retry=c.auto_retry,
            poll_interval=c.poll_interval,
            opener=opener,
        )

    def restart(self) -> bool:
        """A new orchestrator with the current settings on the same lot and ports (refused,
        False, while a port works)."""
        opened = self._open
        if opened is None or self.busy_ports():
            return False
        ports = [
            (p, self._ports[p].slot if p in self._ports else None)
            for p in opened.orchestrator.ports()
        ]
        opened.orchestrator.close()
        with self._lock:
            self._ports.clear()
        opened.orchestrator = self._orchestrator(opened.lot)
        opened.key = self.config.orchestrator_key
        for port, slot in ports:
            self.add_port(port, slot)
        return True

    def close_lot(self) -> None:
        """Stop production on the lot (cancels and joins the ports), print the queued labels,
        close the ledger."""
        opened, self._open = self._open, None
        self.hot_plug.stop()
        if opened is None:
            return
        opened.orchestrator.close()
        self.label_policy.stop()  # queued labels are printed (and audited) before the ledger closes
        opened.lot.close()  # (closes the worker thread's connection too)
        with self._lock:
            self._ports.clear()

    def shutdown(self) -> None:
        """Close the lot, stop the worker thread and the device host (not from the worker)."""
        self.close_lot()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        if self.device_host is not None:
            self.device_host.close()
            self.device_host = None

    # --- ports ---------------------------------------------------------------------------------
    def start_device_host(self) -> None:
        """Start the device host now (it is ready by the time the first device answers)."""
        if self.device_host is not None:
            try:
                self.device_host.start()
            except Exception as err:  # the ports say why when they connect
                self.log("error", f"cannot start the device host: {err}")

    def add_port(self, port: str, slot: str | None = None) -> bool:
        """Put a port on the station (in continuous mode it starts at once); False if refused."""
        orch = self.orchestrator
        if orch is None:
            return False
        with self._lock:
            self._ports.setdefault(port, _PortState(slot or port))
        try:
            orch.add_port(port, slot)
        except StationError as err:
            self.log("error", first_message(err), port)
            with self._lock:
                self._ports.pop(port, None)
            return False
        return True

    def remove_port(self, port: str) -> None:
        orch = self.orchestrator
        if orch is not None:
            orch.remove_port(port)
        with self._lock:
            self._ports.pop(port, None)

    def slot(self, port: str) -> str:
        with self._lock:
            st = self._ports.get(port)
        return st.slot if st is not None else port

    def busy_ports(self) -> list[str]:
        """Ports with a job running right now (the orchestrator's word, not the last event)."""
        orch = self.orchestrator
        if orch is None:
            return []
        busy = []
        for port in orch.ports():
            try:
                if orch.busy(port):
                    busy.append(port)
            except StationError:
                continue
        return busy

    def ready_port(self) -> str | None:
        """The first port showing READY with no unit waiting (a fresh device, or never used);
        None lets the orchestrator pick any free port. A port still showing PASS or FAIL most
        likely holds the finished device, so a scan does not go there while a READY one exists."""
        with self._lock:
            for port, st in self._ports.items():
                if st.state == "idle" and st.row_index is None and not st.offline:
                    return port
        return None

    def mark_offline(self, port: str, offline: bool) -> bool:
        """A known port's device went (or came back); False for a port the session lacks."""
        with self._lock:
            st = self._ports.get(port)
            if st is not None:
                st.offline = offline
        return st is not None

    def start_hot_plug(self, poll_interval: float = 1.0) -> None:
        """Watch the serial ports (:class:`PortsPlugged`, :class:`PortOffline` events)."""
        self.hot_plug.start(poll_interval)

    def start(self, port: str) -> Outcome:
        orch = self.orchestrator
        if orch is None:
            return Outcome(False, "✘ No lot is open")
        try:
            orch.start(port)
        except StationError as err:
            return Outcome(False, f"✘ {self.slot(port)}: {first_message(err)}", port)
        return Outcome(True, "", port)

    def start_all(self) -> Outcome:
        orch = self.orchestrator
        if orch is None:
            return Outcome(False, "✘ No lot is open")
        try:
            orch.start_all()
        except StationError as err:
            return Outcome(False, f"✘ {first_message(err)}")
        return Outcome(True, "")

    def cancel(self, port: str | None = None) -> None:
        """Stop one port (or all). A stopped port that is not working drops its waiting unit."""
        orch = self.orchestrator
        if orch is None:
            return
        orch.cancel(port)
        if port is None or port in self.busy_ports():
            return
        try:
            orch.unassign(port)
        except StationError:
            return
        self.deliver(PortUpdate(port, self.slot(port), "idle", message="unit dropped"))

    def _after_assign(self, port: str) -> None:
        """With auto-start, a device already waiting on ``port`` starts at once."""
        orch = self.orchestrator
        if orch is None or not self.config.auto_start or orch.auto_start:
            return  # (an orchestrator in continuous mode starts assigned rows itself)
        try:
            orch.start(port)
        except StationError as err:
            self.log("warning", first_message(err), port)

    # --- what the operator asks ----------------------------------------------------------------
    def scan(self, code: str, port: str | None = None, *, reprint: bool = False) -> Outcome:
        """A scanned code: assign its row to ``port`` (else a READY port, else any free one);
        with ``reprint``, print its label again instead. Unknown codes, codes already done and
        codes assigned elsewhere are refused and change nothing."""
        code = code.strip()
        opened = self._open
        if opened is None:
            return Outcome(False, f"✘ {code}: no lot is open")
        known = opened.lot.ledger.find_scan(code)
        if reprint:
            return self.label_policy.reprint(known, what=code)
        if known is not None and known.state == "done":
            # a finished unit scanned again: never re-flash it from a scan (Release is for that)
            return Outcome(False, f"✘ {code}: already done, put it aside", row_index=known.index)
        try:
            port, row_index = opened.orchestrator.assign_scan(code, port or self.ready_port())
        except StationError as err:
            return Outcome(False, f"✘ {code}: {first_message(err)}")
        self.log("info", f"scan {code}: row {row_index + 1} assigned", port)
        self._after_assign(port)
        return Outcome(True, f"✔ {code} → {self.slot(port)}", port, row_index)

    def next(self, selected: int | None = None, port: str | None = None) -> Outcome:
        """Next (F6): send the selected row if F6 can send it (pending, not waiting on a port),
        else the first pending row no port waits for, to ``port`` or the next free one."""
        opened = self._open
        if opened is None:
            return Outcome(False, "✘ No lot is open")
        row_index = selected
        if row_index is not None:  # only a pending row no port waits for (once)
            rec = opened.lot.ledger.row(row_index)
            waiting = opened.orchestrator.assigned_rows().values()
            if rec is None or rec.state != "pending" or row_index in waiting:
                row_index = None
        if row_index is None:
            row_index = self._next_unassigned_row()
            if row_index is None:
                return Outcome(False, "✘ No pending rows left")
        try:
            port = opened.orchestrator.assign(port or self.ready_port(), row_index)
        except StationError as err:
            return Outcome(False, f"✘ row {row_index + 1}: {first_message(err)}")
        rec = opened.lot.ledger.row(row_index)
        unit = (rec.unit_id if rec is not None else "") or f"row {row_index + 1}"
        self._after_assign(port)
        return Outcome(True, f"✔ {unit} → {self.slot(port)}", port, row_index)

    def _next_unassigned_row(self) -> int | None:
        """The first pending row no port is waiting for or working on."""
        opened = self._open
        if opened is None:
            return None
        with self._lock:
            taken: set[int | None] = {st.row_index for st in self._ports.values()}
        taken |= set(opened.orchestrator.assigned_rows().values())
        offset = 0
        while True:
            page = opened.lot.ledger.rows(offset, 100, "pending")
            for rec in page:
                if rec.index not in taken:
                    return int(rec.index)
            if len(page) < 100:
                return None
            offset += 100

    def retry(self, row_index: int | None) -> Outcome:
        """Retry a failed unit (same row; the orchestrator picks the port its device is on)."""
        opened = self._open
        if row_index is None or opened is None:
            return Outcome(False, "✘ No failed unit selected")
        rec = opened.lot.ledger.row(row_index)
        try:
            port = opened.orchestrator.retry(row_index)
        except StationError as err:
            return Outcome(False, f"✘ Retry refused: {first_message(err)}")
        unit = rec.unit_id if rec is not None and rec.unit_id else row_index + 1
        return Outcome(True, f"↻ {unit} → retry on {self.slot(port)}", port, row_index)

    def may(self, what: str) -> Outcome:
        """Engineer mode needed for ``what`` (settings, lots, releases, overwriting)?"""
        if self.engineer:
            return Outcome(True, "")
        return Outcome(False, f"✘ Engineer mode needed to {what} (F2)")

    def release(
        self, row_index: int | None, reason: str, supervisor: str, *, station_gone: bool = False
    ) -> Outcome:
        """Supervisor only: give a row back to production, with a reason (audited). A claim of
        another station comes back with a ``question`` (is it gone?): ask, then call again
        with ``station_gone``."""
        from station.ledger import ClaimOfAnotherStation

        opened = self._open
        if row_index is None or opened is None:
            return Outcome(False, "✘ No failed unit selected")
        allowed = self.may("release a row")
        if not allowed.ok:
            return allowed
        rec = opened.lot.ledger.row(row_index)
        try:
            opened.orchestrator.release(
                row_index, reason, supervisor or "engineer", station_gone=station_gone
            )
        except ClaimOfAnotherStation as err:  # only that station can tell if its run lives
            return Outcome(False, "", row_index=row_index, question=first_message(err))
        except StationError as err:
            return Outcome(False, f"✘ Release refused: {first_message(err)}")
        unit = rec.unit_id if rec is not None else ""
        self.log("warning", f"row {row_index + 1} ({unit}) released: {reason}")
        return Outcome(True, f"Row {row_index + 1} released", row_index=row_index)

    def decide(self, decision: Decision, ask: Callable[[str], bool] | None) -> bool:
        """The orchestrator found something it must not decide alone (foreign data): only an
        engineer may overwrite it; ``ask`` puts the question. Returns the answer given."""
        orch = self.orchestrator
        if orch is None:
            return False
        overwrite = self.engineer and ask is not None and ask(decision.question)
        if not self.engineer:
            self.log("warning", f"{decision.question} — refused in operator mode", decision.port)
        try:
            orch.answer(decision.port, overwrite)
        except StationError:
            return False  # the port went meanwhile
        return overwrite

    def reprint(self, row_index: int | None, *, output: str | None = None) -> Outcome:
        """Print a flashed unit's label again (audited as a reprint)."""
        opened = self._open
        rec = None
        if opened is not None and row_index is not None:
            rec = opened.lot.ledger.row(row_index)
        return self.label_policy.reprint(rec, output=output)

    # --- what the ledger says (a front end calls these through submit) --------------------------
    def failed(self) -> list[Any]:
        opened = self._open
        return list(opened.lot.ledger.failed()) if opened is not None else []

    def counters(self) -> CountersUpdate | None:
        opened = self._open
        if opened is None:
            return None
        c = opened.lot.ledger.counters()
        return CountersUpdate(c.done, c.failed, c.remaining, c.units_per_hour)

    def rows(
        self, offset: int = 0, limit: int = 100, state: str | None = None, search: str = ""
    ) -> list[Any]:
        opened = self._open
        return list(opened.lot.ledger.rows(offset, limit, state, search)) if opened else []


def opener_for(lot: Lot, given: Any | None, device_host: Any | None) -> Any | None:
    """How a lot's ports open devices: a given opener (tests, a jig) wins; else through the
    device host, except for a lot that burns eFuses: espefuse needs the unit's esptool
    connection in the process that runs the recipe (None: opened in this process)."""
    if given is not None:
        return given
    if device_host is None or getattr(lot, "security", None) is not None:
        return None
    return device_host.open_device
