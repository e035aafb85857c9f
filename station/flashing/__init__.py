"""The flashing engine: esptool in-process, one job per port, per-port progress, verified.

No Qt. See :mod:`station.flashing.types` (the light types and the Session/Opener protocols,
importable without esptool), :mod:`station.flashing.device` (one connection),
:mod:`station.flashing.jobs` (jobs on many ports), :mod:`station.flashing.firmware` (an ESP-IDF
build's files as write regions), :mod:`station.flashing.ports` (discovery, slots, hot-plug),
:mod:`station.flashing.host` (esptool sessions in a child process) and
:mod:`station.flashing.simulated` (simulated devices for tests and the demo).

The names that need esptool are loaded on first use, so importing this package (or its types)
does not load esptool.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from station.flashing.types import (
    CHIPS,
    PHASES,
    DeviceInfo,
    FaultKind,
    FlashError,
    Opener,
    Progress,
    Session,
    WriteRegion,
)

if TYPE_CHECKING:
    from station.flashing.device import DeviceSession, chip_label, open_device
    from station.flashing.firmware import firmware_regions, load_firmware
    from station.flashing.jobs import FlashJob, JobResult, describe_existing, run_job, run_jobs
    from station.flashing.ports import PortInfo, PortWatcher, SlotMap, list_ports
    from station.flashing.simulated import SimulatedDevice, start_simulated_devices

_LAZY = {
    "DeviceSession": "device",
    "chip_label": "device",
    "open_device": "device",
    "firmware_regions": "firmware",
    "load_firmware": "firmware",
    "FlashJob": "jobs",
    "JobResult": "jobs",
    "describe_existing": "jobs",
    "run_job": "jobs",
    "run_jobs": "jobs",
    "PortInfo": "ports",
    "PortWatcher": "ports",
    "SlotMap": "ports",
    "list_ports": "ports",
    "SimulatedDevice": "simulated",
    "start_simulated_devices": "simulated",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'station.flashing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"station.flashing.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CHIPS",
    "PHASES",
    "DeviceInfo",
    "DeviceSession",
    "FaultKind",
    "FlashError",
    "FlashJob",
    "JobResult",
    "Opener",
    "PortInfo",
    "PortWatcher",
    "Progress",
    "Session",
    "SimulatedDevice",
    "SlotMap",
    "WriteRegion",
    "chip_label",
    "describe_existing",
    "firmware_regions",
    "list_ports",
    "load_firmware",
    "open_device",
    "run_job",
    "run_jobs",
    "start_simulated_devices",
]
