"""What the orchestrator tells its front ends: frozen event dataclasses (they cross threads),
the typed outcomes of one unit, and the two exceptions of the unit pipeline.

Imports nothing of the station: any layer above ``production`` (the window, ``station run``, the
station session) may import these without loading the orchestrator.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass


class PortState(str, enum.Enum):
    """What a port shows; a ``str`` (``PortState.PASSED == "passed"``), and the events carry
    its ``value``, a plain string."""

    IDLE = "idle"
    WAITING = "waiting"
    BUSY = "busy"
    PASSED = "passed"
    FAILED = "failed"
    ATTENTION = "attention"


PORT_STATES = tuple(s.value for s in PortState)


class Outcome(enum.Enum):
    """How one device on one port ended (the worker loop decides what comes next on it)."""

    PASSED = "passed"  # verified and recorded
    FAILED = "failed"  # a device fault; the row is failed (or pending again)
    REFUSED = "refused"  # the device or the claim was refused: not retried automatically
    SKIPPED = "skipped"  # cancelled, or foreign data left untouched
    NO_DEVICE = "no-device"  # nothing answered on the port (auto mode waits)
    SAME = "same"  # the device just finished on this port is still connected
    NO_ROWS = "no-rows"  # the lot has no pending row left
    LIMIT = "limit"  # ``max_units`` reached (unless a unit in progress fails)
    BAD_ROW = "bad-row"  # the row's image cannot be built; it failed on no device
    OFFLINE = "offline"  # the ledger's database went away; the unit was not recorded as done


# --- events (frozen: they cross threads) ----------------------------------------------------
@dataclass(frozen=True)
class PortUpdate:
    """What a port is doing now; ``elapsed`` is seconds since the unit started."""

    port: str
    slot: str = ""
    state: str = "idle"  # a PortState
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
counter_seq = itertools.count(1)


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


@dataclass(frozen=True)
class PortRemoved:
    """A port given to ``remove_port`` has let go of its device (its worker thread ended, or
    it had none): the device may be opened by someone else now."""

    port: str


@dataclass(frozen=True)
class LedgerStatus:
    """The ledger's database went away (``offline``) or answers again. Every port is told at
    once: a unit in progress stops at its next ledger step, and no port starts one meanwhile."""

    offline: bool


Event = PortUpdate | RowUpdate | CountersUpdate | LogEvent | Decision | PortRemoved | LedgerStatus


class DeviceRefused(Exception):
    """The device must not be written (e.g. its partition table disagrees with the lot)."""


class Cancelled(Exception):
    """The operator cancelled the port (or the station is closing)."""
