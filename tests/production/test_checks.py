"""station.production.checks on in-memory devices: fits, table, decodes, differing regions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from station.flashing import FaultKind, FlashError, WriteRegion
from station.partitions import parse_csv_text, to_binary
from station.production import open_lot
from station.production.checks import check_decodes, check_fits, check_table, differing
from station.production.events import DeviceRefused
from station.production.lot import Lot
from tests.production.conftest import make_small_lot
from tests.production.fakes import FakeBench, FakeDevice, FakeSession

MAC = "24:0a:c4:00:09:01"


@pytest.fixture
def lot(tmp_path: Path) -> Iterator[Lot]:
    opened = open_lot(make_small_lot(tmp_path / "lot", 3))
    yield opened
    opened.close()


def session(dev: FakeDevice) -> FakeSession:
    return FakeSession("fake://1", dev, FakeBench(), None)


def test_a_device_too_small_for_the_lot_is_refused(lot: Lot) -> None:
    small = FakeDevice(MAC, flash=bytearray(b"\xff" * 0x8000))  # the factory ends at 0x10000
    with pytest.raises(DeviceRefused, match="beyond the device's"):
        check_fits(lot, MAC, session(small))
    check_fits(lot, MAC, session(FakeDevice(MAC)))


def test_a_blank_or_equal_table_is_fine_and_a_moved_factory_partition_is_refused(
    lot: Lot,
) -> None:
    dev = FakeDevice(MAC)
    assert check_table(lot, MAC, session(dev)) is None  # a blank table: a new board
    dev.flash[0x8000:0x8C00] = to_binary(lot.table)
    assert check_table(lot, MAC, session(dev)) is None
    moved = parse_csv_text(
        "nvs, data, nvs, 0x9000, 0x4000,\nfctry, data, nvs, 0xe000, 0x3000,\n"
        "factory, app, factory, 0x10000, 1M,\n"
    )
    dev.flash[0x8000:0x8C00] = to_binary(moved)
    with pytest.raises(DeviceRefused, match="at 0xe000"):
        check_table(lot, MAC, session(dev))


def test_a_table_that_differs_elsewhere_is_a_warning(lot: Lot) -> None:
    dev = FakeDevice(MAC)
    other = parse_csv_text(
        "nvs, data, nvs, 0x9000, 0x4000,\nfctry, data, nvs, 0xd000, 0x3000,\n"
        "factory, app, factory, 0x10000, 2M,\n"
    )
    dev.flash[0x8000:0x8C00] = to_binary(other)
    warning = check_table(lot, MAC, session(dev))
    assert warning is not None and warning.startswith(f"{MAC}: partition table differs")


def test_the_data_read_back_must_decode_with_the_units_keys(lot: Lot) -> None:
    row = lot.row(0)
    check_decodes(lot, row, lot.image_for(row), "fake://1")
    with pytest.raises(FlashError, match="does not decode") as err:
        check_decodes(lot, row, b"\x00" * lot.factory.size, "fake://1")
    assert err.value.port == "fake://1" and err.value.phase == "verifying"


class _Verifier:
    """A session whose verify raises the given fault."""

    def __init__(self, fault: FlashError | None) -> None:
        self.fault = fault
        self.calls = 0

    def verify(self, regions: list[WriteRegion]) -> None:
        self.calls += 1
        if self.fault is not None:
            raise self.fault


def test_differing_decides_on_the_kind_of_fault_never_its_text() -> None:
    regions = [WriteRegion(0x1000, b"a"), WriteRegion(0x2000, b"b")]
    assert differing(_Verifier(None), regions) == []  # type: ignore[arg-type]
    # a mismatch, however it is worded: every region is written again
    mismatch = FlashError("zzz", kind=FaultKind.MISMATCH)
    assert differing(_Verifier(mismatch), regions) == regions  # type: ignore[arg-type]
    # a device fault worded like a mismatch is still a device fault
    worded = FlashError("verify failed: the device holds different data", kind=FaultKind.DEVICE)
    with pytest.raises(FlashError) as err:
        differing(_Verifier(worded), regions)  # type: ignore[arg-type]
    assert err.value is worded
    nothing = _Verifier(mismatch)
    assert differing(nothing, []) == [] and nothing.calls == 0  # type: ignore[arg-type]
