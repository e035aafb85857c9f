"""The factory-data partition, image size, encryption/HomeKit needs, and the flash map."""

from __future__ import annotations

import pytest

from station.errors import StationError
from station.partitions import (
    check_image_fits,
    check_requirements,
    compare_tables,
    find_factory_partition,
    flash_map,
    parse_binary,
    parse_csv_text,
    to_binary,
)
from tests.partitions import tables


def _table(name: str):  # type: ignore[no-untyped-def]
    return parse_csv_text(tables.ALL[name], f"{name}.csv")


def test_seed_000_factory_partition() -> None:
    p = find_factory_partition(_table("seed_000"))
    assert (p.name, p.offset, p.size, p.end, p.line) == ("fctry", 0x10000, 0x6000, 0x16000, 5)


def test_the_books_factory_partition() -> None:
    p = find_factory_partition(_table("seed_001"), "fctry")
    assert (p.offset, p.size, p.end) == (0x340000, 0x6000, 0x346000)


def test_homekit_factory_partition_is_guessed() -> None:
    assert find_factory_partition(_table("homekit")).name == "factory_nvs"


def _error(table, name=None) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(StationError) as err:
        find_factory_partition(table, name)
    return [str(p) for p in err.value.problems]


def test_no_candidate() -> None:
    assert _error(_table("two_ota")) == [
        "two_ota.csv:0:0: partition: no factory-data partition: the table has no NVS partition "
        "besides 'nvs' (add e.g. 'fctry, data, nvs, , 0x6000')"
    ]


def test_ambiguous_lists_candidates() -> None:
    t = parse_csv_text(tables.SEED_000 + "mfg, data, nvs, 0x120000, 0x6000\n", "p.csv")
    assert _error(t) == [
        "p.csv:0:0: partition: several NVS partitions could hold the factory data: fctry "
        "(0x10000, line 5), mfg (0x120000, line 7); say which one (lot.toml: partition = "
        '"fctry")'
    ]
    assert find_factory_partition(t, "mfg").offset == 0x120000


def test_named_partition_missing_or_wrong_kind() -> None:
    t = _table("seed_000")
    assert _error(t, "fctri") == [
        "seed_000.csv:0:0: fctri: the table has no partition named 'fctri'; its NVS partitions: "
        "nvs (0x9000, line 3), fctry (0x10000, line 5)"
    ]
    assert _error(t, "factory") == [
        "seed_000.csv:6:10: factory: 'factory' is app/factory, not an NVS data partition; the "
        "station writes NVS images only"
    ]
    # naming 'nvs' explicitly is allowed (some products keep factory data there)
    assert find_factory_partition(t, "nvs").offset == 0x9000


def test_image_must_fill_the_partition() -> None:
    p = find_factory_partition(_table("seed_000"))
    assert check_image_fits(p, 0x6000) == []
    assert [str(x) for x in check_image_fits(p, 0x3000)] == [
        "seed_000.csv:5:1: fctry: the image is 0x3000 bytes but 'fctry' is 0x6000; NVS images "
        "must fill the whole partition: generate it with size 0x6000"
    ]
    assert [str(x) for x in check_image_fits(p, 0x7000, file="lot.toml")] == [
        "lot.toml:5:1: fctry: the image is 0x7000 bytes but 'fctry' is 0x6000; it would "
        "overwrite 0x1000 bytes past the partition's end: generate it with size 0x6000"
    ]


def test_flash_encryption_scheme_needs_nvs_keys() -> None:
    for name in ("singleapp_encr_nvs", "two_ota_encr_nvs", "homekit"):
        t = _table(name)
        nvs = t.find("nvs")
        assert nvs is not None
        assert check_requirements(t, nvs, encryption="flash_enc") == []
    t = _table("seed_000")
    fctry = find_factory_partition(t)
    assert [str(p) for p in check_requirements(t, fctry, encryption="flash_enc")] == [
        "seed_000.csv:0:0: encryption: NVS encryption with the flash-encryption scheme needs an "
        "nvs_keys partition (e.g. 'nvs_key, data, nvs_keys, , 0x1000, encrypted'); the table "
        "has none"
    ]
    assert check_requirements(t, fctry, encryption="hmac") == []  # the key lives in eFuse
    assert [str(p) for p in check_requirements(t, fctry, encryption="aes")] == [
        "seed_000.csv:0:0: encryption: unknown NVS encryption scheme 'aes'; use flash_enc or hmac"
    ]
    small = parse_csv_text(tables.SEED_000 + "keys, data, nvs_keys, , 0x800\n", "p.csv")
    assert [str(p) for p in check_requirements(small, fctry, encryption="flash_enc")] == [
        "p.csv:7:25: keys: the nvs_keys partition is 0x800 bytes; the key partition needs 0x1000"
    ]


def test_homekit_needs_factory_nvs() -> None:
    hk = _table("homekit")
    assert check_requirements(hk, find_factory_partition(hk), homekit=True) == []
    nvs = hk.find("nvs")
    assert nvs is not None
    assert [str(p) for p in check_requirements(hk, nvs, homekit=True)] == [
        "homekit.csv:4:1: nvs: HomeKit setup data must go to 'factory_nvs' (line 9), but the lot "
        "writes 'nvs'; set partition = \"factory_nvs\""
    ]
    seed = _table("seed_000")
    assert [
        str(p) for p in check_requirements(seed, find_factory_partition(seed), homekit=True)
    ] == [
        "seed_000.csv:0:0: homekit: HomeKit firmware reads its setup code from a 'factory_nvs' "
        "partition; the table has none (add 'factory_nvs, data, nvs, , 0x6000')"
    ]
    odd = parse_csv_text("factory_nvs, data, fat, , 0x6000\nfctry, data, nvs, , 0x6000\n", "o.csv")
    assert [str(p) for p in check_requirements(odd, find_factory_partition(odd), homekit=True)] == [
        "o.csv:1:20: factory_nvs: 'factory_nvs' must be data/nvs, not data/fat"
    ]


def _regions(regions) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(r.kind, r.name, r.offset, r.size, r.written) for r in regions]


def test_flash_map_of_seed_000() -> None:
    t = _table("seed_000")
    assert _regions(flash_map(t, 4 * 0x100000)) == [
        ("bootloader", "bootloader", 0x0, 0x8000, False),  # offset unknown: all below the table
        ("table", "partition table", 0x8000, 0x1000, False),
        ("data", "nvs", 0x9000, 0x6000, False),
        ("data", "phy_init", 0xF000, 0x1000, False),
        ("data", "fctry", 0x10000, 0x6000, True),
        ("gap", "free", 0x16000, 0xA000, False),  # 0x16000..0x20000
        ("app", "factory", 0x20000, 0x100000, False),
        ("gap", "free", 0x120000, 0x400000 - 0x120000, False),
    ]


def test_flash_map_with_chip_and_without_flash_size() -> None:
    t = _table("seed_001")
    regions = flash_map(t, None, "fctry", chip="esp32")
    assert _regions(regions)[:3] == [
        ("reserved", "before the bootloader", 0x0, 0x1000, False),
        ("bootloader", "bootloader", 0x1000, 0x7000, False),
        ("table", "partition table", 0x8000, 0x1000, False),
    ]
    assert _regions(regions)[-1] == ("data", "fctry", 0x340000, 0x6000, True)
    assert ("gap", "free", 0x12000, 0xE000, False) in _regions(regions)  # phy_init .. ota_0
    assert sum(r.size for r in regions) == 0x346000  # contiguous from 0, no overlaps
    c3 = flash_map(t, None, "fctry", chip="esp32c3")
    assert _regions(c3)[0] == ("bootloader", "bootloader", 0x0, 0x8000, False)


def test_flash_map_marks_nothing_when_the_factory_is_unknown() -> None:
    regions = flash_map(_table("two_ota"))
    assert not any(r.written for r in regions)
    with pytest.raises(StationError):
        flash_map(_table("two_ota"), None, "fctry")


def test_flash_map_uses_bootloader_and_table_entries() -> None:
    t = parse_csv_text(
        "bootloader, bootloader, primary, N/A, N/A\n"
        "partition_table, partition_table, primary, N/A, N/A\n"
        "fctry, data, nvs,, 0x6000\n",
        bootloader_offset=0x0,
    )
    assert _regions(flash_map(t)) == [
        ("bootloader", "bootloader", 0x0, 0x8000, False),
        ("table", "partition_table", 0x8000, 0x1000, False),
        ("data", "fctry", 0x9000, 0x6000, True),
    ]


def test_compare_tables() -> None:
    expected = _table("seed_001")
    device = parse_binary(to_binary(_table("seed_000")), "device")
    assert compare_tables(expected, parse_binary(to_binary(expected))) == []
    assert compare_tables(expected, device) == [
        "otadata: missing (expected at 0xf000)",
        "phy_init: offset 0xf000, expected 0x11000",
        "ota_0: missing (expected at 0x20000)",
        "ota_1: missing (expected at 0x1b0000)",
        "fctry: offset 0x10000, expected 0x340000",
        "factory: not expected (0x20000, 0x100000 bytes)",
    ]
