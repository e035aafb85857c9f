"""Writing output files, never over an existing file: atomically (an unnamed or temporary file
that gets its name when complete) or, for the bulk of a lot's outputs, directly."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

from station.errors import StationError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_TAG = secrets.token_hex(4)  # temporary names: unique per process, a counter within it
_counter = iter(range(1 << 62))
_counter_lock = threading.Lock()


def write_new(
    path: Path | str,
    data: bytes,
    *,
    secret: bool = False,
    atomic: bool = True,
    private: bool = False,
) -> None:
    """Writes ``data`` to ``path``, which must not exist yet.

    ``atomic``: readers never see a partial file, a killed process leaves none. Without it the
    file is created (O_EXCL) and written with one call, which costs the file system less (no
    unnamed file to keep track of; mfg_gen's files are not atomic either); a write that fails
    or is interrupted removes the file.
    ``secret`` files (keys) are always atomic, created readable by their owner only (0600) and
    flushed to disk before they get their name: they are the only copy of a device's keys.
    ``private`` files (a device's values) are created readable by their owner only, too.
    """
    path = os.fspath(path)
    mode = 0o600 if secret or private else 0o666
    try:
        if atomic or secret:
            _write_new(path, data, secret, mode)
        else:
            _write_direct(path, data, mode)
    except StationError:
        raise
    except OSError as err:  # a full disk, a read-only folder: the operator's words, no traceback
        raise StationError.at(path, f"cannot write: {err.strerror or err}") from None


def _write_direct(path: str, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, _FLAGS, mode)
    except FileExistsError:
        raise StationError.at(path, "already exists; not overwritten") from None
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)  # ours (O_EXCL): no partial file stays behind
        raise


def _write_new(path: str, data: bytes, secret: bool, mode: int) -> None:
    if _O_TMPFILE and _write_unnamed(path, data, secret, mode):
        return
    folder, name = os.path.split(path)
    with _counter_lock:
        n = next(_counter)
    tmp = os.path.join(folder, f".{name}.{_TAG}{n}.tmp")
    fd = os.open(tmp, _FLAGS, mode)
    try:
        try:
            _write_all(fd, data)
            if secret:
                os.fsync(fd)
        finally:
            os.close(fd)
        _link_new(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # rare (signals, huge files): go on from where it stopped
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_proc_fd: dict[int, int] = {}  # per process: an open /proc/self/fd, for linkat


def _write_unnamed(path: str, data: bytes, secret: bool, mode: int) -> bool:
    """Linux: write an unnamed file (O_TMPFILE) and give it its name in one step.

    One directory operation instead of three (create, link, unlink), which is most of the cost
    of a small file; readers never see it half-written and a killed run leaves no partial file.
    False when the system or file system cannot, and nothing was done.
    """
    pid = os.getpid()
    try:
        proc = _proc_fd.get(pid)
        if proc is None:
            proc = _proc_fd[pid] = os.open("/proc/self/fd", os.O_RDONLY)
        folder = path[: path.rfind(os.sep) + 1] or "."
        fd = os.open(folder, _O_TMPFILE | os.O_WRONLY, mode)
    except OSError:
        return False
    try:
        _write_all(fd, data)
        if secret:
            os.fsync(fd)
        try:
            os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
        except FileExistsError:
            raise StationError.at(path, "already exists; not overwritten") from None
        except OSError:
            return False  # e.g. no /proc: the named temporary file below will do
    finally:
        os.close(fd)
    return True


def _link_new(tmp: str, path: str) -> None:
    try:
        os.link(tmp, path)  # fails if the name exists: no race with another writer
    except FileExistsError:
        raise StationError.at(path, "already exists; not overwritten") from None
    except OSError:
        # file systems without hard links (FAT on a USB stick): check, then rename
        if os.path.exists(path):
            raise StationError.at(path, "already exists; not overwritten") from None
        os.replace(tmp, path)


class Writer:
    """Writes new files and remembers them, so that a failed run can remove them all again."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def submit(
        self,
        path: Path | str,
        data: bytes,
        *,
        secret: bool = False,
        atomic: bool = True,
        private: bool = False,
    ) -> None:
        """Writes one new file (see :func:`write_new`)."""
        path = os.fspath(path)
        write_new(path, data, secret=secret, atomic=atomic, private=private)
        self.written.append(path)

    def rollback(self) -> None:
        """Removes every file written so far."""
        for path in self.written:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.written.clear()


def bin_name(name: str) -> str:
    """nvs_partition_gen's rule for key file names: ``.bin`` is added when there is no suffix."""
    return name if os.path.splitext(name)[1] else name + ".bin"


def make_folders(paths: Iterable[str], *, private: bool = False) -> None:
    """Creates the folders these files go in; StationError when one cannot be made.

    ``private``: a folder made here is for its owner only (0700); its parents are made as
    usual, and a folder that exists already is left as it is."""
    for folder in sorted({os.path.dirname(p) for p in paths} - {""}):
        try:
            if private and not os.path.isdir(folder):
                parent = os.path.dirname(folder)
                if parent:
                    os.makedirs(parent, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, 0o700)
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise StationError.at(
                folder, f"cannot create the folder: {err.strerror or err}"
            ) from None
