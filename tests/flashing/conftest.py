"""Simulated devices for the flashing tests: always stopped, also when a test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from station.flashing import SimulatedDevice, start_simulated_devices
from station.nvs import NvsEntry, encode_image

FACTORY_OFFSET = 0x9000
FACTORY_SIZE = 0x6000  # small: the simulated device's ROM read is slow


def nvs_image(serial: str, size: int = FACTORY_SIZE) -> bytes:
    """A real NVS factory image holding one serial number."""
    return encode_image(
        [
            NvsEntry("factory", "namespace", "", ""),
            NvsEntry("serial_no", "data", "string", serial),
            NvsEntry("batch", "data", "u32", "7"),
        ],
        size,
    )


@pytest.fixture
def sim() -> Iterator[Callable[..., list[SimulatedDevice]]]:
    """``sim(n, chip=..., transport=...)`` starts devices; all are stopped at teardown."""
    started: list[SimulatedDevice] = []

    def start(n: int = 1, **kwargs: object) -> list[SimulatedDevice]:
        devs = start_simulated_devices(n, **kwargs)  # type: ignore[arg-type]
        started.extend(devs)
        return devs

    try:
        yield start
    finally:
        for d in started:
            d.stop()
        assert not any(d.running for d in started)
