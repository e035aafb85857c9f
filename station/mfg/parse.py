"""Parsing a lot's two CSV files in mfg_gen's format: the config lines (namespaces, keys with
their type and encoding) and the values file's header and rows, every problem located.

Imports station.errors and the value rules of :mod:`station.mfg.values`; what a whole lot means
(the checks across both files, the rows, the images) is :mod:`station.mfg.lot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from station.errors import ProblemList
from station.mfg import values as V
from station.mfg.csvfile import records

TYPES = ("data", "file", "namespace")
MAX_KEY_BYTES = 15


@dataclass(frozen=True)
class ConfigLine:
    """One line of the config CSV: a namespace (encoding "") or a key with its type and encoding."""

    key: str
    type: str
    encoding: str
    repeat: bool
    line: int


def check_name(
    problems: ProblemList, file: str, line: int, column: int, name: str, what: str
) -> bool:
    if name == "":
        problems.add(file, line, column, "-", f"empty {what}")
        return False
    if "\0" in name:
        problems.add(file, line, column, name, f"{what} contains a NUL character")
        return False
    size = len(name.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        problems.add(
            file,
            line,
            column,
            name,
            f"{what} is {size} bytes long; NVS allows at most {MAX_KEY_BYTES}",
        )
        return False
    return True


def parse_config(path: Path, text: str, problems: ProblemList) -> tuple[list[ConfigLine], bool]:
    """The config lines and whether all of them were good."""
    file = str(path)
    lines: list[ConfigLine] = []
    ok = True
    first = True
    seen: dict[tuple[str, str], int] = {}
    namespace = ""
    for number, fields in records(text, path, problems):
        before = len(problems)
        key = fields[0]
        kind = fields[1].strip().lower() if len(fields) > 1 else ""
        if len(fields) < 2:
            problems.add(
                file,
                number,
                2,
                key or "-",
                "missing fields: a config line is key,type,encoding[,REPEAT]",
            )
        elif kind == "namespace":
            if check_name(problems, file, number, 1, key, "namespace name"):
                namespace = key
            if len(fields) > 2 and fields[2] != "":
                problems.add(
                    file,
                    number,
                    3,
                    key,
                    f"a namespace line has no encoding: write {key},namespace,",
                )
            if len(fields) > 3:
                problems.add(file, number, 4, key, "extra fields after a namespace line")
            if not problems.items[before:]:
                lines.append(ConfigLine(key, "namespace", "", False, number))
        else:
            if first:
                problems.add(
                    file,
                    number,
                    2,
                    key or "-",
                    "the first config line must be a "
                    "namespace (name,namespace,), so that keys have a namespace",
                )
            if kind not in TYPES:
                problems.add(
                    file,
                    number,
                    2,
                    key or "-",
                    f"unknown type {kind!r}: use data, file or namespace",
                )
            check_name(problems, file, number, 1, key, "key")
            encoding = V.normal_encoding(fields[2]) if len(fields) > 2 else ""
            if len(fields) < 3:
                problems.add(
                    file,
                    number,
                    3,
                    key or "-",
                    "missing encoding: a config line is key,type,encoding[,REPEAT]",
                )
            else:
                message = V.encoding_problem(encoding)
                if message:
                    problems.add(file, number, 3, key or "-", message)
            repeat = False
            if len(fields) > 3:
                if fields[3] == "REPEAT":
                    repeat = True
                else:
                    problems.add(
                        file,
                        number,
                        4,
                        key or "-",
                        f"unknown field {fields[3]!r}: only REPEAT may follow the encoding",
                    )
            if len(fields) > 4:
                problems.add(
                    file,
                    number,
                    5,
                    key or "-",
                    "extra fields: a config line is key,type,encoding[,REPEAT]",
                )
            if namespace and key:
                other = seen.get((namespace, key))
                if other is not None:
                    problems.add(
                        file,
                        number,
                        1,
                        key,
                        f"key appears twice in namespace {namespace!r} (also line {other})",
                    )
                seen[(namespace, key)] = number
            if not problems.items[before:]:
                lines.append(ConfigLine(key, kind, encoding, repeat, number))
        if problems.items[before:]:
            ok = False
        first = False
    if first:
        problems.add(
            file,
            0,
            0,
            "-",
            "the config file is empty: it needs a namespace line and at least one key",
        )
        ok = False
    return lines, ok


# --------------------------------------------------------------------------- values


@dataclass
class Values:
    header: tuple[str, ...]
    header_line: int
    columns: dict[str, int]
    rows: list[tuple[int, list[str]]]  # (line, fields), short rows padded with ""
    incomplete: set[int]  # indexes of rows with missing or extra fields (already reported)


def parse_values(path: Path, text: str, problems: ProblemList) -> Values | None:
    file = str(path)
    it = iter(records(text, path, problems))
    try:
        header_line, header_fields = next(it)
    except StopIteration:
        problems.add(
            file,
            0,
            0,
            "-",
            "the values file is empty: it needs a header row of keys and one row per device",
        )
        return None
    header = tuple(header_fields)
    columns: dict[str, int] = {}
    for i, name in enumerate(header):
        columns.setdefault(name, i)
    width = len(header)
    rows: list[tuple[int, list[str]]] = []
    incomplete: set[int] = set()
    for number, fields in it:
        n = len(fields)
        if n == width:
            rows.append((number, fields))
            continue
        incomplete.add(len(rows))
        if n < width:
            message = f"missing fields: {n} values for {width} columns of the header"
            problems.add(file, number, n + 1, header[n] or "-", message)
        else:
            message = f"extra fields: {n} values for {width} columns of the header"
            problems.add(file, number, width + 1, "-", message)
        rows.append((number, (fields + [""] * width)[:width]))
    return Values(header, header_line, columns, rows, incomplete)


# --------------------------------------------------------------------------- lot


def columns_of(
    config: list[ConfigLine],
    vals: Values,
    config_path: Path,
    values_path: Path,
    problems: ProblemList,
) -> dict[int, int]:
    """Config line number -> values column index; reports keys without a column."""
    found: dict[int, int] = {}
    for c in config:
        if c.type == "namespace":
            continue
        index = vals.columns.get(c.key)
        if index is None:
            problems.add(
                str(config_path),
                c.line,
                1,
                c.key,
                f"no column {c.key!r} in the values file {values_path.name} "
                f"(header line {vals.header_line})",
            )
            continue
        if vals.header.count(c.key) > 1:
            second = vals.header.index(c.key, index + 1)
            problems.add(
                str(values_path),
                vals.header_line,
                second + 1,
                c.key,
                "column appears twice in the header: which one is the value?",
            )
        found[c.line] = index
    return found


def fill_repeat(
    config: list[ConfigLine],
    col_of: dict[int, int],
    vals: Values,
    values_path: Path,
    problems: ProblemList,
) -> None:
    """REPEAT keys take the first row's value for every device, as mfg_gen does."""
    repeat = [col_of[c.line] for c in config if c.repeat and c.line in col_of]
    if not repeat or not vals.rows:
        return
    first_line, first = vals.rows[0]
    for number, fields in vals.rows[1:]:
        for i in repeat:
            value = fields[i]
            if value != first[i]:
                if value != "":
                    problems.add(
                        str(values_path),
                        number,
                        i + 1,
                        vals.header[i],
                        f"REPEAT key: the value differs from the first row's (line "
                        f"{first_line}), which every device gets; leave it empty",
                    )
                fields[i] = first[i]
