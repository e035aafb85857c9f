"""A lot that names firmware: checked and hashed at open, written with each unit's factory
image in one connection, verified, and kept out of the partitions the station writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from station.errors import StationError
from station.flashing import SimulatedDevice, open_device
from station.nvs import decode_image
from station.production import Orchestrator, open_lot
from station.production.lot import Lot
from tests.production.conftest import make_build, make_small_lot
from tests.production.fakes import FakeBench, FakeDevice


def problems(err: pytest.ExceptionInfo[StationError]) -> list[str]:
    return [str(p) for p in err.value.problems]


def files_of(build: Path) -> dict[int, bytes]:
    args = json.loads((build / "flasher_args.json").read_text(encoding="utf-8"))
    return {int(k, 16): (build / v).read_bytes() for k, v in args["flash_files"].items()}


def run_one(lot: Lot, dev: FakeDevice) -> FakeBench:
    bench = FakeBench()
    bench.put("fake://1", dev)
    with Orchestrator(lot, on_event=lambda e: None, opener=bench.opener) as orch:
        orch.add_port("fake://1")
        orch.start("fake://1")
        assert orch.wait_idle(30)
    return bench


def test_the_build_is_read_and_hashed_once_and_audited(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 3)
    build = make_build(lot)
    with open_lot(lot) as opened:
        fw = opened.firmware
        assert fw is not None and fw.path == build / "flasher_args.json" and fw.writes_table
        assert [(r.offset, r.data, r.readback) for r in fw.regions] == [
            (off, data, False) for off, data in sorted(files_of(build).items())
        ]
        (audit,) = [a for a in opened.ledger.audit_log() if a.action == "firmware"]
        assert fw.sha256 in audit.detail and "app@0x10000" in audit.detail
    (build / "app.bin").write_bytes(b"\xe9" + bytes(0x1FFF))  # a new build mid-lot
    with open_lot(lot) as opened, open_lot(lot) as again:
        assert opened.firmware is not None and opened.firmware.sha256 != fw.sha256
        got = [a.detail for a in again.ledger.audit_log() if a.action == "firmware"]
        assert len(got) == 2 and opened.firmware.sha256 in got[1]


def test_a_missing_build_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 3)
    build = make_build(lot)
    (build / "app.bin").unlink()
    with pytest.raises(StationError) as err:
        open_lot(lot)
    assert any("app.bin" in p for p in problems(err)), problems(err)
    assert err.value.exit_code == 2 and not list(lot.parent.glob("*.station.db*"))


def test_every_problem_of_the_build_is_located_at_once(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 3)
    build = make_build(lot, chip="esp32c3", app_size=0x11000)
    args_file = build / "flasher_args.json"
    args = json.loads(args_file.read_text(encoding="utf-8"))
    args["flash_files"]["0xd000"] = "extra.bin"  # lands on the factory partition
    args_file.write_text(json.dumps(args), encoding="utf-8")
    (build / "extra.bin").write_bytes(b"\x00" * 0x1000)
    table = lot.parent / "partitions.csv"  # the lot's table no longer matches the build's
    table.write_text(table.read_text(encoding="utf-8").replace("1M", "0x10000"), encoding="utf-8")
    with pytest.raises(StationError) as err:
        open_lot(lot)
    got = problems(err)
    assert any(p.startswith(f"{lot}:0:0: chip: the lot says esp32") and "esp32c3" in p for p in got)
    assert any(
        p.startswith(f"{args_file}:0:0: partition-table: the build's partition table differs")
        and "factory" in p
        for p in got
    ), got
    assert any("extra.bin (0xd000..0xe000) overlaps 'fctry'" in p for p in got), got
    assert (
        f"{args_file}:0:0: app: the app image is 0x11000 bytes, too large for its app partition "
        "'factory' (0x10000 bytes at 0x10000; 0x1000 bytes over): build a smaller app or enlarge "
        "the partition"
    ) in got, got
    assert not list(lot.parent.glob("*.station.db*"))


def test_firmware_and_factory_image_in_one_connection(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 3)
    build = make_build(lot)
    dev = FakeDevice("aa:00:00:00:00:01")
    with open_lot(lot) as opened:
        bench = run_one(opened, dev)
        assert opened.ledger.row(0).state == "done"
        assert bench.sessions == 1 and len(bench.write_calls) == 1
        for offset, data in files_of(build).items():
            assert bytes(dev.flash[offset : offset + len(data)]) == data
        f = opened.factory
        image = bytes(dev.flash[f.offset : f.end])
        assert decode_image(image).as_dict()["factory"]["serial_no"] == "SN0001"


def test_a_device_holding_its_row_but_not_the_firmware_gets_only_the_firmware(
    tmp_path: Path,
) -> None:
    lot = make_small_lot(tmp_path / "l", 3)
    build = make_build(lot)
    dev = FakeDevice("aa:00:00:00:00:02")
    with open_lot(lot) as opened:  # the unit was done before the lot named firmware
        f = opened.factory
        image = opened.image_for(opened.row(0))
        dev.flash[f.offset : f.end] = image
        led = opened.ledger
        claim = led.claim_row(0, mac=dev.mac, port="fake://1")
        led.set_image(claim, hashlib.sha256(image).hexdigest())
        led.mark_written(claim, {})
        led.complete(claim, {}, chip="esp32")
    with open_lot(lot) as opened:
        bench = run_one(opened, dev)
        assert opened.ledger.row(0).state == "done" and opened.ledger.row(0).mac == dev.mac
        (written,) = bench.write_calls
        assert [r.offset for r in written] == sorted(files_of(build))  # no factory rewrite
        assert bytes(dev.flash[0x10000:0x12000]) == (build / "app.bin").read_bytes()


@pytest.mark.slow
def test_firmware_on_a_simulated_device_reads_back(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 2)
    build = make_build(lot)
    with SimulatedDevice() as dev, open_lot(lot) as opened:
        with Orchestrator(opened, on_event=lambda e: None, no_stub=True) as orch:
            orch.add_port(dev.port)
            orch.start(dev.port)
            assert orch.wait_idle(120)
        assert opened.ledger.row(0).state == "done", opened.ledger.attempts(0)
        with open_device(dev.port, no_stub=True) as session:
            for offset, data in files_of(build).items():
                assert session.read(offset, len(data)) == data
            f = opened.factory
            held = session.read(f.offset, f.size)
        assert held == opened.image_for(opened.row(0))
        assert decode_image(held).as_dict()["factory"]["serial_no"] == "SN0001"


def test_a_device_too_small_for_the_build_is_left_untouched(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 2)
    make_build(lot)
    dev = FakeDevice("aa:00:00:00:00:03", flash=bytearray(b"\xff" * 0x10000))
    with open_lot(lot) as opened:
        bench = run_one(opened, dev)
        assert opened.ledger.count("pending") == 2 and not bench.write_calls
    assert dev.flash == bytearray(b"\xff" * 0x10000)


def test_an_auto_chip_lot_expects_its_builds_chip(tmp_path: Path) -> None:
    lot = make_small_lot(tmp_path / "l", 2, extra='chip = "auto"\n')
    make_build(lot, chip="esp32c3")
    with open_lot(lot) as opened:
        assert opened.chip == "esp32c3"


def test_the_app_must_fit_the_smallest_ota_slot(tmp_path: Path) -> None:
    """ESP-IDF's check_sizes, at lot opening: an app written to an OTA slot must fit every
    slot, since updates move it between them."""
    lot = make_small_lot(tmp_path / "l", 3)
    table = lot.parent / "partitions.csv"
    table.write_text(
        table.read_text(encoding="utf-8").replace(
            "factory, app, factory, 0x10000, 1M,",
            "ota_0, app, ota_0, 0x10000, 1M,\nota_1, app, ota_1, 0x110000, 0x10000,",
        ),
        encoding="utf-8",
    )
    build = make_build(lot, app_size=0x11000)
    with pytest.raises(StationError) as err:
        open_lot(lot)
    assert problems(err) == [
        f"{build / 'flasher_args.json'}:0:0: app: the app image is 0x11000 bytes, too large for "
        "the smallest OTA slot 'ota_1' (0x10000 bytes at 0x110000; 0x1000 bytes over); every OTA "
        "slot must hold the app: build a smaller app or enlarge the slots",
    ]
    assert not list(lot.parent.glob("*.station.db*"))


def test_a_bootloader_that_would_run_into_the_table_is_refused(tmp_path: Path) -> None:
    """A build that does not write the table itself (the device keeps its own) must still end
    its bootloader before the table (check_sizes' bootloader check)."""
    lot = make_small_lot(tmp_path / "l", 3)
    build = make_build(lot)
    args_file = build / "flasher_args.json"
    args = json.loads(args_file.read_text(encoding="utf-8"))
    del args["flash_files"]["0x8000"]
    args_file.write_text(json.dumps(args), encoding="utf-8")
    (build / "bootloader" / "bootloader.bin").write_bytes(b"\xe9" + bytes(0x7FFF))
    with pytest.raises(StationError) as err:
        open_lot(lot)
    assert problems(err) == [
        f"{args_file}:0:0: bootloader: the bootloader image is 0x8000 bytes; from 0x1000 to the "
        "partition table at 0x8000 there is room for 0x7000, so it would overlap the table by "
        "0x1000 bytes: move the table up (CONFIG_PARTITION_TABLE_OFFSET) or make the bootloader "
        "smaller"
    ]
