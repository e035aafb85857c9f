"""The orchestrator: a lot on N ports — claim a row, build its image, flash, verify, record.

The same engine runs behind the window and behind ``station run``. It knows nothing of Qt: each
port has a worker thread, and everything that happens is delivered as a frozen event dataclass
to ``on_event`` (called from worker threads; the window adapts events to Qt signals).

Per device: connect, identify the MAC, read the factory region, then

- the device holds a row of this lot already (bound to its MAC): verify it, re-flash it only if
  it differs (rework), never give it a second row;
- the region holds an image this lot wrote for a row nobody else has: complete that row;
- the region is blank, or holds leftovers of this lot's own interrupted write: claim a row (the
  one assigned to the port, e.g. by a barcode scan, else the next pending row);
- anything else is foreign data: emit :class:`Decision` and wait for :meth:`Orchestrator.answer`.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from station.errors import StationError
from station.ledger import Claim, ClaimRefused, RowRecord
from station.production.security_step import PHASE as PHASE_EFUSES
from station.production.security_step import BoardNotForLot, SecurityFailed

if TYPE_CHECKING:
    from station.flashing import Opener, Progress, WriteRegion
    from station.flashing import Session as DeviceSession
    from station.production.lot import Lot

PORT_STATES = ("idle", "waiting", "busy", "passed", "failed", "attention")


# --- events (frozen: they cross threads) ----------------------------------------------------
@dataclass(frozen=True)
class PortUpdate:
    """What a port is doing now; ``elapsed`` is seconds since the unit started."""

    port: str
    slot: str = ""
    state: str = "idle"  # one of PORT_STATES
    phase: str = ""  # a station.flashing PHASES name, "" when idle
    done: int = 0
    total: int = 0
    chip: str = ""
    mac: str = ""
    unit_id: str = ""
    row_index: int | None = None
    message: str = ""
    elapsed: float = 0.0
    # the unit waiting for this port's next device (scanned while it was busy), "" if none
    next_unit: str = ""
    next_row_index: int | None = None


@dataclass(frozen=True)
class RowUpdate:
    row_index: int
    state: str


@dataclass(frozen=True)
class CountersUpdate:
    """The lot's counters. Ports finish on different threads, so updates can arrive out of
    order: keep the one with the highest ``seq`` (0: unordered, e.g. made by a caller)."""

    done: int
    failed: int
    remaining: int
    units_per_hour: float
    seq: int = 0


# CountersUpdate.seq: one sequence for the process, so a new orchestrator continues it. A seq is
# taken after the caller's ledger commit and before the ledger is read, so the read with the
# highest seq has seen every commit whose counters were sent.
_counter_seq = itertools.count(1)


@dataclass(frozen=True)
class LogEvent:
    port: str  # "" for the station itself
    level: str  # "info" | "warning" | "error"
    text: str  # secrets already masked


@dataclass(frozen=True)
class Decision:
    """The device on ``port`` holds data this lot did not write: overwrite it? (answer())."""

    port: str
    row_index: int | None
    question: str


Event = PortUpdate | RowUpdate | CountersUpdate | LogEvent | Decision


class DeviceRefused(Exception):
    """The device must not be written (e.g. its partition table disagrees with the lot)."""


class Cancelled(Exception):
    """The operator cancelled the port (or the station is closing)."""


@dataclass
class _Port:
    name: str
    slot: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    assigned: int | None = None
    last_mac: str = ""  # the device most recently finished on this port
    last_result: str = ""
    decision: threading.Event = field(default_factory=threading.Event)
    overwrite: bool = False
    asking: bool = False
    removed: bool = False
    last: PortUpdate | None = None  # the last update sent (re-sent when the waiting unit changes)
    emit_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def working(self) -> bool:
        """A job runs on this port right now."""
        return self.thread is not None and self.thread.is_alive()


@dataclass
class _Unit:
    """The state of one unit's run on a port (worker thread only)."""

    started: float
    mac: str = ""
    chip: str = ""
    row: RowRecord | None = None
    claim: Claim | None = None
    assigned: int | None = None  # the row assigned to the port when this unit was planned
    phase: str = "connecting"
    timings: dict[str, float] = field(default_factory=dict)
    phase_started: float = 0.0


class Orchestrator:
    """Runs a lot on N ports; thread-safe; events go to ``on_event`` from worker threads.

    ``auto_start``: every added port runs continuously — it flashes whatever device is
    connected, then waits for a different device (by MAC). ``max_units``: stop claiming once
    that many units were verified (``station run --count``). ``auto_retry``: in auto mode, how
    often a failed unit is retried at once on the same device.
    """

    def __init__(
        self,
        lot: Lot,
        *,
        on_event: Callable[[object], None],
        baud: int = 460800,
        operator: str = "",
        station_id: str | None = None,
        auto_start: bool = False,
        no_stub: bool = False,
        max_units: int | None = None,
        auto_retry: int = 1,
        poll_interval: float = 1.0,
        connect_timeout: float = 10.0,
        opener: Opener | None = None,
    ) -> None:
        self.lot = lot
        self.ledger = lot.ledger
        self._emit_raw = on_event
        self.baud = baud
        self.operator = operator
        self.station_id = station_id or self.ledger.station_id
        self.auto_start = auto_start
        self.no_stub = no_stub
        self.max_units = max_units
        self.auto_retry = auto_retry
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self._opener = opener  # station.flashing.open_device unless given (tests, other links)
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._ports: dict[str, _Port] = {}
        self._closing = threading.Event()
        self._claim_lock = threading.Lock()
        self._claimed: set[str] = set()  # ports with a unit claimed and not finished
        # threads of removed ports that had not ended when remove_port() returned
        self._stray: list[threading.Thread] = []
        self.units_done = 0  # verified in this run
        self.units_failed = 0
        self.run_id = self.ledger.start_run()
        self._closed = False
        from station.production import security_step

        self._security = security_step.for_lot(lot)  # the lot's [security] recipe, or None
        if self._security is not None:
            self._emit(LogEvent("", "info", self._security.describe()))
        if getattr(lot, "security_warning", None):
            self._emit(LogEvent("", "warning", str(lot.security_warning)))
        for rec in self.ledger.recover():
            a = rec.attempt
            self._emit(
                LogEvent(
                    a.port,
                    "warning",
                    f"unit {self._unit_label(a.row_index)}: the attempt on {a.port} "
                    f"({a.mac}) was interrupted by a station stop; row is now "
                    f"{rec.row_state}",
                )
            )
            self._emit(RowUpdate(a.row_index, rec.row_state))

    # --- events --------------------------------------------------------------------------------
    def _emit(self, event: object) -> None:
        try:
            self._emit_raw(event)
        except Exception as err:  # a broken subscriber must not kill a port worker
            if not isinstance(event, LogEvent):
                self._emit_raw(LogEvent("", "error", f"event handler failed: {err!r}"))

    def _counters(self) -> None:
        seq = next(_counter_seq)
        c = self.ledger.counters()
        self._emit(CountersUpdate(c.done, c.failed, c.remaining, c.units_per_hour, seq))

    def _unit_label(self, index: int) -> str:
        try:
            return self._mask(self.lot.unit_id(self.lot.row(index)), index)
        except (IndexError, StationError):
            return str(index + 1)

    def _mask(self, text: str, row_index: int | None) -> str:
        """Replace any secret value of the row that appears in ``text`` (belt and braces)."""
        if row_index is None or not self.lot.secret_columns:
            return text
        from station.mfg import mask

        try:
            values = self.lot.row(row_index).values
        except IndexError:
            return text
        for col in self.lot.secret_columns:
            v = values.get(col, "")
            if len(v) >= 3 and v in text:
                text = text.replace(v, mask(v))
        return text

    # --- ports -------------------------------------------------------------------------------
    def add_port(self, port: str, slot: str | None = None) -> None:
        """Add a port (a slot name labels it for operators); in auto mode it starts at once."""
        with self._lock:
            if port in self._ports and not self._ports[port].removed:
                return
            p = _Port(port, slot or port)
            self._ports[port] = p
        self._emit_port(p, PortUpdate(port, p.slot, "idle"))
        if self.auto_start:
            self.start(port)

    def remove_port(self, port: str, timeout: float = 5.0) -> None:
        """Cancel whatever the port is doing and forget it (waits up to ``timeout`` seconds for
        its thread; one still winding down after that is joined by :meth:`close`)."""
        with self._lock:
            p = self._ports.get(port)
            if p is None:
                return
            p.removed = True
            p.cancel.set()
            p.decision.set()
            thread = p.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            if self._ports.get(port) is p:
                del self._ports[port]
            if thread is not None and thread.is_alive():
                self._stray.append(thread)
            self._stray = [t for t in self._stray if t.is_alive()]

    def ports(self) -> list[str]:
        with self._lock:
            return [name for name, p in self._ports.items() if not p.removed]

    def _port(self, port: str) -> _Port:
        with self._lock:
            p = self._ports.get(port)
        if p is None or p.removed:
            raise StationError.at(port, "no such port in this station (add it first)", key="port")
        return p

    def assigned_rows(self) -> dict[str, int]:
        """The units waiting for a port's next device, by port (a copy)."""
        with self._lock:
            return {
                name: p.assigned
                for name, p in self._ports.items()
                if p.assigned is not None and not p.removed
            }

    def busy(self, port: str) -> bool:
        return self._port(port).working

    # --- assignment --------------------------------------------------------------------------
    def _take_port(self, p: _Port, row_index: int, replace: bool) -> int | None:
        """Give ``p`` the row; refuse when another unit waits there (unless ``replace``).

        Called with the lock held; returns the row that was replaced, if any."""
        replaced: int | None = p.assigned if p.assigned != row_index else None
        if replaced is not None and not replace:
            raise ClaimRefused(
                str(self.ledger.path),
                row_index,
                f"port {p.slot} already has unit {self._unit_label(replaced)} waiting; "
                "unassign it first, or replace it",
            )
        p.assigned = row_index
        return replaced

    def _replaced(
        self, port: str, p: _Port, replaced: int | None, row_index: int, why: str = ""
    ) -> None:
        """Log that a waiting unit gave way to another one (outside the lock)."""
        if replaced is not None:
            self._emit(
                LogEvent(
                    port,
                    "warning",
                    f"unit {self._unit_label(replaced)} no longer waits on {p.slot}: replaced "
                    f"by unit {self._unit_label(row_index)}{why}",
                )
            )

    def assign(
        self, port: str | None, row_index: int, *, rework: bool = False, replace: bool = False
    ) -> str:
        """Reserve a row for the next device on a port (a free port if None); returns the port.

        A done row is refused (a second scan of a finished unit must not start a rework) unless
        ``rework`` is set (engineer mode); a done or failed row only goes to the port whose last
        device holds it. A port with another unit waiting is refused unless ``replace`` is set
        (the waiting unit is then dropped, and logged)."""
        row = self.ledger.row(row_index)
        if row.state in ("claimed", "written"):
            raise ClaimRefused(
                str(self.ledger.path), row_index, f"is being written on {row.port} right now"
            )
        if row.state == "done" and not rework:
            raise ClaimRefused(
                str(self.ledger.path),
                row_index,
                f"{self._unit_label(row_index)} is already done on {row.mac}; "
                "rework needs engineer mode",
            )
        with self._lock:
            for name, p in self._ports.items():
                if p.assigned == row_index and name != port and not p.removed:
                    raise ClaimRefused(
                        str(self.ledger.path), row_index, f"is already assigned to port {name}"
                    )
            if row.state in ("done", "failed"):
                holder = next(
                    (n for n, p in self._ports.items() if p.last_mac and p.last_mac == row.mac),
                    None,
                )
                if holder is None or (port is not None and holder != port):
                    raise ClaimRefused(
                        str(self.ledger.path),
                        row_index,
                        f"is {row.state} on device {row.mac}; it can only go to that device "
                        "(connect it), unless a supervisor releases it",
                    )
                port = holder
            if port is None:
                free = [
                    n
                    for n, p in self._ports.items()
                    if not p.removed and p.assigned is None and not p.working
                ]
                if not free:
                    raise StationError.at(
                        "ports",
                        "no free port: every port is busy or has a unit assigned",
                        key=f"row {row_index + 1}",
                    )
                port = free[0]
            p = self._port(port)
            replaced = self._take_port(p, row_index, replace)
        self._replaced(port, p, replaced, row_index)
        if p.working:  # the card keeps showing the unit in progress, and the next one
            self._emit_port(p, None)
        else:
            self._emit_port(
                p,
                PortUpdate(
                    port,
                    p.slot,
                    "idle",
                    row_index=row_index,
                    unit_id=self._unit_label(row_index),
                    message=f"next unit: {self._unit_label(row_index)}",
                ),
            )
        return port

    def assign_scan(
        self, code: str, port: str | None = None, *, rework: bool = False, replace: bool = False
    ) -> tuple[str, int]:
        """Assign the row whose scan column (else unit id) equals a scanned code (see assign)."""
        row = self.ledger.find_scan(code.strip())
        if row is None:
            raise StationError.at(
                "scan",
                f"no unit {code.strip()!r} in lot {self.lot.name}",
                key=self.lot.settings.scan_column or "scan",
            )
        return self.assign(port, row.index, rework=rework, replace=replace), row.index

    def unassign(self, port: str) -> None:
        """Drop the unit waiting on a port; an idle port says so (PortUpdate "unit dropped")."""
        with self._lock:
            p = self._port(port)
            dropped, p.assigned = p.assigned, None
            idle = not p.working
        if dropped is not None and idle:
            self._emit_port(p, PortUpdate(port, p.slot, "idle", message="unit dropped"))
        elif dropped is not None:
            self._emit_port(p, None)

    # --- control -----------------------------------------------------------------------------
    def start(self, port: str) -> None:
        """Flash the device on this port (assigned row, else next pending row)."""
        with self._lock:
            if self._closing.is_set():
                raise StationError.at(port, "the station is closing", key="port")
            p = self._port(port)
            if p.working:
                return
            p.cancel = threading.Event()
            target = self._auto_loop if self.auto_start else self._one_unit
            p.thread = threading.Thread(target=target, args=(p,), name=f"port {port}", daemon=True)
            p.thread.start()

    def start_all(self) -> None:
        for port in self.ports():
            self.start(port)

    def retry(self, row_index: int, *, replace: bool = False) -> str:
        """Retry a failed row on the port where its device was last seen; returns the port.

        A port with another unit waiting is refused unless ``replace`` is set (as in assign)."""
        row = self.ledger.row(row_index)
        if row.state != "failed":
            raise ClaimRefused(
                str(self.ledger.path), row_index, f"is {row.state}; only failed rows can be retried"
            )
        if row.mac is None:
            raise ClaimRefused(
                str(self.ledger.path),
                row_index,
                f"failed on no device ({row.reason}); fix the lot, then release the row",
            )
        with self._lock:
            live = {n: p for n, p in self._ports.items() if not p.removed}
            port = next((n for n, p in live.items() if p.last_mac == row.mac), None)
            if port is None and row.port in live:
                port = row.port
            if port is None:
                raise ClaimRefused(
                    str(self.ledger.path),
                    row_index,
                    f"its device {row.mac} is on no port of this station; connect "
                    "it, or have a supervisor release the row",
                )
            p = live[port]
            elsewhere = next(
                (n for n, q in live.items() if q.assigned == row_index and n != port), None
            )
            if elsewhere is not None:
                raise ClaimRefused(
                    str(self.ledger.path), row_index, f"is already assigned to port {elsewhere}"
                )
            replaced = self._take_port(p, row_index, replace)
        self._replaced(port, p, replaced, row_index, " (retry)")
        self.start(port)
        return port

    def release(
        self, row_index: int, reason: str, operator: str, *, station_gone: bool = False
    ) -> None:
        """Supervisor override: a done/failed row, or a row claimed by a run that is not alive
        (a stopped station), becomes pending for another device (audited)."""
        self.ledger.release(row_index, reason, operator, station_gone=station_gone)
        self._emit(RowUpdate(row_index, "pending"))
        self._emit(
            LogEvent(
                "",
                "warning",
                f"unit {self._unit_label(row_index)} released by {operator}: {reason}",
            )
        )
        self._counters()

    def answer(self, port: str, overwrite: bool) -> None:
        """Reply to a Decision: overwrite the foreign data on this port's device, or not."""
        p = self._port(port)
        with self._lock:
            p.overwrite = overwrite
            p.decision.set()

    def cancel(self, port: str | None = None) -> None:
        """Stop one port (or all): the unit in progress ends as cancelled."""
        with self._lock:
            targets = [self._ports[port]] if port is not None else list(self._ports.values())
            for p in targets:
                p.cancel.set()
                p.decision.set()

    def close(self, timeout: float = 5.0) -> None:
        """Cancel every port, join every thread, end the run in the ledger."""
        if self._closed:
            return
        self._closing.set()
        self.cancel()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [p.thread for p in self._ports.values() if p.thread is not None]
            threads += self._stray
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))
        self._closed = True
        self.ledger.end_run(self.run_id)
        try:
            self.lot.backup()  # a rolling backup at the end of each run
        except StationError as err:
            self._emit(LogEvent("", "warning", "; ".join(p.message for p in err.problems)))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no port is working (True), or the timeout passed (False)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while any(p.working for p in self._ports.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.5))
        return True

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- workers -----------------------------------------------------------------------------
    def _finished_thread(self) -> None:
        self.ledger.release_thread()  # one connection per worker thread, closed with it
        with self._idle:
            self._idle.notify_all()

    def _one_unit(self, p: _Port) -> None:
        try:
            self._unit(p, auto=False)
        finally:
            self._finished_thread()

    def _lot_exhausted(self) -> bool:
        """No pending row is left and no port has a unit in progress."""
        with self._lock:
            if self._claimed:
                return False
        return self.ledger.count("pending") == 0

    def _limit_reached(self) -> bool:
        with self._lock:
            return self.max_units is not None and self.units_done >= self.max_units

    def _auto_loop(self, p: _Port) -> None:
        """Flash device after device on this port until cancelled, out of rows or at the limit."""
        try:
            retries = 0
            while not p.cancel.is_set() and not self._closing.is_set():
                if self._limit_reached():
                    self._emit_port(
                        p,
                        PortUpdate(
                            p.name, p.slot, "idle", message="count reached: this run is complete"
                        ),
                    )
                    return
                result = self._unit(p, auto=True)
                if result == "no-rows":
                    return
                if result == "failed" and retries < self.auto_retry and p.last_mac:
                    retries += 1
                    failed_mac = p.last_mac
                    p.last_mac = ""  # same device again, at once
                    if p.cancel.wait(0.0):
                        return
                    self._emit(
                        LogEvent(
                            p.name, "info", f"retrying {failed_mac} ({retries}/{self.auto_retry})"
                        )
                    )
                    continue
                if result in ("passed", "failed"):
                    retries = 0
                if result in ("same", "no-device", "limit", "skipped") and self._lot_exhausted():
                    self._port_update(p, None, "idle", "lot complete: no pending rows left")
                    return
                if p.cancel.wait(self.poll_interval):
                    return
        finally:
            self._finished_thread()

    def _emit_port(self, p: _Port, update: PortUpdate | None) -> None:
        """Send a port's update with the unit waiting for its next device filled in; None
        sends the last update again (the waiting unit changed while the port is busy).

        Serialised per port, so a re-sent update never overtakes a newer one."""
        with p.emit_lock:
            if update is None:
                update = p.last
                if update is None:
                    return
            waiting = p.assigned  # one attribute read; no lock (lock order: emit_lock first)
            if waiting is not None and waiting != update.row_index:
                update = replace(
                    update, next_unit=self._unit_label(waiting), next_row_index=waiting
                )
            elif update.next_unit or update.next_row_index is not None:
                update = replace(update, next_unit="", next_row_index=None)
            p.last = update
            self._emit(update)

    def _port_update(
        self,
        p: _Port,
        u: _Unit | None,
        state: str,
        message: str = "",
        done: int = 0,
        total: int = 0,
    ) -> None:
        row_index = u.row.index if u and u.row else (u.claim.row_index if u and u.claim else None)
        self._emit_port(
            p,
            PortUpdate(
                port=p.name,
                slot=p.slot,
                state=state,
                phase=u.phase if u else "",
                done=done,
                total=total,
                chip=u.chip if u else "",
                mac=u.mac if u else "",
                unit_id=self._unit_label(row_index) if row_index is not None else "",
                row_index=row_index,
                message=self._mask(message, row_index),
                elapsed=(time.monotonic() - u.started) if u else 0.0,
            ),
        )

    def _phase(self, p: _Port, u: _Unit, phase: str) -> None:
        now = time.monotonic()
        if u.phase_started:
            u.timings[u.phase] = u.timings.get(u.phase, 0.0) + now - u.phase_started
        u.phase, u.phase_started = phase, now
        self._port_update(p, u, "busy")

    def _unit(self, p: _Port, *, auto: bool) -> str:
        """One device on one port: passed|failed|refused|skipped|no-device|same|no-rows|limit.

        ``refused``: the device or the claim was refused; it is not retried automatically."""
        from station.flashing import FlashError, open_device

        opener = self._opener or open_device
        u = _Unit(started=time.monotonic())
        self._phase(p, u, "connecting")

        def progress(pr: Progress) -> None:
            if pr.phase != u.phase and pr.phase in ("writing", "verifying", "checking"):
                return  # phases are ours to set; keep only the counts
            self._port_update(p, u, "busy", done=pr.done, total=pr.total)

        try:
            session = opener(
                p.name,
                chip=self.lot.chip,
                baud=self.baud,
                no_stub=self.no_stub,
                on_progress=progress,
                cancel=p.cancel,
                timeout=self.connect_timeout,
            )
        except FlashError as err:
            if p.cancel.is_set():
                self._port_update(p, None, "idle", "cancelled")
                return "skipped"
            if auto:
                self._port_update(p, None, "waiting", f"waiting for a device ({err.reason})")
                return "no-device"
            self._port_update(p, u, "failed", err.reason)
            self._emit(LogEvent(p.name, "error", f"cannot connect: {err.reason}"))
            return "failed"
        try:
            with session:
                return self._with_device(p, u, session, auto)
        except FlashError as err:  # from closing the session
            self._emit(LogEvent(p.name, "warning", f"closing the device: {err.reason}"))
            return "failed" if u.claim else "skipped"

    def _with_device(self, p: _Port, u: _Unit, session: DeviceSession, auto: bool) -> str:
        try:
            return self._device_unit(p, u, session, auto)
        finally:
            with self._lock:
                self._claimed.discard(p.name)

    def _device_unit(self, p: _Port, u: _Unit, session: DeviceSession, auto: bool) -> str:
        from station.flashing import FlashError

        u.mac, u.chip = session.info.mac, session.info.chip
        if auto and u.mac == p.last_mac:
            msg = (
                "passed — connect the next device"
                if p.last_result == "passed"
                else "failed — connect the next device"
            )
            self._port_update(p, None, p.last_result or "waiting", msg)
            return "same"
        factory = self.lot.factory
        try:
            self._phase(p, u, "checking")
            self._check_fits(u, session)
            self._check_table(p, u, session)
            if self._security is not None:  # a board with foreign eFuses stays untouched
                self._security.check_board(getattr(session, "loader", None), u.mac)
            current = session.read(factory.offset, factory.size)
            self._check_cancel(p)
            plan = self._plan(p, u, current)
            if plan is None:
                return "skipped"
            if plan == "limit":
                return "limit"
            if plan == "no-rows":
                self._port_update(p, None, "idle", "no pending rows left in this lot")
                self._emit(LogEvent(p.name, "info", "lot complete: no pending rows left"))
                return "no-rows"
            assert not isinstance(plan, str)
            claim, row = plan
            u.claim, u.row = claim, row
            self._emit(RowUpdate(row.index, "claimed"))
            mfg_row = self.lot.row(row.index)
            try:
                image = self.lot.image_for(mfg_row)
            except StationError as err:  # e.g. a file value deleted since the lot was opened
                return self._bad_row(p, u, "; ".join(str(pr) for pr in err.problems))
            sha = hashlib.sha256(image).hexdigest()
            regions = list(self.lot.regions_for(mfg_row, image))
            if self._security is not None:  # keys escrowed, regions encrypted on the host
                regions = self._security.regions(self.lot.unit_id(mfg_row), u.mac, regions)
            extras = regions[:-1]  # firmware, key partition: the same for every unit
            if current == image:
                # the device verifiably holds this row already (read back above): the rest is
                # checked by MD5 / read-back and written only if it differs
                self.ledger.set_image(claim, sha)
                regions = self._differing(p, u, session, extras)
            else:
                self.ledger.set_image(claim, sha)
            if not regions:  # nothing was written: the attempt says so
                self.ledger.mark_written(claim, u.timings, wrote=False)
                how = "already held it (verified by read-back)"
            else:
                self._phase(p, u, "writing")
                session.write(regions)
                self._check_cancel(p)
                self._phase(p, u, "verifying")
                self.ledger.mark_written(claim, u.timings)
                self._emit(RowUpdate(row.index, "written"))
                session.verify(regions)
                what = "written and verified"
                if len(regions) > 1 or regions[0].offset != factory.offset:
                    what = ", ".join(r.name or f"0x{r.offset:x}" for r in regions) + f" {what}"
                how = what if claim.kind == "new" else f"{claim.kind}: {what}"
            self._check_decodes(p, mfg_row, image)
            if self._security is not None:  # after the read-back verification, never before
                self._burn_efuses(p, u, session, self.lot.unit_id(mfg_row))
            self._phase(p, u, "resetting")
            self.ledger.complete(claim, u.timings, chip=u.chip)
            with self._lock:
                self.units_done += 1
                p.last_mac, p.last_result = u.mac, "passed"
                if p.assigned == row.index:
                    p.assigned = None
            self._emit(RowUpdate(row.index, "done"))
            try:
                session.reset()
            except FlashError as err:
                self._emit(LogEvent(p.name, "warning", f"reset failed: {err.reason}"))
            u.phase_started, u.phase = 0.0, ""
            self._port_update(p, u, "passed", how)
            self._emit(
                LogEvent(
                    p.name,
                    "info",
                    f"unit {self._unit_label(row.index)} done on {u.mac} ({how}, "
                    f"{time.monotonic() - u.started:.1f} s)",
                )
            )
            self._counters()
            return "passed"
        except (FlashError, Cancelled) as err:
            cancelled = isinstance(err, Cancelled) or p.cancel.is_set()
            reason = "cancelled" if cancelled else err.reason  # type: ignore[union-attr]
            return self._failed(p, u, reason, cancelled)
        except SecurityFailed as err:
            return self._failed(p, u, err.reason, False)
        except (ClaimRefused, DeviceRefused, BoardNotForLot) as err:
            if isinstance(err, (DeviceRefused, BoardNotForLot)):
                msg = str(err)  # wrong device: the unit assigned stays for the right one
            else:
                msg = self._refused(p, u, err)
            self._port_update(p, u, "attention", msg)
            self._emit(LogEvent(p.name, "error", self._mask(msg, None)))
            with self._lock:
                p.last_mac, p.last_result = u.mac, "failed"
            return "refused"
        except Exception as err:  # an internal error must not leave a claim behind
            return self._failed(p, u, f"internal error: {err!r}", False)

    def _burn_efuses(self, p: _Port, u: _Unit, session: DeviceSession, unit: str) -> None:
        """The lot's eFuse recipe on this unit (station/production/security_step.py)."""
        assert self._security is not None
        self._phase(p, u, PHASE_EFUSES)
        total = len(self._security.plan.steps)

        def on_step(step: Any) -> None:
            self._check_cancel(p)  # between steps only: a burn is never cut short by us
            done = 1 + self._security.plan.steps.index(step) if self._security else 0
            self._port_update(p, u, "busy", step.id, done=done, total=total)

        burned, found = self._security.burn(session.loader, unit, u.mac, on_step)
        self._emit(
            LogEvent(
                p.name,
                "info",
                f"unit {unit} on {u.mac}: {burned} eFuse step(s) burned"
                + (f", {found} found done already" if found else ""),
            )
        )

    def _refused(self, p: _Port, u: _Unit, err: ClaimRefused) -> str:
        """The ledger refused the claim (e.g. another station took the assigned row): the
        assignment is dropped so that the operator scans again; returns the message to show."""
        msg = "; ".join(
            (
                f"unit {self._unit_label(int(pr.key[4:]) - 1)}: "
                if pr.key.startswith("row ") and pr.key[4:].isdigit()
                else ""
            )
            + pr.message
            for pr in err.problems
        )
        with self._lock:
            dropped = u.assigned is not None and p.assigned == u.assigned
            if dropped:
                p.assigned = None
        if dropped:
            assert u.assigned is not None
            msg += (
                f" — unit {self._unit_label(u.assigned)} is no longer assigned to "
                f"{p.slot}: scan again"
            )
        return msg

    def _check_decodes(self, p: _Port, row: Any, image: bytes) -> None:
        """The factory data read back (equal to ``image``) must decode as NVS with the unit's
        keys — for an encrypted lot, proof that the device holds data its key opens."""
        from station.flashing import FlashError
        from station.nvs import decode_image

        decoded = decode_image(image, self.lot.keys_for(row))
        if decoded.errors:
            raise FlashError(
                f"the factory data read back does not decode with the lot's keys "
                f"({decoded.errors[0]})",
                phase="verifying",
                port=p.name,
            )

    def _differing(
        self, p: _Port, u: _Unit, session: DeviceSession, regions: list[WriteRegion]
    ) -> list[WriteRegion]:
        """The regions the device does not hold already (all of them if one differs)."""
        from station.flashing import FaultKind, FlashError

        if not regions:
            return []
        self._phase(p, u, "verifying")
        try:
            session.verify(regions)
        except FlashError as err:
            if err.kind is not FaultKind.MISMATCH:
                raise
            return regions
        return []

    def _bad_row(self, p: _Port, u: _Unit, reason: str) -> str:
        """The row's image cannot be built: the row fails on no device; the port is free."""
        assert u.claim is not None
        reason = self._mask(f"cannot build the image: {reason}", u.claim.row_index)
        state = self.ledger.fail(u.claim, reason, u.timings, bad_row=True)
        self._emit(RowUpdate(u.claim.row_index, state))
        self._emit(
            LogEvent(p.name, "error", f"unit {self._unit_label(u.claim.row_index)}: {reason}")
        )
        self._counters()
        self._port_update(p, u, "attention", reason)
        return "bad-row"

    def _check_fits(self, u: _Unit, session: DeviceSession) -> None:
        """A device whose flash is too small for what the lot writes is left untouched."""
        size = session.info.flash_size
        if not size:
            return
        parts = [self.lot.factory, self.lot.key_partition]
        ends = [(p.end, p.name) for p in parts if p is not None]
        if self.lot.firmware is not None:
            ends += [(r.offset + len(r.data), r.name) for r in self.lot.firmware.regions]
        end, name = max(ends)
        if end > size:
            raise DeviceRefused(
                f"{u.mac}: {name} ends at 0x{end:x}, beyond the device's "
                f"{size / 0x100000:g} MB flash — wrong device for this lot; it was left untouched"
            )

    def _check_table(self, p: _Port, u: _Unit, session: DeviceSession) -> None:
        """A device whose partition table puts the factory partition elsewhere is refused:
        writing there would overwrite its firmware's data. A blank table is fine (new board)."""
        from station.partitions import compare_tables

        if self._security is not None and self._security.table_unreadable():
            return  # encrypted on the device, written by the lot's firmware for each unit
        table = session.read_partition_table()
        if table is None:
            return
        fw = self.lot.firmware
        if fw is not None and fw.writes_table:  # checked against the lot's when it was opened
            diffs = compare_tables(self.lot.table, table)
            if diffs:
                self._emit(
                    LogEvent(
                        p.name,
                        "warning",
                        f"{u.mac}: partition table differs from the lot's "
                        f"({'; '.join(diffs[:3])}); the lot's firmware replaces it",
                    )
                )
            return
        f = self.lot.factory
        theirs = next((q for q in table.partitions if q.name == f.name), None)
        if theirs is None or (theirs.offset, theirs.size) != (f.offset, f.size):
            where = (
                "has no partition"
                if theirs is None
                else f"has it at 0x{theirs.offset:x} (0x{theirs.size:x} bytes)"
            )
            raise DeviceRefused(
                f"{u.mac}: its partition table {where} named {f.name!r}; the lot writes "
                f"0x{f.size:x} bytes at 0x{f.offset:x}. Check the lot's partition table "
                "against the firmware; the device was left untouched"
            )
        diffs = compare_tables(self.lot.table, table)
        if diffs:
            self._emit(
                LogEvent(
                    p.name,
                    "warning",
                    f"{u.mac}: partition table differs from the lot's: {'; '.join(diffs[:3])}",
                )
            )

    def _check_cancel(self, p: _Port) -> None:
        if p.cancel.is_set():
            raise Cancelled()

    def _failed(self, p: _Port, u: _Unit, reason: str, cancelled: bool) -> str:
        if u.phase_started:
            u.timings[u.phase] = u.timings.get(u.phase, 0.0) + time.monotonic() - u.phase_started
        state = ""
        # the flashing layer's reasons usually name the phase already ("… while writing …")
        what = reason if u.phase and u.phase in reason else f"{u.phase}: {reason}"
        if u.claim is not None:
            try:
                state = self.ledger.fail(
                    u.claim,
                    what,
                    u.timings,
                    result="cancelled" if cancelled else "failed",
                )
            except StationError as err:  # the journal's disk is full: the ledger has it
                self._emit(LogEvent(p.name, "error", "; ".join(str(x) for x in err.problems)))
                state = self.ledger.row(u.claim.row_index).state
            self._emit(RowUpdate(u.claim.row_index, state))
            self._counters()
        with self._lock:
            p.last_mac, p.last_result = u.mac, "failed"
            if not cancelled:
                self.units_failed += 1
        self._port_update(p, u, "idle" if cancelled else "failed", what)
        label = self._unit_label(u.claim.row_index) if u.claim else "(none)"
        self._emit(
            LogEvent(
                p.name,
                "warning" if cancelled else "error",
                self._mask(
                    f"unit {label} on {u.mac or '?'}: {what}"
                    + (f" (row {state})" if state else ""),
                    u.claim.row_index if u.claim else None,
                ),
            )
        )
        return "skipped" if cancelled else "failed"

    def _plan(self, p: _Port, u: _Unit, current: bytes) -> tuple[Claim, RowRecord] | str | None:
        """Which row this device gets, from what the ledger and its factory region say."""
        led = self.ledger
        kw: dict[str, Any] = dict(
            mac=u.mac,
            port=p.name,
            slot=p.slot,
            chip=u.chip,
            operator=self.operator,
            run_id=self.run_id,
        )
        with self._lock:
            u.assigned = p.assigned
        held = led.row_of_mac(u.mac)
        if held is not None:
            with self._lock:
                assigned = u.assigned = p.assigned
            if assigned is not None and assigned != held.index:
                raise ClaimRefused(
                    str(led.path),
                    assigned,
                    f"cannot go to device {u.mac}: it holds unit "
                    f"{self._unit_label(held.index)} ({held.state})",
                )
            claim = led.claim_row(held.index, **kw)
            self._claimed_on(p, claim.row_index)
            return claim, led.row(held.index)
        sha = hashlib.sha256(current).hexdigest()
        blank = current.count(0xFF) == len(current)
        new_for_mac: int | None = None
        if not blank:
            index = led.row_of_image(sha)
            if index is not None:
                row = led.row(index)
                if row.state == "pending":
                    new_for_mac = index  # our image, interrupted before it was recorded: finish
                else:
                    self._emit(
                        LogEvent(
                            p.name,
                            "warning",
                            f"{u.mac} holds a stale copy of unit "
                            f"{self._unit_label(index)} (that row is {row.state} on "
                            f"{row.mac}); it gets a new row",
                        )
                    )
            elif led.mac_written_before(u.mac):
                self._emit(
                    LogEvent(
                        p.name,
                        "info",
                        f"{u.mac} holds leftovers of an interrupted write of this lot; overwriting",
                    )
                )
            elif not self._ask(p, u):
                return None
        with self._claim_lock:  # the count check and the claim are one step across ports
            with self._lock:
                assigned = u.assigned = p.assigned
                others = len(self._claimed - {p.name})
            if self.max_units is not None and self.units_done + others >= self.max_units:
                self._port_update(p, u, "waiting", "count reached unless a unit in progress fails")
                return "limit"
            index = assigned if assigned is not None else new_for_mac
            got: Claim | None = (
                led.claim_row(index, **kw) if index is not None else led.claim_next(**kw)
            )
            if got is None:
                return "no-rows"
            self._claimed_on(p, got.row_index)
        return got, led.row(got.row_index)

    def _claimed_on(self, p: _Port, row_index: int) -> None:
        """The port's unit claimed ``row_index``: an assignment of that row is used up (it is
        in progress now), so the operator can scan the port's next unit while it works."""
        with self._lock:
            self._claimed.add(p.name)
            if p.assigned == row_index:
                p.assigned = None

    def _ask(self, p: _Port, u: _Unit) -> bool:
        """Emit a Decision for foreign data and wait for answer(); False means leave it."""
        with self._lock:
            p.decision.clear()
            p.overwrite = False
            p.asking = True
            assigned = p.assigned
        self._port_update(p, u, "attention", "the device holds data of another lot or tool")
        self._emit(
            Decision(
                p.name,
                assigned,
                f"The device on {p.slot} ({u.mac}) holds factory data this lot did "
                "not write. Overwrite it?",
            )
        )
        p.decision.wait()
        with self._lock:
            p.asking = False
            overwrite = p.overwrite and not p.cancel.is_set()
            if not overwrite:
                p.last_mac, p.last_result = u.mac, "failed"
        if not overwrite:
            self._port_update(p, u, "attention", "foreign data kept: device left untouched")
            self._emit(
                LogEvent(
                    p.name,
                    "warning",
                    f"{u.mac}: foreign factory data left untouched (not overwritten)",
                )
            )
            return False
        self._emit(
            LogEvent(
                p.name,
                "warning",
                f"{u.mac}: overwriting foreign factory data "
                f"(operator {self.operator or 'unknown'})",
            )
        )
        self.ledger.audit(
            "overwrite", f"foreign factory data on {u.mac} overwritten on {p.name}", self.operator
        )
        return True
