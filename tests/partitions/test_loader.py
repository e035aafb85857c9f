"""load_table for files and build folders, read_flasher_args, and `station partitions`."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from station import cli
from station.errors import StationError
from station.partitions import (
    load_table,
    parse_csv_text,
    parse_flash_size,
    read_flasher_args,
    to_binary,
)
from tests.partitions import tables

FLASHER_ARGS = {
    "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "40m"],
    "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"},
    "flash_files": {
        "0x1000": "bootloader/bootloader.bin",
        "0x20000": "mfg.bin",
        "0x8000": "partition_table/partition-table.bin",
        "0xf000": "ota_data_initial.bin",
    },
    "bootloader": {"offset": "0x1000", "file": "bootloader/bootloader.bin", "encrypted": "false"},
    "app": {"offset": "0x20000", "file": "mfg.bin", "encrypted": "false"},
    "partition-table": {
        "offset": "0x8000",
        "file": "partition_table/partition-table.bin",
        "encrypted": "false",
    },
    "otadata": {"offset": "0xf000", "file": "ota_data_initial.bin", "encrypted": "false"},
    "extra_esptool_args": {
        "after": "hard_reset",
        "before": "default_reset",
        "stub": True,
        "chip": "esp32",
    },
}


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """An ESP-IDF build folder for the book's table (seed 001)."""
    b = tmp_path / "build"
    (b / "partition_table").mkdir(parents=True)
    (b / "bootloader").mkdir()
    (b / "partition_table" / "partition-table.bin").write_bytes(
        to_binary(parse_csv_text(tables.SEED_001))
    )
    (b / "bootloader" / "bootloader.bin").write_bytes(b"\xe9" + b"\0" * 31)
    (b / "mfg.bin").write_bytes(b"\xe9" + b"\0" * 63)
    (b / "ota_data_initial.bin").write_bytes(b"\xff" * 0x2000)
    (b / "flasher_args.json").write_text(json.dumps(FLASHER_ARGS, indent=4), encoding="utf-8")
    return b


def test_load_csv_and_binary_files(tmp_path: Path) -> None:
    csv = tmp_path / "partitions.csv"
    csv.write_text(tables.SEED_000, encoding="utf-8")
    from_csv = load_table(csv)
    assert from_csv.format == "csv" and from_csv.source == str(csv)
    binary = tmp_path / "pt.bin"
    binary.write_bytes(to_binary(from_csv))
    from_bin = load_table(binary, table_offset=0xC000)
    assert from_bin.format == "binary" and from_bin.partitions == from_csv.partitions
    assert from_bin.table_offset == 0xC000


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_csv_with_a_byte_order_mark(tmp_path: Path, encoding: str) -> None:
    # ESP-IDF ships test files with a BOM (partitions-utf8-bom.csv); Windows editors write them
    f = tmp_path / "p.csv"
    f.write_bytes(tables.SEED_000.encode(encoding))
    assert f.read_bytes()[:2] in (codecs.BOM_UTF8[:2], codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    assert load_table(f).find("fctry") is not None


def test_load_build_folder(build: Path) -> None:
    t = load_table(build)
    assert t.format == "binary"
    assert t.source == str(build / "partition_table" / "partition-table.bin")
    assert (t.table_offset, t.bootloader_offset) == (0x8000, 0x1000)
    assert t.find("fctry") is not None and t.find("fctry").offset == 0x340000  # type: ignore[union-attr]
    args = t.flasher_args
    assert args is not None and args.chip == "esp32" and args.flash_size == "4MB"


def test_read_flasher_args(build: Path) -> None:
    args = read_flasher_args(build / "flasher_args.json")
    assert [(hex(o), p.relative_to(build).as_posix()) for o, p in args.files] == [
        ("0x1000", "bootloader/bootloader.bin"),
        ("0x8000", "partition_table/partition-table.bin"),
        ("0xf000", "ota_data_initial.bin"),
        ("0x20000", "mfg.bin"),
    ]
    assert all(p.is_absolute() for _, p in args.files)
    assert (args.chip, args.flash_mode, args.flash_freq, args.flash_size) == (
        "esp32",
        "dio",
        "40m",
        "4MB",
    )
    assert (args.bootloader_offset, args.table_offset, args.app_offset) == (0x1000, 0x8000, 0x20000)


def test_flasher_args_problems(build: Path) -> None:
    doc = json.loads((build / "flasher_args.json").read_text())
    doc["flash_files"]["0x30000"] = "missing.bin"
    doc["flash_files"]["here"] = "mfg.bin"
    doc["app"]["offset"] = "0xzz"
    del doc["extra_esptool_args"]["chip"]
    f = build / "flasher_args.json"
    f.write_text(json.dumps(doc, indent=4))
    with pytest.raises(StationError) as err:
        read_flasher_args(f)
    text = f.read_text().splitlines()

    app_key = '"app"'

    def line(needle: str) -> int:
        return next(i for i, t in enumerate(text, 1) if needle in t)

    assert [str(p) for p in err.value.problems] == [
        f"{f}:{line('0x30000')}:0: 0x30000: missing.bin: file not found (build the project first)",
        f"{f}:{line('here')}:0: flash_files: 'here' is not a flash offset",
        f"{f}:{line(app_key)}:0: app: offset '0xzz' is not a number",
        f"{f}:{line('extra_esptool_args')}:0: chip: no chip named (extra_esptool_args.chip)",
    ]


def test_flasher_args_not_json(tmp_path: Path) -> None:
    f = tmp_path / "flasher_args.json"
    f.write_text('{\n  "flash_files": {\n    "0x1000": bootloader.bin\n  }\n}\n')
    with pytest.raises(StationError) as err:
        read_flasher_args(f)
    assert [str(p) for p in err.value.problems] == [f"{f}:3:15: -: not valid JSON: Expecting value"]
    f.write_text("[1, 2]")
    with pytest.raises(StationError, match="expected a JSON object"):
        read_flasher_args(f)
    with pytest.raises(StationError, match="no such file"):
        read_flasher_args(tmp_path / "nope.json")


def test_project_folder_and_missing_files(tmp_path: Path, build: Path) -> None:
    with pytest.raises(StationError) as err:
        load_table(build.parent)
    assert str(err.value) == (
        f"{build.parent}:0:0: -: not an ESP-IDF build folder: no "
        f"partition_table/partition-table.bin (run idf.py build); this looks like a project "
        f"folder, use {build}"
    )
    with pytest.raises(StationError) as err:
        load_table(tmp_path / "nope.csv")
    assert str(err.value) == f"{tmp_path / 'nope.csv'}:0:0: -: no such file or folder"


def test_garbage_is_neither_csv_nor_binary(tmp_path: Path) -> None:
    f = tmp_path / "firmware.bin"
    f.write_bytes(b"\xe9\x03\x02\x20" + bytes(range(256)))
    with pytest.raises(StationError) as err:
        load_table(f)
    assert str(err.value) == (
        f"{f}:1:0: -: not a partition table: neither UTF-8 text (a CSV) nor a binary table "
        "(those start with AA 50)"
    )


def test_flash_sizes() -> None:
    assert parse_flash_size("4MB") == 0x400000
    assert parse_flash_size("16 mb") == 0x1000000
    assert parse_flash_size("0x200000") == 0x200000
    assert parse_flash_size("4M") == 0x400000
    assert parse_flash_size("512KB") == 0x80000
    with pytest.raises(StationError, match="flash size 'big' is not a size"):
        parse_flash_size("big")
    with pytest.raises(StationError):
        parse_flash_size("0")


# ---- the command line -------------------------------------------------------------------


def test_cli_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "partitions.csv"
    f.write_text(tables.SEED_001)
    assert cli.main(["partitions", str(f), "--flash-size", "4MB", "--chip", "esp32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{f} (CSV, table at 0x8000, 4 MB flash)"
    assert out[1].split() == ["Name", "Type", "SubType", "Offset", "Size", "End", "Flags"]
    assert out[7].split() == ["fctry", "data", "nvs", "0x340000", "0x6000", "0x346000"]
    assert "factory partition: fctry  offset 0x340000  size 0x6000 (24 KB)  end 0x346000" in out
    assert (
        "verdict: OK: the station writes 0x6000 bytes (24 KB) at 0x340000, partition 'fctry'"
    ) in out
    assert "  0x00340000-0x00345fff  data        fctry  (24 KB)  <- the station writes here" in out
    assert "  0x00000000-0x00000fff  reserved    before the bootloader  (4 KB)" in out


def test_cli_json_has_every_field(build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["partitions", str(build), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "binary" and doc["ok"] is True and doc["problems"] == []
    assert (doc["table_offset"], doc["bootloader_offset"], doc["flash_size"], doc["chip"]) == (
        0x8000,
        0x1000,
        0x400000,
        "esp32",
    )
    assert doc["factory"] == {
        "name": "fctry",
        "type": 1,
        "type_name": "data",
        "subtype": 2,
        "subtype_name": "nvs",
        "offset": 0x340000,
        "size": 0x6000,
        "end": 0x346000,
        "encrypted": False,
        "readonly": False,
        "flags": [],
        "line": 6,
    }
    assert [p["name"] for p in doc["partitions"]] == [
        "nvs",
        "otadata",
        "phy_init",
        "ota_0",
        "ota_1",
        "fctry",
    ]
    written = [r for r in doc["map"] if r["written"]]
    assert written == [
        {
            "kind": "data",
            "name": "fctry",
            "offset": 0x340000,
            "size": 0x6000,
            "end": 0x346000,
            "written": True,
        }
    ]
    assert doc["map"][-1] == {
        "kind": "gap",
        "name": "free",
        "offset": 0x346000,
        "size": 0x400000 - 0x346000,
        "end": 0x400000,
        "written": False,
    }


def test_cli_bad_table_exits_2_with_all_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "p.csv"
    f.write_text("nvs, data, nvs, 0x9000, 0x6000\nfctry, data, nvs, 0xe000, 0x2000\n")
    assert cli.main(["partitions", str(f), "--json"]) == 2
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["ok"] is False and doc["verdict"] == "NOT OK: 2 problems (listed on stderr)"
    assert (
        captured.err.splitlines()
        == doc["problems"]
        == [
            f"{f}:2:19: fctry: overlaps 'nvs' (0x9000-0xefff); start at 0xf000 or later",
            f"{f}:2:27: fctry: NVS partition of 0x2000 bytes: a writable NVS needs at least 0x3000 "
            "(3 sectors); enlarge it or flag it readonly",
        ]
    )
    assert doc["factory"]["name"] == "fctry"  # still shown, so the engineer sees what it found
    assert "Traceback" not in captured.err


def test_cli_syntax_error_and_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "p.csv"
    f.write_text("fctry, data, nvz, , 0x6000\n")
    assert cli.main(["partitions", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{f}:1:14: fctry: unknown subtype 'nvz'")
    f.write_text(tables.SEED_000)
    assert cli.main(["partitions", str(f), "--flash-size", "huge"]) == 2
    assert capsys.readouterr().err == (
        "--flash-size:0:0: flash_size: flash size 'huge' is not a size (write 4MB, 16MB or "
        "0x400000)\n"
    )
    assert cli.main(["partitions", str(f), "--partition", "factory"]) == 2
    captured = capsys.readouterr()
    assert "verdict: NOT OK: 1 problem (listed on stderr)" in captured.out
    assert captured.err == (
        f"{f}:6:10: factory: 'factory' is app/factory, not an NVS data partition; the station "
        "writes NVS images only\n"
    )


def test_build_folder_without_flasher_args(build: Path) -> None:
    (build / "flasher_args.json").unlink()
    t = load_table(build, table_offset=0x9000)
    assert (t.flasher_args, t.bootloader_offset, t.table_offset) == (None, None, 0x9000)


def test_folder_with_a_csv_gets_a_hint(tmp_path: Path) -> None:
    (tmp_path / "partitions.csv").write_text(tables.SEED_000)
    with pytest.raises(StationError, match=r"or give the CSV itself: .*partitions\.csv"):
        load_table(tmp_path)


def test_flasher_args_without_files_or_settings(tmp_path: Path) -> None:
    f = tmp_path / "flasher_args.json"
    f.write_text(json.dumps({"flash_files": {}, "flash_settings": [], "extra_esptool_args": 3}))
    with pytest.raises(StationError) as err:
        read_flasher_args(f)
    assert [str(p) for p in err.value.problems] == [
        f'{f}:1:0: flash_files: missing or empty: expected {{"0x1000": '
        '"bootloader/bootloader.bin", …}',
        f"{f}:1:0: flash_settings: expected an object",
        f"{f}:1:0: extra_esptool_args: expected an object",
        f"{f}:1:0: chip: no chip named (extra_esptool_args.chip)",
    ]


def test_build_folder_with_a_missing_app_still_shows_its_table(build: Path) -> None:
    (build / "mfg.bin").unlink()
    t = load_table(build)
    assert t.flasher_args is not None and t.bootloader_offset == 0x1000
    with pytest.raises(StationError, match=r"mfg\.bin: file not found"):
        read_flasher_args(build / "flasher_args.json")


def test_sizes_in_words_have_one_source() -> None:
    from station.partitions.sizes import human_size, size_text

    assert [size_text(n) for n in (0x6000, 0x400000, 0x180000, 100, 0)] == [
        "24 KB",
        "4 MB",
        "1536 KB",
        "100 bytes",
        "0 bytes",
    ]
    assert [human_size(n) for n in (0x6000, 0x180000, 100)] == ["24 KiB", "1.5 MiB", "100 B"]
