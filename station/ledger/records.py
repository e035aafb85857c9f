"""The ledger's records: what its methods return, and the named rows its queries read.

Plain frozen dataclasses and NamedTuples, no database code: every module of the ledger package
and its callers (the orchestrator, the window, reports) share them. Query results are turned
into these by name (``RowRecord(*t)`` follows ``sql.ROW_COLUMNS``), never read by position.
May import: station.errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from station.errors import Problem, StationError


@dataclass(frozen=True)
class RowRecord:
    """One row of the lot as the ledger knows it."""

    index: int  # 0-based over the data rows of values.csv
    unit_id: str
    scan_value: str | None
    state: str  # one of ROW_STATES
    mac: str | None  # the device holding (or claimed for) the row
    port: str | None  # the port of the latest attempt
    attempts: int
    reason: str  # why it failed, or why it was released
    updated_at: float
    line: int = 0  # line in values.csv


@dataclass(frozen=True)
class AttemptRecord:
    """One try to put a row onto a device."""

    id: int
    row_index: int
    kind: str  # "new" | "retry" | "rework" | "recover"
    port: str
    slot: str
    mac: str
    chip: str
    image_sha256: str | None
    wrote: bool
    timings: Mapping[str, float]
    result: str | None  # None while active; "done" | "failed" | "interrupted" | "cancelled"
    reason: str
    operator: str
    station_id: str
    run_id: str
    started_at: float
    ended_at: float | None


@dataclass(frozen=True)
class Counters:
    """Totals for the counters display; units per hour over the last hour of work."""

    done: int
    failed: int
    remaining: int  # pending + in progress
    units_per_hour: float
    total: int = 0
    in_progress: int = 0


@dataclass(frozen=True)
class Claim:
    """An active claim: the attempt that owns a row until it is completed or failed."""

    attempt_id: int
    row_index: int
    kind: str
    mac: str
    port: str


@dataclass(frozen=True)
class LedgerRow:
    """A row as imported: its identity and its values (only a keyed fingerprint is stored)."""

    index: int
    line: int
    unit_id: str
    scan_value: str | None
    values: Sequence[str]


@dataclass(frozen=True)
class ImportSummary:
    """What opening the lot did to the ledger."""

    created: bool
    imported: int  # rows added (all on first open, appended ones later)
    total: int
    started: bool  # production had started before this open


@dataclass(frozen=True)
class AuditRecord:
    at: float
    action: str
    detail: str
    operator: str
    station_id: str


@dataclass(frozen=True)
class Recovered:
    """A claim left by a dead run, and what became of its row."""

    attempt: AttemptRecord
    row_state: str


class ClaimRefused(StationError):
    """A row cannot be claimed by this device (done elsewhere, in progress, unknown)."""

    def __init__(self, file: str, row_index: int | None, message: str) -> None:
        key = f"row {row_index + 1}" if row_index is not None else "claim"
        super().__init__(Problem(file, 0, 0, key, message), exit_code=2)


class ClaimOfAnotherStation(ClaimRefused):
    """A release of a row claimed by a run on another host, which only that host can tell
    alive or not: it needs the supervisor's word that the station is gone."""


class LedgerOffline(StationError):
    """The ledger's database cannot be reached (a server restart, a network cut): nothing was
    recorded by the call that raised it, or it is not known whether it was. A unit in progress
    stops here; it is never marked done without the database."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(Problem(where, 0, 0, "db", message), exit_code=1)


class ClaimLost(LedgerOffline, ClaimRefused):
    """A step of a claim that is no longer active: its lease ran out while its station was
    cut off (or busy), and the line recovered it meanwhile. Like a lost connection, the unit
    stops and is never marked done; the device is looked at again (a row kept on its MAC is
    retried on it)."""

    def __init__(self, where: str, row_index: int, message: str) -> None:
        StationError.__init__(self, Problem(where, 0, 0, f"row {row_index + 1}", message))


# --- named rows of the ledger's queries (columns in the statements' order, see sql.py) -------
class LotRow(NamedTuple):
    id: int
    recipe_sha256: str
    fingerprint_key: str
    row_count: int


class RunRow(NamedTuple):
    station_id: str
    host: str
    pid: int
    ended_at: float | None
    proc_started: float | None
    lease_until: float | None = None  # the database's clock; None: a run without a lease
    db_now: float = 0.0  # the database's clock when read


class JournaledAttempt(NamedTuple):
    """An attempt as a journal replay gives it back to :meth:`Ledger.restore`."""

    journal_id: int
    row_idx: int
    kind: str
    port: str
    mac: str
    chip: str
    image_sha256: str | None
    wrote: bool
    result: str | None
    reason: str
    operator: str
    station_id: str
    run_id: str
    started_at: float
    ended_at: float | None


class ClaimTarget(NamedTuple):
    state: str
    mac: str | None


def row_record(t: Sequence[Any]) -> RowRecord:
    """A ``sql.ROW_COLUMNS`` result as a record."""
    return RowRecord(*t)


_ATTEMPT_FIELDS = [f.name for f in fields(AttemptRecord)]


def attempt_record(t: Sequence[Any]) -> AttemptRecord:
    """A ``sql.ATTEMPT_GET`` result as a record (its columns are the record's fields)."""
    named = dict(zip(_ATTEMPT_FIELDS, t, strict=True))
    named["wrote"] = bool(named["wrote"])
    named["timings"] = json.loads(named["timings"])
    return AttemptRecord(**named)


def state_after(a: AttemptRecord) -> tuple[str, str | None]:
    """Where a row goes when its attempt ends without success: a row whose bytes may have
    reached the device stays on that MAC (failed: retried on that device only)."""
    if a.image_sha256 is not None:
        return "failed", a.mac
    return {
        "new": ("pending", None),
        "retry": ("failed", a.mac),
        "rework": ("done", a.mac),
        "recover": ("failed", a.mac),
    }[a.kind]
