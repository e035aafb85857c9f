"""The orchestrator: a lot on N ports — claim a row, build its image, flash, verify, record.

The same engine runs behind the window and behind ``station run``. It knows nothing of Qt: each
port has a worker thread, and everything that happens is delivered as a frozen event dataclass
(:mod:`station.production.events`) to ``on_event``, called from worker threads.

The orchestrator is a facade over its parts, each a module with its own tests:
:mod:`~station.production.ports` (the port table), :mod:`~station.production.assignments`
(which unit waits for a port's next device), :mod:`~station.production.planner` (which row a
device gets) and :mod:`~station.production.checks` (what is checked on a device). What stays
here is the ports' worker threads and the unit pipeline (:meth:`Orchestrator._device_unit`):
check, plan, build the image, write, verify, record.

Imports the ledger, flashing's light types, and its sibling modules of ``station.production``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from station.errors import StationError
from station.flashing.types import FlashError, Opener, Progress, Session, WriteRegion
from station.ledger import Claim, ClaimRefused, LedgerOffline, RowRecord
from station.production import checks
from station.production.assignments import Assignments
from station.production.counters import CountersFeed
from station.production.events import (
    PORT_STATES,
    Cancelled,
    CountersUpdate,
    Decision,
    DeviceRefused,
    Event,
    LedgerStatus,
    LogEvent,
    Outcome,
    PortRemoved,
    PortState,
    PortUpdate,
    RowUpdate,
)
from station.production.planner import ClaimPlanner
from station.production.ports import Port, PortTable, Unit
from station.production.security_step import PHASE as PHASE_EFUSES
from station.production.security_step import BoardNotForLot, SecurityFailed

if TYPE_CHECKING:
    from station.production.lot import Lot

__all__ = [
    "PORT_STATES",
    "Cancelled",
    "CountersUpdate",
    "Decision",
    "DeviceRefused",
    "Event",
    "LogEvent",
    "Orchestrator",
    "Outcome",
    "PortRemoved",
    "PortState",
    "PortUpdate",
    "RowUpdate",
]

# the worker's outcomes after which an auto-mode port asks whether the lot is complete
_IDLE_OUTCOMES = (Outcome.SAME, Outcome.NO_DEVICE, Outcome.LIMIT, Outcome.SKIPPED)


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
        self.auto_retry = auto_retry
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self._opener = opener  # station.flashing.open_device unless given (tests, other links)
        self._table = PortTable()
        self._lock = self._table.lock
        self._ports = self._table.ports
        self._idle = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._counters_feed = CountersFeed(lambda: self.ledger.counters(), self._emit)
        # threads of removed ports still winding down (close() joins them; a port added again
        # under the same name waits for its own)
        self._stray: list[threading.Thread] = []
        self.units_done = 0  # verified in this run
        self.units_failed = 0
        self.run_id = self.ledger.start_run()
        self._closed = False
        self._unwatch_ledger = self.ledger.on_status(self._ledger_status)
        self._planner = ClaimPlanner(
            self.ledger,
            self._table,
            label=self._unit_label,
            emit=self._emit,
            operator=operator,
            run_id=self.run_id,
            max_units=max_units,
        )
        self._assignments = Assignments(
            self._table,
            self.ledger,
            label=self._unit_label,
            emit=self._emit,
            emit_port=self._emit_port,
            lot_name=lot.name,
            scan_column=lot.settings.scan_column,
        )
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

    @property
    def max_units(self) -> int | None:
        """Stop claiming once this many units were verified in this run (None: no limit)."""
        return self._planner.max_units

    @max_units.setter
    def max_units(self, value: int | None) -> None:
        self._planner.max_units = value

    # --- events --------------------------------------------------------------------------------
    def _emit(self, event: object) -> None:
        try:
            self._emit_raw(event)
        except Exception as err:  # a broken subscriber must not kill a port worker
            if not isinstance(event, LogEvent):
                self._emit_raw(LogEvent("", "error", f"event handler failed: {err!r}"))

    def _counters(self) -> None:
        """The ledger's counts changed: the front ends get them (coalesced, CountersFeed)."""
        self._counters_feed.changed()

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
            p = Port(port, slot or port)
            # a removed port of this name still winding down: the new worker waits for it
            p.after = next((t for t in self._stray if t.name == _thread_name(port)), None)
            self._ports[port] = p
        self._emit_port(p, PortUpdate(port, p.slot, "idle"))
        if self.auto_start:
            self.start(port)

    def remove_port(self, port: str, timeout: float = 5.0) -> None:
        """Cancel whatever the port is doing and forget it, without waiting: its thread winds
        down in the background, and :class:`PortRemoved` is emitted once it let go of the device
        (at once when the port had no thread). No PortUpdate of the port follows this call.

        ``timeout`` is kept for callers of old; the caller (the GUI thread) never waits."""
        del timeout
        with self._lock:
            p = self._ports.get(port)
        if p is None:
            return
        # under the port's emit lock (taken before the table's): an update already on its way
        # out is delivered before this returns, none after it (a front end that forgets the
        # port now must not have it brought back by a late one)
        with p.emit_lock, self._lock:
            if p.removed or self._ports.get(port) is not p:
                return
            p.removed = True
            p.cancel.set()
            p.decision.set()
            del self._ports[port]
            thread = p.thread
            ending = thread is not None and not p.ended  # its end emits PortRemoved
            if thread is not None and ending:
                self._stray.append(thread)
            self._stray = [t for t in self._stray if t.is_alive()]
        if not ending:
            self._emit(PortRemoved(port))

    def ports(self) -> list[str]:
        return list(self._table.live())

    def assigned_rows(self) -> dict[str, int]:
        """The units waiting for a port's next device, by port (a copy)."""
        return self._assignments.assigned_rows()

    def busy(self, port: str) -> bool:
        return self._table.get(port).working

    # --- assignment (station.production.assignments) ------------------------------------------
    def assign(
        self, port: str | None, row_index: int, *, rework: bool = False, replace: bool = False
    ) -> str:
        """Reserve a row for the next device on a port (a free port if None); returns the port.

        A done row is refused (a second scan of a finished unit must not start a rework) unless
        ``rework`` is set (engineer mode); a done or failed row only goes to the port whose last
        device holds it. A port with another unit waiting is refused unless ``replace`` is set
        (the waiting unit is then dropped, and logged)."""
        return self._assignments.assign(port, row_index, rework=rework, replace=replace)

    def assign_scan(
        self, code: str, port: str | None = None, *, rework: bool = False, replace: bool = False
    ) -> tuple[str, int]:
        """Assign the row whose scan column (else unit id) equals a scanned code (see assign)."""
        return self._assignments.assign_scan(code, port, rework=rework, replace=replace)

    def unassign(self, port: str) -> None:
        """Drop the unit waiting on a port; an idle port says so (PortUpdate "unit dropped")."""
        self._assignments.unassign(port)

    # --- control -----------------------------------------------------------------------------
    def start(self, port: str) -> None:
        """Flash the device on this port (assigned row, else next pending row)."""
        with self._lock:
            if self._closing.is_set():
                raise StationError.at(port, "the station is closing", key="port")
            p = self._table.get(port)
            if p.working:
                return
            p.cancel = threading.Event()
            p.ended = False
            target = self._auto_loop if self.auto_start else self._one_unit
            p.thread = threading.Thread(
                target=target, args=(p,), name=_thread_name(port), daemon=True
            )
            p.thread.start()

    def start_all(self) -> None:
        for port in self.ports():
            self.start(port)

    def retry(self, row_index: int, *, replace: bool = False) -> str:
        """Retry a failed row on the port where its device was last seen; returns the port.

        A port with another unit waiting is refused unless ``replace`` is set (as in assign)."""
        port = self._assignments.retry(row_index, replace=replace)
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
        p = self._table.get(port)
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
        self._counters_feed.close()  # the last counts, if a recount was due
        self._unwatch_ledger()
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
    def _finished_thread(self, p: Port) -> None:
        self.ledger.release_thread()  # one connection per worker thread, closed with it
        with self._idle:
            p.ended = True
            removed = p.removed
            if removed:
                self._stray = [t for t in self._stray if t is not threading.current_thread()]
            self._idle.notify_all()
        if removed:
            self._emit(PortRemoved(p.name))

    def _one_unit(self, p: Port) -> None:
        try:
            if p.wait_for_previous(self._closing, self.poll_interval):
                self._unit(p, auto=False)
        finally:
            self._finished_thread(p)

    def _auto_loop(self, p: Port) -> None:
        """Flash device after device on this port until cancelled, out of rows or at the limit."""
        try:
            if not p.wait_for_previous(self._closing, self.poll_interval):
                return
            retries = 0
            while not p.cancel.is_set() and not self._closing.is_set():
                with self._lock:
                    limit = self.max_units is not None and self.units_done >= self.max_units
                if limit:
                    self._emit_port(
                        p,
                        PortUpdate(
                            p.name, p.slot, "idle", message="count reached: this run is complete"
                        ),
                    )
                    return
                result = self._unit(p, auto=True)
                if result is Outcome.NO_ROWS:
                    return
                if result is Outcome.FAILED and retries < self.auto_retry and p.last_mac:
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
                if result in (Outcome.PASSED, Outcome.FAILED):
                    retries = 0
                if result in _IDLE_OUTCOMES and self._planner.lot_exhausted():
                    self._port_update(p, None, PortState.IDLE, "lot complete: no pending rows left")
                    return
                if p.cancel.wait(self.poll_interval):
                    return
        finally:
            self._finished_thread(p)

    def _emit_port(self, p: Port, update: PortUpdate | None) -> None:
        """Send a port's update with the unit waiting for its next device filled in; None
        sends the last update again (the waiting unit changed while the port is busy). A
        removed port sends nothing: its front end has forgotten it.

        Serialised per port, so a re-sent update never overtakes a newer one."""
        with p.emit_lock:
            if p.removed:
                return
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
        p: Port,
        u: Unit | None,
        state: PortState,
        message: str = "",
        done: int = 0,
        total: int = 0,
    ) -> None:
        row_index = u.row_index if u else None
        self._emit_port(
            p,
            PortUpdate(
                port=p.name,
                slot=p.slot,
                state=state.value,
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

    def _phase(self, p: Port, u: Unit, phase: str) -> None:
        now = time.monotonic()
        if u.phase_started:
            u.timings[u.phase] = u.timings.get(u.phase, 0.0) + now - u.phase_started
        u.phase, u.phase_started = phase, now
        self._port_update(p, u, PortState.BUSY)

    def _unit(self, p: Port, *, auto: bool) -> Outcome:
        """One device on one port: connect, then :meth:`_device_unit`."""
        opener = self._opener
        if opener is None:  # (given one, esptool stays out of this process: the device host's)
            from station.flashing import open_device

            opener = open_device
        u = Unit(started=time.monotonic())
        self._phase(p, u, "connecting")

        def progress(pr: Progress) -> None:
            if pr.phase != u.phase and pr.phase in ("writing", "verifying", "checking"):
                return  # phases are ours to set; keep only the counts
            self._port_update(p, u, PortState.BUSY, done=pr.done, total=pr.total)

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
                self._port_update(p, None, PortState.IDLE, "cancelled")
                return Outcome.SKIPPED
            if auto:
                waiting = f"waiting for a device ({err.reason})"
                self._port_update(p, None, PortState.WAITING, waiting)
                return Outcome.NO_DEVICE
            self._port_update(p, u, PortState.FAILED, err.reason)
            self._emit(LogEvent(p.name, "error", f"cannot connect: {err.reason}"))
            return Outcome.FAILED
        try:
            with session:
                try:
                    return self._device_unit(p, u, session, auto)
                finally:
                    self._planner.finished(p.name)
        except LedgerOffline as err:
            if u.claim is not None:
                self.ledger.lost(u.claim)  # (a step that lost it has said so already)
            return self._ledger_offline(p, err)
        except FlashError as err:  # from closing the session
            self._emit(LogEvent(p.name, "warning", f"closing the device: {err.reason}"))
            return Outcome.FAILED if u.claim else Outcome.SKIPPED

    def _device_unit(self, p: Port, u: Unit, session: Session, auto: bool) -> Outcome:
        """The unit pipeline: check the device, plan its row, build the image, write,
        verify, record. Every ending is an :class:`Outcome`; the row never stays claimed."""
        u.mac, u.chip = session.info.mac, session.info.chip
        if auto and u.mac == p.last_mac:
            passed = p.last_result == PortState.PASSED
            msg = f"{'passed' if passed else 'failed'} — connect the next device"
            self._port_update(p, None, PortState(p.last_result or PortState.WAITING), msg)
            return Outcome.SAME
        factory = self.lot.factory
        try:
            # 1. check: the device fits the lot, its table agrees, what its region holds
            self._phase(p, u, "checking")
            checks.check_fits(self.lot, u.mac, session)
            # (a flash-encrypted table is noise on the device: the lot's firmware writes it)
            if self._security is None or not self._security.table_unreadable():
                warning = checks.check_table(self.lot, u.mac, session)
                if warning is not None:
                    self._emit(LogEvent(p.name, "warning", warning))
            if self._security is not None:  # a board with foreign eFuses stays untouched
                self._security.check_board(getattr(session, "loader", None), u.mac)
            current = session.read(factory.offset, factory.size)
            _check_cancel(p)
            # 2. plan: which row the device gets (claimed in the ledger)
            plan = self._plan(p, u, current)
            if isinstance(plan, Outcome):
                return plan
            claim, row = plan
            u.claim, u.row = claim, row
            self._emit(RowUpdate(row.index, "claimed"))
            # 3. build the unit's image and the regions to write
            mfg_row = self.lot.row(row.index)
            try:
                image = self.lot.image_for(mfg_row)
            except StationError as err:  # e.g. a file value deleted since the lot was opened
                return self._bad_row(p, u, "; ".join(str(pr) for pr in err.problems))
            regions = list(self.lot.regions_for(mfg_row, image))
            if self._security is not None:  # keys escrowed, regions encrypted on the host
                regions = self._security.regions(self.lot.unit_id(mfg_row), u.mac, regions)
            self.ledger.set_image(claim, hashlib.sha256(image).hexdigest())
            if current == image:
                # the device verifiably holds this row already (read back above): the rest is
                # checked by MD5 / read-back and written only if it differs
                extras = regions[:-1]  # firmware, key partition: the same for every unit
                if extras:
                    self._phase(p, u, "verifying")
                regions = checks.differing(session, extras)
            # 4. write and verify
            how = self._write_and_verify(p, u, session, claim, row, regions)
            # 5. record
            checks.check_decodes(self.lot, mfg_row, image, p.name)
            if self._security is not None:  # eFuses: after the read-back verification, never before
                self._phase(p, u, PHASE_EFUSES)
                done_line = self._security.burn_on_port(
                    session.loader,
                    self.lot.unit_id(mfg_row),
                    u.mac,
                    check_cancel=lambda: _check_cancel(p),  # between steps: a burn is never cut
                    progress=lambda step, n, total: self._port_update(
                        p, u, PortState.BUSY, step, done=n, total=total
                    ),
                )
                self._emit(LogEvent(p.name, "info", done_line))
            self._phase(p, u, "resetting")
            self.ledger.complete(claim, u.timings, chip=u.chip)
            self._passed(p, u, session, row, how)
            return Outcome.PASSED
        except LedgerOffline:
            raise  # nothing more is recorded for this unit (or a lost claim): _ledger_offline
        except (FlashError, Cancelled) as err:
            if isinstance(err, Cancelled) or p.cancel.is_set():
                return self._failed(p, u, "cancelled", True)
            return self._failed(p, u, err.reason, False)
        except SecurityFailed as err:
            return self._failed(p, u, err.reason, False)
        except (ClaimRefused, DeviceRefused, BoardNotForLot) as err:
            if isinstance(err, (DeviceRefused, BoardNotForLot)):
                msg = str(err)  # wrong device: the unit assigned stays for the right one
            else:
                msg = self._assignments.refused(p, u.assigned, err)
            self._port_update(p, u, PortState.ATTENTION, msg)
            self._emit(LogEvent(p.name, "error", self._mask(msg, None)))
            with self._lock:
                p.last_mac, p.last_result = u.mac, PortState.FAILED
            return Outcome.REFUSED
        except Exception as err:  # an internal error must not leave a claim behind
            return self._failed(p, u, f"internal error: {err!r}", False)

    def _ledger_status(self, offline: bool) -> None:
        """The ledger's database went away or came back (from the thread that found it)."""
        self._emit(LedgerStatus(offline))
        if not offline:
            self._emit(LogEvent("", "info", "ledger back online"))
            return
        text = "ledger offline: reconnecting; units in progress stop before they are recorded"
        self._emit(LogEvent("", "error", text))
        # reconnect even while no port touches the ledger, so every card learns it is back
        watcher = threading.Thread(
            target=self.ledger.wait_online, args=(self._closing,), name="ledger-online", daemon=True
        )
        with self._lock:
            self._stray = [t for t in self._stray if t.is_alive()]
            self._stray.append(watcher)  # joined by close()
        watcher.start()

    def _ledger_offline(self, p: Port, err: LedgerOffline) -> Outcome:
        """The database went away: the unit stopped where it was (never marked done; its claim
        is recovered by the ledger's rules); wait until the ledger is back, then go on."""
        offline = self.ledger.offline  # else the claim was taken back (its lease ran out)
        what = "ledger offline: reconnecting…" if offline else err.problems[0].message
        self._port_update(p, None, PortState.ATTENTION, what)
        self._emit(
            LogEvent(
                p.name,
                "error",
                f"{err.problems[0].message}; the unit in progress stopped and is not recorded "
                "as done",
            )
        )
        if not offline:
            # back already (another port reconnected first), or the claim was taken back: a
            # claim whose fate was lost is recovered before the port goes on, or its device
            # meets its own claim still active ("being written right now") and is given up
            try:
                self.ledger.recover_expired(look_closer=False)
            except LedgerOffline:
                offline = True
        # (wait_online recovers them too; the log says it is back once: _ledger_status)
        if offline and self.ledger.wait_online(p.cancel):
            self._port_update(p, None, PortState.WAITING, "ledger back online")
        return Outcome.OFFLINE

    def _write_and_verify(
        self,
        p: Port,
        u: Unit,
        session: Session,
        claim: Claim,
        row: RowRecord,
        regions: list[WriteRegion],
    ) -> str:
        """Write the regions and verify them (the attempt is marked written in between);
        returns how, for the log. No region: the device held everything already."""
        if not regions:  # nothing was written: the attempt says so
            self.ledger.mark_written(claim, u.timings, wrote=False)
            return "already held it (verified by read-back)"
        self._phase(p, u, "writing")
        session.write(regions)
        _check_cancel(p)
        self._phase(p, u, "verifying")
        self.ledger.mark_written(claim, u.timings)
        self._emit(RowUpdate(row.index, "written"))
        session.verify(regions)
        what = "written and verified"
        factory = self.lot.factory
        if len(regions) > 1 or regions[0].offset != factory.offset:
            what = ", ".join(r.name or f"0x{r.offset:x}" for r in regions) + f" {what}"
        return what if claim.kind == "new" else f"{claim.kind}: {what}"

    def _passed(self, p: Port, u: Unit, session: Session, row: RowRecord, how: str) -> None:
        """The unit is recorded done: count it, free the port's assignment, reset the chip."""
        with self._lock:
            self.units_done += 1
            p.last_mac, p.last_result = u.mac, PortState.PASSED
            if p.assigned == row.index:
                p.assigned = None
        self._emit(RowUpdate(row.index, "done"))
        try:
            session.reset()
        except FlashError as err:
            self._emit(LogEvent(p.name, "warning", f"reset failed: {err.reason}"))
        u.phase_started, u.phase = 0.0, ""
        self._port_update(p, u, PortState.PASSED, how)
        self._emit(
            LogEvent(
                p.name,
                "info",
                f"unit {self._unit_label(row.index)} done on {u.mac} ({how}, "
                f"{time.monotonic() - u.started:.1f} s)",
            )
        )
        self._counters()

    def _bad_row(self, p: Port, u: Unit, reason: str) -> Outcome:
        """The row's image cannot be built: the row fails on no device; the port is free."""
        assert u.claim is not None
        reason = self._mask(f"cannot build the image: {reason}", u.claim.row_index)
        state = self.ledger.fail(u.claim, reason, u.timings, bad_row=True)
        self._emit(RowUpdate(u.claim.row_index, state))
        self._emit(
            LogEvent(p.name, "error", f"unit {self._unit_label(u.claim.row_index)}: {reason}")
        )
        self._counters()
        self._port_update(p, u, PortState.ATTENTION, reason)
        return Outcome.BAD_ROW

    def _failed(self, p: Port, u: Unit, reason: str, cancelled: bool) -> Outcome:
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
            p.last_mac, p.last_result = u.mac, PortState.FAILED
            if not cancelled:
                self.units_failed += 1
        self._port_update(p, u, PortState.IDLE if cancelled else PortState.FAILED, what)
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
        return Outcome.SKIPPED if cancelled else Outcome.FAILED

    # --- the claim planner (station.production.planner) ---------------------------------------
    def _plan(self, p: Port, u: Unit, current: bytes) -> tuple[Claim, RowRecord] | Outcome:
        """Which row this device gets, from what the ledger and its factory region say."""
        plan = self._planner.plan(
            p, u, current, ask=lambda: self._ask(p, u), units_done=lambda: self.units_done
        )
        if plan is Outcome.LIMIT:
            msg = "count reached unless a unit in progress fails"
            self._port_update(p, u, PortState.WAITING, msg)
        elif plan is Outcome.NO_ROWS:
            self._port_update(p, None, PortState.IDLE, "no pending rows left in this lot")
            self._emit(LogEvent(p.name, "info", "lot complete: no pending rows left"))
        return plan

    def _ask(self, p: Port, u: Unit) -> bool:
        """Emit a Decision for foreign data and wait for answer(); False means leave it."""
        with self._lock:
            p.decision.clear()
            p.overwrite = False
            p.asking = True
            assigned = p.assigned
        self._port_update(p, u, PortState.ATTENTION, "the device holds data of another lot or tool")
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
                p.last_mac, p.last_result = u.mac, PortState.FAILED
        if not overwrite:
            self._port_update(p, u, PortState.ATTENTION, "foreign data kept: device left untouched")
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


def _thread_name(port: str) -> str:
    return f"port {port}"


def _check_cancel(p: Port) -> None:
    if p.cancel.is_set():
        raise Cancelled()
