"""CSV parsing: the tables ESP-IDF ships and the seeds', with offsets derived by hand.

The rules (gen_esp32part.py): the first free offset is table offset + 0x1000 = 0x9000; a blank
offset is the previous partition's end rounded up to 0x10000 for apps and 0x1000 for anything
else; K = 1024, M = 1024 * 1024.
"""

from __future__ import annotations

import pytest

from station.errors import StationError
from station.partitions import parse_csv_text, parse_number, to_csv
from tests.partitions import tables

M, K = 0x100000, 0x400

# (name, type, subtype, offset, size, flags)
EXPECTED = {
    # all offsets explicit
    "singleapp": [
        ("nvs", "data", "nvs", 0x9000, 0x6000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("factory", "app", "factory", 0x10000, 1 * M, ()),
    ],
    # nvs: 0x9000 (first free), ends 0x9000 + 0x6000 = 0xF000; phy_init: 0xF000, ends 0x10000;
    # factory: 0x10000 is 64K-aligned, ends 0x110000; coredump: 0x110000, 64K = 0x10000
    "singleapp_coredump": [
        ("nvs", "data", "nvs", 0x9000, 0x6000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("factory", "app", "factory", 0x10000, 0x100000, ()),
        ("coredump", "data", "coredump", 0x110000, 0x10000, ()),
    ],
    # 1500K = 1500 * 1024 = 1536000 = 0x177000; factory ends 0x10000 + 0x177000 = 0x187000
    "singleapp_large": [
        ("nvs", "data", "nvs", 0x9000, 0x6000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("factory", "app", "factory", 0x10000, 0x177000, ()),
    ],
    # coredump after factory: 0x187000 is already 4K-aligned
    "singleapp_large_coredump": [
        ("nvs", "data", "nvs", 0x9000, 0x6000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("factory", "app", "factory", 0x10000, 0x177000, ()),
        ("coredump", "data", "coredump", 0x187000, 0x10000, ()),
    ],
    # nvs_key after factory (ends 0x110000)
    "singleapp_encr_nvs": [
        ("nvs", "data", "nvs", 0x9000, 0x6000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("factory", "app", "factory", 0x10000, 0x100000, ()),
        ("nvs_key", "data", "nvs_keys", 0x110000, 0x1000, ("encrypted",)),
    ],
    # ota_0 after factory (0x110000, 64K-aligned), ota_1 after ota_0 (0x210000)
    "two_ota": [
        ("nvs", "data", "nvs", 0x9000, 0x4000, ()),
        ("otadata", "data", "ota", 0xD000, 0x2000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("factory", "app", "factory", 0x10000, 0x100000, ()),
        ("ota_0", "app", "ota_0", 0x110000, 0x100000, ()),
        ("ota_1", "app", "ota_1", 0x210000, 0x100000, ()),
    ],
    # nvs 0x9000+0x4000 = 0xD000; otadata 0xD000+0x2000 = 0xF000; phy 0xF000 -> 0x10000;
    # factory (type 0 = app, subtype 0 = factory) 0x10000 -> 0x110000; coredump -> 0x120000;
    # ota_0 at 0x120000 (64K-aligned already) -> 0x220000; ota_1 at 0x220000 -> 0x320000
    "two_ota_coredump": [
        ("nvs", "data", "nvs", 0x9000, 0x4000, ()),
        ("otadata", "data", "ota", 0xD000, 0x2000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("factory", "app", "factory", 0x10000, 0x100000, ()),
        ("coredump", "data", "coredump", 0x110000, 0x10000, ()),
        ("ota_0", "app", "ota_0", 0x120000, 0x100000, ()),
        ("ota_1", "app", "ota_1", 0x220000, 0x100000, ()),
    ],
    # nvs 0x9000 -> 0xF000; otadata 0xF000 -> 0x11000; phy 0x11000 -> 0x12000;
    # ota_0: 0x12000 rounded up to 64K = 0x20000; 1700K = 1740800 = 0x1A9000, ends 0x1C9000;
    # ota_1: 0x1C9000 rounded up to 64K = 0x1D0000, ends 0x1D0000 + 0x1A9000 = 0x379000
    "two_ota_large": [
        ("nvs", "data", "nvs", 0x9000, 0x6000, ()),
        ("otadata", "data", "ota", 0xF000, 0x2000, ()),
        ("phy_init", "data", "phy", 0x11000, 0x1000, ()),
        ("ota_0", "app", "ota_0", 0x20000, 0x1A9000, ()),
        ("ota_1", "app", "ota_1", 0x1D0000, 0x1A9000, ()),
    ],
    # as two_ota with all offsets blank; nvs_key after ota_1 (ends 0x310000)
    "two_ota_encr_nvs": [
        ("nvs", "data", "nvs", 0x9000, 0x4000, ()),
        ("otadata", "data", "ota", 0xD000, 0x2000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("factory", "app", "factory", 0x10000, 0x100000, ()),
        ("ota_0", "app", "ota_0", 0x110000, 0x100000, ()),
        ("ota_1", "app", "ota_1", 0x210000, 0x100000, ()),
        ("nvs_key", "data", "nvs_keys", 0x310000, 0x1000, ("encrypted",)),
    ],
    # seed 000: explicit offsets; fctry at 0x10000, 0x6000 bytes
    "seed_000": [
        ("nvs", "data", "nvs", 0x9000, 0x6000, ()),
        ("phy_init", "data", "phy", 0xF000, 0x1000, ()),
        ("fctry", "data", "nvs", 0x10000, 0x6000, ()),
        ("factory", "app", "factory", 0x20000, 0x100000, ()),
    ],
    # the book: nvs 0x9000 -> 0xF000; otadata 0xF000 -> 0x11000; phy 0x11000 -> 0x12000;
    # ota_0 explicit 0x20000, 1600K = 1638400 = 0x190000, ends 0x1B0000 (64K-aligned);
    # ota_1 0x1B0000 -> 0x340000; fctry explicit 0x340000, right after ota_1
    "seed_001": [
        ("nvs", "data", "nvs", 0x9000, 0x6000, ()),
        ("otadata", "data", "ota", 0xF000, 0x2000, ()),
        ("phy_init", "data", "phy", 0x11000, 0x1000, ()),
        ("ota_0", "app", "ota_0", 0x20000, 0x190000, ()),
        ("ota_1", "app", "ota_1", 0x1B0000, 0x190000, ()),
        ("fctry", "data", "nvs", 0x340000, 0x6000, ()),
    ],
    # sec_cert: custom type 0x3F, blank subtype = 'undefined' (0x06); nvs explicit 0x10000;
    # otadata 0x16000 -> 0x18000; phy 0x18000 -> 0x19000; ota_0 explicit 0x20000 (0x190000);
    # ota_1 0x1B0000 -> 0x340000; factory_nvs 0x340000; nvs_keys 0x346000
    "homekit": [
        ("sec_cert", "0x3f", "0x06", 0xD000, 0x3000, ()),
        ("nvs", "data", "nvs", 0x10000, 0x6000, ()),
        ("otadata", "data", "ota", 0x16000, 0x2000, ()),
        ("phy_init", "data", "phy", 0x18000, 0x1000, ()),
        ("ota_0", "app", "ota_0", 0x20000, 0x190000, ()),
        ("ota_1", "app", "ota_1", 0x1B0000, 0x190000, ()),
        ("factory_nvs", "data", "nvs", 0x340000, 0x6000, ()),
        ("nvs_keys", "data", "nvs_keys", 0x346000, 0x1000, ()),
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_and_seed_tables(name: str) -> None:
    table = parse_csv_text(tables.ALL[name], f"{name}.csv")
    got = [
        (p.name, p.type_name, p.subtype_name, p.offset, p.size, p.flags) for p in table.partitions
    ]
    assert got == EXPECTED[name]
    assert table.source == f"{name}.csv" and table.format == "csv"
    assert table.table_offset == 0x8000


def test_numbers_of_types_and_subtypes() -> None:
    t = parse_csv_text(tables.HOMEKIT)
    assert [(p.type, p.subtype) for p in t.partitions] == [
        (0x3F, 0x06),
        (1, 2),
        (1, 0),
        (1, 1),
        (0, 0x10),
        (0, 0x11),
        (1, 2),
        (1, 4),
    ]
    assert [p.line for p in t.partitions] == [3, 4, 5, 6, 7, 8, 9, 10]


def test_names_equal_numbers() -> None:
    # ESP-IDF's test_type_subtype_names: names and magic numbers give the same table
    magic = parse_csv_text(
        "myapp, 0, 0,, 0x100000\nmyota_0, 0, 0x10,, 0x100000\nmyota_15, 0, 0x1f,, 0x100000\n"
        "mytest, 0, 0x20,, 0x100000\nmyota_status, 1, 0,, 0x100000\n"
    )
    named = parse_csv_text(
        "myapp, app, factory,, 0x100000\nmyota_0, APP, ota_0,, 0x100000\n"
        "myota_15, app, OTA_15,, 0x100000\nmytest, app, test,, 0x100000\n"
        "myota_status, Data, ota,, 0x100000\n"
    )
    assert magic.partitions == named.partitions


def test_every_subtype_name() -> None:
    names = {
        "data": {
            "ota": 0,
            "phy": 1,
            "nvs": 2,
            "coredump": 3,
            "nvs_keys": 4,
            "efuse": 5,
            "undefined": 6,
            "esphttpd": 0x80,
            "fat": 0x81,
            "spiffs": 0x82,
            "littlefs": 0x83,
            "tee_ota": 0x90,
        },
        "app": {
            "factory": 0,
            "test": 0x20,
            **{f"ota_{i}": 0x10 + i for i in range(16)},
            "tee_0": 0x30,
            "tee_1": 0x31,
        },
    }
    for ptype, subtypes in names.items():
        text = "".join(f"p{i}, {ptype}, {name},, 64K\n" for i, name in enumerate(subtypes))
        got = [p.subtype for p in parse_csv_text(text).partitions]
        assert got == list(subtypes.values())


def test_default_offsets_as_esp_idf_tests_them() -> None:
    # ESP-IDF's test_default_offsets
    t = parse_csv_text(
        "first, app, factory,, 1M\nsecond, data, 0x15,, 1M\nminidata, data, 0x40,, 32K\n"
        "otherapp, app, factory,, 1M\n"
    )
    assert [p.offset for p in t.partitions] == [0x10000, 0x110000, 0x210000, 0x220000]


def test_negative_size_means_up_to() -> None:
    # ESP-IDF's test_negative_size_to_offset: -2M = "up to 0x200000"
    t = parse_csv_text("first, app, factory, 0x10000, -2M\nsecond, data, 0x15, , 1M\n")
    assert (t.partitions[0].size, t.partitions[1].offset) == (0x200000 - 0x10000, 0x200000)


def test_suffixes_and_bases() -> None:
    assert parse_number("64k") == 64 * K
    assert parse_number("1M") == M
    assert parse_number("0x9000") == 0x9000
    assert parse_number("36864") == 0x9000
    assert parse_number("-2M") == -2 * M
    with pytest.raises(ValueError):
        parse_number("12Q")


def test_table_offset_moves_the_first_free_offset() -> None:
    t = parse_csv_text("nvs, data, nvs,, 0x6000\n", table_offset=0xC000)
    assert t.partitions[0].offset == 0xD000 and t.table_offset == 0xC000


def test_flags_both() -> None:
    t = parse_csv_text("fctry, data, nvs, 0x10000, 0x1000, readonly:encrypted\n")
    p = t.partitions[0]
    assert p.readonly and p.encrypted and p.flags == ("encrypted", "readonly")


def test_spaces_inside_the_flags_are_refused_as_gen_esp32part_does() -> None:
    # gen_esp32part: "CSV flag column contains unknown flag ' readonly'"
    assert _problems("fctry, data, nvs, 0x10000, 0x1000, encrypted: readonly\n") == [
        "partitions.csv:1:36: fctry: flag ' readonly' has spaces around it, which ESP-IDF's "
        "gen_esp32part refuses (unknown flag); join flags with ':' and no spaces "
        "(encrypted:readonly)"
    ]


def test_bootloader_and_table_entries_take_their_offsets() -> None:
    text = (
        "bootloader, bootloader, primary, N/A, N/A\n"
        "partition_table, partition_table, primary, N/A, N/A\n"
        "nvs, data, nvs,, 0x6000\n"
    )
    t = parse_csv_text(text, bootloader_offset=0x1000)
    assert [(p.offset, p.size) for p in t.partitions] == [
        (0x1000, 0x7000),  # from the bootloader offset up to the table
        (0x8000, 0x1000),  # the table's own sector
        (0x9000, 0x6000),  # not moved by the two entries above
    ]
    with pytest.raises(StationError) as err:
        parse_csv_text(text)
    assert [str(p) for p in err.value.problems] == [
        "partitions.csv:1:34: bootloader: the primary bootloader's offset depends on the chip "
        "and the build configuration and is not known here; load the table from the build folder "
        "(flasher_args.json) instead"
    ]


def test_to_csv_round_trip() -> None:
    for text in tables.ALL.values():
        t = parse_csv_text(text)
        assert parse_csv_text(to_csv(t)).partitions == t.partitions


def _problems(text: str, **kw: object) -> list[str]:
    with pytest.raises(StationError) as err:
        parse_csv_text(text, **kw)  # type: ignore[arg-type]
    assert err.value.exit_code == 2
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "fctry,,nvs,,0x6000",
            "partitions.csv:1:7: fctry: type is empty: write app, data, or a number "
            "(custom types 0x40-0xFE)",
        ),
        (
            "fctry, date, nvs, , 0x6000",
            "partitions.csv:1:8: fctry: unknown partition type "
            "'date': known types are app, data, bootloader, "
            "partition_table, or a number 0x40-0xFE",
        ),
        (
            "fctry, 0x1FF, nvs, , 0x6000",
            "partitions.csv:1:8: fctry: type 0x1FF is out of range (0x00-0xFE)",
        ),
        (
            "fctry, data, nvz, , 0x6000",
            "partitions.csv:1:14: fctry: unknown subtype 'nvz' for "
            "type data: known names: ota, phy, nvs, coredump, "
            "nvs_keys, efuse, undefined, esphttpd, fat, spiffs, "
            "littlefs, tee_ota; or a number 0x00-0xFE",
        ),
        (
            "x, 0x40, foo, , 0x6000",
            "partitions.csv:1:10: x: unknown subtype 'foo' for type "
            "0x40: known names: none for this type; or a number "
            "0x00-0xFE",
        ),
        (
            "x, data, 256, , 0x6000",
            "partitions.csv:1:10: x: subtype 256 is out of range (0x00-0xFE)",
        ),
        (
            "app0, app, , , 1M",
            "partitions.csv:1:12: app0: an app partition needs a subtype "
            "(factory, ota_0..ota_15, test)",
        ),
        (
            "fctry, data, nvs, 0x1OOOO, 0x6000",
            "partitions.csv:1:19: fctry: offset '0x1OOOO' is "
            "not a number (write 0x9000, 36864 or 36K)",
        ),
        (
            "fctry, data, nvs, 0x100000000, 0x6000",
            "partitions.csv:1:19: fctry: offset "
            "0x100000000 is outside the 32-bit flash "
            "address range",
        ),
        (
            "fctry, data, nvs, 0x10000",
            "partitions.csv:1:26: fctry: size is empty: write the size, e.g. 0x6000, 24K or 1M",
        ),
        (
            "fctry, data, nvs, , 24KB",
            "partitions.csv:1:21: fctry: size '24KB' is not a number (write 0x6000, 24576 or 24K)",
        ),
        (
            "fctry, data, nvs, , 0x1ffffffff",
            "partitions.csv:1:21: fctry: size 0x1ffffffff does not fit in 32 bits",
        ),
        (
            "fctry, data, nvs, , 0x6000, readonl",
            "partitions.csv:1:29: fctry: unknown flag "
            "'readonl': known flags are encrypted, readonly "
            "(separate several with ':')",
        ),
        (
            "fctry, data, nvs, 0x10000, -0x8000",
            "partitions.csv:1:28: fctry: size 0x8000 "
            "(negative: 'up to this address') ends at or "
            "before the partition's start 0x10000",
        ),
        (
            "fctry, data, nvs, 0xfffff000, 0x2000",
            "partitions.csv:1:31: fctry: the partition "
            "ends at 0x100001000, past the 4 GiB address "
            "range",
        ),
        (", data, nvs, , 0x6000", "partitions.csv:1:1: -: the partition has no name"),
        (
            "fc\x00try, data, nvs, , 0x6000",
            "partitions.csv:1:1: fc\x00try: the name contains a "
            "control character; use letters, digits and _",
        ),
        (
            "fctry, data, nvs, $FCTRY_OFFSET, 0x6000",
            "partitions.csv:1:19: fctry: $FCTRY_OFFSET: "
            "environment variables are not expanded by "
            "the station (the result would depend on the "
            "operator's shell); write the value itself",
        ),
    ],
)
def test_syntax_errors_are_located(line: str, problem: str) -> None:
    assert _problems(line + "\n") == [problem]


def test_all_syntax_problems_at_once() -> None:
    text = (
        "# Name, Type, SubType, Offset, Size, Flags\n"
        "nvs, data, nvs, , 0x6000\n"
        "bad1, data, nope, , 0x6000\n"
        "\n"
        "  bad2, data, nvs, , 6 pages\n"
        "fctry, data, nvs, , 0x6000, shiny\n"
    )
    assert _problems(text, file="lot/partitions.csv") == [
        "lot/partitions.csv:3:13: bad1: unknown subtype 'nope' for type data: known names: ota, "
        "phy, nvs, coredump, nvs_keys, efuse, undefined, esphttpd, fat, spiffs, littlefs, "
        "tee_ota; or a number 0x00-0xFE",
        "lot/partitions.csv:5:22: bad2: size '6 pages' is not a number (write 0x6000, 24576 or "
        "24K)",
        "lot/partitions.csv:6:29: fctry: unknown flag 'shiny': known flags are encrypted, "
        "readonly (separate several with ':')",
    ]


def test_comments_blank_lines_and_extra_columns_are_ignored() -> None:
    t = parse_csv_text("\n   \n# c\n  # indented comment\nx, data, nvs, , 0x6000, , # note, more\n")
    assert [(p.name, p.line) for p in t.partitions] == [("x", 5)]


def test_empty_text_is_an_empty_table() -> None:
    assert parse_csv_text("").partitions == ()


def test_other_bootloader_entries_need_the_bootloader_offset() -> None:
    text = "rec, bootloader, recovery, N/A, N/A\nbl_ota, bootloader, ota, 0x200000, N/A\n"
    assert _problems(text) == [
        "partitions.csv:1:28: rec: the recovery bootloader's offset depends on the chip and the "
        "build configuration and is not known here; load the table from the build folder "
        "(flasher_args.json) instead",
        "partitions.csv:2:36: bl_ota: a bootloader partition is as large as the space between "
        "the primary bootloader and the table, and the primary bootloader's offset depends on "
        "the chip; load the table from the build folder (flasher_args.json) instead",
    ]
    t = parse_csv_text(text, bootloader_offset=0x0, recovery_bootloader_offset=0x100000)
    assert [(p.offset, p.size) for p in t.partitions] == [(0x100000, 0x8000), (0x200000, 0x8000)]


def test_a_recovery_bootloader_moves_the_next_blank_offset() -> None:
    # gen_esp32part skips only the *primary* bootloader and table when placing blank offsets
    t = parse_csv_text(
        "rec, bootloader, recovery, N/A, N/A\nnext, data, fat, , 0x1000\n",
        table_offset=0x8000,
        bootloader_offset=0x1000,
        recovery_bootloader_offset=0x20000,
    )
    assert [(p.offset, p.size) for p in t.partitions] == [(0x20000, 0x7000), (0x27000, 0x1000)]
