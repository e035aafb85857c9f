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
from station.ledger.lotfiles import Journal, JournalEntry
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


class ClaimOfAnotherStation(ClaimRefused):
    """A release of a row claimed by a run on another host, which only that host can tell
    alive or not: it needs the supervisor's word that the station is gone."""


def default_station_id() -> str:
    return socket.gethostname()


def process_started(pid: int | None = None) -> float | None:
    """When a process started (seconds since the epoch), None if there is no such process.

    With the host and the PID it identifies a run: after a reboot the same PID is another
    process, with another start time (psutil reads it on Linux, Windows and macOS)."""
    import psutil

    try:
        return float(psutil.Process(os.getpid() if pid is None else pid).create_time())
    except (psutil.Error, OSError):
        return None


def run_alive(pid: int, started: float | None) -> bool:
    """Whether the run's process (this machine) is still the one that started the run."""
    if pid <= 0:
        return False
    now = process_started(pid)
    if now is None:
        return False
    if started is None:  # a run recorded before start times were: the PID is all there is
        return True
    return abs(now - started) < 1.0


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


SQLITE_HEADER = b"SQLite format 3\x00"
LOCK_NOTICE_AFTER = 2.0  # seconds: a ledger locked longer than this gets a message, once


def sqlite_state(path: Path, err: BaseException | None = None) -> str:
    """What is wrong with a SQLite ledger file, as the end of "the ledger …", in the
    operator's words: locked, disk full, read-only, empty, truncated, corrupted or not a
    ledger at all are told apart (never "delete it")."""
    text = str(err).lower() if err is not None else ""
    if "locked" in text or "busy" in text:
        return "is locked by another program"
    if "disk is full" in text or "no space" in text:
        return "cannot be written: the disk is full; make room on it, then try again"
    if "readonly" in text or "read-only" in text or "permission" in text:
        return (
            "is read-only: the station cannot write to it (file or folder permissions, or a "
            "read-only disk); make it writable for this user"
        )
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(100)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if size == 0:
        return "is empty (0 bytes)"
    if not head.startswith(SQLITE_HEADER):
        return "is not a station ledger: not an SQLite database at all (wrong file?)"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    if len(head) < 100 or (pages and size < page * pages):
        return f"is truncated: {size} bytes of the {page * pages} its header promises"
    if "malformed" in text or "corrupt" in text or "not a database" in text:
        return "is corrupted (damaged inside)"
    if err is None:
        return "is not a station ledger: an SQLite database without the station's tables"
    return f"cannot be used ({err})"


class Ledger:
    """The ledger of one lot: a SQLite file (WAL, synchronous commits) or PostgreSQL.

    ``url``: a file path, ``sqlite:///path``, or ``postgresql://user@host/db`` (needs the
    ``psycopg`` package; several stations can then share one lot). ``create``: make the tables
    in an empty database (False: an empty or missing one is an error, nothing is written).
    ``notify``: told once when the ledger is locked by another program and the station waits
    (up to ``lock_wait`` seconds, then a clear error).
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        station_id: str | None = None,
        create: bool = True,
        notify: Callable[[str], None] | None = None,
        lock_wait: float = 60.0,
    ) -> None:
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
        self.journal: Journal | None = None
        self.journal_lot = ""  # the lot id (the marker's) written into journal lines
        self._binder: Callable[[], None] | None = None
        self._lock_wait = lock_wait
        self._notify = notify
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
            self._check_file(create)
        try:
            self._create_schema(create)
        except self._db_error as err:
            self.close()
            what = sqlite_state(self.path, err) if self.dialect is sql.SQLITE else f"failed: {err}"
            raise StationError.at(str(self.path), f"the ledger {what}", key="db") from None
        except BaseException:
            self.close()
            raise

    def _check_file(self, create: bool) -> None:
        """Refuse a ledger file the station cannot use, before SQLite touches it."""
        p = self.path
        if not p.exists():
            if not create:
                raise StationError.at(str(p), "there is no ledger here", key="db")
            if not os.access(p.parent, os.W_OK):
                raise StationError.at(
                    str(p), "the ledger cannot be created: its folder is read-only", key="db"
                )
            return
        if not p.is_file():
            raise StationError.at(str(p), "not a station ledger: not a file", key="db")
        if not os.access(p, os.W_OK) or not os.access(p.parent, os.W_OK):
            raise StationError.at(
                str(p),
                "the ledger is read-only: the station cannot write to it (file or folder "
                "permissions, or a read-only disk); make it writable for this user",
                key="db",
            )
        if p.stat().st_size == 0:
            if not create:
                raise StationError.at(str(p), "the ledger is empty (0 bytes)", key="db")
            return
        # look before writing anything (even the switch to WAL): is it a station ledger?
        found: list[int] = []

        def look() -> None:
            con = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=0.5)
            try:
                ours = con.execute(sql.SQLITE.schema_exists).fetchone() is not None
                tables = con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            finally:
                con.close()
            found[:] = [ours, tables]

        try:
            self._when_unlocked(look)
        except sqlite3.Error as err:
            raise StationError.at(str(p), f"the ledger {sqlite_state(p, err)}", key="db") from None
        if found[1] and not found[0]:
            raise StationError.at(str(p), f"the ledger {sqlite_state(p)}", key="db")

    def _create_schema(self, create: bool) -> None:
        """Create the tables once; later opens only look (DDL would lock out other stations)."""
        con = self._con()
        if self.dialect is sql.SQLITE:  # wait here (with a message) if another program locks it
            con.execute(f"PRAGMA busy_timeout={int(self._notice_after() * 1000)}")

            def probe() -> None:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")

            self._when_unlocked(probe)
            con.execute("PRAGMA busy_timeout=60000")
        if con.execute(self.dialect.schema_exists).fetchone() is not None:
            self._migrate()
            return
        if self.dialect is sql.SQLITE and (
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] > 0
        ):
            raise StationError.at(str(self.path), f"the ledger {sqlite_state(self.path)}")
        if not create:
            raise StationError.at(
                str(self.path), "the ledger is empty (it has no station tables)", key="db"
            )
        with self._write() as c:
            if self.dialect.schema_lock:
                c.execute(self.dialect.schema_lock)
            if c.execute(self.dialect.schema_exists).fetchone() is None:
                for statement in self.dialect.schema():
                    c.execute(statement)
                c.execute(sql.META_INIT)
            c.execute(self.dialect.sql(sql.META_PUT_ONCE), ("ledger_id", uuid.uuid4().hex))

    def _migrate(self) -> None:
        """Bring an older ledger's schema up to date (once), and give it an identity."""
        d = self.dialect
        have = self._q(sql.META_GET, ("schema",))
        ident = self._q(sql.META_GET, ("ledger_id",))
        if have and have[0][0] == sql.SCHEMA_VERSION and ident:
            return
        with self._write() as c:
            if d.schema_lock:
                c.execute(d.schema_lock)
            found = c.execute(d.sql(sql.META_GET), ("schema",)).fetchone()
            if found is not None and found[0] == "1":
                for statement in sql.MIGRATE_2:
                    c.execute(statement.format(real=d.real_column))
                c.execute(d.sql(sql.META_SET), ("schema", sql.SCHEMA_VERSION, sql.SCHEMA_VERSION))
            c.execute(d.sql(sql.META_PUT_ONCE), ("ledger_id", uuid.uuid4().hex))

    @property
    def ledger_id(self) -> str:
        """This ledger's identity (random, made with it): what a lot's marker is bound to."""
        return str(self._q(sql.META_GET, ("ledger_id",))[0][0])

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
        try:
            con = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            con.execute(f"PRAGMA busy_timeout={int(self._notice_after() * 1000)}")
            self._when_unlocked(lambda: con.execute("PRAGMA journal_mode=WAL"))
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=60000")
        except sqlite3.Error as err:
            raise StationError.at(
                str(self.path), f"the ledger {sqlite_state(self.path, err)}", key="db"
            ) from None
        return con

    def _notice_after(self) -> float:
        return min(LOCK_NOTICE_AFTER, self._lock_wait)

    def _when_unlocked(self, step: Callable[[], object]) -> None:
        """Run ``step``; while another program locks the ledger, say so once and wait (up to
        ``lock_wait``), then give up with a clear error."""
        deadline = time.monotonic() + self._lock_wait
        told = False
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                if not told and self._notify is not None:
                    self._notify(
                        f"{self.path}: the ledger is locked by another program; waiting up to "
                        f"{self._lock_wait:.0f} s for it"
                    )
                told = True
                if time.monotonic() >= deadline:
                    raise StationError.at(
                        str(self.path),
                        f"the ledger is locked by another program (waited "
                        f"{self._lock_wait:.0f} s): close the program that holds it (another "
                        "station window, a database browser, a backup tool), then try again",
                        key="db",
                    ) from None

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
        """One write transaction holding the database's write lock from its first statement.

        Journal lines noted in it (:meth:`_note`) are appended and fsynced once it committed:
        the journal never holds a change the ledger does not."""
        con = self._con()
        con.execute(self.dialect.begin_write)
        self._local.pending = []
        try:
            yield con
        except BaseException:
            self._local.pending = []
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        pending, self._local.pending = self._local.pending, []
        if pending and self.journal is not None:
            self.journal.append(pending)

    def attach_journal(
        self, journal: Journal, lot_id: str, binder: Callable[[], None] | None = None
    ) -> None:
        """Record every state change of this lot's rows in ``journal`` too; ``binder`` is
        called once, before the first claim (it binds the lot to this ledger)."""
        self.journal, self.journal_lot, self._binder = journal, lot_id, binder

    def _seq_key(self) -> str:
        return f"journal-seq:{self.journal_lot}"

    def journal_seq(self) -> int:
        """The sequence number of the last change journaled by this ledger (0: none)."""
        found = self._q(sql.META_GET, (self._seq_key(),))
        return int(found[0][0]) if found else 0

    def _note(self, c: Any, row: int, state: str, event: str, **fields: Any) -> None:
        """Note a row's change for the journal (inside a write transaction)."""
        if self.journal is None:
            return
        d = self.dialect
        c.execute(d.sql(sql.SEQ_INIT), (self._seq_key(),))
        seq = int(c.execute(d.sql(sql.SEQ_BUMP), (self._seq_key(),)).fetchone()[0])
        unit = c.execute(d.sql(sql.ROW_UNIT), (self._lot, row)).fetchone()
        self._local.pending.append(
            JournalEntry(
                seq=seq,
                t=round(time.time(), 3),
                lot=self.journal_lot,
                row=row,
                unit=unit[0] if unit else "",
                state=state,
                event=event,
                station=self.station_id,
                **fields,
            )
        )

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
        now = time.time()
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
                lot_id, old_recipe, stored, _count = found
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
        self.lot_id, self.lot_name = found[0][0], name
        self._fp_key = key if key is not None else bytes.fromhex(found[0][2])

    def stored_key(self, name: str) -> tuple[bytes | None, bool]:
        """The fingerprint key an older ledger keeps for lot ``name`` (None if it keeps none),
        and whether production of that lot started in this ledger."""
        found = self._q(sql.LOT_BY_NAME, (name,))
        if not found:
            return None, False
        started = int(self._q(sql.LOT_STARTED, (found[0][0],))[0][0]) > 0
        return (bytes.fromhex(found[0][2]) if found[0][2] else None), started

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
                    process_started(),
                ),
            )
        return run_id

    def end_run(self, run_id: str) -> None:
        with self._write() as c:
            c.execute(self.dialect.sql(sql.RUN_END), (time.time(), run_id))
        with _LIVE_RUNS_LOCK:
            _LIVE_RUNS.discard(run_id)

    def _run_dead(self, c: Any, run_id: str) -> bool:
        return self._run_state(c, run_id) == "dead"

    def _run_state(self, c: Any, run_id: str) -> str:
        """``dead``, ``alive`` or ``elsewhere`` (a run of another host: only it can tell).

        A run is its host, PID and the start time of its process: a PID reused by another
        process (e.g. after a reboot) is not the run."""
        found = c.execute(self.dialect.sql(sql.RUN_GET), (run_id,)).fetchone()
        if found is None:
            return "dead"
        _station, host, pid, ended_at, proc_started = found
        if ended_at is not None:
            return "dead"
        if host != socket.gethostname():
            return "elsewhere"
        if pid == os.getpid():
            with _LIVE_RUNS_LOCK:
                return "alive" if run_id in _LIVE_RUNS else "dead"
        return "alive" if run_alive(pid, proc_started) else "dead"

    def run_host(self, run_id: str) -> tuple[str, int]:
        """The host and PID of a run, for messages."""
        found = self._q(sql.RUN_GET, (run_id,))
        return (str(found[0][1]), int(found[0][2])) if found else ("?", 0)

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
                self._note(
                    c,
                    a.row_index,
                    state,
                    "interrupted",
                    mac=mac,
                    sha256=a.image_sha256,
                    attempt=a.id,
                    kind=a.kind,
                    port=a.port,
                    run=a.run_id,
                    reason=reason,
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
        if self._binder is not None:  # the lot is bound to this ledger before its first claim
            self._binder()
            self._binder = None
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
                self._note(
                    c,
                    index,
                    "claimed",
                    "claim",
                    mac=mac,
                    attempt=attempt_id,
                    kind=kind,
                    port=port,
                    chip=chip,
                    run=run_id,
                    operator=operator,
                )
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
        """Record the image hash before the first byte is written (durably, in the ledger and
        the journal)."""
        with self._write() as c:
            c.execute(self.dialect.sql(sql.ATTEMPT_SET_IMAGE), (image_sha256, claim.attempt_id))
            c.execute(
                self.dialect.sql(sql.ROW_SET_IMAGE),
                (image_sha256, self._lot, claim.row_index, claim.attempt_id),
            )
            self._note(
                c,
                claim.row_index,
                "claimed",
                "image",
                mac=claim.mac,
                sha256=image_sha256,
                attempt=claim.attempt_id,
            )

    def mark_written(
        self, claim: Claim, timings: Mapping[str, float], *, wrote: bool = True
    ) -> None:
        """The image is on the device (MD5 checked); verification comes next. ``wrote``: False
        when the device held it already and nothing was written (the attempt says so)."""
        with self._write() as c:
            if wrote:
                c.execute(
                    self.dialect.sql(sql.ATTEMPT_SET_WROTE),
                    (json.dumps(dict(timings)), claim.attempt_id),
                )
            c.execute(
                self.dialect.sql(sql.ROW_WRITTEN),
                (time.time(), self._lot, claim.row_index, claim.attempt_id),
            )
            self._note(
                c,
                claim.row_index,
                "written",
                "written" if wrote else "held",
                mac=claim.mac,
                attempt=claim.attempt_id,
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
            self._note(
                c,
                claim.row_index,
                "done",
                "done",
                mac=claim.mac,
                sha256=t[7] if t is not None else None,
                attempt=claim.attempt_id,
                chip=chip,
            )

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
            self._note(
                c,
                claim.row_index,
                state,
                result,
                mac=mac,
                sha256=a.image_sha256,
                attempt=claim.attempt_id,
                reason=reason,
            )
        return state

    def release(
        self, row_index: int, reason: str, operator: str, *, station_gone: bool = False
    ) -> None:
        """Supervisor override: the row goes back to pending for another device (audited).

        A done or failed row; or a row claimed by a run that is not alive any more (a crashed
        station, a PID reused after a reboot). A claim of a run on another host is only
        released with ``station_gone`` (that station is switched off or gone: only it could
        tell whether its run is alive)."""
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
            was = r.state
            if r.state in ("claimed", "written"):
                t = c.execute(d.sql(sql.ATTEMPT_OF_ROW_ACTIVE), (self._lot, row_index)).fetchone()
                if t is not None:
                    a = self._attempt(t)
                    run = self._run_state(c, a.run_id)
                    host = c.execute(d.sql(sql.RUN_GET), (a.run_id,)).fetchone()
                    who = f"run on {host[1]}, PID {host[2]}" if host else "a run"
                    if run == "alive":
                        raise ClaimRefused(
                            str(self.path),
                            row_index,
                            f"is being written to {r.mac} right now ({who}, alive); stop that "
                            "station first",
                        )
                    if run == "elsewhere" and not station_gone:
                        raise ClaimOfAnotherStation(
                            str(self.path),
                            row_index,
                            f"is claimed by a {who}; release it on that station, or, if that "
                            "station is switched off or gone, say so (--station-gone)",
                        )
                    c.execute(
                        d.sql(sql.ATTEMPT_FINISH),
                        (
                            "interrupted",
                            f"released by {operator}: {reason}",
                            json.dumps(dict(a.timings)),
                            now,
                            a.id,
                        ),
                    )
                    was = f"{r.state} by a {who} that is not alive"
            elif r.state not in ("done", "failed"):
                raise ClaimRefused(
                    str(self.path),
                    row_index,
                    f"is {r.state}; only done or failed rows, or claims of a station that "
                    "stopped, can be released",
                )
            c.execute(d.sql(sql.DEVICE_RELEASE), (now, reason, self._lot, row_index))
            c.execute(d.sql(sql.ROW_RELEASE), (f"released: {reason}", now, self._lot, row_index))
            self._note(
                c,
                row_index,
                "pending",
                "release",
                operator=operator,
                reason=f"released from {r.mac or 'no device'}: {reason}",
            )
            c.execute(
                d.sql(sql.AUDIT_INSERT),
                (
                    self._lot,
                    now,
                    "release",
                    f"row {row_index + 1} ({r.unit_id}) released from {r.mac} "
                    f"(was {was}): {reason}",
                    operator,
                    self.station_id,
                ),
            )

    def resync_row(self, index: int) -> None:
        """Journal a finished row's state again (its line was lost: a station killed between
        the ledger's commit and the journal's append)."""
        d = self.dialect
        with self._write() as c:
            r = self._row(c.execute(d.sql(sql.ROW_GET), (self._lot, index)).fetchone())
            tried = c.execute(d.sql(sql.ATTEMPTS_OF_ROW), (self._lot, index)).fetchall()
            a = self._attempt(tried[-1]) if tried else None
            if r.state in ("claimed", "written") or (a is not None and a.result is None):
                return  # in progress: its own lines follow
            self._note(
                c,
                index,
                r.state,
                a.result if a is not None and a.result else "release",
                mac=r.mac,
                sha256=a.image_sha256 if a is not None else None,
                attempt=a.id if a is not None else None,
                kind=a.kind if a is not None else "",
                port=a.port if a is not None else "",
                run=a.run_id if a is not None else "",
                reason=r.reason,
            )

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
        now = time.time()
        d = self.dialect
        with self._write() as c:
            if c.execute(d.sql(sql.LOT_STARTED), (self._lot,)).fetchone()[0]:
                raise StationError.at(
                    str(self.path), "a ledger is only rebuilt into one without attempts", key="db"
                )
            counts: dict[int, int] = {}
            last: dict[int, tuple[Any, ...]] = {}
            for a in attempts:
                row_idx = a[1]
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
                        prev[3] if prev else None,
                        counts.get(idx, 0),
                        reason,
                        prev[6] if prev else None,
                        now,
                        self._lot,
                        idx,
                    ),
                )
                if state == "done" and mac:
                    c.execute(
                        d.sql(sql.DEVICE_BIND), (self._lot, mac, prev[5] if prev else "", idx, now)
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
