"""The ledger's connection to its database, and what differs between SQLite and PostgreSQL.

One connection per thread, opened on first use; write transactions take the database's write
lock at once and append their journal lines only after the commit. A database that goes away
(a server restart, a network cut) raises :class:`LedgerOffline`; the broken connection is
dropped, and the next call connects again. The other modules of the package add the lot's
import, claims, recovery and reports to :class:`LedgerConnection`.
May import: station.errors, station.ledger.sql/records/lotfiles.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from station.errors import StationError
from station.ledger import sql
from station.ledger.lotfiles import Journal, JournalEntry
from station.ledger.records import LedgerOffline
from station.ledger.sql import Dialect

SQLITE_HEADER = b"SQLite format 3\x00"
LOCK_NOTICE_AFTER = 2.0  # seconds: a ledger locked longer than this gets a message, once
DEFAULT_LEASE = 30.0  # seconds a run's claims stay its own without a renewal (every third of it)
RECONNECT_BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)  # seconds between tries; the last one repeats
_L = TypeVar("_L", bound="LedgerConnection")


def wall_time() -> float:
    """The station's wall clock for what the ledger records (tests replace
    ``station.ledger.connection.time``); leases use the database's clock instead."""
    return time.time()


def default_station_id() -> str:
    return socket.gethostname()


def why_no_psycopg(err: ImportError) -> str:
    """What psycopg's ImportError says went wrong, in one line. psycopg lists each
    implementation it tried, one line each; the last is the one over the system's libpq."""
    return (str(err).strip().splitlines() or [""])[-1].lstrip("- ")


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


class LedgerConnection:
    """The ledger of one lot, its database side: a SQLite file (WAL, synchronous commits) or
    PostgreSQL.

    ``url``: a file path, ``sqlite:///path``, or ``postgresql://user@host/db`` (needs the
    ``psycopg`` package; several stations can then share one lot). ``create``: make the tables
    in an empty database (False: an empty or missing one is an error, nothing is written).
    ``notify``: told once when the ledger is locked by another program and the station waits
    (up to ``lock_wait`` seconds, then a clear error). ``lease``: seconds a run's claims stay
    its own without a renewal (renewed every third of it while claims are held).
    """

    lost_is_offline = True  # a lost connection raises LedgerOffline (else the driver's error)

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        station_id: str | None = None,
        create: bool = True,
        notify: Callable[[str], None] | None = None,
        lock_wait: float = 60.0,
        lease: float = DEFAULT_LEASE,
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
        self.lease = lease
        self._opened = False  # once open, a connection that fails means "offline"
        self._offline = threading.Event()  # set while the database cannot be reached
        # told of each change of ``offline`` (in order: the change and its telling are one step)
        self._status_lock = threading.RLock()
        self._status_listeners: list[Callable[[bool], None]] = []
        # claims handed out by this ledger and not finished: attempt id -> run id (recovery.py)
        self._held: dict[int, str] = {}
        self._held_lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._renew_stop = threading.Event()
        self._renew_wake = threading.Event()  # no claim held any more: the renewer may end
        self._my_runs: set[str] = set()
        self._orphans = False  # a claim's fate was lost with the connection: look for orphans
        self._recover_lock = threading.Lock()  # one recovery of the line's leftovers at a time
        if is_postgresql(text):
            try:
                import psycopg
            except ImportError as err:
                raise StationError.at(
                    display_url(text),
                    "a PostgreSQL ledger needs psycopg and the PostgreSQL client library "
                    f"(pip install 'psycopg[binary]', or libpq5 on Debian): {why_no_psycopg(err)}",
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
        self._opened = True

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
        ours, tables = found
        if tables and not ours:
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
        have = self._meta("schema")
        ident = self._meta("ledger_id")
        if have == sql.SCHEMA_VERSION and ident:
            return
        with self._write() as c:
            if d.schema_lock:
                c.execute(d.schema_lock)
            found = c.execute(d.sql(sql.META_GET), ("schema",)).fetchone()
            version = str(self._scalar(found)) if found is not None else sql.SCHEMA_VERSION
            versions = list(sql.MIGRATIONS)
            if version in versions or version == "1":
                for v in versions[versions.index(version) + 1 if version in versions else 0 :]:
                    for statement in sql.MIGRATIONS[v]:
                        added = sql.ADDED_COLUMN.match(statement)
                        if added and self._has_column(c, *added.groups()):
                            continue  # already there (a ledger made between two versions)
                        c.execute(statement.format(real=d.real_column, id=d.id_column))
                    c.execute(d.sql(sql.META_SET), ("schema", v, v))
            c.execute(d.sql(sql.META_PUT_ONCE), ("ledger_id", uuid.uuid4().hex))

    def _has_column(self, c: Any, table: str, column: str) -> bool:
        if self.dialect is sql.SQLITE:
            return any(info[1] == column for info in c.execute(f"PRAGMA table_info({table})"))
        found = c.execute(self.dialect.sql(sql.PG_HAS_COLUMN), (table, column)).fetchone()
        return found is not None

    @property
    def ledger_id(self) -> str:
        """This ledger's identity (random, made with it): what a lot's marker is bound to."""
        return str(self._meta("ledger_id"))

    # --- connections and transactions ----------------------------------------------------
    def _connect(self) -> Any:
        if self.dialect is sql.POSTGRESQL:
            import psycopg

            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.Error as err:
                if self._opened:
                    self._set_offline(True)
                    raise LedgerOffline(display_url(self.url), f"ledger offline: {err}") from None
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
        the journal never holds a change the ledger does not. A connection lost on the way
        raises :class:`LedgerOffline` (then whether the transaction committed is not known)."""
        with self._guard() as con:
            con.execute(self.dialect.begin_write)
            self._local.pending = []
            try:
                yield con
            except BaseException:
                self._local.pending = []
                if not self._lost(con):
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
        found = self._meta(self._seq_key())
        return int(found) if found is not None else 0

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
                unit=self._scalar(unit) if unit else "",
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
        with self._guard() as con:
            return list(con.execute(self.dialect.sql(statement), tuple(args)).fetchall())

    @staticmethod
    def _lost(con: Any) -> bool:
        """Whether a connection is gone (PostgreSQL: the server or the network dropped it)."""
        return bool(getattr(con, "broken", False) or getattr(con, "closed", False))

    @contextmanager
    def _guard(self) -> Iterator[Any]:
        """The thread's connection; a database error that lost it is raised as LedgerOffline
        and the connection dropped, so that the next call connects again."""
        con = self._con()
        try:
            yield con
        except self._db_error as err:
            if not self._lost(con):
                raise
            self.release_thread()
            self._set_offline(True)
            if not self.lost_is_offline:
                raise
            raise LedgerOffline(
                display_url(self.url), f"ledger offline: {str(err).strip() or type(err).__name__}"
            ) from None
        if self._offline.is_set():
            self._set_offline(False)

    @property
    def offline(self) -> bool:
        """Whether the last call found the database unreachable."""
        return self._offline.is_set()

    def on_status(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``listener(offline)`` on each change of :attr:`offline`, from the thread whose
        call found it (it must not block); returns the function that stops it."""
        with self._status_lock:
            self._status_listeners.append(listener)

        def stop() -> None:
            with self._status_lock:
                if listener in self._status_listeners:
                    self._status_listeners.remove(listener)

        return stop

    def _set_offline(self, offline: bool) -> None:
        with self._status_lock:
            if offline == self._offline.is_set():
                return
            if offline:
                self._offline.set()
            else:
                self._offline.clear()
            for listener in list(self._status_listeners):
                try:
                    listener(offline)
                except Exception:  # a broken listener must not hide the database's state
                    logging.getLogger(__name__).exception("ledger status listener failed")

    def wait_online(self, cancel: threading.Event | None = None) -> bool:
        """Wait until the database answers again, trying with a growing pause (backoff);
        False if ``cancel`` was set first."""
        cancel = cancel or threading.Event()
        tries = 0
        while not cancel.is_set():
            try:
                self._q("SELECT 1")
                return True
            except LedgerOffline:
                pause = RECONNECT_BACKOFF[min(tries, len(RECONNECT_BACKOFF) - 1)]
                tries += 1
                if cancel.wait(pause):
                    break
        return False

    @staticmethod
    def _scalar(found: Sequence[Any]) -> Any:
        """The value of a one-column result row."""
        (value,) = found
        return value

    def _one(self, statement: str, args: Sequence[object] = ()) -> Any:
        """The value of a query that returns one row of one column (a count, a minimum)."""
        return self._scalar(self._q(statement, args)[0])

    def _meta(self, key: str) -> str | None:
        found = self._q(sql.META_GET, (key,))
        return str(self._scalar(found[0])) if found else None

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

    def _stop_renewer(self) -> None:
        self._renew_stop.set()
        self._renew_wake.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join()

    def close(self) -> None:
        """Close every connection this ledger opened (from any thread)."""
        self._stop_renewer()
        with self._lock:
            self._closed = True
            for con in self._connections:
                con.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self: _L) -> _L:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _lot(self) -> int:
        if self.lot_id is None:
            raise RuntimeError("no lot attached to this ledger (call import_lot first)")
        return self.lot_id
