"""Opening a lot in the ledger: importing its rows once, checking them on every later open,
and rebuilding a lot from its journal.

Rows are stored as keyed fingerprints (the key is the lot's, kept outside the ledger), so a
changed values file is found without the ledger holding any secret value.
May import: station.errors, station.ledger.connection/records/sql.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from station.errors import Problem, StationError
from station.ledger import sql
from station.ledger.connection import LedgerConnection, wall_time
from station.ledger.records import ImportSummary, JournaledAttempt, LedgerRow, LotRow

MAX_LISTED_PROBLEMS = 20
BULK_ROWS = 5000  # from this many new rows on, secondary indexes are rebuilt after the insert


class LotImport(LedgerConnection):
    """Import and check a lot's rows; rebuild from a journal."""

    # --- lot import --------------------------------------------------------------------------
    def fingerprint(self, values: Sequence[str]) -> str:
        """Keyed hash of a row's values: detects a changed CSV without storing secrets."""
        msg = "\x1f".join(values).encode("utf-8", "surrogateescape")
        return hashlib.blake2b(msg, key=self._fp_key, digest_size=16).hexdigest()

    def derive(self, purpose: str, data: str, size: int = 16) -> bytes:
        """Bytes keyed by the lot's random key: stable per unit, unguessable without the ledger
        (e.g. a HomeKit SRP salt, so a unit's image is the same every time it is built)."""
        if not self._fp_key:
            raise RuntimeError("the lot's key is not known to this ledger (attach with key=)")
        msg = f"{purpose}\x1f{data}".encode("utf-8", "surrogateescape")
        return hashlib.blake2b(msg, key=self._fp_key, digest_size=size).digest()

    def import_lot(
        self,
        name: str,
        recipe_sha256: str,
        rows: Iterable[LedgerRow],
        *,
        values_file: str = "values.csv",
        lot_file: str = "lot.toml",
        key: bytes | None = None,
    ) -> ImportSummary:
        """Attach this ledger to lot ``name``: import its rows once, check them on every open.

        Before production starts the rows may change freely (they are re-imported). After it
        started, a changed recipe (config, partition size, NVS version, encryption) or a changed
        or removed row is refused with located problems; new rows at the end are appended.

        ``key``: the lot's fingerprint key, kept outside the ledger (the lot's marker); the
        ledger then stores none (a key found in an older ledger is removed from it). Without
        it, a random key is kept in the ledger (a ledger used on its own).
        """
        now = wall_time()
        rows = list(rows)
        with self._write() as c:
            found = c.execute(self.dialect.sql(sql.LOT_BY_NAME), (name,)).fetchone()
            created = found is None
            if found is None:
                stored = "" if key is not None else secrets.token_hex(32)
                lot_id = c.execute(
                    self.dialect.sql(sql.LOT_INSERT), (name, recipe_sha256, stored, now, now)
                ).fetchone()[0]
                old: dict[int, str] = {}
                started = False
            else:
                lot = LotRow(*found)
                lot_id, old_recipe, stored = lot.id, lot.recipe_sha256, lot.fingerprint_key
                started = c.execute(self.dialect.sql(sql.LOT_STARTED), (lot_id,)).fetchone()[0] > 0
                old = dict(c.execute(self.dialect.sql(sql.ROW_FINGERPRINTS), (lot_id,)).fetchall())
                if started and old_recipe != recipe_sha256:
                    raise StationError.at(
                        lot_file,
                        "the lot's inputs (config, partition size, NVS version or encryption) "
                        "changed after production started; restore them, or start a new lot",
                        key=name,
                    )
            if key is not None and stored:
                c.execute(self.dialect.sql(sql.LOT_CLEAR_KEY), (lot_id,))
            self.lot_id, self.lot_name = lot_id, name
            self._fp_key = key if key is not None else bytes.fromhex(stored)
            prints = [self.fingerprint(r.values) for r in rows]
            if started:
                problems = []
                for r, fp in zip(rows, prints, strict=True):
                    if r.index in old and old[r.index] != fp:
                        problems.append(
                            Problem(
                                values_file,
                                r.line,
                                0,
                                f"row {r.index + 1}",
                                "changed after production started",
                            )
                        )
                if len(rows) < len(old):
                    problems.append(
                        Problem(
                            values_file,
                            0,
                            0,
                            "rows",
                            f"has {len(rows)} rows but production started with {len(old)}: "
                            "rows must not be removed (only appended)",
                        )
                    )
                if problems:
                    extra = len(problems) - MAX_LISTED_PROBLEMS
                    problems = problems[:MAX_LISTED_PROBLEMS]
                    if extra > 0:
                        problems.append(
                            Problem(values_file, 0, 0, "rows", f"and {extra} more changed rows")
                        )
                    problems.append(
                        Problem(
                            values_file,
                            0,
                            0,
                            name,
                            "restore the values file as it was, or add new devices as new rows "
                            "at the end",
                        )
                    )
                    raise StationError(problems)
                new = [(r, fp) for r, fp in zip(rows, prints, strict=True) if r.index not in old]
            else:
                unchanged = len(old) == len(rows) and all(
                    old.get(r.index) == fp for r, fp in zip(rows, prints, strict=True)
                )
                if unchanged:
                    new = []
                else:
                    c.execute(self.dialect.sql(sql.ROWS_DELETE), (lot_id,))
                    new = list(zip(rows, prints, strict=True))
            bulk = len(new) > BULK_ROWS and self.dialect is sql.SQLITE  # PG: no DDL locks
            if bulk:  # building the indexes once afterwards beats updating them per row
                for index in sql.BULK_INDEXES:
                    c.execute(f"DROP INDEX IF EXISTS {index}")
            if new:
                self._executemany(
                    c,
                    sql.ROW_INSERT,
                    ((lot_id, r.index, r.line, r.unit_id, r.scan_value, fp, now) for r, fp in new),
                )
            if bulk:
                for statement in self.dialect.schema():
                    if any(f" {index} " in statement for index in sql.BULK_INDEXES):
                        c.execute(statement)
            c.execute(self.dialect.sql(sql.LOT_SET_ROWS), (len(rows), recipe_sha256, now, lot_id))
            if new and not created:
                what = "appended" if started else "re-imported (production had not started)"
                c.execute(
                    self.dialect.sql(sql.AUDIT_INSERT),
                    (lot_id, now, "rows", f"{len(new)} rows {what}", "", self.station_id),
                )
            elif created:
                c.execute(
                    self.dialect.sql(sql.AUDIT_INSERT),
                    (
                        lot_id,
                        now,
                        "lot",
                        f"lot {name} created with {len(rows)} rows",
                        "",
                        self.station_id,
                    ),
                )
        return ImportSummary(created=created, imported=len(new), total=len(rows), started=started)

    def attach(self, name: str, key: bytes | None = None) -> None:
        """Attach to an existing lot without importing (read-only use, e.g. reports); ``key``:
        the lot's fingerprint key when the ledger keeps none (see import_lot)."""
        found = self._q(sql.LOT_BY_NAME, (name,))
        if not found:
            raise StationError.at(
                str(self.path), f"the ledger has no lot named {name!r}", key="name"
            )
        lot = LotRow(*found[0])
        self.lot_id, self.lot_name = lot.id, name
        self._fp_key = key if key is not None else bytes.fromhex(lot.fingerprint_key)

    def stored_key(self, name: str) -> tuple[bytes | None, bool]:
        """The fingerprint key an older ledger keeps for lot ``name`` (None if it keeps none),
        and whether production of that lot started in this ledger."""
        found = self._q(sql.LOT_BY_NAME, (name,))
        if not found:
            return None, False
        lot = LotRow(*found[0])
        started = int(self._one(sql.LOT_STARTED, (lot.id,))) > 0
        return (bytes.fromhex(lot.fingerprint_key) if lot.fingerprint_key else None), started

    # --- rebuild -----------------------------------------------------------------------------
    def restore(
        self,
        attempts: Sequence[tuple[Any, ...]],
        rows: Mapping[int, tuple[str, str | None, str]],
        evidence: Mapping[int, str],
        seq: int,
        detail: str,
        operator: str,
    ) -> None:
        """Fill a freshly imported lot from a journal replay, in one transaction.

        ``attempts``: (journal id, row, kind, port, mac, chip, image sha256, wrote, result, reason,
        operator, station, run, started, ended), oldest first; ``rows``: each journaled row's
        (state, mac, reason); ``evidence``: rows with no journaled attempt that may be on a
        device all the same (a unit key file): they become failed on no device, for a
        supervisor to release; ``seq``: the journal's last sequence number."""
        now = wall_time()
        d = self.dialect
        with self._write() as c:
            if c.execute(d.sql(sql.LOT_STARTED), (self._lot,)).fetchone()[0]:
                raise StationError.at(
                    str(self.path), "a ledger is only rebuilt into one without attempts", key="db"
                )
            counts: dict[int, int] = {}
            last: dict[int, JournaledAttempt] = {}
            for a in map(JournaledAttempt._make, attempts):
                row_idx = a.row_idx
                c.execute(d.sql(sql.RESTORE_ATTEMPT), (self._lot, *a[1:]))
                counts[row_idx] = counts.get(row_idx, 0) + 1
                last[row_idx] = a
            for idx, (state, mac, reason) in rows.items():
                prev = last.get(idx)
                c.execute(
                    d.sql(sql.RESTORE_ROW),
                    (
                        state,
                        mac,
                        prev.port if prev else None,
                        counts.get(idx, 0),
                        reason,
                        prev.image_sha256 if prev else None,
                        now,
                        self._lot,
                        idx,
                    ),
                )
                if state == "done" and mac:
                    c.execute(
                        d.sql(sql.DEVICE_BIND),
                        (self._lot, mac, prev.chip if prev else "", idx, now),
                    )
            for idx, why in evidence.items():
                c.execute(
                    d.sql(sql.RESTORE_ROW),
                    ("failed", None, None, 0, why, None, now, self._lot, idx),
                )
            c.execute(d.sql(sql.SEQ_INIT), (self._seq_key(),))
            c.execute(d.sql(sql.META_SET), (self._seq_key(), str(seq), str(seq)))
            c.execute(
                d.sql(sql.AUDIT_INSERT),
                (self._lot, now, "rebuild", detail, operator, self.station_id),
            )
