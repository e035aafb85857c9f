"""The lot file, ``lot.toml``, alone: :class:`LotSettings`, read (every problem located as
``lot.toml:LINE:COL: key: message``) and written back (the New-lot dialog).

Imports station.errors and the flashing layer's chip names; what the lot's files hold is checked
by :func:`station.production.lot.open_lot`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.errors import ProblemList, StationError
from station.flashing.types import CHIPS
from station.ledger.connection import DEFAULT_LEASE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_MAX_LOT_FILE = 1024 * 1024  # a lot file is a few dozen lines
KNOWN_KEYS = (
    "name",
    "config",
    "values",
    "partition_table",
    "partition",
    "chip",
    "nvs_version",
    "fileid",
    "scan_column",
    "secret_columns",
    "firmware",
    "encryption",
    "homekit",
    "label",
    "security",  # checked by station.security (eFuse recipes)
    "matter",
    "lease",  # seconds a station's claims stay its own without a renewal (a line of stations)
)


ENCRYPTION_KEYS = ("keyfile", "hmac_keyfile", "keygen")


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class LotSettings:
    """What a lot file says; paths are absolute (resolved against the lot file's folder)."""

    name: str
    path: Path  # the lot file
    config: Path
    values: Path
    partition_table: Path
    partition: str | None = None
    chip: str = "esp32"
    nvs_version: int = 2
    fileid: str | None = None
    scan_column: str | None = None
    secret_columns: tuple[str, ...] = ()
    firmware: Path | None = None
    encryption: Mapping[str, Any] = field(default_factory=dict)
    homekit: Mapping[str, Any] = field(default_factory=dict)
    label: Mapping[str, Any] = field(default_factory=dict)
    matter: Mapping[str, Any] = field(default_factory=dict)  # docs/matter.md
    lease: float = DEFAULT_LEASE  # docs/line.md; ``station run --lease`` overrides it

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def default_db(self) -> Path:
        """The ledger beside the lot file: ``<name>.station.db``."""
        return self.folder / f"{self.name}.station.db"


class Locator:
    """Finds where a key is written in a TOML text, for located messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def find(self, key: str, table: str | None = None) -> tuple[int, int]:
        """(line, column) of ``key`` (inside ``table`` if given), else of the table, else 0, 0."""
        k = re.escape(key)
        top = re.compile(rf'^(\s*)(?:"{k}"|{k})\s*=')
        inline = re.compile(rf'[{{,]\s*(?:"{k}"|({k}))\s*=')
        in_table: str | None = None
        table_at = (0, 0)
        for n, line in enumerate(self.lines, 1):
            header = re.match(r"^\s*\[\s*([A-Za-z0-9_.\"-]+)\s*\]", line)
            if header:
                in_table = header.group(1).strip('"')
                if in_table == table:
                    table_at = (n, header.start(1))
                continue
            if in_table != table and not (table and in_table is None):
                continue
            if table is None or in_table == table:
                m = top.match(line)
                if m:
                    return n, len(m.group(1)) + 1
            elif re.match(rf"^\s*{re.escape(table)}\s*=", line):
                m2 = inline.search(line)
                if m2:
                    return n, m2.start(1) + 1 if m2.group(1) else m2.start() + 2
        if table_at != (0, 0):
            return table_at
        return self.find(table) if table else (0, 0)


def read_lot_file(path: str | Path) -> LotSettings:
    """Read and check a lot file; StationError with every problem located."""
    settings, problems = parse_lot_file(path)
    problems.raise_if_any()
    assert settings is not None
    return settings


def _deep_line(text: str, limit: int = 32) -> int:
    """The line where brackets first nest deeper than ``limit`` (strings are not told apart:
    only for pointing at a line)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        for ch in line:
            depth += 1 if ch in "[{" else -1 if ch in "]}" else 0
            if depth > limit:
                return number
    return 0


def parse_lot_file(path: str | Path) -> tuple[LotSettings | None, ProblemList]:
    """The lot file's settings and its problems. Settings are returned despite problems when
    the files the lot names were found (bad optional values fall back to their defaults), so
    that :func:`open_lot` can report the problems of the inputs in the same run; a file that
    cannot be read or parsed at all raises StationError."""
    path = Path(path)
    file = str(path)
    from station.files import InputFileError, read_input

    try:  # a regular file only, size-capped: a FIFO or /dev/zero named as the lot is refused
        raw = read_input(path, _MAX_LOT_FILE, "a lot file")
    except InputFileError as err:
        if err.missing:
            raise StationError.at(file, "lot file not found") from None
        raise StationError.at(file, f"cannot read the lot file: {err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise StationError.at(file, "not UTF-8 text", line=line) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(err))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(err))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        raise StationError.at(file, f"not valid TOML: {msg}", line=line, column=col) from None
    except RecursionError:  # tomllib recurses per nesting level
        raise StationError.at(
            file,
            "not valid TOML for a lot: arrays or tables nested too deeply",
            line=_deep_line(text),
        ) from None

    loc = Locator(text)
    problems = ProblemList()
    folder = path.resolve().parent

    def bad(key: str, message: str, table: str | None = None) -> None:
        line, col = loc.find(key, table)
        problems.add(file, line, col, f"{table}.{key}" if table else key, message)

    for key in data:
        if key not in KNOWN_KEYS:
            bad(key, f"unknown key (known: {', '.join(KNOWN_KEYS)})")

    def text_value(key: str, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                problems.add(file, 0, 0, key, "missing (required)")
            return None
        if not isinstance(value, str) or not value.strip():
            bad(key, "must be a non-empty text in quotes")
            return None
        return value

    def file_value(key: str, required: bool = False, folder_ok: bool = False) -> Path | None:
        value = text_value(key, required)
        if value is None:
            return None
        p = (folder / value).resolve()
        if not p.exists():
            bad(key, f"{value}: no such file")
            return None
        if p.is_dir() and not folder_ok:
            bad(key, f"{value}: is a folder, expected a file")
            return None
        return p

    name = text_value("name", required=True)
    if name is not None and not NAME_RE.match(name):
        bad("name", "use 1-64 letters, digits, '.', '_' or '-' (it names the ledger file)")
        name = None
    config = file_value("config", required=True)
    values = file_value("values", required=True)
    table = file_value("partition_table", required=True, folder_ok=True)
    partition = text_value("partition")
    firmware = file_value("firmware", folder_ok=True)
    chip = data.get("chip", "esp32")
    if not isinstance(chip, str) or chip not in CHIPS:
        bad("chip", f"unknown chip {chip!r} (one of: {', '.join(CHIPS)})")
        chip = "esp32"
    version = data.get("nvs_version", 2)
    if isinstance(version, bool) or version not in (1, 2):
        bad("nvs_version", "must be 1 or 2")
        version = 2
    fileid = text_value("fileid")
    scan_column = text_value("scan_column")
    secret = data.get("secret_columns", [])
    if not isinstance(secret, list) or not all(isinstance(s, str) and s for s in secret):
        bad("secret_columns", 'must be a list of column names, e.g. ["pin", "token"]')
        secret = []
    lease = data.get("lease", DEFAULT_LEASE)
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 1 <= lease <= 3600:
        bad("lease", "must be a number of seconds from 1 to 3600, e.g. lease = 30")
        lease = DEFAULT_LEASE
    tables: dict[str, dict[str, Any]] = {}
    for key in ("encryption", "homekit", "label", "matter"):
        value = data.get(key, {})
        if not isinstance(value, dict):
            bad(key, "must be a table, e.g. " + key + " = { ... }")
            value = {}
        tables[key] = value
    enc = tables["encryption"]
    for key in enc:
        if key not in ENCRYPTION_KEYS:
            bad(key, f"unknown encryption key (known: {', '.join(ENCRYPTION_KEYS)})", "encryption")
    given = [k for k in ENCRYPTION_KEYS if k in enc]
    if len(given) > 1:
        bad(given[1], f"give one of {', '.join(ENCRYPTION_KEYS)}, not several", "encryption")
    resolved_enc: dict[str, Any] = {}
    if "keygen" in enc:
        if not isinstance(enc["keygen"], bool):
            bad("keygen", "must be true or false", "encryption")
        elif enc["keygen"]:
            resolved_enc["keygen"] = True
    for key in ("keyfile", "hmac_keyfile"):
        if key in enc:
            value = enc[key]
            if not isinstance(value, str) or not value:
                bad(key, "must be a file name in quotes", "encryption")
                continue
            p = (folder / value).resolve()
            if not p.is_file():
                bad(key, f"{value}: no such file", "encryption")
                continue
            resolved_enc[key] = p
    problems.items.sort(key=lambda p: (p.line == 0, p.line, p.column))
    if not (name and config and values and table):
        return None, problems
    return LotSettings(
        name=name,
        path=path.resolve(),
        config=config,
        values=values,
        partition_table=table,
        partition=partition,
        chip=chip,
        nvs_version=int(version),
        fileid=fileid,
        scan_column=scan_column,
        secret_columns=tuple(secret),
        firmware=firmware,
        encryption=resolved_enc,
        homekit=tables["homekit"],
        label=tables["label"],
        matter=tables["matter"],
        lease=float(lease),
    ), problems


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (Path, str)):
        s = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to a lot file")


def write_lot_file(settings: LotSettings, path: str | Path) -> None:
    """Write a lot file (for the window's "new lot" dialog); paths relative where possible."""
    path = Path(path)
    folder = path.resolve().parent

    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        try:
            return Path(p).resolve().relative_to(folder).as_posix()
        except ValueError:
            return str(Path(p).resolve())

    items: list[tuple[str, Any]] = [
        ("name", settings.name),
        ("config", rel(settings.config)),
        ("values", rel(settings.values)),
        ("partition_table", rel(settings.partition_table)),
        ("partition", settings.partition),
        ("chip", settings.chip),
        ("nvs_version", settings.nvs_version),
        ("fileid", settings.fileid),
        ("scan_column", settings.scan_column),
        ("secret_columns", list(settings.secret_columns) or None),
        ("firmware", rel(settings.firmware)),
        (
            "encryption",
            {k: v if isinstance(v, bool) else rel(Path(v)) for k, v in settings.encryption.items()}
            or None,
        ),
        ("homekit", dict(settings.homekit) or None),
        ("label", dict(settings.label) or None),
        ("matter", dict(settings.matter) or None),
        ("lease", settings.lease if settings.lease != DEFAULT_LEASE else None),
    ]
    lines = [f"{k} = {_toml_value(v)}" for k, v in items if v is not None]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
