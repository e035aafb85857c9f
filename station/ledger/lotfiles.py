"""The lot's own records beside ``lot.toml``, outside the ledger, so that losing the ledger
cannot restart the lot.

- The **marker** (``<name>.station.lot``, mode 0600, written atomically): a random lot id, the
  lot's fingerprint key (it never goes into the ledger, so a copy of the ledger alone cannot
  brute-force a short secret column from the row fingerprints), and, from the first claim on,
  the identity of the ledger the lot was started with.
- The **journal** (``<name>.station.journal``): one JSON line per state change of a row (unit,
  row, MAC, image SHA-256, state, time; never a secret value), appended and fsynced after the
  ledger commits it and before the device is touched. ``station ledger rebuild`` recreates a
  ledger from it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from station.errors import StationError

MARKER_SUFFIX = ".station.lot"
JOURNAL_SUFFIX = ".station.journal"
BACKUP_SUFFIX = ".station.backup"
MARKER_FORMAT = 1


def marker_path(folder: Path, name: str) -> Path:
    return folder / f"{name}{MARKER_SUFFIX}"


def journal_path(folder: Path, name: str) -> Path:
    return folder / f"{name}{JOURNAL_SUFFIX}"


def backup_folder(folder: Path, name: str) -> Path:
    return folder / f"{name}{BACKUP_SUFFIX}"


def os_problem(err: OSError) -> str:
    """An OSError in the operator's words (disk full and read-only said as such)."""
    if err.errno == errno.ENOSPC:
        return "the disk is full"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"not writable ({err.strerror})"
    return err.strerror or str(err)


def fsync_folder(folder: Path) -> None:
    if os.name == "nt":  # pragma: no cover - folders cannot be opened on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a whole file so that a crash leaves the old or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StationError.at(str(path), f"cannot be written: {os_problem(err)}") from None


@dataclass(frozen=True)
class Marker:
    """What binds a lot to its ledger (see the module docstring)."""

    path: Path
    name: str
    lot_id: str
    key: bytes  # the lot's fingerprint key (row fingerprints, derived per-unit values)
    ledger_id: str | None = None  # None until the lot's first claim
    ledger: str = ""  # where that ledger was (a path or a URL without password), for messages
    bound_at: float | None = None

    @property
    def bound(self) -> bool:
        return self.ledger_id is not None

    @staticmethod
    def new(path: Path, name: str, key: bytes | None = None) -> Marker:
        return Marker(path, name, secrets.token_hex(16), key or secrets.token_bytes(32))

    def bind(self, ledger_id: str, ledger: str) -> Marker:
        return replace(self, ledger_id=ledger_id, ledger=ledger, bound_at=time.time())

    def save(self) -> None:
        doc = {
            "format": MARKER_FORMAT,
            "what": "station lot marker: binds this lot to its ledger; keep it with lot.toml",
            "name": self.name,
            "lot_id": self.lot_id,
            "fingerprint_key": self.key.hex(),
            "ledger_id": self.ledger_id,
            "ledger": self.ledger,
            "bound_at": self.bound_at,
        }
        write_atomically(self.path, (json.dumps(doc, indent=1) + "\n").encode())

    @staticmethod
    def load(path: Path) -> Marker | None:
        """The marker, None if there is none; StationError if it is damaged."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StationError.at(str(path), f"cannot be read: {os_problem(err)}") from None
        try:
            doc = json.loads(text)
            return Marker(
                path,
                str(doc["name"]),
                str(doc["lot_id"]),
                bytes.fromhex(doc["fingerprint_key"]),
                doc.get("ledger_id"),
                str(doc.get("ledger", "")),
                doc.get("bound_at"),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise StationError.at(
                str(path),
                f"the lot's marker is damaged ({err}); restore it from the backup folder "
                f"{backup_folder(path.parent, path.name.removesuffix(MARKER_SUFFIX))}",
            ) from None


@dataclass(frozen=True)
class JournalEntry:
    """One line of the journal: a row's state after one change."""

    seq: int
    t: float
    lot: str
    row: int  # 0-based index
    unit: str
    state: str  # the row's state after the change (one of ROW_STATES)
    # claim | image | written | done | failed | interrupted | release; and for a unit's eFuse
    # recipe (station.ledger.security_steps) efuse-key | efuse-begun | efuse-done, which leave
    # the row's state as it is
    event: str
    mac: str | None = None
    sha256: str | None = None
    attempt: int | None = None
    kind: str = ""
    port: str = ""
    chip: str = ""
    run: str = ""
    station: str = ""
    operator: str = ""
    reason: str = ""
    step: str = ""  # efuse-*: the eFuse step, or the key's name

    def line(self) -> bytes:
        doc = {k: v for k, v in self.__dict__.items() if v not in (None, "")}
        doc["row"] = self.row + 1  # rows are numbered from 1 wherever people read them
        return (json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n").encode()

    @staticmethod
    def parse(doc: Mapping[str, Any]) -> JournalEntry:
        fields = dict(doc)
        fields["row"] = int(fields["row"]) - 1
        return JournalEntry(**fields)


# Lines that are written at once but not fsynced on their own: losing them (power loss only;
# a killed process loses nothing the OS has) never lets a row go to a second device. "claim":
# nothing has reached a device yet; "written"/"held": the "image" line before already says the
# device may hold the row; "done": without it, a rebuild keeps the row on that device (failed,
# verified when seen again). The next fsynced line (the next unit's "image") flushes them.
LAZY_EVENTS = frozenset({"claim", "written", "held", "done"})
EFUSE_EVENTS = frozenset({"efuse-key", "efuse-begun", "efuse-done"})


class Journal:
    """The append-only journal of one lot (thread-safe; several processes may append).

    ``every_line``: fsync every append (the benchmark's comparison); by default only appends
    holding a line outside LAZY_EVENTS are fsynced — above all the "image" line, which is on
    disk before any byte goes to the device."""

    def __init__(self, path: Path, *, every_line: bool = False) -> None:
        self.path = path
        self.every_line = every_line
        self._lock = threading.Lock()
        self._fd: int | None = None

    def append(self, entries: Iterable[JournalEntry]) -> None:
        """Append lines in one write (fsynced as said above); StationError if the disk
        refuses."""
        entries = list(entries)
        data = b"".join(e.line() for e in entries)
        if not data:
            return
        durable = self.every_line or any(e.event not in LAZY_EVENTS for e in entries)
        with self._lock:
            try:
                if self._fd is None:
                    new = not self.path.exists()
                    self._fd = os.open(
                        self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_BINARY, 0o644
                    )
                    if new:
                        fsync_folder(self.path.parent)
                os.write(self._fd, data)
                if durable:
                    _datasync(self._fd)
            except OSError as err:
                raise StationError.at(
                    str(self.path),
                    f"the lot's journal cannot be written: {os_problem(err)}; nothing more is "
                    "flashed until it can",
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


_O_BINARY = getattr(os, "O_BINARY", 0)


def _datasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def read_journal(path: Path, lot_id: str | None = None) -> Iterator[JournalEntry]:
    """The journal's entries in file order (of one lot if ``lot_id``); a torn last line (a
    crash in the middle of an append) is skipped, a damaged line elsewhere is an error."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as err:
        raise StationError.at(str(path), f"cannot be read: {os_problem(err)}") from None
    with f:
        lines = f.read().split(b"\n")
    last = len(lines) - 1
    for n, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            entry = JournalEntry.parse(json.loads(raw))
        except (ValueError, TypeError, KeyError) as err:
            if n == last:  # no newline yet: the append was cut short
                return
            raise StationError.at(
                str(path), f"line {n + 1} of the journal is damaged ({err})", key="journal"
            ) from None
        if lot_id is None or entry.lot == lot_id:
            yield entry


def last_seq(path: Path, lot_id: str | None = None) -> int:
    """The highest sequence number in the journal (0 when there is none): read from its tail
    (lines are appended in sequence order, give or take two stations' overlapping appends),
    the whole file only when the tail holds no line of this lot."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    except OSError as err:
        raise StationError.at(str(path), f"cannot be read: {os_problem(err)}") from None
    tail = 1 << 16
    if size > tail:
        with path.open("rb") as f:
            f.seek(size - tail)
            lines = f.read().split(b"\n")[1:]  # the first one is cut
        seqs = []
        for raw in lines[:-1] if lines and lines[-1].strip() else lines:
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict) and (lot_id is None or doc.get("lot") == lot_id):
                seqs.append(int(doc.get("seq", 0)))
        if seqs:
            return max(seqs)
    return max((e.seq for e in read_journal(path, lot_id)), default=0)
