"""The flashing engine: esptool in-process, one job per port, per-port progress, verified.

No Qt. See :mod:`station.flashing.device` (one connection), :mod:`station.flashing.jobs`
(jobs on many ports), :mod:`station.flashing.firmware` (an ESP-IDF build's files as write
regions), :mod:`station.flashing.ports` (discovery, slots, hot-plug) and
:mod:`station.flashing.simulated` (simulated devices for tests and the demo).
"""

from station.flashing.device import (
    PHASES,
    DeviceInfo,
    DeviceSession,
    FlashError,
    Progress,
    WriteRegion,
    chip_label,
    open_device,
)
from station.flashing.firmware import firmware_regions, load_firmware
from station.flashing.jobs import FlashJob, JobResult, describe_existing, run_job, run_jobs
from station.flashing.ports import PortInfo, PortWatcher, SlotMap, list_ports
from station.flashing.simulated import SimulatedDevice, start_simulated_devices

__all__ = [
    "PHASES",
    "DeviceInfo",
    "DeviceSession",
    "FlashError",
    "FlashJob",
    "JobResult",
    "PortInfo",
    "PortWatcher",
    "Progress",
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
