"""ESP-IDF's check_sizes test suite, ported: one test per upstream test, same name.

Source: espressif/esp-idf ``components/partition_table/test_gen_esp32part_host/
check_sizes_test.py`` (Apache-2.0; commit 102122904ade). Upstream builds a table from a base CSV
plus up to three app partitions and checks fake images of N KiB against it; here the same inputs
go through ``check_app_image``/``check_bootloader_image`` and ``station partitions --app``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from station import cli
from station.partitions import (
    PartitionTable,
    check_app_image,
    check_bootloader_image,
    parse_binary,
    parse_csv_text,
    to_binary,
)

BASE_CSV = """
# Name,   Type, SubType, Offset,   Size, Flags
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,     ,        0x4000,
otadata,  data, ota,     ,        0x2000,
phy_init, data, phy,     ,        0x1000,

"""


def gen_table(
    factory_appsize: str | None = None,
    ota0_appsize: str | None = None,
    ota1_appsize: str | None = None,
) -> PartitionTable:
    """The binary table upstream builds, read back as the station reads a build's table."""
    csv = BASE_CSV
    if factory_appsize:
        csv += f"factory, app, factory, , {factory_appsize}\n"
    if ota0_appsize:
        csv += f"ota0, app, ota_0, , {ota0_appsize}\n"
    if ota1_appsize:
        csv += f"ota1, app, ota_1, , {ota1_appsize}\n"
    return parse_binary(to_binary(parse_csv_text(csv)), "partition-table.bin")


def app_problems(table: PartitionTable, kilobytes: int, name: str) -> list[str]:
    return [str(p) for p in check_app_image(table, kilobytes * 1024, file=name)]


# --- TestAppSizes ---------------------------------------------------------------------------


def test_sizes_ok() -> None:
    assert app_problems(gen_table("1M"), 512, "test.bin") == []


def test_single_part_too_small() -> None:
    # upstream: "app partition is too small for binary too_big.bin size 0x177000"
    assert app_problems(gen_table("1M"), 1500, "too_big.bin") == [
        "too_big.bin:0:0: app: the app image is 0x177000 bytes, too large for its app partition "
        "'factory' (0x100000 bytes at 0x10000; 0x77000 bytes over): build a smaller app or "
        "enlarge the partition"
    ]


def test_all_parts_too_small() -> None:
    # upstream: "All app partitions are too small for binary just_too_big.bin size 0x7d400"
    table = gen_table("500K", "500K", "500K")
    assert app_problems(table, 501, "just_too_big.bin") == [
        "just_too_big.bin:0:0: app: the app image is 0x7d400 bytes, too large for its app "
        "partition 'factory' (0x7d000 bytes at 0x10000; 0x400 bytes over): build a smaller app "
        "or enlarge the partition"
    ]
    # the same app written to an OTA slot (a build without factory app): the smallest slot
    assert app_problems(gen_table(None, "500K", "600K"), 501, "just_too_big.bin") == [
        "just_too_big.bin:0:0: app: the app image is 0x7d400 bytes, too large for the smallest "
        "OTA slot 'ota0' (0x7d000 bytes at 0x10000; 0x400 bytes over); every OTA slot must hold "
        "the app: build a smaller app or enlarge the slots"
    ]


def test_one_part_too_small_warning() -> None:
    """DIFFERENCE (stricter on purpose): check_sizes only warns when the app fits some app
    partitions (here both OTA slots but not the 500K factory). The station writes the app to
    the factory partition, where 501K would overwrite the next partition, so it refuses."""
    table = gen_table("500K", "1M", "1M")
    assert app_problems(table, 501, "big.bin") == [
        "big.bin:0:0: app: the app image is 0x7d400 bytes, too large for its app partition "
        "'factory' (0x7d000 bytes at 0x10000; 0x400 bytes over): build a smaller app or enlarge "
        "the partition"
    ]
    # written to an OTA slot (flasher_args.json says where), it fits: accepted
    ota0 = table.find("ota0")
    assert ota0 is not None
    assert check_app_image(table, 501 * 1024, file="big.bin", offset=ota0.offset) == []


# --- TestBootloaderSizes --------------------------------------------------------------------


def _boot(table_offset: int, kilobytes: int) -> list[str]:
    table = parse_csv_text(BASE_CSV, table_offset=table_offset)
    problems = check_bootloader_image(
        table, kilobytes * 1024, file="test.bin", bootloader_offset=0x1000
    )
    return [str(p) for p in problems]


def test_bootloader_sizes_ok() -> None:
    """Upstream TestBootloaderSizes.test_sizes_ok."""
    assert _boot(0x8000, 25) == []


def test_bootloader_too_big_default() -> None:
    assert _boot(0x8000, 40) == [
        "test.bin:0:0: bootloader: the bootloader image is 0xa000 bytes; from 0x1000 to the "
        "partition table at 0x8000 there is room for 0x7000, so it would overlap the table by "
        "0x3000 bytes: move the table up (CONFIG_PARTITION_TABLE_OFFSET) or make the bootloader "
        "smaller"
    ]
    # move the partition table offset up, it will pass
    assert _boot(0xB000, 40) == []


# --- the same checks from the command line --------------------------------------------------


def test_cli_app_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    table = tmp_path / "partitions.csv"
    table.write_text(BASE_CSV + "factory, app, factory, , 1M\nfctry, data, nvs, , 0x6000\n")
    Path("test.bin").write_bytes(b"\xee" * 512 * 1024)
    Path("too_big.bin").write_bytes(b"\xee" * 1500 * 1024)
    assert cli.main(["partitions", str(table), "--app", "test.bin"]) == 0
    assert "app image test.bin: 0x80000 bytes, fits" in capsys.readouterr().out
    assert cli.main(["partitions", str(table), "--app", "too_big.bin"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "too_big.bin:0:0: app: the app image is 0x177000 bytes, too large for its app partition "
        "'factory' (0x100000 bytes at 0x10000; 0x77000 bytes over): build a smaller app or "
        "enlarge the partition"
    ]
    assert cli.main(["partitions", str(table), "--app", "missing.bin"]) == 2
    assert capsys.readouterr().err.startswith("missing.bin:0:0: app image: cannot read:")
    assert cli.main(["partitions", str(table), "--app", "."]) == 2
    assert capsys.readouterr().err == ".:0:0: app image: not a regular file\n"


def test_cli_bootloader_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    table = tmp_path / "partitions.csv"
    table.write_text(BASE_CSV + "factory, app, factory, , 1M\nfctry, data, nvs, , 0x6000\n")
    Path("bl.bin").write_bytes(b"\xee" * 40 * 1024)
    assert cli.main(["partitions", str(table), "--bootloader", "bl.bin"]) == 2
    assert "give --chip or a build folder" in capsys.readouterr().err
    assert cli.main(["partitions", str(table), "--bootloader", "bl.bin", "--chip", "esp32"]) == 2
    assert "so it would overlap the table by 0x3000 bytes" in capsys.readouterr().err
    # on an esp32c3 the bootloader starts at 0x0: 0x8000 bytes of room
    assert cli.main(["partitions", str(table), "--bootloader", "bl.bin", "--chip", "esp32c3"]) == 2
    assert "room for 0x8000, so it would overlap the table by 0x2000" in capsys.readouterr().err
