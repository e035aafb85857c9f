"""Per-device key escrow: written durably before any key is burned, handed over on export.

Keys live in the lot's key folder (``keys/security/`` beside the lot file; folder 0700, files
0600), one file per unit and key (``<unit>.xts.bin``, ``<unit>.hmac.bin``). A key is made once
from ``secrets`` and never replaced; its SHA-256 goes to the journal (the ledger) before it is
used, and a key file that no longer matches the record is refused. Nothing here logs key bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from station.errors import StationError
from station.security.journal import StepJournal

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEY_NAMES = ("xts", "hmac")


@dataclass(frozen=True)
class EscrowEntry:
    unit: str
    name: str  # "xts" | "hmac"
    path: Path
    sha256: str


def key_path(folder: Path, unit: str, name: str) -> Path:
    """Where unit ``unit``'s key ``name`` is escrowed."""
    if not SAFE.match(unit):
        raise StationError.at(
            unit,
            "a unit id that names a key file must be 1-128 letters, digits, '.', '_' or '-'",
            key="unit",
        )
    return Path(folder) / f"{unit}.{name}.bin"


class KeyEscrow:
    """The lot's per-device keys on the host."""

    def __init__(self, folder: str | Path, journal: StepJournal) -> None:
        self.folder = Path(folder)
        self.journal = journal
        self._lock = threading.Lock()

    def path(self, unit: str, name: str) -> Path:
        if not SAFE.match(unit):
            raise StationError.at(
                unit,
                "a unit id to name a key file by must be 1-128 letters, digits, '.', '_' or '-'",
                key="unit",
            )
        return self.folder / f"{unit}.{name}.bin"

    def key(self, unit: str, name: str, size: int) -> bytes:
        """The unit's key ``name`` of ``size`` bytes: the escrowed one, or a new one written
        durably (0600) whose SHA-256 is recorded before it is returned."""
        path = self.path(unit, name)
        with self._lock:
            data = self._read_or_create(path, size)
        if len(data) != size:
            raise StationError.at(
                str(path), f"the key file has {len(data)} bytes, expected {size}", key=name
            )
        digest = hashlib.sha256(data).hexdigest()
        if self.journal.record_key(unit, name, digest) != digest:
            raise StationError.at(
                str(path),
                f"not the key unit {unit} was given (its SHA-256 differs from the record): "
                "restore the escrowed file; a chip burned with the other key cannot use this one",
                key=name,
            )
        return data

    def _read_or_create(self, path: Path, size: int) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
        except OSError as err:
            raise StationError.at(str(self.folder), f"cannot make the key folder: {err}") from None
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_bytes(size))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # never replaces a key another process wrote meanwhile
            except FileExistsError:
                pass
            _fsync_dir(self.folder)
            return path.read_bytes()
        except OSError as err:
            raise StationError.at(str(path), f"cannot write the key file: {err}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def entries(self) -> list[EscrowEntry]:
        """Every key file in the escrow, by unit and name."""
        out: list[EscrowEntry] = []
        if not self.folder.is_dir():
            return out
        for p in sorted(self.folder.glob("*.bin")):
            unit, _, rest = p.name.rpartition(".bin")[0].rpartition(".")
            if rest in KEY_NAMES and unit:
                out.append(EscrowEntry(unit, rest, p, hashlib.sha256(p.read_bytes()).hexdigest()))
        return out

    def delete(self, unit: str) -> list[Path]:
        """Delete the host copies of a verified unit's keys (the chip holds them now)."""
        gone = []
        for name in KEY_NAMES:
            p = self.path(unit, name)
            if p.exists():
                p.unlink()
                gone.append(p)
        if gone:
            _fsync_dir(self.folder)
        return gone

    def export(
        self,
        dest: str | Path,
        *,
        devices: dict[str, str] | None = None,
        recorded: dict[tuple[str, str], str] | None = None,
    ) -> Path:
        """Copy every escrowed key and a ``manifest.json`` (unit, key, file, SHA-256, device)
        to ``dest``: a new folder (0700), or a ``.tar.gz`` archive (0600). Never overwrites.
        ``recorded``: the key hashes on record (the journal's by default)."""
        dest = Path(dest)
        entries = self.entries()
        if recorded is None:
            recorded = {}
            keys_of = getattr(self.journal, "keys", None)
            if callable(keys_of):
                recorded = keys_of()
        by_unit = {u: d for d, u in (devices or {}).items()}
        manifest = {
            "keys": [
                {
                    "unit": e.unit,
                    "key": e.name,
                    "file": e.path.name,
                    "sha256": e.sha256,
                    "recorded_sha256": recorded.get((e.unit, e.name)),
                    "device": by_unit.get(e.unit),
                }
                for e in entries
            ],
        }
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        if dest.exists():
            raise StationError.at(
                str(dest), "already exists: give a new folder or archive name", key="--out"
            )
        try:
            if dest.name.endswith((".tar.gz", ".tgz")):
                _export_archive(dest, entries, text)
            else:
                dest.mkdir(mode=0o700, parents=True)
                for e in entries:
                    target = dest / e.path.name
                    shutil.copyfile(e.path, target)
                    os.chmod(target, 0o600)
                (dest / "manifest.json").write_text(text, encoding="utf-8")
        except OSError as err:
            raise StationError.at(
                str(dest), f"cannot export there: {err.strerror or err}", key="--out"
            ) from None
        return dest


def _export_archive(dest: Path, entries: Iterable[EscrowEntry], manifest: str) -> None:
    import io

    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w:gz") as tar:
        for e in entries:
            info = tar.gettarinfo(str(e.path), arcname=f"keys/{e.path.name}")
            info.mode = 0o600
            with e.path.open("rb") as src:
                tar.addfile(info, src)
        data = manifest.encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(data))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
