"""Production ledger: lots, rows, claims, attempts and MAC bindings (SQLite; PostgreSQL next).

The read views (:meth:`Ledger.count`, :meth:`Ledger.rows`, :meth:`Ledger.counters`, …) are what
the window and reports use; the claim/record methods are the orchestrator's.
"""

from station.ledger.ledger import (
    AttemptRecord,
    AuditRecord,
    Claim,
    ClaimOfAnotherStation,
    ClaimRefused,
    Counters,
    ImportSummary,
    Ledger,
    LedgerOffline,
    LedgerRow,
    Recovered,
    RowRecord,
)
from station.ledger.sql import ROW_STATES

__all__ = [
    "ROW_STATES",
    "AttemptRecord",
    "AuditRecord",
    "Claim",
    "ClaimOfAnotherStation",
    "ClaimRefused",
    "Counters",
    "ImportSummary",
    "Ledger",
    "LedgerOffline",
    "LedgerRow",
    "Recovered",
    "RowRecord",
]
