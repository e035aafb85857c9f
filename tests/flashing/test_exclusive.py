"""Ports are opened exclusively: a second user of a port is refused with "port busy" and the
first one's unit is not disturbed (two programs on one port interleaved bytes before)."""

from __future__ import annotations

import sys

import pytest
import serial

from station.flashing import FaultKind, FlashError, WriteRegion, open_device
from station.flashing.host import DeviceHost
from station.nvs import decode_image
from tests.flashing.conftest import FACTORY_OFFSET, FACTORY_SIZE, nvs_image

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no PTY on Windows")


def test_a_second_user_of_a_pty_is_refused_and_the_first_unit_passes(sim) -> None:
    (dev,) = sim(1, transport="pty")
    image = nvs_image("SN-EXCL-1")
    region = WriteRegion(FACTORY_OFFSET, image, "fctry")
    with open_device(dev.port, chip="esp32", no_stub=True) as first:
        with pytest.raises(FlashError) as err:
            open_device(dev.port, chip="esp32", no_stub=True, timeout=2.0)
        assert err.value.reason.startswith("port busy: in use by another program")
        assert err.value.phase == "connecting" and err.value.kind is FaultKind.PORT_BUSY
        with pytest.raises(serial.SerialException):  # any program that locks, as esptool does
            serial.Serial(dev.port, exclusive=True)
        first.write([region])
        first.verify([region])
        assert first.read(FACTORY_OFFSET, FACTORY_SIZE) == image
    # closed: the port is free again
    with open_device(dev.port, no_stub=True) as again:
        back = again.read(FACTORY_OFFSET, FACTORY_SIZE)
    assert decode_image(back).as_dict()["factory"]["serial_no"] == "SN-EXCL-1"


def test_the_device_host_opens_ports_exclusively_too(sim) -> None:
    (dev,) = sim(1, transport="pty")
    image = nvs_image("SN-EXCL-2")
    region = WriteRegion(FACTORY_OFFSET, image, "fctry")
    with DeviceHost() as host, host.open_device(dev.port, chip="esp32", no_stub=True) as first:
        with pytest.raises(FlashError) as err:
            open_device(dev.port, chip="esp32", no_stub=True, timeout=2.0)
        assert err.value.reason.startswith("port busy: in use by another program")
        with pytest.raises(FlashError) as err2:
            host.open_device(dev.port, chip="esp32", no_stub=True, timeout=2.0)
        assert err2.value.reason.startswith("port busy: in use by another program")
        assert err2.value.kind is FaultKind.PORT_BUSY  # the kind crosses the host's pipe
        first.write([region])
        first.verify([region])
