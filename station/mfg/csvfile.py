"""Reading the lot's CSV files: UTF-8 (BOM accepted), physical line numbers, blank lines skipped."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from station.errors import ProblemList


def read_text(path: Path, problems: ProblemList, what: str) -> str | None:
    """The file's text, or None after adding the problems (missing, unreadable, not UTF-8)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.add(str(path), 0, 0, "-", f"{what} not found")
        return None
    except IsADirectoryError:
        problems.add(str(path), 0, 0, "-", f"{what} is a folder, not a CSV file")
        return None
    except OSError as err:
        problems.add(str(path), 0, 0, "-", f"cannot read the {what}: {err.strerror}")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            column = raw[: err.start].count(b",") + 1
            problems.add(
                str(path),
                number,
                column,
                "-",
                f"not UTF-8 text (byte 0x{raw[err.start]:02x}); save the {what} as UTF-8",
            )
    return None


def records(text: str, path: Path, problems: ProblemList) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) per CSV record; lines of only white space are skipped.

    mfg_gen drops such lines before it reads the files, so they never count as devices.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    previous = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problems.add(str(path), reader.line_num, 0, "-", f"not a valid CSV line: {err}")
            return
        start = previous + 1
        previous = reader.line_num
        if not fields or (len(fields) == 1 and fields[0] and not fields[0].strip()):
            continue  # an empty line, or spaces only ("" is a row with one empty value)
        yield start, fields
