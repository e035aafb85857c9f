"""Reading a file a user names: only an ordinary file, and only up to a size limit.

A FIFO would block the reader forever and a device such as ``/dev/zero`` never ends, so both
are refused before a byte is read; a file larger than the limit is refused unread.
"""

from __future__ import annotations

import os
import stat

MAX_BLOB = 508_000  # NVS's largest blob (ESP-IDF: "up to 508000 bytes")
# a type-file value: the hex2bin text of the largest blob, with room for line breaks
MAX_VALUE_FILE = 2 * MAX_BLOB + 65536
MAX_INPUT_FILE = 512 * 1024 * 1024  # a lot's CSV files: far beyond any real lot
MAX_FLASH_FILE = 128 * 1024 * 1024  # anything written to flash: the largest flash ESP-IDF knows
MAX_SMALL_FILE = 16 * 1024 * 1024  # partition tables, key files, flasher_args.json, slot maps


class InputFileError(OSError):
    """A file that cannot be used, in the operator's words; ``missing``: there is no such file."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def _refuse(path: str, st: os.stat_result, limit: int, what: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(f"{path} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(
            f"{path} is not an ordinary file (a FIFO, device or socket); "
            "only a regular file can be read"
        )
    if st.st_size > limit:
        raise InputFileError(
            f"{path} is {st.st_size} bytes: too large for {what} (at most {limit} bytes)"
        )


def read_input(path: str | os.PathLike[str], limit: int, what: str = "this file") -> bytes:
    """The bytes of a file; InputFileError when it is not a regular file, is larger than
    ``limit`` bytes or cannot be read (a symlink loop, no permission)."""
    name = os.fspath(path)
    try:
        _refuse(name, os.stat(name), limit, what)  # before opening: opening a FIFO would block
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except InputFileError:
        raise
    except FileNotFoundError:
        raise InputFileError(f"file not found: {name}", missing=True) from None
    except OSError as err:
        raise InputFileError(f"cannot read {name}: {err.strerror or err}") from None
    try:
        _refuse(name, os.fstat(fd), limit, what)  # the file opened is the one checked
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except InputFileError:
        raise
    except OSError as err:
        raise InputFileError(f"cannot read {name}: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # grew since it was checked
        raise InputFileError(f"{name}: too large for {what} (at most {limit} bytes)")
    return data
