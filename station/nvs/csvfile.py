"""Reading nvs_partition_gen's ``key,type,encoding,value`` CSV into :class:`NvsEntry` records."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator

from station.errors import ProblemList, StationError
from station.files import MAX_INPUT_FILE, InputFileError, read_input
from station.nvs.model import NvsEntry

COLUMNS = ("key", "type", "encoding", "value")


def decode_text(data: bytes, file: str) -> str:
    """UTF-8 text (a BOM is allowed); StationError naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise StationError.at(
            file, "not UTF-8 text (save the file as UTF-8)", line=line, column=column
        ) from None


def csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each CSV row; lines starting with '#' and blank rows skipped.

    Comments are dropped line by line before CSV parsing, as Espressif's tools do.
    """
    # universal newlines, as a file opened in text mode reads; no other line breaks
    lines = io.StringIO(text.replace("\r\n", "\n").replace("\r", "\n")).readlines()
    numbers: list[int] = []

    def feed() -> Iterator[str]:
        for number, line in enumerate(lines, 1):
            if line.startswith("#"):
                continue
            numbers.append(number)
            yield line

    reader = csv.reader(feed(), strict=False)
    consumed = 0
    for row in reader:
        start = numbers[consumed] if consumed < len(numbers) else len(lines)
        consumed = len(numbers)
        if not row or all(not f.strip() for f in row):
            continue
        yield start, row


def read_nvs_csv(path: str | os.PathLike[str]) -> list[NvsEntry]:
    """Entries of a ``key,type,encoding,value`` CSV; StationError with every structural problem.

    The header names the columns (any order, as the official tool reads them by name). Rows whose
    fields do not match the header are reported: a value holding an unquoted comma would
    otherwise be cut silently. Type and encoding are stripped and lower-cased.
    """
    file = str(path)
    try:  # a regular file only: a FIFO would wait forever, /dev/zero never ends
        data = read_input(path, MAX_INPUT_FILE, "a CSV file")
    except InputFileError as err:
        raise StationError.at(file, f"cannot read: {err}") from None
    text = decode_text(data, file)
    problems = ProblemList()
    entries: list[NvsEntry] = []
    rows = csv_rows(text)
    header = next(rows, None)
    if header is None:
        raise StationError.at(file, "empty file: expected a header line key,type,encoding,value")
    hline, names = header
    names = [n.strip().lower() for n in names]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise StationError.at(
            file,
            "the header must name the columns key,type,encoding,value"
            f" (missing: {', '.join(missing)})",
            line=hline,
            column=1,
        )
    pos = {c: names.index(c) for c in COLUMNS}
    for line, row in rows:
        if len(row) > len(names) and any(f.strip() for f in row[len(names) :]):
            problems.add(
                file,
                line,
                len(names) + 1,
                row[pos["key"]] if len(row) > pos["key"] else "-",
                f"{len(row)} fields, the header has {len(names)}"
                ' (put values that contain commas in double quotes: "a,b")',
            )
            continue

        def field(name: str, row: list[str] = row) -> str | None:
            i = pos[name]
            return row[i] if i < len(row) else None

        key = field("key") or ""
        typ = (field("type") or "").strip().lower()
        enc = field("encoding")
        value = field("value")
        if typ != "namespace" and (enc is None or value is None):
            problems.add(
                file,
                line,
                len(row) + 1,
                key or "-",
                f"{len(row)} fields, expected {len(names)} (key,type,encoding,value)",
            )
            continue
        entries.append(
            NvsEntry(
                key=key,
                type=typ,
                encoding=(enc or "").strip().lower() if typ != "namespace" else "",
                value=value or "",
                file=file,
                line=line,
            )
        )
    problems.raise_if_any()
    return entries
