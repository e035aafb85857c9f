"""The production ledger: which row went to which device, with every attempt, surviving crashes.

One :class:`Ledger` serves one lot. Writes are short ``BEGIN IMMEDIATE`` transactions committed
with ``synchronous=FULL`` (a fact recorded is on disk before the device is touched); the schema
in :mod:`station.ledger.sql` holds the invariants. Each thread gets its own connection, so the
window can read while port workers write. Secret values never reach the database: rows are
stored as keyed fingerprints, images as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.errors import Problem, StationError
from station.ledger import sql
from station.ledger.sql import ROW_STATES, Dialect

MAX_LISTED_PROBLEMS = 20
BULK_ROWS = 5000  # from this many new rows on, secondary indexes are rebuilt after the insert
UPH_WINDOW = 3600.0  # units per hour are measured over the last hour of work


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


def default_station_id() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (never signals it)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - Windows only
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # type: ignore[attr-defined]
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))  # type: ignore[attr-defined]
        ctypes.windll.kernel32.CloseHandle(handle)  # type: ignore[attr-defined]
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# runs started by this process and not yet ended: a run of our own pid not in here is dead
_LIVE_RUNS: set[str] = set()
_LIVE_RUNS_LOCK = threading.Lock()


def is_postgresql(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def display_url(url: str) -> str:
    """A database URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        user, host = rest.rsplit("@", 1)
        return f"{scheme}://{user.split(':')[0]}@{host}"
    return url


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///path`` URL or a plain path; StationError for unknown URLs."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if url.startswith("sqlite:"):
        return Path(url[len("sqlite:") :])
    if "://" in url:
        raise StationError.at(
            display_url(url),
            "unknown database URL (use a file path, sqlite:///path or postgresql://…)",
            key="db",
        )
    return Path(url)


class Ledger:
    """The ledger of one lot: a SQLite file (WAL, synchronous commits) or PostgreSQL.

    ``url``: a file path, ``sqlite:///path``, or ``postgresql://user@host/db`` (needs the
    ``psycopg`` package; several stations can then share one lot).
    """

    def __init__(self, url: str | os.PathLike[str], *, station_id: str | None = None) -> None:
        text = os.fspath(url)
        self.url = text
        self.station_id = station_id or default_station_id()
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False
        self.lot_id: int | None = None
        self.lot_name = ""
        self._fp_key = b""
        self._integrity: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
        self._db_error: tuple[type[BaseException], ...] = (sqlite3.DatabaseError,)
        if is_postgresql(text):
            try:
                import psycopg
            except ImportError:
                raise StationError.at(
                    display_url(text),
                    "a PostgreSQL ledger needs the psycopg package: pip install 'psycopg[binary]'",
                    key="db",
                ) from None
            self.dialect: Dialect = sql.POSTGRESQL
            self.path = Path(display_url(text))  # for messages only
            self._integrity = (psycopg.errors.IntegrityError,)
            self._db_error = (psycopg.Error,)
        else:
            self.dialect = sql.SQLITE
            self.path = sqlite_path(text)
            if not self.path.parent.is_dir():
                raise StationError.at(
                    str(self.path), "folder for the ledger database does not exist", key="db"
                )
        try:
            self._create_schema()
        except self._db_error as err:
            self.close()
            raise StationError.at(
                str(self.path), f"not a station ledger database ({err})", key="db"
            ) from None

    def _create_schema(self) -> None:
        """Create the tables once; later opens only look (DDL would lock out other stations)."""
        if self._con().execute(self.dialect.schema_exists).fetchone() is not None:
            return
        with self._write() as c:
            if self.dialect.schema_lock:
                c.execute(self.dialect.schema_lock)
            for statement in self.dialect.schema():
                c.execute(statement)
            c.execute(sql.META_INIT)

    # --- connections and transactions ----------------------------------------------------
    def _connect(self) -> Any:
        if self.dialect is sql.POSTGRESQL:
            import psycopg

            try:
                return psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as err:
                raise StationError.at(
                    display_url(self.url),
                    f"cannot connect to the PostgreSQL ledger database: {err}",
                    key="db",
                ) from None
        con = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA busy_timeout=60000")
        return con

    def _con(self) -> Any:
        con = getattr(self._local, "con", None)
        if con is None:
            if self._closed:
                raise RuntimeError("ledger is closed")
            con = self._connect()
            self._local.con = con
            with self._lock:
                self._connections.append(con)
        return con

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One write transaction holding the database's write lock from its first statement."""
        con = self._con()
        con.execute(self.dialect.begin_write)
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _executemany(self, con: Any, statement: str, rows: Iterable[Sequence[object]]) -> None:
        if self.dialect is sql.POSTGRESQL:
            with con.cursor() as cur:
                cur.executemany(self.dialect.sql(statement), rows)
        else:
            con.executemany(statement, rows)

    def _q(self, statement: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._con().execute(self.dialect.sql(statement), tuple(args)).fetchall()

    def release_thread(self) -> None:
        """Close the calling thread's connection (a worker thread that is about to end)."""
        con = getattr(self._local, "con", None)
        if con is None:
            return
        self._local.con = None
        with self._lock:
            if con in self._connections:
                self._connections.remove(con)
        con.close()

    def close(self) -> None:
        """Close every connection this ledger opened (from any thread)."""
        with self._lock:
            self._closed = True
            for con in self._connections:
                con.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _lot(self) -> int:
        if self.lot_id is None:
            raise RuntimeError("no lot attached to this ledger (call import_lot first)")
        return self.lot_id

    # --- lot import --------------------------------------------------------------------------
    def fingerprint(self, values: Sequence[str]) -> str:
        """Keyed hash of a row's values: detects a changed CSV without storing secrets."""
        msg = "\x1f".join(values).encode("utf-8", "surrogateescape")
        return hashlib.blake2b(msg, key=self._fp_key, digest_size=16).hexdigest()

    def derive(self, purpose: str, data: str, size: int = 16) -> bytes:
        """Bytes keyed by the lot's random key: stable per unit, unguessable without the ledger
        (e.g. a HomeKit SRP salt, so a unit's image is the same every time it is built)."""
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
    ) -> ImportSummary:
        """Attach this ledger to lot ``name``: import its rows once, check them on every open.

        Before production starts the rows may change freely (they are re-imported). After it
        started, a changed recipe (config, partition size, NVS version, encryption) or a changed
        or removed row is refused with located problems; new rows at the end are appended.
        """
        now = time.time()
        rows = list(rows)
        with self._write() as c:
            found = c.execute(self.dialect.sql(sql.LOT_BY_NAME), (name,)).fetchone()
            created = found is None
            if found is None:
                key = secrets.token_hex(32)
                lot_id = c.execute(
                    self.dialect.sql(sql.LOT_INSERT), (name, recipe_sha256, key, now, now)
                ).fetchone()[0]
                old: dict[int, str] = {}
                started = False
            else:
                lot_id, old_recipe, key, _count = found
                started = c.execute(self.dialect.sql(sql.LOT_STARTED), (lot_id,)).fetchone()[0] > 0
                old = dict(c.execute(self.dialect.sql(sql.ROW_FINGERPRINTS), (lot_id,)).fetchall())
                if started and old_recipe != recipe_sha256:
                    raise StationError.at(
                        lot_file,
                        "the lot's inputs (config, partition size, NVS version or encryption) "
                        "changed after production started; restore them, or start a new lot",
                        key=name,
                    )
            self.lot_id, self.lot_name, self._fp_key = lot_id, name, bytes.fromhex(key)
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

    def attach(self, name: str) -> None:
        """Attach to an existing lot without importing (read-only use, e.g. reports)."""
        found = self._q(sql.LOT_BY_NAME, (name,))
        if not found:
            raise StationError.at(
                str(self.path), f"the ledger has no lot named {name!r}", key="name"
            )
        self.lot_id, self.lot_name, self._fp_key = found[0][0], name, bytes.fromhex(found[0][2])

    # --- read views --------------------------------------------------------------------------
    @staticmethod
    def _row(t: Sequence[Any]) -> RowRecord:
        return RowRecord(
            index=t[0],
            unit_id=t[1],
            scan_value=t[2],
            state=t[3],
            mac=t[4],
            port=t[5],
            attempts=t[6],
            reason=t[7],
            updated_at=t[8],
            line=t[9],
        )

    def count(self, state: str | None = None, search: str = "") -> int:
        """Number of rows, optionally in one state and/or matching a search text."""
        query, args = sql.rows_query("COUNT(*)", state, search)
        return int(self._q(query, [self._lot, *args])[0][0])

    def rows(
        self, offset: int, limit: int, state: str | None = None, search: str = ""
    ) -> list[RowRecord]:
        """A page of rows in lot order (for table views that fetch lazily)."""
        query, args = sql.rows_query(sql.ROW_COLUMNS, state, search)
        query += " ORDER BY idx LIMIT ? OFFSET ?"
        return [self._row(t) for t in self._q(query, [self._lot, *args, limit, offset])]

    def row(self, index: int) -> RowRecord:
        found = self._q(sql.ROW_GET, (self._lot, index))
        if not found:
            raise ClaimRefused(str(self.path), index, "no such row in this lot")
        return self._row(found[0])

    def find_scan(self, code: str) -> RowRecord | None:
        """The row whose scan value (else unit id) is exactly ``code``."""
        found = self._q(sql.ROW_BY_SCAN, (self._lot, code)) or self._q(
            sql.ROW_BY_UNIT, (self._lot, code)
        )
        return self._row(found[0]) if found else None

    def row_of_mac(self, mac: str) -> RowRecord | None:
        """The row this device holds or is claimed for (done, failed after writing, in progress)."""
        found = self._q(sql.ROW_BY_MAC, (self._lot, mac))
        return self._row(found[0]) if found else None

    def row_of_image(self, image_sha256: str) -> int | None:
        """The row whose image (as written by this lot) has this hash, if any."""
        found = self._q(sql.ROW_BY_IMAGE, (self._lot, image_sha256))
        return int(found[0][0]) if found else None

    def mac_written_before(self, mac: str) -> bool:
        """Whether this lot ever started writing onto this device (leftover data is ours)."""
        return int(self._q(sql.MAC_WRITTEN_BEFORE, (self._lot, mac))[0][0]) > 0

    def failed(self) -> list[RowRecord]:
        return [self._row(t) for t in self._q(sql.ROWS_FAILED, (self._lot,))]

    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ROW_STATES, 0)
        counts.update(dict(self._q(sql.COUNT_BY_STATE, (self._lot,))))
        return counts

    def counters(self, now: float | None = None) -> Counters:
        """Done, failed and remaining rows; units per hour over the last hour of work."""
        counts = self.state_counts()
        now = time.time() if now is None else now
        since = now - UPH_WINDOW
        done_recent = int(self._q(sql.DONE_SINCE, (self._lot, since))[0][0])
        first = self._q(sql.FIRST_START_SINCE, (self._lot, since))[0][0]
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

    @staticmethod
    def _attempt(t: Sequence[Any]) -> AttemptRecord:
        return AttemptRecord(
            id=t[0],
            row_index=t[1],
            kind=t[2],
            port=t[3],
            slot=t[4],
            mac=t[5],
            chip=t[6],
            image_sha256=t[7],
            wrote=bool(t[8]),
            timings=json.loads(t[9]),
            result=t[10],
            reason=t[11],
            operator=t[12],
            station_id=t[13],
            run_id=t[14],
            started_at=t[15],
            ended_at=t[16],
        )

    def attempts(self, row_index: int | None = None) -> list[AttemptRecord]:
        """Attempts of one row, or of the whole lot, oldest first."""
        if row_index is None:
            return [self._attempt(t) for t in self._q(sql.ATTEMPTS_ALL, (self._lot,))]
        return [self._attempt(t) for t in self._q(sql.ATTEMPTS_OF_ROW, (self._lot, row_index))]

    def active_attempts(self) -> list[AttemptRecord]:
        return [self._attempt(t) for t in self._q(sql.ATTEMPTS_ACTIVE, (self._lot,))]

    def audit_log(self) -> list[AuditRecord]:
        return [AuditRecord(*t) for t in self._q(sql.AUDIT_LIST, (self._lot,))]

    def audit(self, action: str, detail: str, operator: str = "") -> None:
        """Append to the audit log (supervisor actions, imports, recoveries)."""
        with self._write() as c:
            c.execute(
                self.dialect.sql(sql.AUDIT_INSERT),
                (self.lot_id, time.time(), action, detail, operator, self.station_id),
            )

    # --- per-device key hashes --------------------------------------------------------------
    def record_key_hash(self, row_index: int, key_sha256: str) -> str:
        """Remember the SHA-256 of a unit's own NVS key (never the key): the first hash
        recorded for a row stays; returns the one on record (compare it with yours)."""
        name = f"nvs-key:{self._lot}:{row_index}"
        with self._write() as c:
            c.execute(self.dialect.sql(sql.META_PUT_ONCE), (name, key_sha256))
            found = c.execute(self.dialect.sql(sql.META_GET), (name,)).fetchone()
        return str(found[0])

    def key_hash(self, row_index: int) -> str | None:
        """The SHA-256 of a unit's own NVS key, if one was recorded."""
        name = f"nvs-key:{self._lot}:{row_index}"
        found = self._con().execute(self.dialect.sql(sql.META_GET), (name,)).fetchone()
        return None if found is None else str(found[0])

    # --- runs and crash recovery -------------------------------------------------------------
    def start_run(self) -> str:
        """Register a production run of this process; its claims are recovered if it dies."""
        run_id = uuid.uuid4().hex
        with _LIVE_RUNS_LOCK:
            _LIVE_RUNS.add(run_id)
        with self._write() as c:
            c.execute(
                self.dialect.sql(sql.RUN_INSERT),
                (
                    run_id,
                    self._lot,
                    self.station_id,
                    socket.gethostname(),
                    os.getpid(),
                    time.time(),
                ),
            )
        return run_id

    def end_run(self, run_id: str) -> None:
        with self._write() as c:
            c.execute(self.dialect.sql(sql.RUN_END), (time.time(), run_id))
        with _LIVE_RUNS_LOCK:
            _LIVE_RUNS.discard(run_id)

    def _run_dead(self, c: Any, run_id: str) -> bool:
        found = c.execute(self.dialect.sql(sql.RUN_GET), (run_id,)).fetchone()
        if found is None:
            return True
        _station, host, pid, ended_at = found
        if ended_at is not None:
            return True
        if host != socket.gethostname():
            return False  # another station's run: only that station (or a supervisor) knows
        if pid == os.getpid():
            with _LIVE_RUNS_LOCK:
                return run_id not in _LIVE_RUNS
        return not _pid_alive(pid)

    def recover(self, is_dead: Callable[[str], bool] | None = None) -> list[Recovered]:
        """Resolve claims left by dead runs (a crashed or killed station).

        The attempt is marked interrupted. If nothing was sent to the device yet, the row goes
        back to pending. If writing may have started, the row stays with that device's MAC as
        failed ("interrupted"), so no other device can get the same data; when the device is
        seen again its factory region is compared with the image hash and the row completed,
        or rewritten. A supervisor can release it if the device is lost.
        """
        out = []
        now = time.time()
        with self._write() as c:
            active = [
                self._attempt(t)
                for t in c.execute(self.dialect.sql(sql.ATTEMPTS_ACTIVE), (self._lot,)).fetchall()
            ]
            for a in active:
                dead = is_dead(a.run_id) if is_dead else self._run_dead(c, a.run_id)
                if not dead:
                    continue
                reason = (
                    f"interrupted: the station stopped during this attempt (run {a.run_id[:8]})"
                )
                c.execute(
                    self.dialect.sql(sql.ATTEMPT_FINISH),
                    ("interrupted", reason, json.dumps(dict(a.timings)), now, a.id),
                )
                state, mac = self._state_after(a)
                if state == "failed":
                    reason = (
                        f"interrupted while writing to {a.mac}; it is checked when that "
                        "device is seen again (or release the row)"
                    )
                c.execute(
                    self.dialect.sql(sql.ROW_BACK_TO),
                    (
                        state,
                        mac,
                        reason if state == "failed" else "",
                        now,
                        self._lot,
                        a.row_index,
                        a.id,
                    ),
                )
                c.execute(
                    self.dialect.sql(sql.AUDIT_INSERT),
                    (
                        self._lot,
                        now,
                        "recover",
                        f"row {a.row_index + 1}: attempt {a.id} on {a.port} ({a.mac}) "
                        f"interrupted; row {state}",
                        "",
                        self.station_id,
                    ),
                )
                out.append(Recovered(a, state))
        return out

    @staticmethod
    def _state_after(a: AttemptRecord) -> tuple[str, str | None]:
        """Where a row goes when its attempt ends without success."""
        if a.image_sha256 is not None:  # bytes may have reached the device: keep it on that MAC
            return "failed", a.mac
        return {
            "new": ("pending", None),
            "retry": ("failed", a.mac),
            "rework": ("done", a.mac),
            "recover": ("failed", a.mac),
        }[a.kind]

    # --- claims ------------------------------------------------------------------------------
    def claim_next(
        self,
        *,
        mac: str,
        port: str,
        slot: str = "",
        chip: str = "",
        operator: str = "",
        run_id: str = "",
    ) -> Claim | None:
        """Claim the next pending row for device ``mac``; None when no pending row is left."""
        return self._claim(
            mac=mac, port=port, slot=slot, chip=chip, operator=operator, run_id=run_id
        )

    def claim_row(
        self,
        index: int,
        *,
        mac: str,
        port: str,
        slot: str = "",
        chip: str = "",
        operator: str = "",
        run_id: str = "",
    ) -> Claim:
        """Claim one row: pending, or failed/done on this same device (retry/rework)."""
        claim = self._claim(
            mac=mac,
            port=port,
            slot=slot,
            chip=chip,
            operator=operator,
            run_id=run_id,
            row_index=index,
        )
        assert claim is not None
        return claim

    def _claim(
        self,
        *,
        mac: str,
        port: str,
        slot: str = "",
        chip: str = "",
        operator: str = "",
        run_id: str = "",
        row_index: int | None = None,
    ) -> Claim | None:
        """Claim a row for the device ``mac`` on ``port``; None when no pending row is left.

        Without ``row_index`` the next pending row is taken. With it (a scan, an assignment, a
        retry or a rework): a pending row, a failed row of this same device (retry) or a done
        row of this same device (rework); anything else is refused with ClaimRefused.
        """
        now = time.time()
        d = self.dialect
        try:
            with self._write() as c:
                if row_index is None:
                    held = c.execute(d.sql(sql.ROW_BY_MAC), (self._lot, mac)).fetchone()
                    if held is not None:
                        r = self._row(held)
                        raise ClaimRefused(
                            str(self.path),
                            r.index,
                            f"device {mac} already holds this row ({r.state})",
                        )
                    found = c.execute(d.claim_next(), (self._lot,)).fetchone()
                    if found is None:
                        return None
                    index, kind = int(found[0]), "new"
                else:
                    found = c.execute(d.claim_row(), (self._lot, row_index)).fetchone()
                    if found is None:
                        raise ClaimRefused(str(self.path), row_index, "no such row in this lot")
                    state, row_mac = found
                    index = row_index
                    kind = self._claim_kind(row_index, state, row_mac, mac)
                attempt_id = c.execute(
                    d.sql(sql.ATTEMPT_INSERT),
                    (
                        self._lot,
                        index,
                        kind,
                        port,
                        slot,
                        mac,
                        chip,
                        operator,
                        self.station_id,
                        run_id,
                        now,
                    ),
                ).fetchone()[0]
                n = c.execute(
                    d.sql(sql.CLAIM_ROW_UPDATE), (mac, port, attempt_id, now, self._lot, index, mac)
                ).rowcount
                if n != 1:
                    raise ClaimRefused(str(self.path), index, "the row changed while claiming it")
        except self._integrity as err:
            raise ClaimRefused(
                str(self.path),
                row_index,
                f"refused by the ledger's rules ({err}): device {mac} already "
                "holds another row or the row is in progress",
            ) from None
        return Claim(attempt_id=attempt_id, row_index=index, kind=kind, mac=mac, port=port)

    def _claim_kind(self, index: int, state: str, row_mac: str | None, mac: str) -> str:
        where = str(self.path)
        if state == "pending":
            return "new"
        if state in ("claimed", "written"):
            raise ClaimRefused(where, index, f"is being written to {row_mac} right now")
        if row_mac is None:
            raise ClaimRefused(
                where,
                index,
                "failed on no device (its data could not be built); fix the lot, "
                "then have a supervisor release it",
            )
        if row_mac != mac:
            what = "done" if state == "done" else "failed"
            raise ClaimRefused(
                where,
                index,
                f"is {what} on device {row_mac}; it can only go to that device, unless a "
                "supervisor releases it",
            )
        return "rework" if state == "done" else "retry"

    def set_image(self, claim: Claim, image_sha256: str) -> None:
        """Record the image hash before the first byte is written (durably)."""
        with self._write() as c:
            c.execute(self.dialect.sql(sql.ATTEMPT_SET_IMAGE), (image_sha256, claim.attempt_id))
            c.execute(
                self.dialect.sql(sql.ROW_SET_IMAGE),
                (image_sha256, self._lot, claim.row_index, claim.attempt_id),
            )

    def mark_written(self, claim: Claim, timings: Mapping[str, float]) -> None:
        """The image is on the device (MD5 checked); verification comes next."""
        with self._write() as c:
            c.execute(
                self.dialect.sql(sql.ATTEMPT_SET_WROTE),
                (json.dumps(dict(timings)), claim.attempt_id),
            )
            c.execute(
                self.dialect.sql(sql.ROW_WRITTEN),
                (time.time(), self._lot, claim.row_index, claim.attempt_id),
            )

    def complete(self, claim: Claim, timings: Mapping[str, float], chip: str = "") -> None:
        """The device verifiably holds the row: bind the MAC to it for good."""
        now = time.time()
        d = self.dialect
        with self._write() as c:
            t = c.execute(d.sql(sql.ATTEMPT_GET + " WHERE id = ?"), (claim.attempt_id,)).fetchone()
            merged = {**json.loads(t[9]), **timings} if t is not None else dict(timings)
            n = c.execute(
                d.sql(sql.ATTEMPT_FINISH),
                ("done", "", json.dumps(merged), now, claim.attempt_id),
            ).rowcount
            if n != 1:
                raise ClaimRefused(
                    str(self.path),
                    claim.row_index,
                    "this attempt is no longer active (recovered or cancelled)",
                )
            bound = c.execute(d.sql(sql.DEVICE_BOUND), (self._lot, claim.row_index)).fetchone()
            if bound is None:
                c.execute(
                    d.sql(sql.DEVICE_BIND), (self._lot, claim.mac, chip, claim.row_index, now)
                )
            elif bound[0] != claim.mac:
                raise ClaimRefused(
                    str(self.path),
                    claim.row_index,
                    f"is bound to device {bound[0]}, not {claim.mac}",
                )
            c.execute(d.sql(sql.ROW_DONE), (now, self._lot, claim.row_index, claim.attempt_id))

    def fail(
        self,
        claim: Claim,
        reason: str,
        timings: Mapping[str, float] | None = None,
        *,
        result: str = "failed",
        bad_row: bool = False,
    ) -> str:
        """End an attempt without success; returns the row's new state.

        A row whose write may have started stays failed on that device (retry on the same
        device); a row nothing was written for returns to where it was — unless the row itself
        is at fault (``bad_row``: its image cannot be built), then it is failed on no device and
        waits for a supervisor's release once the lot is fixed.
        """
        now = time.time()
        d = self.dialect
        with self._write() as c:
            t = c.execute(d.sql(sql.ATTEMPT_GET + " WHERE id = ?"), (claim.attempt_id,)).fetchone()
            if t is None or t[10] is not None:
                return self._row(
                    c.execute(d.sql(sql.ROW_GET), (self._lot, claim.row_index)).fetchone()
                ).state
            a = self._attempt(t)
            merged = {**a.timings, **(timings or {})}
            c.execute(
                d.sql(sql.ATTEMPT_FINISH),
                (result, reason, json.dumps(merged), now, claim.attempt_id),
            )
            state, mac = self._state_after(a)
            if bad_row and state == "pending":
                state = "failed"
            c.execute(
                d.sql(sql.ROW_BACK_TO),
                (
                    state,
                    mac,
                    reason if state == "failed" else "",
                    now,
                    self._lot,
                    claim.row_index,
                    claim.attempt_id,
                ),
            )
        return state

    def release(self, row_index: int, reason: str, operator: str) -> None:
        """Supervisor override: a done or failed row goes back to pending for another device."""
        if not reason.strip() or not operator.strip():
            raise ClaimRefused(
                str(self.path), row_index, "a release needs the supervisor's name and a reason"
            )
        now = time.time()
        d = self.dialect
        with self._write() as c:
            found = c.execute(d.sql(sql.ROW_GET), (self._lot, row_index)).fetchone()
            if found is None:
                raise ClaimRefused(str(self.path), row_index, "no such row in this lot")
            r = self._row(found)
            if r.state not in ("done", "failed"):
                raise ClaimRefused(
                    str(self.path),
                    row_index,
                    f"is {r.state}; only done or failed rows can be released",
                )
            c.execute(d.sql(sql.DEVICE_RELEASE), (now, reason, self._lot, row_index))
            c.execute(d.sql(sql.ROW_RELEASE), (f"released: {reason}", now, self._lot, row_index))
            c.execute(
                d.sql(sql.AUDIT_INSERT),
                (
                    self._lot,
                    now,
                    "release",
                    f"row {row_index + 1} ({r.unit_id}) released from {r.mac} "
                    f"(was {r.state}): {reason}",
                    operator,
                    self.station_id,
                ),
            )
