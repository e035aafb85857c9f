"""Reading the lot's CSV files: UTF-8 (BOM accepted), physical line numbers, blank lines skipped."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

from station.errors import ProblemList
from station.files import MAX_INPUT_FILE, InputFileError, read_input


def read_text(path: Path, problems: ProblemList, what: str) -> str | None:
    """The file's text, or None after adding the problems (missing, unreadable, not UTF-8)."""
    try:  # a regular file only: a FIFO would wait forever, /dev/zero never ends
        data = read_input(path, MAX_INPUT_FILE, f"a {what}")
    except InputFileError as err:
        if err.missing:
            problems.add(str(path), 0, 0, "-", f"{what} not found")
        elif os.path.isdir(path):
            problems.add(str(path), 0, 0, "-", f"{what} is a folder, not a CSV file")
        else:
            problems.add(str(path), 0, 0, "-", f"the {what}: {err}")
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
