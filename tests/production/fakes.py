"""In-memory devices behind the orchestrator's ``opener`` seam: fast tests of its decisions.

The simulated-device tests (esp32-mock-bootloader processes) prove the real path end to end;
these fakes prove the logic (rework, foreign data, faults, recovery) in milliseconds each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from station.flashing import DeviceInfo, FaultKind, FlashError, Progress, WriteRegion

FLASH = 0x40000


def flash_error(
    reason: str, phase: str, port: str, kind: FaultKind = FaultKind.DEVICE
) -> FlashError:
    return FlashError(reason, phase=phase, port=port, kind=kind)


@dataclass
class FakeDevice:
    """A chip: a MAC and a flash; ``faults`` maps a phase to how many times it fails next."""

    mac: str
    chip: str = "esp32"
    flash: bytearray = field(default_factory=lambda: bytearray(b"\xff" * FLASH))
    faults: dict[str, int] = field(default_factory=dict)
    partial_write: bool = False  # a "writing" fault leaves half of the data behind
    writes: int = 0

    def fault(self, phase: str) -> bool:
        n = self.faults.get(phase, 0)
        if n:
            self.faults[phase] = n - 1
        return n > 0


class FakeSession:
    def __init__(
        self,
        port: str,
        dev: FakeDevice,
        bench: FakeBench,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.port, self.dev, self.bench = port, dev, bench
        self.info = DeviceInfo(port=port, chip=dev.chip, mac=dev.mac, flash_size=len(dev.flash))
        self.on_progress = on_progress

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def read(self, offset: int, size: int) -> bytes:
        if self.dev.fault("checking"):
            raise flash_error("read failed: no answer", "checking", self.port)
        return bytes(self.dev.flash[offset : offset + size])

    def read_partition_table(self) -> Any:
        from station.partitions import parse_binary

        data = bytes(self.dev.flash[0x8000:0x8C00])
        return None if data == b"\xff" * len(data) else parse_binary(data)

    def write(self, regions: Sequence[WriteRegion]) -> None:
        self.bench.before_write(self.port, self.dev)
        self.bench.write_calls.append(list(regions))
        for r in regions:
            if self.dev.fault("writing"):
                if self.dev.partial_write:
                    half = len(r.data) // 2
                    self.dev.flash[r.offset : r.offset + half] = r.data[:half]
                raise flash_error("write failed: timeout", "writing", self.port)
            self.dev.flash[r.offset : r.offset + len(r.data)] = r.data
            self.dev.writes += 1
            if self.on_progress:
                self.on_progress(Progress(self.port, "writing", len(r.data), len(r.data)))

    def verify(self, regions: Sequence[WriteRegion]) -> None:
        for r in regions:
            if self.dev.fault("verifying"):
                raise flash_error("no answer while verifying", "verifying", self.port)
            if bytes(self.dev.flash[r.offset : r.offset + len(r.data)]) != r.data:
                # worded unlike the real device on purpose: the orchestrator decides on the
                # kind of fault, never on the text
                raise flash_error(
                    f"the device holds other data at 0x{r.offset:x}",
                    "verifying",
                    self.port,
                    FaultKind.MISMATCH,
                )

    def reset(self) -> None:
        pass


class FakeBench:
    """Ports with (or without) a fake device on each; ``opener`` is given to the orchestrator."""

    def __init__(self) -> None:
        self.devices: dict[str, FakeDevice | None] = {}
        self.lock = threading.Lock()
        self.hook: Callable[[str, FakeDevice], None] | None = None
        self.sessions = 0  # connections opened to a device
        self.write_calls: list[list[WriteRegion]] = []  # regions of each write() call

    def put(self, port: str, dev: FakeDevice | None) -> None:
        with self.lock:
            self.devices[port] = dev

    def before_write(self, port: str, dev: FakeDevice) -> None:
        if self.hook is not None:
            self.hook(port, dev)

    def opener(
        self,
        port: str,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        **_: Any,
    ) -> FakeSession:
        with self.lock:
            dev = self.devices.get(port)
        if dev is None or (cancel is not None and cancel.is_set()):
            raise flash_error("no device answers on this port", "connecting", port)
        if dev.fault("connecting"):
            raise flash_error("no answer from the ROM loader", "connecting", port)
        with self.lock:
            self.sessions += 1
        return FakeSession(port, dev, self, on_progress)
