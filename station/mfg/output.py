"""Writing output files: atomically (temporary file + rename) and never over an existing file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from station.errors import StationError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_new(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Writes ``data`` to ``path``, which must not exist yet; readers never see a partial file.

    ``secret`` files (keys) are created readable by their owner only (0600) and flushed to disk
    before they get their name: they are the only copy of a device's keys.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, _FLAGS, 0o600 if secret else 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if secret:
                f.flush()
                os.fsync(f.fileno())
        _link_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)  # fails if the name exists: no race with another writer
    except FileExistsError:
        raise StationError.at(str(path), "already exists; not overwritten") from None
    except OSError:
        # file systems without hard links (FAT on a USB stick): check, then rename
        if path.exists():
            raise StationError.at(str(path), "already exists; not overwritten") from None
        os.replace(tmp, path)


def bin_name(name: str) -> str:
    """nvs_partition_gen's rule for key file names: ``.bin`` is added when there is no suffix."""
    return name if os.path.splitext(name)[1] else name + ".bin"
