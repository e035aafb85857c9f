"""A lot and its ledger: opened together, bound together, backed up, checked and rebuilt.

The ledger alone cannot tell that it is the wrong one (an emptied file, a deleted one, another
``--db``, an old backup): the lot can. Its marker (beside ``lot.toml``) names the ledger the lot
was started with, and its journal holds every state change with a sequence number the ledger
keeps too. Opening a lot that has produced units with any other ledger is refused, naming the
ledger it was started with and what to do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from station.errors import Problem, StationError
from station.ledger import Ledger
from station.ledger.ledger import display_url, is_postgresql, sqlite_path
from station.ledger.lotfiles import (
    EFUSE_EVENTS,
    Journal,
    JournalEntry,
    Marker,
    backup_folder,
    journal_path,
    last_seq,
    marker_path,
    os_problem,
    read_journal,
    write_atomically,
)

if TYPE_CHECKING:
    from station.production.lot import LotSettings

BACKUPS_KEPT = 3  # rolling: <name>.station.db.1 is the newest


def _sidecars(p: Path) -> list[Path]:
    return [p.with_name(p.name + s) for s in ("-wal", "-shm", "-journal")]


@dataclass
class LotLink:
    """The open binding of a lot to its ledger (marker, journal, backups)."""

    settings: LotSettings
    url: str
    marker: Marker
    journal: Journal
    set_aside: Path | None = None  # where a rebuild moved the ledger it replaced
    journal_seq: int = 0  # the journal's last sequence number when the lot was opened

    @property
    def sqlite(self) -> bool:
        return not is_postgresql(self.url)

    @property
    def backups(self) -> Path:
        return backup_folder(self.settings.folder, self.settings.name)

    def bind(self, ledger: Ledger, *, rebuilt: bool = False) -> None:
        """Bind the lot to this ledger for good (before its first claim); refused if another
        station bound it to another ledger meanwhile. ``rebuilt``: the ledger was rebuilt
        from the journal and replaces the one the lot was bound to."""
        if self.marker.bound and not rebuilt:
            return
        current = None if rebuilt else Marker.load(self.marker.path)
        if current is not None and current.bound:
            if current.ledger_id != ledger.ledger_id:
                raise StationError.at(
                    str(self.marker.path),
                    f"another station has just started this lot with the ledger "
                    f"{current.ledger}; use that ledger (--db), not {_where(self.url)}",
                    key="db",
                )
            self.marker = current
            return
        self.marker = self.marker.bind(ledger.ledger_id, _where(self.url))
        self.marker.save()

    def backup(self, ledger: Ledger) -> Path | None:
        """A rolling copy of a SQLite ledger (online backup: consistent while in use), and of
        the marker, in ``<name>.station.backup/``; the oldest of BACKUPS_KEPT goes."""
        if not self.sqlite:
            return None
        folder = self.backups
        name = sqlite_path(self.url).name
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            dst = sqlite3.connect(tmp)
            try:
                ledger._con().backup(dst)
            finally:
                dst.close()
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            for n in range(BACKUPS_KEPT - 1, 0, -1):
                older = folder / f"{name}.{n}"
                if older.exists():
                    os.replace(older, folder / f"{name}.{n + 1}")
            newest = folder / f"{name}.1"
            os.replace(tmp, newest)
            os.chmod(newest, 0o600)
        except (OSError, sqlite3.Error) as err:
            what = os_problem(err) if isinstance(err, OSError) else str(err)
            raise StationError.at(
                str(folder), f"the ledger's backup cannot be written: {what}", key="backup"
            ) from None
        write_atomically(folder / self.marker.path.name, self.marker.path.read_bytes())
        return newest


def _where(url: str) -> str:
    return str(sqlite_path(url).resolve()) if not is_postgresql(url) else display_url(url)


def _hints(settings: LotSettings) -> str:
    folder = backup_folder(settings.folder, settings.name)
    newest = next(iter(sorted(folder.glob("*.1"))), None) if folder.is_dir() else None
    backup = f"the latest backup is {newest}" if newest else f"backups are kept in {folder}"
    return (
        f"{backup}; or rebuild the ledger from the lot's journal: station ledger rebuild "
        f"{settings.path} (the damaged file is moved aside and kept)"
    )


def _refuse(settings: LotSettings, marker: Marker, url: str, what: str, fix: str = "") -> None:
    raise StationError.at(
        str(sqlite_path(url)) if not is_postgresql(url) else display_url(url),
        f"{what}. This lot has produced units and was started with the ledger {marker.ledger} "
        f"(id {(marker.ledger_id or '')[:12]}); nothing was written. "
        + (
            fix
            or f"Open the lot with that ledger (--db {marker.ledger}), restore it from "
            f"{backup_folder(settings.folder, settings.name)}, or rebuild it from the lot's "
            f"journal: station ledger rebuild {settings.path}"
        ),
        key="db",
    )


def open_ledger(
    settings: LotSettings,
    db_url: str | None,
    *,
    station_id: str | None = None,
    notify: Callable[[str], None] | None = None,
    read_only: bool = False,
    rebuild: bool = False,
) -> tuple[Ledger, LotLink]:
    """Open the lot's ledger after making sure it is the lot's (see the module docstring).

    Returns the ledger (rows not imported yet: the caller imports them with the marker's
    key) and the link. ``read_only``: for reports and checks on a copy; no marker is made.
    ``rebuild``: a new ledger for the lot (it is bound once it is filled from the journal).
    """
    url = str(db_url or settings.default_db)
    mpath = marker_path(settings.folder, settings.name)
    jpath = journal_path(settings.folder, settings.name)
    marker = Marker.load(mpath)
    seq = last_seq(jpath, marker.lot_id if marker else None)
    if marker is None and seq > 0 and not read_only:
        raise StationError.at(
            str(mpath),
            f"the lot's marker is missing, but its journal {jpath.name} records units of this "
            f"lot; restore {mpath.name} from {backup_folder(settings.folder, settings.name)} "
            "(or from the station that started the lot); nothing was written",
        )
    if rebuild and marker is None:
        raise StationError.at(
            str(mpath),
            "the lot's marker is missing: it holds the lot's key, without which the rows "
            f"cannot be matched; restore it from {backup_folder(settings.folder, settings.name)}",
        )
    # a report or a check reads whatever ledger it is given (check lists the differences)
    bound = marker is not None and marker.bound and not rebuild
    refuse = bound and not read_only
    aside = set_aside(url) if rebuild else None
    if refuse and not is_postgresql(url):
        assert marker is not None
        p = sqlite_path(url)
        if not p.exists():
            _refuse(settings, marker, url, "the ledger is missing (moved or removed?)")
        elif p.is_file() and p.stat().st_size == 0:
            _refuse(settings, marker, url, "the ledger is empty (0 bytes)")
    try:
        ledger = Ledger(url, station_id=station_id, create=not bound, notify=notify)
    except StationError as err:
        p0 = err.problems[0]
        if refuse and "the ledger is empty" in p0.message:
            assert marker is not None
            _refuse(settings, marker, url, p0.message[0].upper() + p0.message[1:])
        damaged = any(w in p0.message for w in ("corrupted", "truncated", "not a station", "empty"))
        if not damaged:
            raise
        raise StationError(
            [replace(p0, message=f"{p0.message}; {_hints(settings)}"), *err.problems[1:]]
        ) from None
    try:
        if refuse:
            assert marker is not None
            if ledger.ledger_id != marker.ledger_id:
                _refuse(
                    settings, marker, url, f"this is another ledger (id {ledger.ledger_id[:12]})"
                )
        legacy_key, started = ledger.stored_key(settings.name)
        if marker is None and started and legacy_key is None:
            raise StationError.at(
                str(mpath),
                f"the lot's marker is missing, and {_where(url)} has produced units of this lot: "
                f"copy {mpath.name} from the station that started it (or restore it from "
                f"{backup_folder(settings.folder, settings.name)}); it holds the lot's key",
            )
        if marker is None:
            marker = Marker.new(mpath, settings.name, legacy_key)
            if not read_only:
                marker.save()
        elif legacy_key is not None and started and legacy_key != marker.key:
            marker = replace(marker, key=legacy_key)  # the key the lot's rows were made with
            if not read_only:
                marker.save()
        link = LotLink(settings, url, marker, Journal(jpath), aside)
        ledger.attach_journal(link.journal, marker.lot_id)
        if refuse and ledger.journal_seq() < seq:
            _refuse(
                settings,
                marker,
                url,
                f"the ledger is behind the lot's journal (it knows changes up to number "
                f"{ledger.journal_seq()}, the journal up to {seq}): an old backup, or changes "
                "were lost",
                f"Rebuild it from the journal: station ledger rebuild {settings.path}",
            )
        link.journal_seq = seq
        if not read_only and not rebuild:
            if started and not marker.bound:  # a lot started before markers existed
                link.bind(ledger)
            if not link.marker.bound:
                ledger.attach_journal(link.journal, marker.lot_id, lambda: link.bind(ledger))
        return ledger, link
    except BaseException:
        ledger.close()
        raise


def resync(ledger: Ledger, link: LotLink) -> int:
    """If the ledger is ahead of the journal (a station killed between a commit and its
    journal line), journal again each finished row whose state the journal does not have."""
    if ledger.journal_seq() <= link.journal_seq:
        return 0
    replay = Replay.of(read_journal(link.journal.path, link.marker.lot_id))
    n = 0
    for r in ledger.rows(0, ledger.count()):
        j = replay.rows.get(r.index)
        if r.state in ("claimed", "written") or (j is None and not r.attempts):
            continue
        if j is not None and (j.state, j.mac or None) == (r.state, r.mac):
            continue
        ledger.resync_row(r.index)
        n += 1
    from station.ledger.security_steps import LedgerJournal

    return n + LedgerJournal(ledger, create=False).journal_missing(replay.efuses)


def health_check(ledger: Ledger, settings: LotSettings) -> None:
    """SQLite's quick check of every page: a damaged ledger is found at open, not mid-lot."""
    if ledger.dialect.name != "sqlite":
        return
    try:
        found = [r[0] for r in ledger._q("PRAGMA quick_check")]
    except sqlite3.DatabaseError as err:
        found = [str(err)]
    if found != ["ok"]:
        from station.ledger.ledger import sqlite_state

        what = sqlite_state(ledger.path, sqlite3.DatabaseError("malformed"))
        raise StationError.at(
            str(ledger.path), f"the ledger {what} ({found[0]}); {_hints(settings)}", key="db"
        )


def read_only_copy(url: str, folder: Path) -> str:
    """A private copy of a SQLite ledger to read from (the ledger itself is never written,
    nor created); a PostgreSQL URL as it is."""
    if is_postgresql(url):
        return url
    src = sqlite_path(url)
    if not src.is_file():
        raise StationError.at(
            str(src),
            "there is no ledger here: nothing was produced from this lot with it (a report "
            "never creates one); give the ledger with --db if it is elsewhere",
            key="db",
        )
    copy = folder / src.name
    last: Exception | None = None
    for query in ("mode=ro", "immutable=1"):  # immutable: a read-only folder without -shm
        try:
            con = sqlite3.connect(f"{src.resolve().as_uri()}?{query}", uri=True)
            try:
                dst = sqlite3.connect(copy)
                try:
                    con.backup(dst)
                finally:
                    dst.close()
            finally:
                con.close()
            return str(copy)
        except sqlite3.Error as err:
            last = err
            copy.unlink(missing_ok=True)
    from station.ledger.ledger import sqlite_state

    raise StationError.at(str(src), f"the ledger {sqlite_state(src, last)}", key="db")


@contextlib.contextmanager
def temp_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="station-ledger-") as tmp:
        yield Path(tmp)


# --- the journal against the ledger ---------------------------------------------------------
@dataclass
class _Attempt:
    row: int
    kind: str = "new"
    port: str = ""
    mac: str = ""
    chip: str = ""
    sha256: str | None = None
    wrote: bool = False
    result: str | None = None
    reason: str = ""
    operator: str = ""
    station: str = ""
    run: str = ""
    started: float = 0.0
    ended: float | None = None


@dataclass
class Replay:
    """What the journal says happened: every attempt, and each row's last state."""

    attempts: dict[int, _Attempt]
    rows: dict[int, JournalEntry]
    last_seq: int
    efuses: list[JournalEntry]  # the eFuse recipe's records (they change no row's state)

    @staticmethod
    def of(entries: Iterable[JournalEntry]) -> Replay:
        attempts: dict[int, _Attempt] = {}
        rows: dict[int, JournalEntry] = {}
        efuses: list[JournalEntry] = []
        seq = 0
        for e in sorted(entries, key=lambda e: e.seq):
            seq = max(seq, e.seq)
            if e.event in EFUSE_EVENTS:
                efuses.append(e)
                continue
            rows[e.row] = e
            if e.attempt is None:
                continue
            a = attempts.setdefault(e.attempt, _Attempt(e.row, started=e.t))
            a.kind = e.kind or a.kind
            a.port, a.chip = e.port or a.port, e.chip or a.chip
            a.mac = e.mac or a.mac
            a.sha256 = e.sha256 or a.sha256
            a.operator, a.station = e.operator or a.operator, e.station or a.station
            a.run = e.run or a.run
            if e.event == "written":
                a.wrote = True
            if e.event in ("done", "failed", "cancelled", "interrupted"):
                a.result, a.reason, a.ended = e.event, e.reason, e.t
        return Replay(attempts, rows, seq, efuses)

    def row_state(self, index: int) -> tuple[str, str | None, str]:
        """(state, mac, reason) of a row as the journal has it; an attempt the journal never
        saw end counts as interrupted (as the ledger's recovery would do)."""
        e = self.rows[index]
        if e.state not in ("claimed", "written"):
            return e.state, e.mac, e.reason
        a = self.attempts.get(e.attempt) if e.attempt is not None else None
        if a is None or (a.sha256 is None and a.kind == "new"):
            return "pending", None, ""
        if a.sha256 is None and a.kind == "rework":
            return "done", a.mac, ""
        return "failed", a.mac, f"interrupted while writing to {a.mac} (rebuilt from the journal)"


def differences(ledger: Ledger, link: LotLink, key_file_of: Callable[[int], Path]) -> list[str]:
    """Every difference between the ledger and the lot's journal, one line each."""
    out: list[str] = []
    entries = list(read_journal(link.journal.path, link.marker.lot_id))
    replay = Replay.of(entries)
    if link.marker.bound and link.marker.ledger_id != ledger.ledger_id:
        out.append(
            f"ledger: this is ledger {ledger.ledger_id[:12]}, the lot was started with "
            f"{(link.marker.ledger_id or '')[:12]} ({link.marker.ledger})"
        )
    if ledger.journal_seq() != replay.last_seq:
        out.append(
            f"sequence: the ledger's last change is number {ledger.journal_seq()}, the "
            f"journal's {replay.last_seq}"
        )
    seen = set(replay.rows)
    for r in ledger.rows(0, ledger.count()):
        if r.index in replay.rows:
            state, mac, _ = replay.rows[r.index].state, replay.rows[r.index].mac, ""
            if (state, mac or None) != (r.state, r.mac):
                out.append(
                    f"row {r.index + 1} ({r.unit_id}): ledger {r.state}"
                    f"{' on ' + r.mac if r.mac else ''}, journal {state}"
                    f"{' on ' + mac if mac else ''}"
                )
        elif r.state != "pending" or r.attempts:
            out.append(
                f"row {r.index + 1} ({r.unit_id}): ledger {r.state}"
                f"{' on ' + r.mac if r.mac else ''}, not in the journal"
            )
        elif key_file_of(r.index).exists() and ledger.key_hash(r.index) is not None:
            out.append(
                f"row {r.index + 1} ({r.unit_id}): has a key file and a key on record, but "
                "no attempt in the ledger or the journal"
            )
    missing = seen - {r.index for r in ledger.rows(0, ledger.count())}
    out += [f"row {i + 1}: in the journal, not in the ledger" for i in sorted(missing)]
    out += _efuse_differences(ledger, replay)
    journal_attempts = len(replay.attempts)
    ledger_attempts = len(ledger.attempts())
    if journal_attempts != ledger_attempts:
        out.append(f"attempts: the ledger has {ledger_attempts}, the journal {journal_attempts}")
    return out


def _efuse_differences(ledger: Ledger, replay: Replay) -> list[str]:
    """The eFuse records (step states per device, key hashes) of ledger and journal."""
    from station.ledger.security_steps import LedgerJournal

    records = LedgerJournal(ledger, create=False)
    journal_steps: dict[tuple[str, str], str] = {}
    journal_keys: dict[tuple[str, str], str] = {}
    for e in replay.efuses:
        if e.event == "efuse-key":
            journal_keys.setdefault((e.unit, e.step), e.sha256 or "")
        elif e.mac:
            done = journal_steps.get((e.mac, e.step)) == "done" or e.event == "efuse-done"
            journal_steps[(e.mac, e.step)] = "done" if done else "begun"
    ledger_steps = {(mac, step): state for mac, _u, step, state, *_ in records.history()}
    out = [
        f"eFuse step {step} on {mac}: ledger {ledger_steps.get((mac, step), 'none')}, "
        f"journal {journal_steps.get((mac, step), 'none')}"
        for mac, step in sorted(set(ledger_steps) | set(journal_steps))
        if ledger_steps.get((mac, step)) != journal_steps.get((mac, step))
    ]
    ledger_keys = records.keys()
    out += [
        f"key {name} of unit {unit}: its SHA-256 differs between ledger and journal"
        for unit, name in sorted(set(ledger_keys) | set(journal_keys))
        if ledger_keys.get((unit, name)) != journal_keys.get((unit, name))
    ]
    return out


def rebuild(
    ledger: Ledger, link: LotLink, key_file_of: Callable[[int], Path], operator: str
) -> tuple[int, list[Problem]]:
    """Fill a freshly imported ledger from the journal (and the per-unit key files); bind
    the lot to it. Returns the number of journal lines used and notes for the operator."""
    entries = list(read_journal(link.journal.path, link.marker.lot_id))
    replay = Replay.of(entries)
    evidence: dict[int, str] = {}
    notes: list[Problem] = []
    for r in ledger.rows(0, ledger.count()):
        f = key_file_of(r.index)
        if not f.exists():
            continue
        import hashlib

        from station import nvs

        keys = nvs.parse_key_partition(f.read_bytes(), file=str(f))
        ledger.record_key_hash(r.index, hashlib.sha256(keys.data_key + keys.tweak_key).hexdigest())
        if r.index not in replay.rows:
            evidence[r.index] = (
                f"its key file {f.name} exists but the journal records no attempt: the unit "
                "may be on a device; release the row only when sure it is not"
            )
            notes.append(Problem(str(f), 0, 0, f"row {r.index + 1}", evidence[r.index]))
    ledger.restore(
        [
            (
                i,
                a.row,
                a.kind,
                a.port,
                a.mac,
                a.chip,
                a.sha256,
                int(a.wrote),
                a.result or "interrupted",
                a.reason or ("" if a.result else "interrupted (rebuilt from the journal)"),
                a.operator,
                a.station,
                a.run,
                a.started,
                a.ended if a.ended is not None else a.started,
            )
            for i, a in sorted(replay.attempts.items())
        ],
        {i: replay.row_state(i) for i in replay.rows},
        evidence,
        replay.last_seq,
        f"ledger rebuilt from the journal {link.journal.path.name} ({len(entries)} lines)",
        operator,
    )
    if replay.efuses:
        from station.ledger.security_steps import LedgerJournal

        LedgerJournal(ledger).restore(replay.efuses)
    link.bind(ledger, rebuilt=True)
    return len(entries), notes


def set_aside(url: str) -> Path | None:
    """Move a SQLite ledger (and its -wal/-shm) aside, never deleting it; returns where."""
    if is_postgresql(url):
        return None
    p = sqlite_path(url)
    if not p.exists():
        for side in _sidecars(p):
            side.unlink(missing_ok=True)  # a -wal without its database is of no use
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    dest = p.with_name(f"{p.name}.replaced-{stamp}")
    try:
        for side in _sidecars(p):
            if side.exists():
                os.replace(side, dest.with_name(dest.name + side.name[len(p.name) :]))
        os.replace(p, dest)
    except OSError as err:
        raise StationError.at(str(p), f"cannot be moved aside: {os_problem(err)}") from None
    return dest
