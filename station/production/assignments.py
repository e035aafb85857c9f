"""Which unit waits for a port's next device: a barcode scan or a click assigns a row to a
port, a retry sends a failed row back to the port where its device was seen.

The rules (a done row is refused unless reworked, a done or failed row goes only to its own
device, one waiting unit per port unless replaced) live here, over the orchestrator's
:class:`~station.production.ports.PortTable`. Imports the ledger and station.errors.
"""

from __future__ import annotations

from collections.abc import Callable

from station.errors import StationError
from station.ledger import ClaimRefused, Ledger
from station.production.events import LogEvent, PortUpdate
from station.production.ports import Port, PortTable


class Assignments:
    """Assign, unassign and retry rows on ports; thread-safe (under the table's lock).

    ``label`` names a unit for messages, ``emit`` sends an event, ``emit_port`` re-sends a
    port's card (``None``: the last update again, with the waiting unit filled in)."""

    def __init__(
        self,
        table: PortTable,
        ledger: Ledger,
        *,
        label: Callable[[int], str],
        emit: Callable[[object], None],
        emit_port: Callable[[Port, PortUpdate | None], None],
        lot_name: str,
        scan_column: str | None,
    ) -> None:
        self.table = table
        self.ledger = ledger
        self.label = label
        self.emit = emit
        self.emit_port = emit_port
        self.lot_name = lot_name
        self.scan_column = scan_column

    def _refuse(self, row_index: int, message: str) -> ClaimRefused:
        return ClaimRefused(str(self.ledger.path), row_index, message)

    def assigned_rows(self) -> dict[str, int]:
        """The units waiting for a port's next device, by port (a copy)."""
        with self.table.lock:
            return {
                name: p.assigned
                for name, p in self.table.ports.items()
                if p.assigned is not None and not p.removed
            }

    def take_port(self, p: Port, row_index: int, replace: bool) -> int | None:
        """Give ``p`` the row; refuse when another unit waits there (unless ``replace``).

        Called with the lock held; returns the row that was replaced, if any."""
        replaced: int | None = p.assigned if p.assigned != row_index else None
        if replaced is not None and not replace:
            raise self._refuse(
                row_index,
                f"port {p.slot} already has unit {self.label(replaced)} waiting; "
                "unassign it first, or replace it",
            )
        p.assigned = row_index
        return replaced

    def replaced(self, p: Port, replaced: int | None, row_index: int, why: str = "") -> None:
        """Log that a waiting unit gave way to another one (outside the lock)."""
        if replaced is not None:
            self.emit(
                LogEvent(
                    p.name,
                    "warning",
                    f"unit {self.label(replaced)} no longer waits on {p.slot}: replaced "
                    f"by unit {self.label(row_index)}{why}",
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
            raise self._refuse(row_index, f"is being written on {row.port} right now")
        if row.state == "done" and not rework:
            raise self._refuse(
                row_index,
                f"{self.label(row_index)} is already done on {row.mac}; rework needs engineer mode",
            )
        with self.table.lock:
            ports = self.table.ports
            for name, q in ports.items():
                if q.assigned == row_index and name != port and not q.removed:
                    raise self._refuse(row_index, f"is already assigned to port {name}")
            if row.state in ("done", "failed"):
                holder = next(
                    (n for n, q in ports.items() if q.last_mac and q.last_mac == row.mac), None
                )
                if holder is None or (port is not None and holder != port):
                    raise self._refuse(
                        row_index,
                        f"is {row.state} on device {row.mac}; it can only go to that device "
                        "(connect it), unless a supervisor releases it",
                    )
                port = holder
            if port is None:
                free = [
                    n
                    for n, q in ports.items()
                    if not q.removed and q.assigned is None and not q.working
                ]
                if not free:
                    raise StationError.at(
                        "ports",
                        "no free port: every port is busy or has a unit assigned",
                        key=f"row {row_index + 1}",
                    )
                port = free[0]
            p = self.table.get(port)
            replaced = self.take_port(p, row_index, replace)
        self.replaced(p, replaced, row_index)
        if p.working:  # the card keeps showing the unit in progress, and the next one
            self.emit_port(p, None)
        else:
            self.emit_port(
                p,
                PortUpdate(
                    port,
                    p.slot,
                    "idle",
                    row_index=row_index,
                    unit_id=self.label(row_index),
                    message=f"next unit: {self.label(row_index)}",
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
                f"no unit {code.strip()!r} in lot {self.lot_name}",
                key=self.scan_column or "scan",
            )
        return self.assign(port, row.index, rework=rework, replace=replace), row.index

    def unassign(self, port: str) -> None:
        """Drop the unit waiting on a port; an idle port says so (PortUpdate "unit dropped")."""
        with self.table.lock:
            p = self.table.get(port)
            dropped, p.assigned = p.assigned, None
            idle = not p.working
        if dropped is not None and idle:
            self.emit_port(p, PortUpdate(port, p.slot, "idle", message="unit dropped"))
        elif dropped is not None:
            self.emit_port(p, None)

    def retry(self, row_index: int, *, replace: bool = False) -> str:
        """Assign a failed row to the port where its device was last seen; returns the port
        (the caller starts it). A port with another unit waiting is refused unless
        ``replace`` is set (as in assign)."""
        row = self.ledger.row(row_index)
        if row.state != "failed":
            raise self._refuse(row_index, f"is {row.state}; only failed rows can be retried")
        if row.mac is None:
            raise self._refuse(
                row_index, f"failed on no device ({row.reason}); fix the lot, then release the row"
            )
        with self.table.lock:
            live = self.table.live()
            port = next((n for n, q in live.items() if q.last_mac == row.mac), None)
            if port is None and row.port in live:
                port = row.port
            if port is None:
                raise self._refuse(
                    row_index,
                    f"its device {row.mac} is on no port of this station; connect "
                    "it, or have a supervisor release the row",
                )
            p = live[port]
            elsewhere = next(
                (n for n, q in live.items() if q.assigned == row_index and n != port), None
            )
            if elsewhere is not None:
                raise self._refuse(row_index, f"is already assigned to port {elsewhere}")
            replaced = self.take_port(p, row_index, replace)
        self.replaced(p, replaced, row_index, " (retry)")
        return port

    def refused(self, p: Port, assigned: int | None, err: ClaimRefused) -> str:
        """The ledger refused a unit's claim (e.g. another station took the row assigned to the
        port, ``assigned`` when the unit was planned): that assignment is dropped, so the
        operator scans again; returns the message to show."""
        msg = "; ".join(
            (
                f"unit {self.label(int(pr.key[4:]) - 1)}: "
                if pr.key.startswith("row ") and pr.key[4:].isdigit()
                else ""
            )
            + pr.message
            for pr in err.problems
        )
        with self.table.lock:
            dropped = assigned is not None and p.assigned == assigned
            if dropped:
                p.assigned = None
        if dropped:
            assert assigned is not None
            msg += f" — unit {self.label(assigned)} is no longer assigned to {p.slot}: scan again"
        return msg
