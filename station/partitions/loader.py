"""Load a partition table from a CSV, a binary, or an ESP-IDF build folder.

A build folder holds ``partition_table/partition-table.bin`` and ``flasher_args.json``; the
latter says where the bootloader, the table and the app go and with which flash settings, which
the flashing layer reuses (:func:`read_flasher_args`).
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from station.errors import ProblemList, StationError
from station.files import MAX_SMALL_FILE, InputFileError, read_input
from station.partitions.binary import parse_binary
from station.partitions.csvtable import parse_csv_text, parse_number
from station.partitions.model import (
    DEFAULT_TABLE_OFFSET,
    ENTRY_MAGIC,
    FlasherArgs,
    PartitionTable,
)

TABLE_BIN = Path("partition_table") / "partition-table.bin"
FLASHER_ARGS = "flasher_args.json"
FLASH_SIZES = ("1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB")

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def parse_flash_size(text: str, file: str = "", line: int = 0, key: str = "flash_size") -> int:
    """``4MB``/``4M``/``0x400000``/``4194304`` as bytes; :class:`StationError` otherwise."""
    t = text.strip().upper().replace(" ", "")
    try:
        if t.endswith("MB"):
            value = int(t[:-2], 10) * 0x100000
        elif t.endswith("KB"):
            value = int(t[:-2], 10) * 0x400
        else:
            value = parse_number(t)
    except ValueError:
        value = -1
    if value <= 0:
        raise StationError.at(
            file or "-",
            f"flash size {text!r} is not a size (write 4MB, 16MB or 0x400000)",
            line=line,
            key=key,
        )
    return value


def _decode(data: bytes, file: str) -> str:
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise StationError.at(
            file,
            "not a partition table: neither UTF-8 text (a CSV) nor a "
            "binary table (those start with AA 50)",
            line=line,
        ) from None


def load_table(
    path: str | Path,
    *,
    table_offset: int | None = None,
    bootloader_offset: int | None = None,
) -> PartitionTable:
    """Read a partitions.csv, a binary table, or an ESP-IDF build folder.

    ``table_offset`` is where the table lives in flash (CONFIG_PARTITION_TABLE_OFFSET, default
    0x8000; a build folder's flasher_args.json knows it). Raises :class:`StationError` with every
    problem found; validation is separate (:func:`~station.partitions.validate`).
    """
    p = Path(path)
    if p.is_dir():
        return _load_build_dir(p, table_offset, bootloader_offset)
    try:
        data = read_input(p, MAX_SMALL_FILE, "a partition table")
    except InputFileError as err:
        raise StationError.at(
            str(p), "no such file or folder" if err.missing else str(err)
        ) from None
    offset = DEFAULT_TABLE_OFFSET if table_offset is None else table_offset
    if data[:2] == ENTRY_MAGIC or data[:2] == b"\xeb\xeb" or data[:32] == b"\xff" * 32:
        table = parse_binary(data, str(p), offset)
        if bootloader_offset is not None:
            table = _with(table, bootloader_offset=bootloader_offset)
        return table
    return parse_csv_text(
        _decode(data, str(p)), str(p), offset, bootloader_offset=bootloader_offset
    )


def _with(table: PartitionTable, **changes: Any) -> PartitionTable:
    return replace(table, **changes)


def _load_build_dir(
    folder: Path, table_offset: int | None, bootloader_offset: int | None
) -> PartitionTable:
    binary = folder / TABLE_BIN
    if not binary.is_file():
        hint = ""
        if (folder / "build" / TABLE_BIN).is_file():
            hint = f"; this looks like a project folder, use {folder / 'build'}"
        elif (folder / "partitions.csv").is_file():
            hint = f"; or give the CSV itself: {folder / 'partitions.csv'}"
        raise StationError.at(
            str(folder),
            f"not an ESP-IDF build folder: no {TABLE_BIN.as_posix()} (run idf.py build){hint}",
        )
    args: FlasherArgs | None = None
    if (folder / FLASHER_ARGS).is_file():
        # only the offsets and settings matter here; a missing app image is the flasher's problem
        args = read_flasher_args(folder / FLASHER_ARGS, check_files=False)
    if table_offset is None:
        table_offset = args.table_offset if args and args.table_offset is not None else None
    if bootloader_offset is None and args is not None:
        bootloader_offset = args.bootloader_offset
    try:
        data = read_input(binary, MAX_SMALL_FILE, "a partition table")
    except InputFileError as err:
        raise StationError.at(str(binary), str(err)) from None
    table = parse_binary(
        data,
        str(binary),
        DEFAULT_TABLE_OFFSET if table_offset is None else table_offset,
    )
    return _with(table, bootloader_offset=bootloader_offset, flasher_args=args)


def _line_of(text: str, needle: str) -> int:
    """The line where ``needle`` first appears in ``text`` (1-based), or 0."""
    at = text.find(needle)
    return 0 if at < 0 else text.count("\n", 0, at) + 1


def read_flasher_args(path: str | Path, *, check_files: bool = True) -> FlasherArgs:
    """Parse an ESP-IDF ``flasher_args.json``: the files to write with their offsets, the chip
    and the flash settings. Paths are made absolute (relative to the file's folder); missing
    files are problems unless ``check_files`` is false. Raises :class:`StationError` with every
    problem found.
    """
    p = Path(path)
    file = str(p)
    try:
        text = read_input(p, MAX_SMALL_FILE, "flasher_args.json").decode("utf-8")
    except InputFileError as err:
        raise StationError.at(file, "no such file" if err.missing else str(err)) from None
    except UnicodeDecodeError as err:
        raise StationError.at(file, f"cannot read: {err}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise StationError.at(
            file, f"not valid JSON: {err.msg}", line=err.lineno, column=err.colno
        ) from None
    if not isinstance(doc, dict):
        raise StationError.at(file, "not a flasher_args.json: expected a JSON object")
    problems = ProblemList()

    def where(needle: str) -> int:
        return _line_of(text, f'"{needle}"')

    files: list[tuple[int, Path]] = []
    raw_files = doc.get("flash_files")
    if not isinstance(raw_files, dict) or not raw_files:
        problems.add(
            file,
            where("flash_files"),
            0,
            "flash_files",
            'missing or empty: expected {"0x1000": "bootloader/bootloader.bin", …}',
        )
        raw_files = {}
    for key, rel in raw_files.items():
        line = where(key)
        try:
            offset = parse_number(str(key))
            if offset < 0:
                raise ValueError
        except ValueError:
            problems.add(file, line, 0, "flash_files", f"{key!r} is not a flash offset")
            continue
        if not isinstance(rel, str) or not rel:
            problems.add(file, line, 0, key, "expected a file name")
            continue
        target = (p.parent / rel).resolve()
        if check_files and not target.exists():
            problems.add(file, line, 0, key, f"{rel}: file not found (build the project first)")
        elif check_files and not target.is_file():
            problems.add(
                file, line, 0, key, f"{rel}: not a regular file (a folder, FIFO or device)"
            )
            continue
        files.append((offset, target))

    def offset_of(section: str) -> int | None:
        entry = doc.get(section)
        if not isinstance(entry, dict) or "offset" not in entry:
            return None
        try:
            return parse_number(str(entry["offset"]))
        except ValueError:
            problems.add(
                file, where(section), 0, section, f"offset {entry['offset']!r} is not a number"
            )
            return None

    settings: dict[str, Any] = doc.get("flash_settings", {})
    extra: dict[str, Any] = doc.get("extra_esptool_args", {})
    if not isinstance(settings, dict):
        problems.add(file, where("flash_settings"), 0, "flash_settings", "expected an object")
        settings = {}
    if not isinstance(extra, dict):
        problems.add(
            file, where("extra_esptool_args"), 0, "extra_esptool_args", "expected an object"
        )
        extra = {}
    chip = str(extra.get("chip", "") or "")
    if not chip:
        problems.add(
            file, where("extra_esptool_args"), 0, "chip", "no chip named (extra_esptool_args.chip)"
        )
    result = FlasherArgs(
        path=p.resolve(),
        files=tuple(sorted(files)),
        chip=chip,
        flash_mode=str(settings.get("flash_mode", "keep")),
        flash_freq=str(settings.get("flash_freq", "keep")),
        flash_size=str(settings.get("flash_size", "keep")),
        bootloader_offset=offset_of("bootloader"),
        table_offset=offset_of("partition-table"),
        app_offset=offset_of("app"),
    )
    problems.items.sort(key=lambda problem: problem.line)
    problems.raise_if_any()
    return result


def flash_size_of(args: FlasherArgs | None) -> int | None:
    """The flash size a build was made for, or None when it says ``detect``/``keep``."""
    if args is None or not re.fullmatch(r"\d+MB", args.flash_size):
        return None
    return int(args.flash_size[:-2]) * 0x100000


__all__ = [
    "FLASH_SIZES",
    "flash_size_of",
    "load_table",
    "parse_flash_size",
    "read_flasher_args",
]
