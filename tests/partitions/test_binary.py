"""Binary tables: ESP-IDF's own test vectors, hand-built entries, round trips, corrupt input."""

from __future__ import annotations

import hashlib
import struct

import pytest

from station.errors import StationError
from station.partitions import Partition, PartitionTable, parse_binary, parse_csv_text, to_binary
from tests.partitions import tables

# ESP-IDF components/partition_table/test_gen_esp32part_host/gen_esp32part_tests.py:
# LONGER_BINARY_TABLE, bytes as gen_esp32part writes them, MD5 included
LONGER_BINARY_TABLE = (
    b"\xaa\x50\x00\x00"
    + b"\x00\x00\x01\x00"
    + b"\x00\x00\x10\x00"
    + b"factory\0"
    + b"\0" * 8
    + b"\x00\x00\x00\x00"
    + b"\xaa\x50\x01\x20"
    + b"\x00\x00\x11\x00"
    + b"\x00\x02\x00\x00"
    + b"data"
    + b"\0" * 12
    + b"\x00\x00\x00\x00"
    + b"\xaa\x50\x10\x00"
    + b"\x00\x00\x15\x00"
    + b"\x00\x10\x00\x00"
    + b"second"
    + b"\0" * 10
    + b"\x00\x00\x00\x00"
    + b"\xeb\xeb"
    + b"\xff" * 14
    + b"\xf9\xbd\x06\x1b\x45\x68\x6f\x86\x57\x1a\x2c\xd5\x2a\x1d\xa6\x5b"
    + b"\xff" * 32
)


def _strip_trailing_ffs(data: bytes) -> bytes:
    while data.endswith(b"\xff" * 64):
        data = data[:-32]
    return data


def test_esp_idf_longer_binary_table_both_ways() -> None:
    t = parse_binary(LONGER_BINARY_TABLE)
    assert [(p.name, p.type, p.subtype, p.offset, p.size) for p in t.partitions] == [
        ("factory", 0x00, 0x00, 0x10000, 0x100000),
        # ESP-IDF's comments say 128KB and 1MB; the little-endian bytes say 0x200 and 0x1000
        ("data", 0x01, 0x20, 0x110000, 0x200),
        ("second", 0x10, 0x00, 0x150000, 0x1000),
    ]
    assert t.format == "binary" and [p.line for p in t.partitions] == [1, 2, 3]
    assert _strip_trailing_ffs(to_binary(t)) == LONGER_BINARY_TABLE


def test_esp_idf_binary_entry_md5() -> None:
    # gen_esp32part_tests.test_binary_entry: "first, 0x30, 0xEE, 0x100400, 0x300000"
    t = parse_csv_text("first, 0x30, 0xEE, 0x100400, 0x300000\n")
    tb = _strip_trailing_ffs(to_binary(t))
    assert len(tb) == 64 + 32
    assert tb[0:4] == b"\xaa\x50\x30\xee"
    assert struct.unpack("<LL", tb[4:12]) == (0x100400, 0x300000)
    assert tb[32:48] == b"\xeb\xeb" + b"\xff" * 14
    assert tb[48:64] == b"\x43\x03\x3f\x33\x40\x87\x57\x51\x69\x83\x9b\x40\x61\xb1\x27\x26"


def test_seed_entry_bytes_by_hand() -> None:
    b = to_binary(parse_csv_text(tables.SEED_000))
    # entry 3: fctry, data (0x01), nvs (0x02), offset 0x10000, size 0x6000, no flags
    assert b[64:96] == (
        b"\xaa\x50"
        + b"\x01\x02"
        + b"\x00\x00\x01\x00"
        + b"\x00\x60\x00\x00"
        + b"fctry"
        + b"\x00" * 11
        + b"\x00\x00\x00\x00"
    )
    # entry 4: factory app, offset 0x20000, size 1M
    assert b[96:128] == (
        b"\xaa\x50\x00\x00\x00\x00\x02\x00\x00\x00\x10\x00factory" + b"\x00" * 9 + b"\x00" * 4
    )
    assert b[128:144] == b"\xeb\xeb" + b"\xff" * 14
    assert b[144:160] == hashlib.md5(b[:128]).digest()  # noqa: S324 - the format's checksum
    assert b[160:] == b"\xff" * (0xC00 - 160)
    assert len(b) == 0xC00


def test_flags_bits() -> None:
    t = parse_csv_text(
        "a, data, nvs, 0x9000, 0x1000, encrypted:readonly\nb, data, nvs, 0xa000, 0x1000, readonly\n"
    )
    b = to_binary(t)
    assert b[28:32] == b"\x03\x00\x00\x00" and b[60:64] == b"\x02\x00\x00\x00"
    back = parse_binary(b)
    assert [(p.encrypted, p.readonly) for p in back.partitions] == [(True, True), (False, True)]


@pytest.mark.parametrize("name", sorted(tables.ALL))
def test_round_trip(name: str) -> None:
    table = parse_csv_text(tables.ALL[name])
    binary = to_binary(table)
    back = parse_binary(binary, "x.bin")
    assert back.partitions == table.partitions
    assert to_binary(back) == binary
    # a full 4 KiB sector read from a device parses the same
    assert parse_binary(binary + b"\xff" * 0x400).partitions == table.partitions


def test_without_md5_is_accepted() -> None:
    table = parse_csv_text(tables.SEED_001)
    plain = to_binary(table, md5=False)
    assert plain[6 * 32 : 7 * 32] == b"\xff" * 32
    assert parse_binary(plain).partitions == table.partitions


def test_empty_table() -> None:
    b = to_binary(PartitionTable((), "empty"))
    assert b[:16] == b"\xeb\xeb" + b"\xff" * 14 and b[16:32] == hashlib.md5(b"").digest()  # noqa: S324
    assert parse_binary(b).partitions == ()


def _problems(data: bytes) -> list[str]:
    with pytest.raises(StationError) as err:
        parse_binary(data, "pt.bin")
    return [str(p) for p in err.value.problems]


def test_bad_magic() -> None:
    bad = b"OHAI" + LONGER_BINARY_TABLE[4:]
    assert _problems(bad) == [
        "pt.bin:1:0: -: not a partition entry: starts with 4f48 at 0x0, expected aa50 (an "
        "entry), ebeb (the MD5) or ffff (the end)"
    ]


def test_md5_mismatch() -> None:
    bad = bytearray(LONGER_BINARY_TABLE)
    bad[8] ^= 1  # change factory's size
    (problem,) = _problems(bytes(bad))
    assert problem.startswith("pt.bin:4:0: md5: MD5 mismatch: the entries hash to ")
    assert problem.endswith(
        "the table says f9bd061b45686f86571a2cd52a1da65b; the table is corrupt or was edited"
    )


def test_cut_short_and_no_end_marker() -> None:
    assert _problems(LONGER_BINARY_TABLE[:40]) == [
        "pt.bin:2:0: -: the table is cut short: 8 bytes at 0x20 where a 32-byte entry or the end "
        "marker (32 x FF) should be"
    ]
    assert _problems(LONGER_BINARY_TABLE[:128]) == [
        "pt.bin:5:0: -: no end-of-table marker (32 x FF): the table is truncated or not a "
        "partition table"
    ]
    assert _problems(b"") == [
        "pt.bin:1:0: -: no end-of-table marker (32 x FF): the table is truncated or not a "
        "partition table"
    ]


def test_entry_after_md5_and_second_md5() -> None:
    b = to_binary(parse_csv_text(tables.SEED_000))
    md5_entry = b[128:160]
    assert _problems(b[:160] + b[:32] + b"\xff" * 32) == [
        "pt.bin:6:0: -: a partition entry after the MD5 entry; the bootloader ignores it"
    ]
    assert _problems(b[:160] + md5_entry + b"\xff" * 32) == [
        "pt.bin:6:0: md5: a second MD5 entry; the table is corrupt"
    ]


def test_unknown_flag_bits_and_bad_name() -> None:
    entry = bytearray(struct.pack("<2sBBII16sI", b"\xaa\x50", 1, 2, 0x9000, 0x6000, b"nvs", 0x10))
    assert _problems(bytes(entry) + b"\xff" * 32) == [
        "pt.bin:1:0: nvs: unknown flag bits 0x00000010 (a newer table format?)"
    ]
    entry = bytearray(struct.pack("<2sBBII16sI", b"\xaa\x50", 1, 2, 0x9000, 0x6000, b"\xffx", 0))
    assert _problems(bytes(entry) + b"\xff" * 32) == [
        "pt.bin:1:0: \ufffdx: the name is not valid UTF-8"
    ]


def test_sixteen_byte_name_has_no_terminator() -> None:
    t = parse_csv_text("0123456789abcdef, data, nvs, , 0x6000\n")
    b = to_binary(t)
    assert b[12:28] == b"0123456789abcdef"
    assert parse_binary(b).partitions[0].name == "0123456789abcdef"


def test_to_binary_refuses_what_does_not_fit() -> None:
    long_name = parse_csv_text("0123456789abcdefg, data, nvs, , 0x6000\n", "p.csv")
    with pytest.raises(StationError) as err:
        to_binary(long_name)
    assert [str(p) for p in err.value.problems] == [
        "p.csv:1:1: 0123456789abcdefg: the name is 17 bytes; at most 16 fit"
    ]
    nul = PartitionTable((Partition("a\x00b", 1, 2, 0x9000, 0x6000, line=3, file="q.csv"),), "q")
    with pytest.raises(StationError) as err:
        to_binary(nul)
    assert [str(p) for p in err.value.problems] == [
        "q.csv:3:1: a\x00b: the name contains a NUL character, which would end it early"
    ]
    many = PartitionTable(
        tuple(Partition(f"p{i}", 1, 0x40, 0x10000 + i * 0x1000, 0x1000) for i in range(95)), "m"
    )
    with pytest.raises(StationError, match="95 partitions: a table holds at most 94"):
        to_binary(many)
    assert len(to_binary(PartitionTable(many.partitions[:94], "m"))) == 0xC00
