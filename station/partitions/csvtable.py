"""Read partition tables in gen_esp32part's CSV syntax.

``Name, Type, SubType, Offset, Size, Flags`` per line; ``#`` comments; numbers in decimal or 0x
hex with an optional K/M suffix; names or numbers for types and subtypes; blank offsets are placed
after the previous partition (apps on 64 KiB, everything else on 4 KiB), starting right after the
table's own sector; a negative size means "up to that address". Columns after Flags are ignored,
as gen_esp32part ignores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from station.errors import ProblemList
from station.partitions.model import (
    APP_TYPE,
    BOOTLOADER_TYPE,
    DEFAULT_TABLE_OFFSET,
    FLAGS,
    PARTITION_TABLE_TYPE,
    SUBTYPE_PRIMARY,
    SUBTYPE_UNDEFINED,
    SUBTYPES,
    TABLE_SIZE,
    TYPES,
    Partition,
    PartitionTable,
)

_U32 = 0xFFFFFFFF
_VARIABLE = re.compile(r"(?<!\\)\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_RECOVERY = SUBTYPES[BOOTLOADER_TYPE]["recovery"]


def parse_number(text: str) -> int:
    """``0x9000``, ``36864``, ``36K``, ``1M`` or ``-2M`` as an integer; ValueError otherwise."""
    body = text.strip()
    multiplier = 1
    if body[-1:].lower() == "k":
        body, multiplier = body[:-1], 1024
    elif body[-1:].lower() == "m":
        body, multiplier = body[:-1], 1024 * 1024
    return int(body.strip(), 0) * multiplier


@dataclass
class _Field:
    text: str
    column: int  # 1-based column of the field's first non-blank character


def _split(line: str) -> list[_Field]:
    fields = []
    start = 0
    for piece in line.split(","):
        lead = len(piece) - len(piece.lstrip())
        fields.append(_Field(piece.strip(), start + lead + 1))
        start += len(piece) + 1
    while len(fields) < 6:
        fields.append(_Field("", len(line) + 1))
    return fields


def _keyword_or_number(text: str, keywords: dict[str, int]) -> int | None:
    if text.lower() in keywords:
        return keywords[text.lower()]
    try:
        return parse_number(text)
    except ValueError:
        return None


def parse_csv_text(
    text: str,
    file: str = "partitions.csv",
    table_offset: int = DEFAULT_TABLE_OFFSET,
    *,
    bootloader_offset: int | None = None,
    recovery_bootloader_offset: int | None = None,
) -> PartitionTable:
    """Parse a partitions.csv; raises :class:`~station.errors.StationError` with every syntax
    problem, located.

    Only syntax and numbers are checked here; overlaps, alignment and the like are
    :func:`~station.partitions.validate`'s job, so a table can be shown even when it is wrong.
    ``bootloader_offset`` is only needed when the CSV lists the primary bootloader itself.
    """
    problems = ProblemList()
    parsed: list[tuple[Partition, int]] = []  # (partition, column of its size)

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip())
        fields = _split(raw)
        for f in fields:
            f.column = max(f.column, indent + 1)
        name = fields[0].text
        key = name or "-"
        before = len(problems)

        def bad(field: _Field, message: str, key: str = key, number: int = number) -> None:
            problems.add(file, number, field.column, key, message)

        var = _VARIABLE.search(raw)
        if var:
            problems.add(
                file,
                number,
                var.start() + 1,
                key,
                f"${var.group(1)}: environment variables are not expanded by the station "
                "(the result would depend on the operator's shell); write the value itself",
            )
            continue
        if not name:
            bad(fields[0], "the partition has no name")
        elif any(ord(c) < 0x20 or c == "\x7f" for c in name):
            bad(fields[0], "the name contains a control character; use letters, digits and _")
        # type
        ptype: int | None = None
        tfield = fields[1]
        if not tfield.text:
            bad(tfield, "type is empty: write app, data, or a number (custom types 0x40-0xFE)")
        else:
            ptype = _keyword_or_number(tfield.text, TYPES)
            if ptype is None:
                bad(
                    tfield,
                    f"unknown partition type {tfield.text!r}: known types are "
                    f"{', '.join(TYPES)}, or a number 0x40-0xFE",
                )
            elif not 0 <= ptype <= 0xFE:
                bad(tfield, f"type {tfield.text} is out of range (0x00-0xFE)")
                ptype = None
        # subtype
        subtype: int | None = None
        sfield = fields[2]
        if ptype is not None:
            known = SUBTYPES.get(ptype, {})
            if not sfield.text:
                if ptype == APP_TYPE:
                    bad(sfield, "an app partition needs a subtype (factory, ota_0..ota_15, test)")
                else:
                    subtype = SUBTYPE_UNDEFINED
            else:
                subtype = _keyword_or_number(sfield.text, known)
                if subtype is None:
                    names = ", ".join(known) if known else "none for this type"
                    bad(
                        sfield,
                        f"unknown subtype {sfield.text!r} for type "
                        f"{tfield.text}: known names: {names}; or a number 0x00-0xFE",
                    )
                elif not 0 <= subtype <= 0xFE:
                    bad(sfield, f"subtype {sfield.text} is out of range (0x00-0xFE)")
                    subtype = None
        # offset
        offset: int | None = None
        ofield = fields[3]
        fixed_offset = False
        if ptype == BOOTLOADER_TYPE and subtype in (SUBTYPE_PRIMARY, _RECOVERY):
            fixed_offset = True
            offset = bootloader_offset if subtype == SUBTYPE_PRIMARY else recovery_bootloader_offset
            if offset is None:
                which = "primary" if subtype == SUBTYPE_PRIMARY else "recovery"
                bad(
                    ofield,
                    f"the {which} bootloader's offset depends on the chip and the build "
                    "configuration and is not known here; load the table from the build "
                    "folder (flasher_args.json) instead",
                )
        elif ptype == PARTITION_TABLE_TYPE and subtype == SUBTYPE_PRIMARY:
            fixed_offset = True
            offset = table_offset
        elif ofield.text:
            try:
                offset = parse_number(ofield.text)
            except ValueError:
                bad(ofield, f"offset {ofield.text!r} is not a number (write 0x9000, 36864 or 36K)")
            else:
                if not 0 <= offset <= _U32:
                    bad(ofield, f"offset {ofield.text} is outside the 32-bit flash address range")
                    offset = None
        # size
        size: int | None = None
        zfield = fields[4]
        if ptype == BOOTLOADER_TYPE:
            if bootloader_offset is not None:
                size = table_offset - bootloader_offset
            elif not (fixed_offset and offset is None):
                # gen_esp32part: "Primary bootloader offset is not defined" for every bootloader
                # row, the recovery one too (its size is the primary's), unless the row's own
                # offset is already reported above
                bad(
                    zfield,
                    "a bootloader partition is as large as the space between the primary "
                    "bootloader and the table, and the primary bootloader's offset depends on "
                    "the chip; load the table from the build folder (flasher_args.json) instead",
                )
        elif ptype == PARTITION_TABLE_TYPE:
            size = TABLE_SIZE
        elif not zfield.text:
            bad(zfield, "size is empty: write the size, e.g. 0x6000, 24K or 1M")
        else:
            try:
                size = parse_number(zfield.text)
            except ValueError:
                bad(zfield, f"size {zfield.text!r} is not a number (write 0x6000, 24576 or 24K)")
            else:
                if abs(size) > _U32:
                    bad(zfield, f"size {zfield.text} does not fit in 32 bits")
                    size = None
        # flags
        ffield = fields[5]
        flags: set[str] = set()
        for flag in ffield.text.split(":"):
            if not flag:
                continue
            if flag in FLAGS:
                flags.add(flag)
            elif flag.strip() in FLAGS or not flag.strip():
                # gen_esp32part splits on ':' and refuses " readonly" as an unknown flag
                bad(
                    ffield,
                    f"flag {flag!r} has spaces around it, which ESP-IDF's gen_esp32part "
                    "refuses (unknown flag); join flags with ':' and no spaces "
                    "(encrypted:readonly)",
                )
            else:
                bad(
                    ffield,
                    f"unknown flag {flag!r}: known flags are {', '.join(FLAGS)} "
                    "(separate several with ':')",
                )

        if len(problems) != before or ptype is None or subtype is None or size is None:
            continue
        part = Partition(
            name=name,
            type=ptype,
            subtype=subtype,
            offset=-1 if offset is None else offset,
            size=size,
            encrypted="encrypted" in flags,
            readonly="readonly" in flags,
            line=number,
            file=file,
            columns=tuple(f.column for f in fields[:6]),
        )
        parsed.append((part, zfield.column))

    # place blank offsets and resolve negative sizes, in table order, as gen_esp32part does
    partitions: list[Partition] = []
    last_end = table_offset + TABLE_SIZE
    for part, size_column in parsed:
        if part.is_primary_bootloader or part.is_primary_table:
            partitions.append(part)  # where the build puts them; they do not move the others
            continue
        offset = part.offset
        if offset < 0:
            align = 0x10000 if part.type == APP_TYPE else 0x1000
            offset = -(-last_end // align) * align
        size = part.size
        if size < 0:
            size = -size - offset
            if size <= 0:
                problems.add(
                    file,
                    part.line,
                    size_column,
                    part.name,
                    f"size {-part.size:#x} (negative: 'up to this address') ends at or before "
                    f"the partition's start {offset:#x}",
                )
                continue
        if offset + size > _U32 + 1:
            problems.add(
                file,
                part.line,
                size_column,
                part.name,
                f"the partition ends at {offset + size:#x}, past the 4 GiB address range",
            )
            continue
        part = replace(part, offset=offset, size=size)
        partitions.append(part)
        last_end = offset + size

    problems.raise_if_any()
    return PartitionTable(
        partitions=tuple(partitions),
        source=file,
        table_offset=table_offset,
        format="csv",
        bootloader_offset=bootloader_offset,
    )


def to_csv(table: PartitionTable, *, simple: bool = False) -> str:
    """The table in gen_esp32part's CSV form: names for known types and subtypes, other numbers
    in decimal, offsets in hex, sizes with K/M where exact. ``simple`` (gen_esp32part's
    ``simple_formatting``) writes every type and subtype as a decimal number and sizes in hex.
    """
    rows = ["# ESP-IDF Partition Table", "# Name, Type, SubType, Offset, Size, Flags"]
    for p in table.partitions:
        size = f"{p.size:#x}"
        if not simple:
            for unit, suffix in ((0x100000, "M"), (0x400, "K")):
                if p.size % unit == 0:
                    size = f"{p.size // unit}{suffix}"
                    break
        ptype = str(p.type) if simple or p.type_name.startswith("0x") else p.type_name
        known_subtype = not p.subtype_name.startswith("0x")
        subtype = p.subtype_name if known_subtype and not simple else str(p.subtype)
        rows.append(",".join([p.name, ptype, subtype, f"{p.offset:#x}", size, ":".join(p.flags)]))
    return "\n".join(rows) + "\n"


__all__ = ["parse_csv_text", "parse_number", "to_csv"]
