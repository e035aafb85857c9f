"""``station partitions TABLE [--json]``: what the station understood of a partition table."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from typing import Any, TextIO

from station.errors import Problem, StationError
from station.partitions.checks import (
    check_app_image,
    check_bootloader_image,
    find_factory_partition,
    flash_map,
    validate,
)
from station.partitions.loader import flash_size_of, load_table, parse_flash_size
from station.partitions.model import BOOTLOADER_OFFSETS, MapRegion, Partition, PartitionTable
from station.partitions.sizes import size_text


def _hex(n: int) -> str:
    return f"0x{n:x}"


def _part_json(p: Partition) -> dict[str, Any]:
    return {
        "name": p.name,
        "type": p.type,
        "type_name": p.type_name,
        "subtype": p.subtype,
        "subtype_name": p.subtype_name,
        "offset": p.offset,
        "size": p.size,
        "end": p.end,
        "encrypted": p.encrypted,
        "readonly": p.readonly,
        "flags": list(p.flags),
        "line": p.line,
    }


def _region_json(r: MapRegion) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "name": r.name,
        "offset": r.offset,
        "size": r.size,
        "end": r.end,
        "written": r.written,
    }


def _verdict(factory: Partition | None, problems: list[Problem]) -> str:
    if problems:
        n = len(problems)
        return f"NOT OK: {n} problem{'s' if n > 1 else ''} (listed on stderr)"
    assert factory is not None
    return (
        f"OK: the station writes {_hex(factory.size)} bytes ({size_text(factory.size)}) at "
        f"{_hex(factory.offset)}, partition {factory.name!r}"
    )


def _print_text(
    table: PartitionTable,
    flash_size: int | None,
    factory: Partition | None,
    regions: list[MapRegion],
    verdict: str,
    out: TextIO,
) -> None:
    kind = "binary table" if table.format == "binary" else "CSV"
    print(
        f"{table.source} ({kind}, table at {_hex(table.table_offset)}"
        + (f", {size_text(flash_size)} flash" if flash_size else "")
        + ")",
        file=out,
    )
    rows = [("Name", "Type", "SubType", "Offset", "Size", "End", "Flags")]
    for p in table.partitions:
        rows.append(
            (
                p.name,
                p.type_name,
                p.subtype_name,
                _hex(p.offset),
                _hex(p.size),
                _hex(p.end),
                ":".join(p.flags),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (c.ljust(w) for c, w in zip(row, widths, strict=True))
        print("  " + "  ".join(cells).rstrip(), file=out)
    print(file=out)
    if factory is not None:
        print(
            f"factory partition: {factory.name}  offset {_hex(factory.offset)}  size "
            f"{_hex(factory.size)} ({size_text(factory.size)})  end {_hex(factory.end)}",
            file=out,
        )
    else:
        print("factory partition: not found", file=out)
    print(f"verdict: {verdict}", file=out)
    print(file=out)
    print("flash map:", file=out)
    for r in regions:
        mark = "  <- the station writes here" if r.written else ""
        print(
            f"  {r.offset:#010x}-{r.end - 1:#010x}  {r.kind:<10}  {r.name}  "
            f"({size_text(r.size)}){mark}",
            file=out,
        )


def _image_size(path: str, what: str, problems: list[Problem]) -> int | None:
    """The size of a regular file, or None with a located problem."""
    try:
        st = os.stat(path)
    except OSError as err:
        problems.append(Problem(path, 0, 0, what, f"cannot read: {err.strerror or err}"))
        return None
    if not stat.S_ISREG(st.st_mode):
        problems.append(Problem(path, 0, 0, what, "not a regular file"))
        return None
    return st.st_size


def show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the table, the factory partition and a verdict; exit 2 with every problem if any."""
    out = out or sys.stdout
    table = load_table(args.table, table_offset=getattr(args, "offset", None))
    flash_size: int | None = None
    if getattr(args, "flash_size", None):
        flash_size = parse_flash_size(args.flash_size, "--flash-size")
    else:
        flash_size = flash_size_of(table.flasher_args)
    chip = getattr(args, "chip", None) or (table.flasher_args.chip if table.flasher_args else None)
    problems = validate(table, flash_size)
    factory: Partition | None = None
    try:
        factory = find_factory_partition(table, getattr(args, "partition", None))
    except StationError as err:
        problems.extend(err.problems)
    images: list[str] = []
    app = getattr(args, "app", None)
    if app:
        size = _image_size(app, "app image", problems)
        if size is not None:
            app_offset = table.flasher_args.app_offset if table.flasher_args else None
            found = check_app_image(table, size, file=app, offset=app_offset)
            problems.extend(found)
            if not found:
                images.append(f"app image {app}: 0x{size:x} bytes, fits")
    boot = getattr(args, "bootloader", None)
    if boot:
        size = _image_size(boot, "bootloader image", problems)
        boot_offset = table.bootloader_offset
        if boot_offset is None and chip:
            boot_offset = BOOTLOADER_OFFSETS.get(chip.lower())
        if boot_offset is None:
            problems.append(
                Problem(
                    boot,
                    0,
                    0,
                    "bootloader",
                    "the bootloader offset depends on the chip: give --chip or a build folder",
                )
            )
        elif size is not None:
            found = check_bootloader_image(table, size, file=boot, bootloader_offset=boot_offset)
            problems.extend(found)
            if not found:
                images.append(f"bootloader image {boot}: 0x{size:x} bytes, fits")
    regions = flash_map(table, flash_size, factory.name if factory else None, chip=chip)
    verdict = _verdict(factory, problems)
    if args.json:
        doc = {
            "source": table.source,
            "format": table.format,
            "table_offset": table.table_offset,
            "bootloader_offset": table.bootloader_offset,
            "flash_size": flash_size,
            "chip": chip,
            "partitions": [_part_json(p) for p in table.partitions],
            "factory": _part_json(factory) if factory else None,
            "map": [_region_json(r) for r in regions],
            "ok": not problems,
            "verdict": verdict,
            "problems": [str(p) for p in problems],
            "images": images,
        }
        json.dump(doc, out, indent=2)
        out.write("\n")
    else:
        _print_text(table, flash_size, factory, regions, verdict, out)
        for line in images:
            print(line, file=out)
    out.flush()
    if problems:
        raise StationError(problems)
    return 0
