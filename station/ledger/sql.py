"""Every SQL statement of the ledger, in one place; dialect differences are isolated here.

Statements are written with ``?`` placeholders in the subset of SQL that SQLite (>= 3.35) and
PostgreSQL share. :class:`Dialect` turns them into what a driver wants. The invariants of a
production lot are held by the schema itself (CHECK constraints and partial unique indexes), so
a bug in Python, or a second station on the same database, cannot break them:

- a row is in exactly one state, and a claimed/written row always names its device and attempt;
- ``one_active_attempt``: at most one unfinished attempt (claim) per row, and per device;
- ``row_bound_once``: a row is bound (done) to at most one MAC until a supervisor releases it;
- ``mac_bound_once``: a MAC holds at most one bound row of a lot;
- ``rows_mac_live``: a MAC is claimed by, written with or done with at most one row of a lot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROW_STATES = ("pending", "claimed", "written", "done", "failed")
ATTEMPT_RESULTS = ("done", "failed", "interrupted", "cancelled")

# {id} / {real} / {blob} are filled in per dialect
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS lots (
        id {id},
        name TEXT NOT NULL UNIQUE,
        recipe_sha256 TEXT NOT NULL,
        fingerprint_key TEXT NOT NULL,
        row_count INTEGER NOT NULL DEFAULT 0,
        created_at {real} NOT NULL,
        updated_at {real} NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS rows (
        lot_id INTEGER NOT NULL REFERENCES lots(id),
        idx INTEGER NOT NULL CHECK (idx >= 0),
        line INTEGER NOT NULL DEFAULT 0,
        unit_id TEXT NOT NULL,
        scan_value TEXT,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'claimed', 'written', 'done', 'failed')),
        mac TEXT,
        port TEXT,
        attempt_id INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        image_sha256 TEXT,
        updated_at {real} NOT NULL,
        PRIMARY KEY (lot_id, idx),
        CHECK ((state IN ('claimed', 'written')) = (attempt_id IS NOT NULL)),
        CHECK (state NOT IN ('claimed', 'written', 'done') OR mac IS NOT NULL),
        CHECK (state <> 'pending' OR mac IS NULL)
    )""",
    # a MAC is live on at most one row of a lot (claimed, written, done, or failed and kept
    # for a retry on the same device)
    """CREATE UNIQUE INDEX IF NOT EXISTS rows_mac_live ON rows (lot_id, mac)
        WHERE mac IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS rows_state ON rows (lot_id, state, idx)""",
    """CREATE INDEX IF NOT EXISTS rows_scan ON rows (lot_id, scan_value)""",
    """CREATE INDEX IF NOT EXISTS rows_unit ON rows (lot_id, unit_id)""",
    # a device's binding to a row: inserted when the row is verified, released by a supervisor
    """CREATE TABLE IF NOT EXISTS devices (
        id {id},
        lot_id INTEGER NOT NULL REFERENCES lots(id),
        mac TEXT NOT NULL,
        chip TEXT NOT NULL DEFAULT '',
        row_idx INTEGER NOT NULL,
        bound_at {real} NOT NULL,
        released_at {real},
        release_reason TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS row_bound_once ON devices (lot_id, row_idx)
        WHERE released_at IS NULL""",
    """CREATE UNIQUE INDEX IF NOT EXISTS mac_bound_once ON devices (lot_id, mac)
        WHERE released_at IS NULL""",
    """CREATE TABLE IF NOT EXISTS attempts (
        id {id},
        lot_id INTEGER NOT NULL REFERENCES lots(id),
        row_idx INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('new', 'retry', 'rework', 'recover')),
        port TEXT NOT NULL,
        slot TEXT NOT NULL DEFAULT '',
        mac TEXT NOT NULL,
        chip TEXT NOT NULL DEFAULT '',
        image_sha256 TEXT,
        wrote INTEGER NOT NULL DEFAULT 0,
        timings TEXT NOT NULL DEFAULT '{{}}',
        result TEXT CHECK (result IS NULL OR result IN
            ('done', 'failed', 'interrupted', 'cancelled')),
        reason TEXT NOT NULL DEFAULT '',
        operator TEXT NOT NULL DEFAULT '',
        station_id TEXT NOT NULL DEFAULT '',
        run_id TEXT NOT NULL DEFAULT '',
        started_at {real} NOT NULL,
        ended_at {real}
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS one_active_attempt ON attempts (lot_id, row_idx)
        WHERE result IS NULL""",
    """CREATE UNIQUE INDEX IF NOT EXISTS one_active_attempt_mac ON attempts (lot_id, mac)
        WHERE result IS NULL""",
    """CREATE INDEX IF NOT EXISTS attempts_row ON attempts (lot_id, row_idx)""",
    """CREATE INDEX IF NOT EXISTS attempts_image ON attempts (lot_id, image_sha256)""",
    """CREATE INDEX IF NOT EXISTS attempts_ended ON attempts (lot_id, ended_at)""",
    # counters(), several times per unit: FIRST_START_SINCE's MIN in one seek (without it,
    # every attempt of the lot is read from the table, a cost that grows all shift)
    """CREATE INDEX IF NOT EXISTS attempts_started ON attempts (lot_id, started_at)""",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        lot_id INTEGER NOT NULL REFERENCES lots(id),
        station_id TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at {real} NOT NULL,
        ended_at {real},
        proc_started {real},
        lease_s {real},
        lease_until {real}
    )""",
    """CREATE TABLE IF NOT EXISTS audit (
        id {id},
        lot_id INTEGER,
        at {real} NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL,
        operator TEXT NOT NULL DEFAULT '',
        station_id TEXT NOT NULL DEFAULT ''
    )""",
]

# secondary indexes dropped during a bulk import and built again afterwards (never the unique
# ones: they hold the invariants)
BULK_INDEXES = ("rows_state", "rows_scan", "rows_unit")

META_GET = "SELECT value FROM meta WHERE key = ?"
META_PUT_ONCE = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
# Each schema version and the statements that bring the one before it up to it, in order: a new
# version appends an entry (its statements may use {real}/{id}/{blob}); a new ledger is created
# with SCHEMA (which has it all) and marked with the last version.
MIGRATIONS: dict[str, list[str]] = {
    "2": ["ALTER TABLE runs ADD COLUMN proc_started {real}"],  # a run: host + PID + start time
    "3": [  # leases: a run's claims are its own until lease_until (the database's clock)
        "ALTER TABLE runs ADD COLUMN lease_s {real}",
        "ALTER TABLE runs ADD COLUMN lease_until {real}",
    ],
}
SCHEMA_VERSION = list(MIGRATIONS)[-1]
ADDED_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+) ")  # skipped if it is there
PG_HAS_COLUMN = (
    "SELECT 1 FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?"
)
META_INIT = (  # S608: a module constant
    f"INSERT INTO meta (key, value) VALUES ('schema', '{SCHEMA_VERSION}')"  # noqa: S608
    " ON CONFLICT (key) DO NOTHING"
)
META_SET = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?"
# the journal's sequence: one counter per lot, bumped in the transaction of each state change
SEQ_INIT = "INSERT INTO meta (key, value) VALUES (?, '0') ON CONFLICT (key) DO NOTHING"
SEQ_BUMP = (
    "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = ? RETURNING value"
)

# --- lots ---------------------------------------------------------------------------------
LOT_BY_NAME = "SELECT id, recipe_sha256, fingerprint_key, row_count FROM lots WHERE name = ?"
LOT_INSERT = (
    "INSERT INTO lots (name, recipe_sha256, fingerprint_key, row_count, created_at, updated_at)"
    " VALUES (?, ?, ?, 0, ?, ?) RETURNING id"
)
LOT_SET_ROWS = "UPDATE lots SET row_count = ?, recipe_sha256 = ?, updated_at = ? WHERE id = ?"
LOT_STARTED = "SELECT COUNT(*) FROM attempts WHERE lot_id = ?"
LOT_CLEAR_KEY = "UPDATE lots SET fingerprint_key = '' WHERE id = ?"
ROW_UNIT = "SELECT unit_id FROM rows WHERE lot_id = ? AND idx = ?"

# --- rows ---------------------------------------------------------------------------------
ROW_FINGERPRINTS = "SELECT idx, fingerprint FROM rows WHERE lot_id = ? ORDER BY idx"
ROW_INSERT = (
    "INSERT INTO rows (lot_id, idx, line, unit_id, scan_value, fingerprint, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
ROWS_DELETE = "DELETE FROM rows WHERE lot_id = ?"
ROW_UPDATE_LINE = "UPDATE rows SET line = ? WHERE lot_id = ? AND idx = ?"

# S608 below: statements are built from module constants only, never from user input
ROW_COLUMNS = "idx, unit_id, scan_value, state, mac, port, attempts, reason, updated_at, line"
ROW_GET = f"SELECT {ROW_COLUMNS} FROM rows WHERE lot_id = ? AND idx = ?"  # noqa: S608
ROW_BY_MAC = f"SELECT {ROW_COLUMNS} FROM rows WHERE lot_id = ? AND mac = ?"  # noqa: S608
ROW_BY_SCAN = f"SELECT {ROW_COLUMNS} FROM rows WHERE lot_id = ? AND scan_value = ? ORDER BY idx"  # noqa: S608
ROW_BY_UNIT = f"SELECT {ROW_COLUMNS} FROM rows WHERE lot_id = ? AND unit_id = ? ORDER BY idx"  # noqa: S608
ROWS_FAILED = f"SELECT {ROW_COLUMNS} FROM rows WHERE lot_id = ? AND state = 'failed' ORDER BY idx"  # noqa: S608


def rows_query(columns: str, state: str | None, search: str) -> tuple[str, list[object]]:
    """The WHERE clause shared by count() and rows(): optional state and text search."""
    where = "lot_id = ?"
    args: list[object] = []
    if state:
        where += " AND state = ?"
        args.append(state)
    if search:
        where += (
            " AND (unit_id LIKE ? ESCAPE '\\' OR scan_value LIKE ? ESCAPE '\\'"
            " OR mac LIKE ? ESCAPE '\\' OR port LIKE ? ESCAPE '\\')"
        )
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        args += [pattern] * 4
    return f"SELECT {columns} FROM rows WHERE {where}", args  # noqa: S608


ANY_PENDING = "SELECT 1 FROM rows WHERE lot_id = ? AND state = 'pending' LIMIT 1"
COUNT_BY_STATE = "SELECT state, COUNT(*) FROM rows WHERE lot_id = ? GROUP BY state"

# The claim of the next pending row. PostgreSQL appends FOR UPDATE SKIP LOCKED (Dialect), so
# two stations never wait on, or take, the same row; SQLite serialises writers with BEGIN
# IMMEDIATE, and the guarded UPDATE below is correct on both.
CLAIM_NEXT_SELECT = (
    "SELECT idx FROM rows WHERE lot_id = ? AND state = 'pending' ORDER BY idx LIMIT 1"
)
CLAIM_ROW_SELECT = "SELECT state, mac FROM rows WHERE lot_id = ? AND idx = ?"
CLAIM_ROW_UPDATE = (
    "UPDATE rows SET state = 'claimed', mac = ?, port = ?, attempt_id = ?,"
    " attempts = attempts + 1, reason = '', updated_at = ?"
    " WHERE lot_id = ? AND idx = ? AND state IN ('pending', 'failed', 'done')"
    " AND (mac IS NULL OR mac = ?)"
)
ATTEMPT_INSERT = (
    "INSERT INTO attempts (lot_id, row_idx, kind, port, slot, mac, chip, operator, station_id,"
    " run_id, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
ATTEMPT_SET_IMAGE = "UPDATE attempts SET image_sha256 = ? WHERE id = ? AND result IS NULL"
ROW_SET_IMAGE = "UPDATE rows SET image_sha256 = ? WHERE lot_id = ? AND idx = ? AND attempt_id = ?"
ATTEMPT_SET_WROTE = "UPDATE attempts SET wrote = 1, timings = ? WHERE id = ? AND result IS NULL"
ATTEMPT_STILL_ACTIVE = "UPDATE attempts SET wrote = wrote WHERE id = ? AND result IS NULL"
ROW_WRITTEN = (
    "UPDATE rows SET state = 'written', updated_at = ?"
    " WHERE lot_id = ? AND idx = ? AND attempt_id = ? AND state = 'claimed'"
)
ATTEMPT_FINISH = (
    "UPDATE attempts SET result = ?, reason = ?, timings = ?, ended_at = ?"
    " WHERE id = ? AND result IS NULL"
)
ATTEMPT_GET = (
    "SELECT id, row_idx, kind, port, slot, mac, chip, image_sha256, wrote, timings, result,"
    " reason, operator, station_id, run_id, started_at, ended_at FROM attempts"
)
ROW_DONE = (
    "UPDATE rows SET state = 'done', attempt_id = NULL, reason = '', updated_at = ?"
    " WHERE lot_id = ? AND idx = ? AND attempt_id = ?"
)
# a failure after bytes reached the device keeps the row on that MAC (retry on the same device);
# a failure before any write frees the row again
ROW_FAILED_KEEP = (
    "UPDATE rows SET state = 'failed', attempt_id = NULL, reason = ?, updated_at = ?"
    " WHERE lot_id = ? AND idx = ? AND attempt_id = ?"
)
ROW_BACK_TO = (
    "UPDATE rows SET state = ?, attempt_id = NULL, mac = ?, reason = ?, updated_at = ?"
    " WHERE lot_id = ? AND idx = ? AND attempt_id = ?"
)
ROW_RELEASE = (
    "UPDATE rows SET state = 'pending', mac = NULL, port = NULL, attempt_id = NULL,"
    " reason = ?, updated_at = ? WHERE lot_id = ? AND idx = ?"
)
DEVICE_BOUND = "SELECT mac FROM devices WHERE lot_id = ? AND row_idx = ? AND released_at IS NULL"
DEVICE_BIND = "INSERT INTO devices (lot_id, mac, chip, row_idx, bound_at) VALUES (?, ?, ?, ?, ?)"
DEVICE_RELEASE = (
    "UPDATE devices SET released_at = ?, release_reason = ?"
    " WHERE lot_id = ? AND row_idx = ? AND released_at IS NULL"
)
ROW_BY_IMAGE = (
    "SELECT row_idx FROM attempts WHERE lot_id = ? AND image_sha256 = ? ORDER BY id DESC LIMIT 1"
)
# did this lot ever start writing onto this MAC? (then leftover data on it is ours)
MAC_WRITTEN_BEFORE = (
    "SELECT COUNT(*) FROM attempts WHERE lot_id = ? AND mac = ? AND image_sha256 IS NOT NULL"
)
ATTEMPTS_ACTIVE = ATTEMPT_GET + " WHERE lot_id = ? AND result IS NULL ORDER BY id"
ATTEMPTS_OF_ROW = ATTEMPT_GET + " WHERE lot_id = ? AND row_idx = ? ORDER BY id"
ATTEMPTS_ALL = ATTEMPT_GET + " WHERE lot_id = ? ORDER BY id"

# --- counters -----------------------------------------------------------------------------
DONE_SINCE = (
    "SELECT COUNT(*), MIN(started_at) FROM attempts"
    " WHERE lot_id = ? AND result = 'done' AND ended_at >= ?"
)
FIRST_START_SINCE = "SELECT MIN(started_at) FROM attempts WHERE lot_id = ? AND started_at >= ?"

# --- runs and audit -----------------------------------------------------------------------
# DB_NOW is the database's clock in seconds since the epoch (Dialect.sql fills it in): leases
# are measured with it, so the stations' own clocks may disagree
RUN_INSERT = (
    "INSERT INTO runs (id, lot_id, station_id, host, pid, started_at, proc_started, lease_s,"
    " lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, DB_NOW + ?)"
)
RUN_END = "UPDATE runs SET ended_at = ? WHERE id = ?"
RUN_GET = (
    "SELECT station_id, host, pid, ended_at, proc_started, lease_until, DB_NOW"
    " FROM runs WHERE id = ?"
)
RUN_RENEW = "UPDATE runs SET lease_until = DB_NOW + lease_s WHERE id = ? AND ended_at IS NULL"
# active claims of this lot whose run's lease ran out (or whose run ended): to be recovered
CLAIMS_EXPIRED = (
    "SELECT COUNT(*) FROM attempts a JOIN runs r ON r.id = a.run_id"
    " WHERE a.lot_id = ? AND a.result IS NULL"
    " AND (r.ended_at IS NOT NULL OR r.lease_until < DB_NOW)"
)
ATTEMPT_OF_ROW_ACTIVE = ATTEMPT_GET + " WHERE lot_id = ? AND row_idx = ? AND result IS NULL"

# --- rebuild from the journal ---------------------------------------------------------------
RESTORE_ATTEMPT = (
    "INSERT INTO attempts (lot_id, row_idx, kind, port, mac, chip, image_sha256, wrote, result,"
    " reason, operator, station_id, run_id, started_at, ended_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RESTORE_ROW = (
    "UPDATE rows SET state = ?, mac = ?, port = ?, attempts = ?, reason = ?, image_sha256 = ?,"
    " updated_at = ? WHERE lot_id = ? AND idx = ?"
)
AUDIT_INSERT = (
    "INSERT INTO audit (lot_id, at, action, detail, operator, station_id) VALUES (?, ?, ?, ?, ?, ?)"
)
AUDIT_LIST = (
    "SELECT at, action, detail, operator, station_id FROM audit WHERE lot_id = ? ORDER BY id"
)


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL engines the ledger runs on."""

    name: str
    paramstyle: str  # "qmark" (sqlite3) or "format" (psycopg)
    begin_write: str  # start of a write transaction that takes the write lock at once
    id_column: str
    real_column: str
    claim_suffix: str  # appended to the claim SELECT
    schema_exists: str  # one row when the ledger's tables are there already
    schema_lock: str  # serialises schema creation between stations ("" when BEGIN does it)
    now: str  # the database's clock, seconds since the epoch (what DB_NOW stands for)

    def sql(self, statement: str) -> str:
        """The statement in this driver's placeholder style, DB_NOW filled in."""
        statement = statement.replace("DB_NOW", self.now)
        if self.paramstyle == "format":
            return statement.replace("%", "%%").replace("?", "%s")
        return statement

    def schema(self) -> list[str]:
        return [s.format(id=self.id_column, real=self.real_column) for s in SCHEMA]

    def claim_next(self) -> str:
        return self.sql(CLAIM_NEXT_SELECT + self.claim_suffix)

    def claim_row(self) -> str:
        return self.sql(CLAIM_ROW_SELECT + self.claim_suffix.replace(" SKIP LOCKED", ""))


SQLITE = Dialect(
    name="sqlite",
    paramstyle="qmark",
    begin_write="BEGIN IMMEDIATE",
    id_column="INTEGER PRIMARY KEY",
    real_column="REAL",
    claim_suffix="",
    schema_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'",
    schema_lock="",
    now="((julianday('now') - 2440587.5) * 86400.0)",
)

POSTGRESQL = Dialect(
    name="postgresql",
    paramstyle="format",
    begin_write="BEGIN",
    id_column="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    real_column="DOUBLE PRECISION",
    claim_suffix=" FOR UPDATE SKIP LOCKED",
    schema_exists="SELECT 1 WHERE to_regclass('audit') IS NOT NULL",
    schema_lock="SELECT pg_advisory_xact_lock(7306255)",  # any constant: "station schema"
    now="EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION",
)
