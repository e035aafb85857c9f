"""validate(): every problem gen_esp32part (or ESP-IDF at run time) would refuse, located."""

from __future__ import annotations

import struct

import pytest

from station.partitions import (
    Partition,
    PartitionTable,
    parse_binary,
    parse_csv_text,
    to_binary,
    validate,
)
from tests.partitions import tables

MB = 0x100000


def _check(text: str, flash_size: int | None = None, **kw: object) -> list[str]:
    table = parse_csv_text(text, "p.csv", **kw)  # type: ignore[arg-type]
    return [str(p) for p in validate(table, flash_size)]


@pytest.mark.parametrize("name", sorted(tables.ALL))
def test_shipped_and_seed_tables_are_valid_on_4mb(name: str) -> None:
    assert _check(tables.ALL[name], 4 * MB) == []


def test_large_tables_do_not_fit_2mb() -> None:
    # two_ota_large: ota_0 ends at 0x1c9000 (fits 2 MB = 0x200000), ota_1 at 0x379000 (does not)
    assert _check(tables.TWO_OTA_LARGE, 2 * MB) == [
        "p.csv:7:35: ota_1: ends at 0x379000, beyond the 2 MB flash (0x200000)",
    ]
    # the book's fctry at 0x340000 needs a 4 MB flash
    assert _check(tables.SEED_001, 2 * MB)[-1] == (
        "p.csv:8:37: fctry: ends at 0x346000, beyond the 2 MB flash (0x200000)"
    )


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (  # overlap with the partition before it
            "nvs, data, nvs, 0x9000, 0x6000\nfctry, data, nvs, 0xe000, 0x6000\n",
            ["p.csv:2:19: fctry: overlaps 'nvs' (0x9000-0xefff); start at 0xf000 or later"],
        ),
        (  # ESP-IDF's test_overlapping_offsets_fail
            "first, app, factory, 0x100000, 2M\nsecond, app, ota_0,  0x200000, 1M\n",
            [
                "p.csv:2:22: second: overlaps 'first' (0x100000-0x2fffff); start at 0x300000 or "
                "later"
            ],
        ),
        (  # an explicit offset inside the table's own sector
            "nvs, data, nvs, 0x8000, 0x6000\n",
            [
                "p.csv:1:17: nvs: offset 0x8000 is inside the partition table's sector "
                "(0x8000-0x8fff); use 0x9000 or higher"
            ],
        ),
        (  # listed out of flash order (no overlap): gen_esp32part refuses it
            "fctry, data, nvs, 0x20000, 0x6000\nnvs, data, nvs, 0x9000, 0x6000\n",
            [
                "p.csv:2:17: nvs: offset 0x9000 goes back before the end of the previous partition "
                "'fctry' (0x26000); list partitions in flash order"
            ],
        ),
        (  # data partitions on 4 KiB
            "fctry, data, nvs, 0x10800, 0x6000\n",
            [
                "p.csv:1:19: fctry: offset 0x10800 is not aligned to 0x1000 (data partitions); "
                "use 0x10000 or 0x11000"
            ],
        ),
        (  # ESP-IDF's test_bad_alignment: apps on 64 KiB
            "app, app, factory, 32K, 1M\n",
            [
                "p.csv:1:20: app: offset 0x8000 is not aligned to 0x10000 (app partitions); use "
                "0x0 or 0x10000",
                "p.csv:1:20: app: offset 0x8000 is inside the partition table's sector "
                "(0x8000-0x8fff); use 0x9000 or higher",
            ],
        ),
        (  # app sizes in whole sectors
            "factory, app, factory, 0x10000, 0x100800\n",
            [
                "p.csv:1:33: factory: app size 0x100800 is not a multiple of 0x1000 (4 KB); use "
                "0x101000"
            ],
        ),
        (  # ESP-IDF's test_unique_name_fail
            "first, app, factory, 0x100000, 1M\nfirst, app, ota_0,  0x200000, 1M\n",
            [
                "p.csv:2:1: first: duplicate name: line 1 already defines 'first'; partition names "
                "must be unique"
            ],
        ),
        (  # 17 bytes of name
            "factory_nvs_data1, data, nvs, , 0x6000\n",
            [
                "p.csv:1:1: factory_nvs_data1: the name is 17 bytes long; at most 16 fit in the "
                "table (ESP-IDF would cut it to 'factory_nvs_data')"
            ],
        ),
        (  # small NVS must be readonly
            "fctry, data, nvs, , 0x2000\n",
            [
                "p.csv:1:21: fctry: NVS partition of 0x2000 bytes: a writable NVS needs at least "
                "0x3000 (3 sectors); enlarge it or flag it readonly"
            ],
        ),
        (  # NVS and flash encryption do not mix
            "fctry, data, nvs, , 0x6000, encrypted\n",
            [
                "p.csv:1:29: fctry: NVS partitions cannot use flash encryption (ESP-IDF refuses "
                "them: ESP_ERR_NVS_WRONG_ENCRYPTION); remove the encrypted flag and use NVS "
                "encryption instead"
            ],
        ),
        (  # otadata and coredump are always written by the firmware
            "otadata, data, ota, , 0x2000, readonly\ncoredump, data, coredump, , 64K, readonly\n",
            [
                "p.csv:1:31: otadata: a data/ota partition is always written by the firmware and "
                "cannot be flagged readonly",
                "p.csv:2:34: coredump: a data/coredump partition is always written by the firmware "
                "and cannot be flagged readonly",
            ],
        ),
        (
            "otadata, data, ota, , 0x1000\n",
            ["p.csv:1:23: otadata: the otadata partition must be 0x2000 bytes, not 0x1000"],
        ),
        (
            "otadata, data, ota, , 0x2000\nota2, data, ota, , 0x2000\n",
            [
                "p.csv:2:1: ota2: a second otadata partition (the first is 'otadata'); only one is "
                "allowed"
            ],
        ),
        (
            "tee_otadata, data, tee_ota, , 0x3000\n",
            ["p.csv:1:31: tee_otadata: the TEE otadata partition must be 0x2000 bytes, not 0x3000"],
        ),
        (
            "x, data, fat, , 0\n",
            ["p.csv:1:17: x: the size is 0; a partition needs at least one sector"],
        ),
        (
            "# only comments\n",
            ["p.csv:0:0: -: the table defines no partitions"],
        ),
    ],
)
def test_each_problem(text: str, problems: list[str]) -> None:
    assert _check(text) == problems


def test_readonly_small_nvs_is_fine() -> None:
    assert _check("fctry, data, nvs, , 0x1000, readonly\n") == []


def test_beyond_flash() -> None:
    assert _check("big, app, factory, , 4M\n", 4 * MB) == [
        "p.csv:1:22: big: ends at 0x410000, beyond the 4 MB flash (0x400000)"
    ]


def test_all_problems_at_once_sorted_by_line() -> None:
    text = (
        "nvs, data, nvs, 0x9000, 0x6000\n"
        "fctry, data, nvs, 0x10001, 0x2000, encrypted\n"
        "averyveryverylongname, data, nvs, , 0x6000, readonly\n"
        "factory, app, factory, 0x20000, 1M\n"
        "fctry, data, nvs, 0x30000, 0x6000\n"
    )
    assert _check(text, 1 * MB) == [
        "p.csv:2:19: fctry: offset 0x10001 is not aligned to 0x1000 (data partitions); use "
        "0x10000 or 0x11000",
        "p.csv:2:28: fctry: NVS partition of 0x2000 bytes: a writable NVS needs at least 0x3000 "
        "(3 sectors); enlarge it or flag it readonly",
        "p.csv:2:36: fctry: NVS partitions cannot use flash encryption (ESP-IDF refuses them: "
        "ESP_ERR_NVS_WRONG_ENCRYPTION); remove the encrypted flag and use NVS encryption instead",
        "p.csv:3:1: averyveryverylongname: the name is 21 bytes long; at most 16 fit in the table "
        "(ESP-IDF would cut it to 'averyveryverylon')",
        "p.csv:4:33: factory: ends at 0x120000, beyond the 1 MB flash (0x100000)",
        "p.csv:5:1: fctry: duplicate name: line 2 already defines 'fctry'; partition names must "
        "be unique",
        "p.csv:5:19: fctry: overlaps 'factory' (0x20000-0x11ffff); start at 0x120000 or later",
    ]


def test_overlap_with_an_earlier_partition_not_just_the_previous() -> None:
    # big spans 0x100000-0x2fffff; small fits after mid in table order but inside big
    text = (
        "big, app, factory, 0x100000, 2M\n"
        "small, data, fat, 0x300000, 0x1000\n"
        "mid, data, fat, 0x200000, 0x1000\n"
    )
    assert _check(text) == [
        "p.csv:3:17: mid: offset 0x200000 goes back before the end of the previous partition "
        "'small' (0x301000); list partitions in flash order",
        "p.csv:3:17: mid: overlaps 'big' (0x100000-0x2fffff)",
    ]


def test_binary_tables_are_checked_in_flash_order_not_table_order() -> None:
    # the bootloader does not care about entry order; only overlaps count
    table = parse_csv_text(tables.SEED_000)
    shuffled = PartitionTable(tuple(reversed(table.partitions)), "x")
    binary = parse_binary(to_binary(shuffled), "dev.bin")
    assert validate(binary) == []
    low = PartitionTable((Partition("nvs", 1, 2, 0x8000, 0x6000),), "x")
    assert [str(p) for p in validate(parse_binary(to_binary(low), "dev.bin"))] == [
        "dev.bin:1:0: nvs: offset 0x8000 is inside the partition table's sector (0x8000-0x8fff); "
        "use 0x9000 or higher",
    ]
    dup = PartitionTable(
        (Partition("a", 1, 0x81, 0x10000, 0x2000), Partition("b", 1, 0x81, 0x11000, 0x2000)), "x"
    )
    assert [str(p) for p in validate(parse_binary(to_binary(dup), "dev.bin"))] == [
        "dev.bin:2:0: b: overlaps 'a' (0x10000-0x11fff)",
    ]


def test_too_many_entries() -> None:
    text = "".join(f"p{i}, data, fat, , 0x1000\n" for i in range(95))
    assert _check(text) == [
        "p.csv:95:1: p94: 95 partitions: the binary table holds at most 94",
    ]


def test_bootloader_and_table_entries_are_not_overlaps() -> None:
    text = (
        "bootloader, bootloader, primary, N/A, N/A\n"
        "partition_table, partition_table, primary, N/A, N/A\n"
        "nvs, data, nvs,, 0x6000\n"
    )
    assert _check(text, bootloader_offset=0x1000) == []


def test_any_subtype_in_a_binary() -> None:
    # 0xFF is ESP_PARTITION_SUBTYPE_ANY: the CSV parser refuses it, a binary can still hold it
    entry = struct.pack("<2sBBII16sI", b"\xaa\x50", 1, 0xFF, 0x10000, 0x3000, b"x", 0)
    table = parse_binary(entry + b"\xff" * 32, "dev.bin")
    assert [str(p) for p in validate(table)] == [
        "dev.bin:1:0: x: type/subtype 0xFF means 'any' and cannot be used in a table"
    ]


def test_binary_names_empty_and_duplicate() -> None:
    parts = (
        Partition("", 1, 0x81, 0x10000, 0x1000),
        Partition("a", 1, 0x81, 0x11000, 0x1000),
        Partition("a", 1, 0x81, 0x12000, 0x1000),
    )
    table = parse_binary(to_binary(PartitionTable(parts, "x")), "dev.bin")
    assert [str(p) for p in validate(table)] == [
        "dev.bin:1:0: -: the partition has no name",
        "dev.bin:3:0: a: duplicate name: entry 2 already defines 'a'; partition names must be "
        "unique",
    ]


def test_below_the_table_and_later_partitions_are_checked_too() -> None:
    # gen_esp32part's verify(): every partition must start at table offset + 0x1000 or later
    text = "nvs, data, nvs, 0x9000, 0x6000\nlow, data, fat, 0x2000, 0x1000\n"
    assert _check(text) == [
        "p.csv:2:17: low: offset 0x2000 is below the partition table (0x8000), where the "
        "bootloader lives; use 0x9000 or higher",
    ]
    assert _check("nvs, data, nvs, 0x9000, 0x6000\n", table_offset=0x10000) == [
        "p.csv:1:17: nvs: offset 0x9000 is below the partition table (0x10000), where the "
        "bootloader lives; use 0x11000 or higher",
    ]
