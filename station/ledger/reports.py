"""The ledger's read views: rows, attempts, counters and the audit log of a lot, for the
window, the reports and the orchestrator's checks (the line's figures are in stats.py).
May import: station.ledger.connection/records/sql.
"""

from __future__ import annotations

from station.ledger import sql
from station.ledger.connection import LedgerConnection, wall_time
from station.ledger.records import (
    AttemptRecord,
    AuditRecord,
    ClaimRefused,
    Counters,
    RowRecord,
    attempt_record,
    row_record,
)
from station.ledger.sql import ROW_STATES

UPH_WINDOW = 3600.0  # units per hour are measured over the last hour of work


class Reports(LedgerConnection):
    """Read a lot: rows, attempts, counters, audit; key hashes of units."""

    # --- read views --------------------------------------------------------------------------
    def count(self, state: str | None = None, search: str = "") -> int:
        """Number of rows, optionally in one state and/or matching a search text."""
        query, args = sql.rows_query("COUNT(*)", state, search)
        return int(self._one(query, [self._lot, *args]))

    def any_pending(self) -> bool:
        """Whether a row is still pending (one index seek; a count reads every pending row,
        and idle ports ask this several times a second)."""
        return bool(self._q(sql.ANY_PENDING, (self._lot,)))

    def rows(
        self, offset: int, limit: int, state: str | None = None, search: str = ""
    ) -> list[RowRecord]:
        """A page of rows in lot order (for table views that fetch lazily)."""
        query, args = sql.rows_query(sql.ROW_COLUMNS, state, search)
        query += " ORDER BY idx LIMIT ? OFFSET ?"
        return [row_record(t) for t in self._q(query, [self._lot, *args, limit, offset])]

    def row(self, index: int) -> RowRecord:
        found = self._q(sql.ROW_GET, (self._lot, index))
        if not found:
            raise ClaimRefused(str(self.path), index, "no such row in this lot")
        return row_record(found[0])

    def find_scan(self, code: str) -> RowRecord | None:
        """The row whose scan value (else unit id) is exactly ``code``."""
        found = self._q(sql.ROW_BY_SCAN, (self._lot, code)) or self._q(
            sql.ROW_BY_UNIT, (self._lot, code)
        )
        return row_record(found[0]) if found else None

    def row_of_mac(self, mac: str) -> RowRecord | None:
        """The row this device holds or is claimed for (done, failed after writing, in progress)."""
        found = self._q(sql.ROW_BY_MAC, (self._lot, mac))
        return row_record(found[0]) if found else None

    def row_of_image(self, image_sha256: str) -> int | None:
        """The row whose image (as written by this lot) has this hash, if any."""
        found = self._q(sql.ROW_BY_IMAGE, (self._lot, image_sha256))
        return int(self._scalar(found[0])) if found else None

    def mac_written_before(self, mac: str) -> bool:
        """Whether this lot ever started writing onto this device (leftover data is ours)."""
        return int(self._one(sql.MAC_WRITTEN_BEFORE, (self._lot, mac))) > 0

    def failed(self) -> list[RowRecord]:
        return [row_record(t) for t in self._q(sql.ROWS_FAILED, (self._lot,))]

    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ROW_STATES, 0)
        counts.update(dict(self._q(sql.COUNT_BY_STATE, (self._lot,))))
        return counts

    def counters(self, now: float | None = None) -> Counters:
        """Done, failed and remaining rows; units per hour over the last hour of work."""
        counts = self.state_counts()
        now = wall_time() if now is None else now
        since = now - UPH_WINDOW
        done_recent, _first_done = self._q(sql.DONE_SINCE, (self._lot, since))[0]
        done_recent = int(done_recent)
        first = self._one(sql.FIRST_START_SINCE, (self._lot, since))
        uph = 0.0
        if done_recent and first is not None:
            uph = done_recent * 3600.0 / max(now - float(first), 60.0)
        in_progress = counts["claimed"] + counts["written"]
        return Counters(
            done=counts["done"],
            failed=counts["failed"],
            remaining=counts["pending"] + in_progress,
            units_per_hour=uph,
            total=sum(counts.values()),
            in_progress=in_progress,
        )

    def attempts(self, row_index: int | None = None) -> list[AttemptRecord]:
        """Attempts of one row, or of the whole lot, oldest first."""
        if row_index is None:
            return [attempt_record(t) for t in self._q(sql.ATTEMPTS_ALL, (self._lot,))]
        return [attempt_record(t) for t in self._q(sql.ATTEMPTS_OF_ROW, (self._lot, row_index))]

    def active_attempts(self) -> list[AttemptRecord]:
        return [attempt_record(t) for t in self._q(sql.ATTEMPTS_ACTIVE, (self._lot,))]

    def audit_log(self) -> list[AuditRecord]:
        return [AuditRecord(*t) for t in self._q(sql.AUDIT_LIST, (self._lot,))]

    def audit(self, action: str, detail: str, operator: str = "") -> None:
        """Append to the audit log (supervisor actions, imports, recoveries)."""
        with self._write() as c:
            c.execute(
                self.dialect.sql(sql.AUDIT_INSERT),
                (self.lot_id, wall_time(), action, detail, operator, self.station_id),
            )

    # --- per-device key hashes --------------------------------------------------------------
    def record_key_hash(self, row_index: int, key_sha256: str) -> str:
        """Remember the SHA-256 of a unit's own NVS key (never the key): the first hash
        recorded for a row stays; returns the one on record (compare it with yours)."""
        name = f"nvs-key:{self._lot}:{row_index}"
        with self._write() as c:
            c.execute(self.dialect.sql(sql.META_PUT_ONCE), (name, key_sha256))
            found = c.execute(self.dialect.sql(sql.META_GET), (name,)).fetchone()
        return str(self._scalar(found))

    def key_hash(self, row_index: int) -> str | None:
        """The SHA-256 of a unit's own NVS key, if one was recorded."""
        name = f"nvs-key:{self._lot}:{row_index}"
        found = self._con().execute(self.dialect.sql(sql.META_GET), (name,)).fetchone()
        return None if found is None else str(self._scalar(found))
