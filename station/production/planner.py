"""Which row a connected device gets: the claim planner.

From what the ledger knows of the device's MAC and what its factory region holds:

- the device holds a row of this lot already (bound to its MAC): that row again (verify it,
  re-flash only if it differs), never a second one;
- the region holds an image this lot wrote for a row still pending: complete that row;
- the region is blank, or holds leftovers of this lot's own interrupted write: the row assigned
  to the port (a barcode scan), else the next pending row;
- anything else is foreign data: the operator is asked (``ask``) before anything is claimed.

The count check (``max_units``) and the claim are one step across ports. Imports the ledger.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

from station.ledger import Claim, ClaimRefused, Ledger, LedgerOffline, RowRecord
from station.production.events import LogEvent, Outcome
from station.production.ports import Port, PortTable, Unit


class ClaimPlanner:
    """Plans and claims the row of each unit; knows which ports have a unit in progress."""

    def __init__(
        self,
        ledger: Ledger,
        table: PortTable,
        *,
        label: Callable[[int], str],
        emit: Callable[[object], None],
        operator: str,
        run_id: str,
        max_units: int | None,
    ) -> None:
        self.ledger = ledger
        self.table = table
        self.label = label
        self.emit = emit
        self.operator = operator
        self.run_id = run_id
        self.max_units = max_units
        self.claim_lock = threading.Lock()
        self.claimed: set[str] = set()  # ports with a unit claimed and not finished

    def plan(
        self,
        p: Port,
        u: Unit,
        current: bytes,
        *,
        ask: Callable[[], bool],
        units_done: Callable[[], int],
    ) -> tuple[Claim, RowRecord] | Outcome:
        """Claim the row this device gets; or SKIPPED (foreign data kept), LIMIT (the run has
        its count), NO_ROWS (the lot is done). ``units_done``: how many were verified in this
        run so far (read with the table's lock held, together with the claims in progress)."""
        led = self.ledger
        lock = self.table.lock
        kw = dict(mac=u.mac, port=p.name, slot=p.slot, chip=u.chip)
        kw.update(operator=self.operator, run_id=self.run_id)
        with lock:
            u.assigned = p.assigned
        held = led.row_of_mac(u.mac)
        if held is not None:
            with lock:
                assigned = u.assigned = p.assigned
            if assigned is not None and assigned != held.index:
                raise ClaimRefused(
                    str(led.path),
                    assigned,
                    f"cannot go to device {u.mac}: it holds unit "
                    f"{self.label(held.index)} ({held.state})",
                )
            claim = led.claim_row(held.index, **kw)
            self.claimed_on(p, claim.row_index)
            return claim, self._row_of(claim)
        blank = current.count(0xFF) == len(current)
        new_for_mac: int | None = None
        if not blank:
            index = led.row_of_image(hashlib.sha256(current).hexdigest())
            if index is not None:
                row = led.row(index)
                if row.state == "pending":
                    new_for_mac = index  # our image, interrupted before it was recorded: finish
                else:
                    self.emit(
                        LogEvent(
                            p.name,
                            "warning",
                            f"{u.mac} holds a stale copy of unit "
                            f"{self.label(index)} (that row is {row.state} on "
                            f"{row.mac}); it gets a new row",
                        )
                    )
            elif led.mac_written_before(u.mac):
                self.emit(
                    LogEvent(
                        p.name,
                        "info",
                        f"{u.mac} holds leftovers of an interrupted write of this lot; overwriting",
                    )
                )
            elif not ask():
                return Outcome.SKIPPED
        with self.claim_lock:  # the count check and the claim are one step across ports
            with lock:
                assigned = u.assigned = p.assigned
                others = len(self.claimed - {p.name})
                done = units_done()
            if self.max_units is not None and done + others >= self.max_units:
                return Outcome.LIMIT
            index = assigned if assigned is not None else new_for_mac
            got: Claim | None = (
                led.claim_row(index, **kw) if index is not None else led.claim_next(**kw)
            )
            if got is None:
                return Outcome.NO_ROWS
            self.claimed_on(p, got.row_index)
        return got, self._row_of(got)

    def _row_of(self, claim: Claim) -> RowRecord:
        """The claimed row, read back; a connection lost reading it loses the claim's fate."""
        try:
            return self.ledger.row(claim.row_index)
        except LedgerOffline:
            self.ledger.lost(claim)
            raise

    def claimed_on(self, p: Port, row_index: int) -> None:
        """The port's unit claimed ``row_index``: an assignment of that row is used up (it is
        in progress now), so the operator can scan the port's next unit while it works."""
        with self.table.lock:
            self.claimed.add(p.name)
            if p.assigned == row_index:
                p.assigned = None

    def finished(self, port: str) -> None:
        """The port's unit ended (however): it no longer counts against ``max_units``."""
        with self.table.lock:
            self.claimed.discard(port)

    def lot_exhausted(self) -> bool:
        """No pending row is left and no port has a unit in progress."""
        with self.table.lock:
            if self.claimed:
                return False
        try:
            return not self.ledger.any_pending()
        except LedgerOffline:
            return False
