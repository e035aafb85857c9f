"""The security layer's :class:`~station.security.journal.StepJournal`, kept in the ledger.

Two tables of their own (made once, beside the ledger's, on SQLite and PostgreSQL alike):
``security_keys`` holds each per-device key's SHA-256 (never the key; the first record of a
unit's key wins, as a unique key enforces), ``security_steps`` each eFuse step per device (MAC)
as *begun* (committed before its eFuses are touched) and *done* (after they read back right).
A step is recorded once per device: a second ``begin`` of the same step (a resume after a crash)
keeps the row, ``done`` is final. Several stations sharing one PostgreSQL ledger see each
other's records, so a board moved between stations resumes where it stopped.

Each record also goes into the lot's journal (``efuse-key``, ``efuse-begun``, ``efuse-done``
lines, in the record's own transaction), so ``station ledger rebuild`` restores them
(:meth:`LedgerJournal.restore`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from station.ledger.lotfiles import JournalEntry

TABLES = [
    """CREATE TABLE IF NOT EXISTS security_keys (
        lot_id INTEGER NOT NULL,
        unit_id TEXT NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        at {real} NOT NULL,
        station_id TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (lot_id, unit_id, name)
    )""",
    """CREATE TABLE IF NOT EXISTS security_steps (
        lot_id INTEGER NOT NULL,
        mac TEXT NOT NULL,
        step TEXT NOT NULL,
        unit_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('begun', 'done')),
        begun_at {real} NOT NULL,
        done_at {real},
        station_id TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (lot_id, mac, step),
        CHECK ((state = 'done') = (done_at IS NOT NULL))
    )""",
]
EXISTS = {
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'security_steps'",
    "postgresql": "SELECT 1 WHERE to_regclass('security_steps') IS NOT NULL",
}
KEY_PUT = (
    "INSERT INTO security_keys (lot_id, unit_id, name, sha256, at, station_id) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (lot_id, unit_id, name) DO NOTHING"
)
KEY_GET = "SELECT sha256 FROM security_keys WHERE lot_id = ? AND unit_id = ? AND name = ?"
KEYS_ALL = "SELECT unit_id, name, sha256 FROM security_keys WHERE lot_id = ?"
STEP_BEGIN = (
    "INSERT INTO security_steps (lot_id, mac, step, unit_id, state, begun_at, station_id) "
    "VALUES (?, ?, ?, ?, 'begun', ?, ?) ON CONFLICT (lot_id, mac, step) DO NOTHING"
)
STEP_DONE = (
    "INSERT INTO security_steps "
    "(lot_id, mac, step, unit_id, state, begun_at, done_at, station_id) "
    "VALUES (?, ?, ?, ?, 'done', ?, ?, ?) ON CONFLICT (lot_id, mac, step) "
    "DO UPDATE SET state = 'done', done_at = excluded.done_at"
)
ROW_OF_UNIT = "SELECT idx, state FROM rows WHERE lot_id = ? AND unit_id = ? ORDER BY idx LIMIT 1"
STEPS_OF = "SELECT step, state FROM security_steps WHERE lot_id = ? AND mac = ?"
DEVICES = "SELECT DISTINCT mac, unit_id FROM security_steps WHERE lot_id = ?"
ALL_STEPS = (
    "SELECT mac, unit_id, step, state, begun_at, done_at FROM security_steps "
    "WHERE lot_id = ? ORDER BY begun_at, step"
)


class LedgerJournal:
    """A :class:`~station.security.journal.StepJournal` in the lot's ledger (thread-safe: the
    ledger gives each thread its own connection; every record is its own committed
    transaction, synchronous on SQLite)."""

    def __init__(self, ledger: Any, *, create: bool = True) -> None:
        self.ledger = ledger
        self._empty = not self._ensure_tables(create)

    def _ensure_tables(self, create: bool) -> bool:
        """Make the tables once (False: they are not there, and ``create`` is off)."""
        led = self.ledger
        d = led.dialect
        if led._q(EXISTS[d.name]):
            return True
        if not create:  # a read-only ledger that never burned a unit
            return False
        with led._write() as c:
            if d.schema_lock:
                c.execute(d.schema_lock)
            if c.execute(EXISTS[d.name]).fetchone() is None:
                for statement in TABLES:
                    c.execute(statement.format(real=d.real_column))
        return True

    @property
    def _lot(self) -> int:
        return int(self.ledger._lot)

    def _write(
        self, statement: str, args: tuple[object, ...], unit: str, event: str, **fields: Any
    ) -> None:
        led = self.ledger
        with led._write() as c:
            c.execute(led.dialect.sql(statement), args)
            self._note(c, unit, event, **fields)

    def _note(self, c: Any, unit: str, event: str, **fields: Any) -> None:
        """The record's journal line, under the unit's row (whose state it leaves alone)."""
        led = self.ledger
        if led.journal is None:
            return
        found = c.execute(led.dialect.sql(ROW_OF_UNIT), (self._lot, unit)).fetchone()
        if found is not None:
            led._note(c, int(found[0]), str(found[1]), event, **fields)

    # -- StepJournal ---------------------------------------------------------------------------
    def record_key(self, unit: str, name: str, sha256: str) -> str:
        led = self.ledger
        with led._write() as c:
            c.execute(
                led.dialect.sql(KEY_PUT),
                (self._lot, unit, name, sha256, time.time(), led.station_id),
            )
            found = c.execute(led.dialect.sql(KEY_GET), (self._lot, unit, name)).fetchone()
            if str(found[0]) == sha256:  # the first record wins; only it is journaled
                self._note(c, unit, "efuse-key", step=name, sha256=sha256)
        return str(found[0])

    def begin(self, unit: str, device: str, step: str) -> None:
        self._write(
            STEP_BEGIN,
            (self._lot, device, step, unit, time.time(), self.ledger.station_id),
            unit,
            "efuse-begun",
            mac=device,
            step=step,
        )

    def done(self, unit: str, device: str, step: str) -> None:
        now = time.time()
        self._write(
            STEP_DONE,
            (self._lot, device, step, unit, now, now, self.ledger.station_id),
            unit,
            "efuse-done",
            mac=device,
            step=step,
        )

    def journal_missing(self, journaled: Iterable[JournalEntry]) -> int:
        """Journal again each record the journal lacks (a station killed between the ledger's
        commit and the journal's append); returns how many lines were added."""
        if self._empty or self.ledger.journal is None:
            return 0
        have = {(e.event, e.mac or e.unit, e.step) for e in journaled}
        steps, keys = self.history(), self.keys()
        n = 0
        with self.ledger._write() as c:
            for mac, unit, step, state, _begun, _done in steps:
                events = ["efuse-begun"] + (["efuse-done"] if state == "done" else [])
                for event in events:
                    if (event, mac, step) not in have:
                        self._note(c, unit, event, mac=mac, step=step)
                        n += 1
            for (unit, name), sha256 in keys.items():
                if ("efuse-key", unit, name) not in have:
                    self._note(c, unit, "efuse-key", step=name, sha256=sha256)
                    n += 1
        return n

    def restore(self, entries: Iterable[JournalEntry]) -> int:
        """Put back the records of a journal's ``efuse-*`` lines (a ledger rebuilt from the
        journal), with their own times and stations; returns how many lines were used."""
        led = self.ledger
        d = led.dialect
        used = 0
        with led._write() as c:
            for e in sorted(entries, key=lambda e: e.seq):
                if e.event == "efuse-key" and e.sha256:
                    args: tuple[object, ...] = (self._lot, e.unit, e.step, e.sha256, e.t, e.station)
                    c.execute(d.sql(KEY_PUT), args)
                elif e.event == "efuse-begun" and e.mac:
                    c.execute(d.sql(STEP_BEGIN), (self._lot, e.mac, e.step, e.unit, e.t, e.station))
                elif e.event == "efuse-done" and e.mac:
                    c.execute(
                        d.sql(STEP_DONE),
                        (self._lot, e.mac, e.step, e.unit, e.t, e.t, e.station),
                    )
                else:
                    continue
                used += 1
        if used:
            self._empty = False
        return used

    def steps(self, device: str) -> Mapping[str, str]:
        if self._empty:
            return {}
        return {str(s): str(st) for s, st in self.ledger._q(STEPS_OF, (self._lot, device))}

    # -- for the escrow manifest and reports ---------------------------------------------------
    def keys(self) -> dict[tuple[str, str], str]:
        """Every recorded key hash: (unit, name) -> SHA-256."""
        if self._empty:
            return {}
        return {(str(u), str(n)): str(h) for u, n, h in self.ledger._q(KEYS_ALL, (self._lot,))}

    def devices(self) -> dict[str, str]:
        """device (MAC) -> unit, for every device a step was recorded on."""
        if self._empty:
            return {}
        return {str(m): str(u) for m, u in self.ledger._q(DEVICES, (self._lot,))}

    def history(self) -> list[tuple[str, str, str, str, float, float | None]]:
        """Every step record: (mac, unit, step, state, begun_at, done_at), oldest first."""
        if self._empty:
            return []
        return [tuple(r) for r in self.ledger._q(ALL_STEPS, (self._lot,))]  # type: ignore[misc]
