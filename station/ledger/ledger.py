"""The production ledger: which row went to which device, with every attempt, surviving crashes.

One :class:`Ledger` serves one lot. Writes are short ``BEGIN IMMEDIATE`` transactions committed
with ``synchronous=FULL`` (a fact recorded is on disk before the device is touched); the schema
in :mod:`station.ledger.sql` holds the invariants. Each thread gets its own connection, so the
window can read while port workers write. Secret values never reach the database: rows are
stored as keyed fingerprints, images as SHA-256 hashes.

This module is the facade: the work is done by one module per concern —
:mod:`~station.ledger.connection` (connections, SQLite/PostgreSQL), :mod:`~station.ledger.importing`
(the lot's rows), :mod:`~station.ledger.claims`, :mod:`~station.ledger.recovery` (runs, leases,
releases) and :mod:`~station.ledger.reports` (read views); :mod:`~station.ledger.records` holds
what they return. Names used by callers are re-exported here.
"""

from __future__ import annotations

from station.ledger.claims import Claims
from station.ledger.connection import (
    DEFAULT_LEASE,
    LOCK_NOTICE_AFTER,
    SQLITE_HEADER,
    LedgerConnection,
    default_station_id,
    display_url,
    is_postgresql,
    sqlite_path,
    sqlite_state,
)
from station.ledger.importing import BULK_ROWS, MAX_LISTED_PROBLEMS, LotImport
from station.ledger.records import (
    AttemptRecord,
    AuditRecord,
    Claim,
    ClaimLost,
    ClaimOfAnotherStation,
    ClaimRefused,
    Counters,
    ImportSummary,
    LedgerOffline,
    LedgerRow,
    Recovered,
    RowRecord,
)
from station.ledger.recovery import process_started, run_alive
from station.ledger.reports import UPH_WINDOW, Reports

__all__ = [
    "BULK_ROWS",
    "DEFAULT_LEASE",
    "LOCK_NOTICE_AFTER",
    "MAX_LISTED_PROBLEMS",
    "SQLITE_HEADER",
    "UPH_WINDOW",
    "AttemptRecord",
    "AuditRecord",
    "Claim",
    "ClaimLost",
    "ClaimOfAnotherStation",
    "ClaimRefused",
    "Counters",
    "ImportSummary",
    "Ledger",
    "LedgerConnection",
    "LedgerOffline",
    "LedgerRow",
    "Recovered",
    "RowRecord",
    "default_station_id",
    "display_url",
    "is_postgresql",
    "process_started",
    "run_alive",
    "sqlite_path",
    "sqlite_state",
]


class Ledger(Claims, Reports, LotImport):
    """The ledger of one lot: a SQLite file (WAL, synchronous commits) or PostgreSQL.

    ``url``: a file path, ``sqlite:///path``, or ``postgresql://user@host/db`` (needs the
    ``psycopg`` package; several stations can then share one lot). ``create``: make the tables
    in an empty database (False: an empty or missing one is an error, nothing is written).
    ``notify``: told once when the ledger is locked by another program and the station waits
    (up to ``lock_wait`` seconds, then a clear error).
    """
