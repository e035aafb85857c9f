"""The flashing layer's light types: what a device said, what to write, progress, faults, and
the ``Session`` / ``Opener`` protocols that both an in-process esptool connection
(:class:`~station.flashing.device.DeviceSession`) and one living in the device host
(:class:`~station.flashing.host.RemoteSession`) satisfy.

Nothing here imports esptool or pyserial, so any layer can import these at module top without
loading esptool (which :mod:`station.flashing.device` does).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from station.partitions import PartitionTable

# "burning eFuses": a lot with a [security] recipe, after verifying (station.security)
PHASES = (
    "connecting",
    "identifying",
    "checking",
    "writing",
    "verifying",
    "burning eFuses",
    "resetting",
)

# The chips a lot may name (esptool's chip arguments), "auto" for whatever answers. The lot
# file, the New-lot dialog and the command line take them from here.
CHIPS = (
    "auto",
    "esp32",
    "esp32s2",
    "esp32s3",
    "esp32c2",
    "esp32c3",
    "esp32c5",
    "esp32c6",
    "esp32c61",
    "esp32h2",
    "esp32p4",
)


@dataclass(frozen=True)
class Progress:
    """Where one port's job is: ``done`` of ``total`` bytes in ``phase`` (0/0: phase started)."""

    port: str
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class DeviceInfo:
    """What a connected device told us about itself."""

    port: str
    chip: str  # esptool's name, e.g. "ESP32-C3"
    mac: str  # "24:0a:c4:12:34:56"
    flash_size: int | None  # bytes, None when the flash chip did not say


@dataclass(frozen=True)
class WriteRegion:
    """Bytes to write at a flash offset; ``name`` is for messages (e.g. the partition name).

    ``readback``: verify by reading the region back and comparing (the factory image); False
    verifies by the device's MD5 of the region instead (firmware: megabytes, see
    :mod:`station.flashing.firmware`)."""

    offset: int
    data: bytes
    name: str = ""
    readback: bool = True


class FaultKind(enum.Enum):
    """What kind of fault a :class:`FlashError` is; decisions are taken on this, never on the
    reason's text (which is for the operator and may be reworded)."""

    DEVICE = "device"  # the device or its link failed (no answer, garbled data, a timeout)
    MISMATCH = "mismatch"  # verification: the device holds other data than the region
    PORT_BUSY = "port-busy"  # another program has the port open
    HOST = "host"  # the device host process stopped or could not start


class FlashError(Exception):
    """A device fault, with a reason in the operator's words, the phase it happened in, and
    its :class:`FaultKind`."""

    def __init__(
        self, reason: str, *, phase: str = "", port: str = "", kind: FaultKind = FaultKind.DEVICE
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.phase = phase
        self.port = port
        self.kind = kind


class Session(Protocol):
    """One open connection to one device (a context manager; every fault is a FlashError)."""

    port: str
    info: DeviceInfo
    cancel: threading.Event

    @property
    def loader(self) -> Any:
        """The connected esptool loader (station.security burns eFuses through it)."""
        ...

    def read(self, offset: int, size: int) -> bytes: ...

    def is_blank(self, offset: int, size: int) -> bool: ...

    def read_partition_table(self) -> PartitionTable | None: ...

    def write(self, regions: Sequence[WriteRegion]) -> None: ...

    def verify(self, regions: Sequence[WriteRegion]) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Session: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Opener(Protocol):
    """How the orchestrator opens a port: :func:`station.flashing.open_device`, the device
    host's ``open_device``, or a test's fake."""

    def __call__(
        self,
        port: str,
        *,
        chip: str = ...,
        baud: int = ...,
        on_progress: Callable[[Progress], None] | None = ...,
        cancel: threading.Event | None = ...,
        no_stub: bool = ...,
        timeout: float = ...,
    ) -> Session: ...
