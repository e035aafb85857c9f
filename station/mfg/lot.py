"""A lot in mfg_gen's format: the config CSV, the master values CSV, and one device per row.

:func:`load_mfg` reads and validates the whole lot at once and raises one
:class:`~station.errors.StationError` with every problem, located in the file the user edits:
config problems at the config line, value problems at the values line and that key's column.
:func:`row_entries` gives one device's key,type,encoding,value entries (the intermediate CSV that
mfg_gen writes) and :func:`build_row_image` its NVS image, in memory. Parsing the two CSV files
is :mod:`station.mfg.parse`; what counts as a secret, :mod:`station.mfg.secrets`.

May import station.errors, station.nvs and the modules of station.mfg.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from station.errors import Problem, ProblemList, cap_identical
from station.mfg import values as V
from station.mfg.csvfile import read_text

# "X as X": names that moved to station.mfg.parse / station.mfg.secrets, importable from here
from station.mfg.parse import TYPES as TYPES
from station.mfg.parse import (
    ConfigLine,
    Values,
    columns_of,
    fill_repeat,
    parse_config,
    parse_values,
)
from station.mfg.secrets import MASK as MASK
from station.mfg.secrets import SECRET_ENCODINGS, UNIQUE_SECRET_RE
from station.mfg.secrets import SECRET_NAME_RE as SECRET_NAME_RE
from station.mfg.secrets import mask as mask
from station.mfg.secrets import secret_columns as secret_columns

if TYPE_CHECKING:
    from station.nvs import NvsEntry, XtsKeys
    from station.nvs.encoder import RowEncoder

    # a lot's row encoder, the values columns of its data lines, (line, encoding) of file lines
    _Compiled = tuple[RowEncoder | None, tuple[int, ...], tuple[tuple[int, str], ...]]

MAX_PROBLEMS = 500  # beyond this a lot is plainly wrong; the rest would only bury the first ones
_BAD_NAME_CHARS = re.compile(r'[/\\:*?"<>|\x00-\x1f]')
_FILE_CACHE_BYTES = 64 * 1024 * 1024
_AP_KEYS = ("ap.ssid", "ap.passwd", "ap.authmode")
_NO_LIMIT = 1 << 30  # a partition size for checks that are not about the size


class RowValues(Mapping[str, str]):
    """A row's values by column name (REPEAT values already filled in); cheap for big lots."""

    __slots__ = ("_columns", "_fields")

    def __init__(self, columns: Mapping[str, int], fields: tuple[str, ...]) -> None:
        self._columns = columns
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        return self._fields[self._columns[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"RowValues({dict(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(self._fields)


@dataclass(frozen=True)
class Row:
    """One device of the lot. ``index`` is 0-based over data rows, ``line`` the values CSV line."""

    index: int
    line: int
    values: Mapping[str, str]


class _FileCache:
    """Bytes of type-file values per resolved path, bounded; thread-safe for the workers."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._entries: dict[tuple[str, str], tuple[str, str]] = {}
        self._size = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        return {}  # a copy in a worker process starts empty (locks do not pickle)

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__()  # type: ignore[misc]

    def entry(self, encoding: str, path: str) -> tuple[str, str]:
        """(encoding, value) of the data entry that stands for a type-file value, cached."""
        with self._lock:
            cached = self._entries.get((encoding, path))
        if cached is not None:
            return cached
        entry = V.file_entry_value(encoding, self.read(path))
        with self._lock:
            if self._size + len(entry[1]) <= _FILE_CACHE_BYTES:
                self._entries[(encoding, path)] = entry
                self._size += len(entry[1])
        return entry

    def read(self, path: str) -> bytes:
        with self._lock:
            cached = self._data.get(path)
        if cached is not None:
            return cached
        from station.files import MAX_VALUE_FILE, read_input

        data = read_input(
            path, MAX_VALUE_FILE, "an NVS value"
        )  # a regular file only, size-capped: never a FIFO's wait
        with self._lock:
            if self._size + len(data) <= _FILE_CACHE_BYTES:
                self._data[path] = data
                self._size += len(data)
        return data


class _Encoders:
    """Per NVS version: the lot's fast row encoder (see :class:`station.nvs.encoder.RowEncoder`)
    with the values columns it reads and the lines that hold type-file paths."""

    def __init__(self) -> None:
        self._by_version: dict[int, _Compiled] = {}
        self.file_values: dict[tuple[str, str], str] = {}  # (encoding, path as in the row)

    def __getstate__(self) -> dict[str, object]:
        return {}  # a worker process compiles its own (closures do not pickle)

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__()  # type: ignore[misc]


@dataclass(frozen=True)
class MfgLot:
    """A validated lot: config lines, the values columns and one :class:`Row` per device."""

    config_path: Path
    values_path: Path
    base_dir: Path
    config: tuple[ConfigLine, ...]
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    fileid: str | None
    # things that are allowed but look like mistakes (identical rows, a shared secret, …)
    warnings: tuple[Problem, ...] = ()
    _files: _FileCache = field(default_factory=_FileCache, repr=False, compare=False)
    _encoders: _Encoders = field(default_factory=_Encoders, repr=False, compare=False)

    @property
    def data_lines(self) -> tuple[ConfigLine, ...]:
        """The config lines that carry a value (every line but the namespaces)."""
        return tuple(c for c in self.config if c.type != "namespace")

    @cached_property
    def _plan(self) -> tuple[tuple[int, str, str, str, int], ...]:
        """Per config line: (0 namespace | 1 data | 2 file, key, type, encoding, column)."""
        index = {name: i for i, name in reversed(list(enumerate(self.columns)))}
        return tuple(
            (
                0 if c.type == "namespace" else 1 if c.type == "data" else 2,
                c.key,
                c.type,
                c.encoding,
                index.get(c.key, -1),
            )
            for c in self.config
        )

    @cached_property
    def _csv_plan(self) -> tuple[tuple[str, int], ...]:
        """The intermediate CSV as (fixed text, values column or -1 for a whole fixed line)."""
        plan = [("key,type,encoding,value\r\n", -1)]
        for kind, key, typ, encoding, index in self._plan:
            if kind == 0:
                plan.append((f"{_csv_field(key)},namespace,,\r\n", -1))
            else:
                plan.append((f"{_csv_field(key)},{typ},{_csv_field(encoding)},", index))
        return tuple(plan)

    @cached_property
    def _csv_format(self) -> tuple[str, tuple[int, ...]]:
        """The intermediate CSV as a format string with one {} per value, and their columns."""
        parts = []
        indexes = []
        for text, index in self._csv_plan:
            parts.append(text.replace("{", "{{").replace("}", "}}"))
            if index >= 0:
                parts.append("{}\r\n")
                indexes.append(index)
        return "".join(parts), tuple(indexes)

    def _file_value(self, encoding: str, value: str) -> tuple[str, str]:
        """(encoding, value) of the data entry that stands for a type-file value."""
        return self._files.entry(encoding, self.resolve(value))

    def resolve(self, value: str) -> str:
        """Where a type-file value points: relative to ``base_dir`` (mfg_gen: the working dir)."""
        return value if os.path.isabs(value) else os.path.join(self.base_dir, value)


def _check_file_id(
    fileid: str | None, vals: Values, values_path: Path, problems: ProblemList
) -> None:
    file = str(values_path)
    if fileid is None:
        return
    index = vals.columns.get(fileid)
    if index is None:
        problems.add(
            file,
            vals.header_line,
            0,
            fileid,
            f"--fileid {fileid!r} is not a column of the values file",
        )
        return
    seen: dict[str, int] = {}
    for number, fields in vals.rows:
        value = fields[index]
        if value == "":
            problems.add(
                file,
                number,
                index + 1,
                fileid,
                "empty file id: every device needs one to name its files",
            )
            continue
        if _BAD_NAME_CHARS.search(value) or value in (".", "..") or value != value.strip():
            problems.add(
                file,
                number,
                index + 1,
                fileid,
                f"file id {value!r} cannot be part of a file name "
                '(no / \\ : * ? " < > |, control characters or outer spaces)',
            )
            continue
        folded = value.casefold()
        other = seen.get(folded)
        if other is not None:
            problems.add(
                file,
                number,
                index + 1,
                fileid,
                f"file id {value!r} is also used on line {other}: the files would "
                "overwrite each other (file names ignore case on Windows and macOS)",
            )
        else:
            seen[folded] = number


def _remap(problem: Problem, values_path: Path, row: Row, cols: Mapping[str, int]) -> Problem:
    column = cols.get(problem.key)
    return Problem(
        str(values_path),
        row.line,
        column + 1 if column is not None else 0,
        problem.key,
        problem.message,
    )


def load_mfg(
    config_path: str | os.PathLike[str],
    values_path: str | os.PathLike[str],
    *,
    size: int | None = None,
    version: int = 2,
    fileid: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> MfgLot:
    """Reads and validates a whole lot; raises StationError with every problem found.

    ``size`` (bytes) also checks that every device's data fits a partition of that size.
    ``base_dir`` is where relative type-file values point (default: the working directory, as
    mfg_gen). ``fileid`` is the column that names each device's files.
    """
    cpath, vpath = Path(config_path), Path(values_path)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    problems = ProblemList()
    ctext = read_text(cpath, problems, "config file")
    vtext = read_text(vpath, problems, "values file")
    config: list[ConfigLine] = []
    config_ok = False
    if ctext is not None:
        config, config_ok = parse_config(cpath, ctext, problems)
    vals = parse_values(vpath, vtext, problems) if vtext is not None else None
    if vals is None:
        problems.raise_if_any()
        raise AssertionError("unreachable")
    if not vals.rows:
        problems.add(
            str(vpath),
            vals.header_line,
            0,
            "-",
            "no devices: the values file has a header but no rows",
        )
    col_of = columns_of(config, vals, cpath, vpath, problems)
    fill_repeat(config, col_of, vals, vpath, problems)
    _check_file_id(fileid, vals, vpath, problems)

    columns_map = vals.columns
    rows = tuple(
        Row(i, number, RowValues(columns_map, tuple(fields)))
        for i, (number, fields) in enumerate(vals.rows)
    )
    warnings = _warnings(config, vals, vpath)
    lot = MfgLot(cpath, vpath, base, tuple(config), vals.header, rows, fileid, warnings)
    sizes, bad = _check_values(lot, col_of, vals.incomplete, problems)
    if config_ok and len(col_of) == len(lot.data_lines):
        _check_fit(lot, sizes, bad, size, version, problems)
    order = {str(cpath): 0, str(vpath): 1}
    problems.items.sort(key=lambda p: (order.get(p.file, 2), p.line, p.column))
    problems.items[:] = cap_identical(problems.items)
    if len(problems) > MAX_PROBLEMS:
        extra = len(problems) - MAX_PROBLEMS
        del problems.items[MAX_PROBLEMS:]
        problems.add(str(vpath), 0, 0, "-", f"{extra} more problems not shown")
    problems.raise_if_any()
    return lot


MAX_WARNINGS = 20


def _warnings(config: list[ConfigLine], vals: Values, values_path: Path) -> tuple[Problem, ...]:
    """What is allowed but looks like a mistake: a NUL in a string (the device reads the string
    only up to it), a column without a name, two devices sharing a value of a key or secret
    column, two identical rows. Never shows a value."""
    file = str(values_path)
    found: list[Problem] = []
    for i, name in enumerate(vals.header):
        if not name.strip():
            found.append(
                Problem(file, vals.header_line, i + 1, "-", "warning: a column without a name")
            )
    by_key = {c.key: c for c in config if c.type != "namespace"}
    strings = [
        i for i, n in enumerate(vals.header) if n in by_key and by_key[n].encoding == "string"
    ]
    secret = [
        i
        for i, n in enumerate(vals.header)
        if n
        and not (n in by_key and (by_key[n].type == "file" or by_key[n].repeat))
        and (
            (n in by_key and by_key[n].encoding in SECRET_ENCODINGS)
            or UNIQUE_SECRET_RE.search(n.lower())
        )
    ]
    seen: dict[int, dict[str, int]] = {i: {} for i in secret}
    rows_seen: dict[tuple[str, ...], int] = {}
    for number, fields in vals.rows:
        for i in strings:
            if "\0" in fields[i]:
                found.append(
                    Problem(
                        file,
                        number,
                        i + 1,
                        vals.header[i],
                        "warning: the string holds a NUL character; the device reads it only "
                        "up to there",
                    )
                )
        for i in secret:
            value = fields[i]
            if value:
                other = seen[i].setdefault(value, number)
                if other != number:
                    found.append(
                        Problem(
                            file,
                            number,
                            i + 1,
                            vals.header[i],
                            f"warning: same value as line {other}; two devices would share "
                            "a key or secret",
                        )
                    )
        key = tuple(fields)
        other = rows_seen.setdefault(key, number)
        if other != number:
            found.append(
                Problem(
                    file,
                    number,
                    1,
                    "-",
                    f"warning: the row is identical to line {other}; two devices would get "
                    "the same data",
                )
            )
    found.sort(key=lambda p: (p.line, p.column))
    found = list(cap_identical(found))
    if len(found) > MAX_WARNINGS:
        extra = len(found) - MAX_WARNINGS
        del found[MAX_WARNINGS:]
        found.append(Problem(file, 0, 0, "-", f"warning: {extra} more warnings not shown"))
    return tuple(found)


def _check_values(
    lot: MfgLot, col_of: dict[int, int], incomplete: set[int], problems: ProblemList
) -> tuple[list[tuple[object, ...]], set[int]]:
    """Checks every value of the complete rows, one column at a time (fast for big lots).

    Returns per row a signature of its layout (the byte sizes of its variable-length values),
    and the indexes of the rows with a problem (incomplete ones included).
    """
    file = str(lot.values_path)
    bad = set(incomplete)
    rows = [r for r in lot.rows if r.index not in incomplete] if incomplete else list(lot.rows)
    table = [r.values._fields for r in rows]  # type: ignore[attr-defined]
    columns: list[list[object]] = []
    file_results: dict[tuple[str, str], tuple[str | None, int]] = {}
    for c in lot.config:
        index = col_of.get(c.line)
        if c.type == "namespace" or index is None:
            continue
        if c.type == "file":  # usually one file for all: each distinct path checked once
            values = [f[index] for f in table]
            by_value = {v: _check_file(lot, c.encoding, v, file_results) for v in set(values)}
            results = [by_value[v] for v in values]
        else:
            check = V.value_check(c.encoding)
            values = [f[index] for f in table]
            if len(set(values[:64])) <= 16:  # REPEAT and few-valued columns: check each once
                known = {v: check(v) for v in set(values)}
                results = [known[v] for v in values]
            else:
                results = [check(v) for v in values]
        for row, (message, _n) in zip(rows, results, strict=True):
            if message:
                problems.add(file, row.line, index + 1, c.key, message)
                bad.add(row.index)
        if c.type == "file" or c.encoding not in V.INT_RANGES:
            columns.append([n for _m, n in results])
        if c.key in _AP_KEYS:
            # the codec adds ap.pmk_info only for a non-empty SSID/password and authmode != 0
            columns.append([f[index] not in ("", "0") for f in table])
    signatures: list[tuple[object, ...]] = [()] * len(lot.rows)
    for row, signature in zip(rows, zip(*columns, strict=True), strict=True) if columns else ():
        signatures[row.index] = signature
    return signatures, bad


def _check_file(
    lot: MfgLot, encoding: str, value: str, results: dict[tuple[str, str], tuple[str | None, int]]
) -> tuple[str | None, int]:
    if value == "":
        return "empty file name: a type-file key needs the path of a file", 0
    path = lot.resolve(value)
    known = results.get((path, encoding))
    if known is not None:
        return known
    from station.files import InputFileError

    try:
        result = V.file_content_check(encoding, lot._files.read(path))
    except InputFileError as err:
        hint = f" (relative paths start at {lot.base_dir})" if err.missing else ""
        result = (f"{err}{hint}", 0)
    results[(path, encoding)] = result
    return result


def _check_fit(
    lot: MfgLot,
    sizes: list[tuple[object, ...]],
    bad: set[int],
    size: int | None,
    version: int,
    problems: ProblemList,
) -> None:
    """Lets the codec check one device per distinct set of value sizes (and place it on pages).

    Devices whose values have the same sizes land on the same pages, so one of them stands for
    all; when it has a problem, every device of that group is checked. Without ``size`` only the
    length limits are checked, not whether the data fits.
    """
    from station.nvs import check_entries

    cols = {name: i for i, name in reversed(list(enumerate(lot.columns)))}
    groups: dict[tuple[object, ...], list[Row]] = {}
    for row, signature in zip(lot.rows, sizes, strict=True):
        if row.index not in bad:
            groups.setdefault(signature, []).append(row)

    def check(row: Row) -> list[Problem]:
        found = check_entries(_image_entries(lot, row), size or _NO_LIMIT, version, lot.base_dir)
        if size is None:
            found = [p for p in found if not (p.key == "size" and "not fit" in p.message)]
        return [_remap(p, lot.values_path, row, cols) for p in found]

    for group in groups.values():
        found = check(group[0])
        if not found:
            continue
        problems.extend(found)
        for row in group[1:]:
            if len(problems) > MAX_PROBLEMS:
                return
            problems.extend(check(row))


# --------------------------------------------------------------------------- per device


def row_entries(lot: MfgLot, row: Row) -> list[NvsEntry]:
    """One device's key,type,encoding,value entries: the intermediate CSV mfg_gen writes."""
    from station.nvs import NvsEntry

    file = str(lot.values_path)
    values = row.values
    return [
        NvsEntry(
            c.key,
            c.type,
            c.encoding,
            "" if c.type == "namespace" else values[c.key],
            file,
            row.line,
        )
        for c in lot.config
    ]


def _image_entries(lot: MfgLot, row: Row) -> list[NvsEntry]:
    """Like row_entries, with type-file values replaced by their (cached) content."""
    from station.nvs import NvsEntry

    file = str(lot.values_path)
    fields = row.values._fields  # type: ignore[attr-defined]
    line = row.line
    out = []
    for kind, key, typ, encoding, index in lot._plan:
        if kind == 0:
            out.append(NvsEntry(key, "namespace", "", "", file, line))
        elif kind == 1:
            out.append(NvsEntry(key, typ, encoding, fields[index], file, line))
        else:
            enc, value = lot._file_value(encoding, fields[index])
            out.append(NvsEntry(key, "data", enc, value, file, line))
    return out


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _csv_field(value: str) -> str:
    # what csv.writer (excel dialect, QUOTE_MINIMAL) writes for one field of a 4-field row
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def intermediate_csv(lot: MfgLot, row: Row) -> str:
    """The text of the device's intermediate CSV, as mfg_gen writes it (csv module, CRLF)."""
    fields = row.values._fields  # type: ignore[attr-defined]
    template, indexes = lot._csv_format
    values = [fields[i] for i in indexes]
    joined = "".join(values)  # usually nothing to quote: one look at all values
    if "," in joined or '"' in joined or "\n" in joined or "\r" in joined:
        values = [_csv_field(v) for v in values]
    return template.format(*values)


def build_row_image(
    lot: MfgLot, row: Row, size: int, *, version: int = 2, keys: XtsKeys | None = None
) -> bytes:
    """One device's NVS partition image, in memory; nothing is written."""
    from station.nvs import encode_image

    image = _fast_image(lot, row, size, version, keys)
    if image is not None:
        return image
    return encode_image(
        _image_entries(lot, row), size, version=version, keys=keys, base_dir=lot.base_dir
    )


def _fast_image(
    lot: MfgLot, row: Row, size: int, version: int, keys: XtsKeys | None
) -> bytes | None:
    """The image through the lot's row encoder (the lot's values are validated once, as a
    whole, by load_mfg); None when the checked path must do it (and report any problem)."""
    from station.nvs.encoder import RowEncoder

    known = lot._encoders._by_version.get(version)
    if known is None:
        lines: list[tuple[str, str]] = []
        cols: list[int] = []
        file_lines: list[tuple[int, str]] = []
        for kind, key, _typ, encoding, index in lot._plan:
            if kind == 0:
                lines.append((key, ""))
                continue
            if index < 0:
                lines = []
                break
            if kind == 2:
                file_lines.append((len(cols), encoding))
                encoding = V.file_entry_encoding(encoding)
            lines.append((key, encoding))
            cols.append(index)
        encoder = RowEncoder.create(lines, version) if lines else None
        known = (encoder, tuple(cols), tuple(file_lines))
        lot._encoders._by_version[version] = known
    encoder, columns, files = known
    if encoder is None:
        return None
    fields = row.values._fields  # type: ignore[attr-defined]
    values = [fields[i] for i in columns]
    if files:
        known_files = lot._encoders.file_values
        try:
            for pos, encoding in files:
                path = values[pos]
                value = known_files.get((encoding, path))
                if value is None:
                    value = lot._file_value(encoding, path)[1]
                    if len(known_files) >= 256:
                        known_files.clear()
                    if len(value) <= 1 << 20:
                        known_files[(encoding, path)] = value
                values[pos] = value
        except (OSError, ValueError):  # gone or changed since load_mfg: the checked path says so
            return None
    return encoder.encode(values, size, keys)


def unit_id(lot: MfgLot, row: Row) -> str:
    """What names the device: its --fileid value, else its 1-based row number (as mfg_gen)."""
    if lot.fileid is not None:
        return row.values[lot.fileid]
    return str(row.index + 1)
