"""Fuzzing: whatever the input, the partition layer answers with a table or a clean StationError.

Never another exception (that would be a traceback on the operator's screen), and every problem
is located in the file it came from.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from station.errors import StationError
from station.partitions import (
    Partition,
    PartitionTable,
    find_factory_partition,
    flash_map,
    parse_binary,
    parse_csv_text,
    to_binary,
    validate,
)
from tests.partitions import tables

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_junk = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=",\n\r"),
    max_size=12,
)
_names = (
    st.sampled_from(
        ["nvs", "fctry", "factory_nvs", "", "x" * 17, "ota_0", "é" * 9, "a\x00b", "tab\there"]
    )
    | _junk
)
_types = (
    st.sampled_from(
        [
            "app",
            "data",
            "DATA",
            "0x40",
            "0x3F",
            "",
            "bootloader",
            "partition_table",
            "1",
            "0x100",
            "-1",
            "junk",
            "2k",
        ]
    )
    | _junk
)
_subtypes = (
    st.sampled_from(
        [
            "nvs",
            "factory",
            "ota_0",
            "ota_15",
            "ota_16",
            "nvs_keys",
            "primary",
            "recovery",
            "ota",
            "",
            "0x20",
            "0xff",
            "test",
            "phy",
        ]
    )
    | _junk
)
_numbers = (
    st.sampled_from(
        [
            "",
            "0x9000",
            "0x10000",
            "64K",
            "1M",
            "-2M",
            "0x1OOO",
            "0",
            "4294967296",
            "0x3000",
            "-0x1000",
            "1k",
            "m",
            "0b101",
            "1_000",
        ]
    )
    | st.integers(min_value=-(2**33), max_value=2**33).map(hex)
    | _junk
)
_flags = st.sampled_from(["", "encrypted", "readonly", "encrypted:readonly", "bogus", ":"]) | _junk
_line = st.tuples(_names, _types, _subtypes, _numbers, _numbers, _flags).map(", ".join)
_comment = st.sampled_from(["# Name, Type, SubType, Offset, Size, Flags", "", "   ", "#"])
_csv = st.lists(_line | _comment, max_size=12).map("\n".join)


def _exercise(table: PartitionTable) -> None:
    """Everything downstream of parsing must also be clean on whatever the parser accepted."""
    for problem in validate(table, 4 * 0x100000):
        assert problem.file == table.source
    try:
        find_factory_partition(table)
    except StationError as err:
        assert err.problems
    flash_map(table, 4 * 0x100000, chip="esp32")
    try:
        binary = to_binary(table)
    except StationError as err:
        assert err.problems
        return
    assert len(binary) == 0xC00
    assert parse_binary(binary, "b").partitions == table.partitions


def _parse(text: str, **kw: object) -> None:
    try:
        table = parse_csv_text(text, "fuzz.csv", **kw)  # type: ignore[arg-type]
    except StationError as err:
        assert err.problems and err.exit_code == 2
        assert all(p.file == "fuzz.csv" and p.line >= 1 and p.column >= 1 for p in err.problems)
        return
    _exercise(table)


@FUZZ
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    _parse(text)


@FUZZ
@given(
    _csv,
    st.sampled_from([0x8000, 0xC000, 0x10000, 0x0]),
    st.sampled_from([None, 0x0, 0x1000, 0x2000, 0x9000]),
)
def test_csv_shaped_text(text: str, table_offset: int, bootloader_offset: int | None) -> None:
    _parse(text, table_offset=table_offset, bootloader_offset=bootloader_offset)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    try:
        table = parse_binary(data, "fuzz.bin")
    except StationError as err:
        assert err.problems and all(p.file == "fuzz.bin" for p in err.problems)
        return
    _exercise(table)


_VALID = to_binary(parse_csv_text(tables.HOMEKIT))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 0xBFF), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_valid_table(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_VALID)
    for at, value in flips:
        data[at] = value
    try:
        table = parse_binary(bytes(data), "fuzz.bin")
    except StationError as err:
        assert err.problems
        return
    _exercise(table)


_partition = st.builds(
    Partition,
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=16),
    type=st.integers(0, 0xFE),
    subtype=st.integers(0, 0xFE),
    offset=st.integers(0, 0xFFFFFFFF),
    size=st.integers(0, 0xFFFFFFFF),
    encrypted=st.booleans(),
    readonly=st.booleans(),
)


@FUZZ
@given(st.lists(_partition, max_size=94))
def test_binary_round_trip(parts: list[Partition]) -> None:
    table = PartitionTable(tuple(parts), "t")
    binary = to_binary(table)
    assert len(binary) == 0xC00
    assert parse_binary(binary).partitions == table.partitions
