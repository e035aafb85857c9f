"""The firmware set of an ESP-IDF build as write regions, to go with the factory image.

``flasher_args.json`` (in the build folder) names the files and their offsets: bootloader,
partition table, app, and whatever else the project flashes (otadata, …).
:func:`firmware_regions` turns them into :class:`WriteRegion` s verified by the device's MD5
(``readback=False``): firmware is large, and reading megabytes back through a ROM loader takes
minutes, while the chip's own MD5 over the written flash proves the same thing. The factory
image keeps its full read-back (it is small, and it is decoded).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from station.errors import Problem, ProblemList, StationError
from station.files import MAX_FLASH_FILE, InputFileError, read_input
from station.flashing.types import WriteRegion

if TYPE_CHECKING:
    from station.partitions import FlasherArgs

FLASHER_ARGS = "flasher_args.json"


def find_flasher_args(path: str | Path) -> Path:
    """``flasher_args.json`` itself, or the one in an ESP-IDF build folder; StationError if
    there is none."""
    p = Path(path)
    if p.is_dir():
        candidate = p / FLASHER_ARGS
        if not candidate.is_file():
            raise StationError.at(
                str(p),
                f"not an ESP-IDF build folder: no {FLASHER_ARGS} (run idf.py build first)",
                key="--firmware",
            )
        return candidate
    if not p.exists():
        raise StationError.at(str(p), "no such file or folder", key="--firmware")
    return p


def _region_name(args: FlasherArgs, offset: int, path: Path) -> str:
    known = {
        args.bootloader_offset: "bootloader",
        args.table_offset: "partition table",
        args.app_offset: "app",
    }
    return known.get(offset) or path.name


def firmware_regions(flasher_args: FlasherArgs) -> tuple[WriteRegion, ...]:
    """The files of a :class:`station.partitions.FlasherArgs` as write regions, by offset,
    MD5-verified (``readback=False``). StationError with every unreadable, empty or
    overlapping file."""
    problems = ProblemList()
    regions: list[WriteRegion] = []
    source = str(flasher_args.path)
    for offset, path in flasher_args.files:
        try:
            data = read_input(path, MAX_FLASH_FILE, "a flash image")
        except InputFileError as err:
            problems.add(str(path), 0, 0, "flash_files", str(err))
            continue
        if not data:
            problems.add(str(path), 0, 0, "flash_files", "the file is empty")
            continue
        name = _region_name(flasher_args, offset, Path(path))
        regions.append(WriteRegion(offset, data, name, readback=False))
    for problem in overlap_problems(regions, source=source, key="flash_files"):
        problems.items.append(problem)
    problems.raise_if_any()
    return tuple(sorted(regions, key=lambda r: r.offset))


def load_firmware(path: str | Path) -> tuple[FlasherArgs, tuple[WriteRegion, ...]]:
    """Read a build folder or its ``flasher_args.json``: ``(FlasherArgs, regions)``."""
    from station.partitions import read_flasher_args

    args = read_flasher_args(find_flasher_args(path))
    return args, firmware_regions(args)


def overlap_problems(
    regions: Iterable[WriteRegion], *, source: str = "", key: str = "ADDR"
) -> list[Problem]:
    """One problem per region that starts inside the one before it (by offset)."""
    ordered = sorted(regions, key=lambda r: r.offset)
    out: list[Problem] = []
    for a, b in itertools.pairwise(ordered):
        end = a.offset + len(a.data)
        if end > b.offset:
            out.append(
                Problem(
                    source or b.name,
                    0,
                    0,
                    key,
                    f"{b.name or 'region'} at 0x{b.offset:x} overlaps {a.name or 'region'} "
                    f"(0x{a.offset:x}..0x{end:x})",
                )
            )
    return out


def describe_regions(regions: Sequence[WriteRegion]) -> str:
    """``"bootloader@0x1000, partition table@0x8000, app@0x10000"`` for logs."""
    return ", ".join(f"{r.name or 'region'}@0x{r.offset:x}" for r in regions)
