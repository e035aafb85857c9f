"""The binary partition table, as the bootloader reads it at the table offset.

32-byte entries (``<2sBBII16sI``: magic AA 50, type, subtype, offset, size, name, flags), then an
MD5 entry (EB EB, 14 x FF, the MD5 of all entries before it), then 0xFF up to 0xC00 bytes.
Problems in a binary are located by entry number: ``partition-table.bin:3:0: fctry: ...``.
"""

from __future__ import annotations

import hashlib
import struct

from station.errors import ProblemList
from station.partitions.model import (
    ENTRY_MAGIC,
    ENTRY_SIZE,
    FLAGS,
    MAX_ENTRIES,
    MAX_NAME_BYTES,
    MAX_TABLE_LENGTH,
    MD5_MAGIC,
    Partition,
    PartitionTable,
)

_ENTRY = struct.Struct("<2sBBII16sI")
_MD5_PREFIX = MD5_MAGIC + b"\xff" * 14
_END = b"\xff" * ENTRY_SIZE
_KNOWN_FLAGS = sum(1 << bit for bit in FLAGS.values())


def parse_binary(
    data: bytes, file: str = "partition-table.bin", table_offset: int = 0x8000
) -> PartitionTable:
    """Decode a binary table (0xC00 bytes, or a whole 4 KiB sector read from a device).

    Checks the magic of each entry, the MD5 entry when present and the end marker; raises
    :class:`~station.errors.StationError` with every problem found. Data after the end marker
    is ignored.
    """
    problems = ProblemList()
    partitions: list[Partition] = []
    md5 = hashlib.md5()  # noqa: S324 - the format's checksum, not a security measure
    seen_md5 = False
    for index, start in enumerate(range(0, len(data), ENTRY_SIZE), start=1):
        chunk = data[start : start + ENTRY_SIZE]
        if chunk == _END:
            break
        if len(chunk) != ENTRY_SIZE:
            problems.add(
                file,
                index,
                0,
                "-",
                f"the table is cut short: {len(chunk)} bytes at 0x{start:x} where a "
                "32-byte entry or the end marker (32 x FF) should be",
            )
            break
        if chunk[:2] == MD5_MAGIC:
            if seen_md5:
                problems.add(file, index, 0, "md5", "a second MD5 entry; the table is corrupt")
                break
            seen_md5 = True
            if chunk[16:] != md5.digest():
                problems.add(
                    file,
                    index,
                    0,
                    "md5",
                    f"MD5 mismatch: the entries hash to {md5.hexdigest()}, the table "
                    f"says {chunk[16:].hex()}; the table is corrupt or was edited",
                )
            continue
        if chunk[:2] != ENTRY_MAGIC:
            problems.add(
                file,
                index,
                0,
                "-",
                f"not a partition entry: starts with {chunk[:2].hex()} at 0x{start:x}, "
                "expected aa50 (an entry), ebeb (the MD5) or ffff (the end)",
            )
            break
        if seen_md5:
            problems.add(
                file,
                index,
                0,
                "-",
                "a partition entry after the MD5 entry; the bootloader ignores it",
            )
            break
        md5.update(chunk)
        _magic, ptype, subtype, offset, size, raw_name, flags = _ENTRY.unpack(chunk)
        raw_name = raw_name.split(b"\x00", 1)[0]
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            name = raw_name.decode("utf-8", "replace")
            problems.add(file, index, 0, name, "the name is not valid UTF-8")
        if flags & ~_KNOWN_FLAGS:
            problems.add(
                file,
                index,
                0,
                name,
                f"unknown flag bits 0x{flags & ~_KNOWN_FLAGS:08x} (a newer table format?)",
            )
        partitions.append(
            Partition(
                name=name,
                type=ptype,
                subtype=subtype,
                offset=offset,
                size=size,
                encrypted=bool(flags & (1 << FLAGS["encrypted"])),
                readonly=bool(flags & (1 << FLAGS["readonly"])),
                line=index,
                file=file,
            )
        )
    else:  # no end marker before the data ran out
        if not problems:
            problems.add(
                file,
                len(data) // ENTRY_SIZE + 1,
                0,
                "-",
                "no end-of-table marker (32 x FF): the table is truncated or not a partition table",
            )
    problems.raise_if_any()
    return PartitionTable(
        partitions=tuple(partitions), source=file, table_offset=table_offset, format="binary"
    )


def to_binary(table: PartitionTable, *, md5: bool = True) -> bytes:
    """The 0xC00-byte binary gen_esp32part writes: entries, the MD5 entry, 0xFF padding.

    Raises :class:`~station.errors.StationError` if an entry cannot be encoded (name over 16
    bytes, numbers out of range, more than 94 entries); it does not otherwise validate the layout.
    """
    problems = ProblemList()
    if len(table.partitions) > MAX_ENTRIES:
        problems.add(
            table.source,
            0,
            0,
            "-",
            f"{len(table.partitions)} partitions: a table holds at most {MAX_ENTRIES}",
        )
    out = bytearray()
    for p in table.partitions:
        raw_name = p.name.encode("utf-8")
        if len(raw_name) > MAX_NAME_BYTES:
            problems.add(
                p.file or table.source,
                p.line,
                1,
                p.name,
                f"the name is {len(raw_name)} bytes; at most {MAX_NAME_BYTES} fit",
            )
            continue
        if b"\x00" in raw_name:
            problems.add(
                p.file or table.source,
                p.line,
                1,
                p.name,
                "the name contains a NUL character, which would end it early",
            )
            continue
        if not (0 <= p.type <= 0xFE and 0 <= p.subtype <= 0xFE):
            problems.add(p.file or table.source, p.line, 1, p.name, "type or subtype out of range")
            continue
        if not (0 <= p.offset <= 0xFFFFFFFF and 0 <= p.size <= 0xFFFFFFFF):
            problems.add(
                p.file or table.source, p.line, 1, p.name, "offset or size outside 32 bits"
            )
            continue
        flags = (int(p.encrypted) << FLAGS["encrypted"]) | (int(p.readonly) << FLAGS["readonly"])
        out += _ENTRY.pack(ENTRY_MAGIC, p.type, p.subtype, p.offset, p.size, raw_name, flags)
    problems.raise_if_any()
    if md5:
        out += _MD5_PREFIX + hashlib.md5(bytes(out)).digest()  # noqa: S324 - format checksum
    out += b"\xff" * (MAX_TABLE_LENGTH - len(out))
    return bytes(out)


__all__ = ["parse_binary", "to_binary"]
