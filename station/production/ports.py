"""The orchestrator's port table: one :class:`Port` per device slot, the state of the unit a
port's worker runs (:class:`Unit`), and the lock that guards them.

Plain data with no behaviour beyond lookups; imports the ledger's records and station.errors.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from station.errors import StationError
from station.ledger import Claim, RowRecord
from station.production.events import PortUpdate


@dataclass
class Port:
    name: str
    slot: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    assigned: int | None = None
    last_mac: str = ""  # the device most recently finished on this port
    last_result: str = ""  # a PortState: "passed" or "failed" ("" before the first)
    decision: threading.Event = field(default_factory=threading.Event)
    overwrite: bool = False
    asking: bool = False
    removed: bool = False
    last: PortUpdate | None = None  # the last update sent (re-sent when the waiting unit changes)
    emit_lock: threading.Lock = field(default_factory=threading.Lock)
    # the thread of a port of the same name that was removed and had not ended: this port's
    # worker waits for it first (both would open the same device)
    after: threading.Thread | None = None
    ended: bool = True  # the port's thread has finished its work (set under the table's lock)

    @property
    def working(self) -> bool:
        """A job runs on this port right now."""
        return self.thread is not None and self.thread.is_alive()

    def wait_for_previous(self, closing: threading.Event, poll: float) -> bool:
        """A removed port of the same name may still hold the device: wait (in this port's
        own thread) until it let go; False when cancelled or closing meanwhile."""
        before = self.after
        while before is not None and before.is_alive():
            if self.cancel.is_set() or closing.is_set():
                return False
            before.join(poll)
        self.after = None
        return True


@dataclass
class Unit:
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

    @property
    def row_index(self) -> int | None:
        """The unit's row: the one it holds, else the one it claimed, else None."""
        if self.row is not None:
            return self.row.index
        return self.claim.row_index if self.claim is not None else None


class PortTable:
    """The ports by name, and the lock every change to a port's fields is made under
    (re-entrant: the orchestrator's condition variable shares it)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ports: dict[str, Port] = {}

    def get(self, name: str) -> Port:
        """The live port of that name; a StationError if there is none."""
        with self.lock:
            p = self.ports.get(name)
        if p is None or p.removed:
            raise StationError.at(name, "no such port in this station (add it first)", key="port")
        return p

    def live(self) -> dict[str, Port]:
        """The ports not removed, by name (a copy; call with the lock held to act on it)."""
        with self.lock:
            return {n: p for n, p in self.ports.items() if not p.removed}
