"""Firmware from an ESP-IDF build and the factory image, in one job and one connection."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from station import cli
from station.errors import StationError
from station.flashing import FlashJob, WriteRegion, open_device, run_job
from station.flashing.firmware import find_flasher_args, firmware_regions, load_firmware
from station.partitions import Partition, PartitionTable, read_flasher_args, to_binary
from tests.flashing.conftest import FACTORY_OFFSET, FACTORY_SIZE, nvs_image
from tests.flashing.test_engine import esptool_read

APP_SIZE = 0x14000  # > 64 KiB: the write goes through the stub flasher


def pseudo(seed: str, n: int) -> bytes:
    """Incompressible, reproducible bytes (so the stub really streams them)."""
    out = bytearray()
    block = seed.encode()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def lot_table(fctry_offset: int = FACTORY_OFFSET) -> PartitionTable:
    return PartitionTable(
        (
            Partition("fctry", 1, 2, fctry_offset, FACTORY_SIZE, False, False, 1),
            Partition("phy_init", 1, 1, 0xF000, 0x1000, False, False, 2),
            Partition("factory", 0, 0, 0x10000, 0x100000, False, False, 3),
        ),
        "test",
    )


def make_build(root: Path, *, chip: str = "esp32", table: PartitionTable | None = None) -> Path:
    """A fake ESP-IDF build folder: small bootloader, partition table and app, and the
    flasher_args.json idf.py writes (same keys and layout)."""
    (root / "bootloader").mkdir(parents=True)
    (root / "partition_table").mkdir()
    (root / "bootloader" / "bootloader.bin").write_bytes(b"\xe9" + pseudo("boot", 0x2FFF))
    (root / "partition_table" / "partition-table.bin").write_bytes(to_binary(table or lot_table()))
    (root / "blink.bin").write_bytes(pseudo("app", APP_SIZE))
    args = {
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "40m"],
        "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"},
        "flash_files": {
            "0x1000": "bootloader/bootloader.bin",
            "0x10000": "blink.bin",
            "0x8000": "partition_table/partition-table.bin",
        },
        "bootloader": {
            "offset": "0x1000",
            "file": "bootloader/bootloader.bin",
            "encrypted": "false",
        },
        "app": {"offset": "0x10000", "file": "blink.bin", "encrypted": "false"},
        "partition-table": {
            "offset": "0x8000",
            "file": "partition_table/partition-table.bin",
            "encrypted": "false",
        },
        "extra_esptool_args": {
            "after": "hard_reset",
            "before": "default_reset",
            "stub": True,
            "chip": chip,
        },
    }
    (root / "flasher_args.json").write_text(json.dumps(args, indent=4))
    return root


def test_firmware_regions_from_a_build_folder(tmp_path: Path) -> None:
    build = make_build(tmp_path / "build")
    args, regions = load_firmware(build)
    assert args.chip == "esp32"
    assert [(r.name, r.offset, r.readback) for r in regions] == [
        ("bootloader", 0x1000, False),
        ("partition table", 0x8000, False),
        ("app", 0x10000, False),
    ]
    assert regions[2].data == (build / "blink.bin").read_bytes()
    # the json itself works too, and firmware_regions takes read_flasher_args' result
    assert firmware_regions(read_flasher_args(build / "flasher_args.json")) == regions
    assert find_flasher_args(build / "flasher_args.json") == build / "flasher_args.json"


def test_bad_builds_are_refused_with_locations(tmp_path: Path) -> None:
    with pytest.raises(StationError) as info:
        find_flasher_args(tmp_path)
    assert "not an ESP-IDF build folder: no flasher_args.json" in str(info.value)
    build = make_build(tmp_path / "b")
    (build / "blink.bin").write_bytes(b"")
    (build / "bootloader" / "bootloader.bin").write_bytes(b"\xe9" * 0x8000)  # runs into 0x8000
    with pytest.raises(StationError) as info:
        load_firmware(build)
    text = str(info.value)
    assert f"{build / 'blink.bin'}:0:0: flash_files: the file is empty" in text
    assert "partition table at 0x8000 overlaps bootloader (0x1000..0x9000)" in text


@pytest.mark.slow
def test_firmware_and_factory_image_in_one_job(sim, tmp_path: Path) -> None:
    """Bootloader, table and app (through the stub: > 64 KiB) plus the factory image: one
    job, verified (firmware by MD5, factory by read-back — the simulated stub cannot stream
    reads, so that read falls back to the ROM loader), then read back with esptool."""
    (dev,) = sim(1)
    _, firmware = load_firmware(make_build(tmp_path / "build"))
    factory = WriteRegion(FACTORY_OFFSET, nvs_image("SN-FW"), "fctry")
    job = FlashJob(
        dev.port,
        (*firmware, factory),
        chip="esp32",
        expected_table=lot_table(),
        factory_offset=FACTORY_OFFSET,
        factory_size=FACTORY_SIZE,
    )
    events = []
    r = run_job(job, events.append)
    assert r.ok, r.reason
    assert r.reason == "verified"
    writing = [p for p in events if p.phase == "writing" and p.total]
    total = sum(len(x.data) for x in job.regions)
    assert writing[-1].done == writing[-1].total == total
    verifying = [p for p in events if p.phase == "verifying" and p.total]
    assert verifying[-1].done == total
    for region in job.regions:
        assert esptool_read(dev.port, region.offset, len(region.data)) == region.data, region.name


@pytest.mark.slow
def test_session_writes_firmware_through_the_stub_and_checks_it_by_md5(sim, tmp_path) -> None:
    (dev,) = sim(1)
    _, firmware = load_firmware(make_build(tmp_path / "build"))
    factory = WriteRegion(FACTORY_OFFSET, nvs_image("SN-S"), "fctry")
    with open_device(dev.port) as s:
        s.write([*firmware, factory])
        assert s._esp.IS_STUB  # one connection, the stub for the large write
        s.verify([*firmware, factory])
        # the device's MD5 really is compared: other bytes for the app fail
        app = firmware[2]
        wrong = WriteRegion(app.offset, app.data[:-1] + b"\x00", "app", readback=False)
        with pytest.raises(Exception) as info:
            s.verify([wrong])
    assert getattr(info.value, "reason", "") == (
        "verify failed at 0x10000 (app): the device holds different data (MD5)"
    )


@pytest.mark.slow
def test_a_build_whose_table_moves_the_factory_partition_is_refused(sim, tmp_path) -> None:
    (dev,) = sim(1)
    _, firmware = load_firmware(make_build(tmp_path / "build", table=lot_table(0xA000)))
    job = FlashJob(
        dev.port,
        (*firmware, WriteRegion(FACTORY_OFFSET, nvs_image("SN-X"), "fctry")),
        expected_table=lot_table(),
        factory_offset=FACTORY_OFFSET,
        factory_size=FACTORY_SIZE,
    )
    r = run_job(job)
    assert not r.ok
    assert r.phase == "checking"
    assert r.reason == (
        "the table being written puts 'fctry' at 0xa000 (0x6000 bytes), the lot expects 0x9000 "
        "(0x6000 bytes) — the firmware does not belong to this lot"
    )
    with open_device(dev.port, no_stub=True) as s:  # nothing was written
        assert s.is_blank(0x1000, 0x3000) and s.is_blank(FACTORY_OFFSET, FACTORY_SIZE)


@pytest.mark.slow
def test_a_region_beyond_the_flash_is_refused_before_writing(sim) -> None:
    (dev,) = sim(1)
    r = run_job(FlashJob(dev.port, (WriteRegion(0x3FF000, b"\x00" * 0x2000, "storage"),)))
    assert not r.ok
    assert r.reason == (
        "storage at 0x3ff000 ends at 0x401000, beyond the device's 4 MB flash — wrong device "
        "or wrong build"
    )


@pytest.mark.slow
def test_station_flash_with_firmware(sim, tmp_path: Path, capsys) -> None:
    devs = sim(2)
    build = make_build(tmp_path / "build")
    fctry = tmp_path / "fctry.bin"
    fctry.write_bytes(nvs_image("SN-CLI-FW"))
    argv = ["flash", "--firmware", str(build)]
    for d in devs:
        argv += ["--port", d.port]
    assert cli.main([*argv, hex(FACTORY_OFFSET), str(fctry)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 and all(" ok " in line and "verified" in line for line in lines)
    assert "firmware: bootloader@0x1000, partition table@0x8000, app@0x10000" in captured.err
    for d in devs:
        assert esptool_read(d.port, 0x10000, APP_SIZE) == (build / "blink.bin").read_bytes()
        assert esptool_read(d.port, FACTORY_OFFSET, FACTORY_SIZE) == fctry.read_bytes()


def test_station_flash_firmware_input_errors(tmp_path: Path, capsys) -> None:
    build = make_build(tmp_path / "build", chip="esp32c3")
    inside_app = tmp_path / "x.bin"
    inside_app.write_bytes(b"\x00" * 0x1000)
    code = cli.main(
        ["flash", "--port", "COM7", "--chip", "esp32", "--firmware", str(build), "0x11000",
         str(inside_app)]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert any(
        line.startswith("command line:0:0: --chip: esp32 does not match the build, which is for "
                        "esp32c3")
        for line in err
    )  # fmt: skip
    assert (
        f"{inside_app}:0:0: ADDR: 0x11000..0x12000 overlaps the build's app (0x10000..0x24000)"
        in err
    )
    assert cli.main(["flash", "--port", "COM7", "--firmware", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert cli.main(["flash", "--port", "COM7"]) == 2
    assert "nothing to write" in capsys.readouterr().err
