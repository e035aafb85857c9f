"""Serial ports: discovery with USB location, stable slot names, hot-plug by polling.

A fixture's slot is named by its USB location (the hub path, e.g. ``1-4.2``), not by the port
name the OS happens to give it (``COM7`` today, ``COM12`` after a reboot). The mapping
location -> slot name lives in a small JSON file the operator can edit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from station.errors import StationError
from station.files import MAX_SMALL_FILE, InputFileError, read_input


@dataclass(frozen=True)
class PortInfo:
    """One serial port as the OS lists it, plus its slot name."""

    device: str  # what pyserial opens: COM7, /dev/ttyUSB0
    description: str = ""
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    location: str | None = None  # USB hub path, e.g. "1-4.2" (None for non-USB ports)
    slot: str = ""

    @property
    def usb_id(self) -> str:
        """ "303a:1001" style VID:PID, "" for non-USB ports."""
        if self.vid is None or self.pid is None:
            return ""
        return f"{self.vid:04x}:{self.pid:04x}"


class SlotMap:
    """USB location -> slot name, kept in a JSON object file ``{"1-4.2": "slot 3", ...}``."""

    def __init__(self, mapping: Mapping[str, str] | None = None, path: Path | None = None):
        self.mapping: dict[str, str] = dict(mapping or {})
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> SlotMap:
        """Read a mapping file; a missing file is an empty mapping; bad content a
        StationError."""
        p = Path(path)
        if not p.exists():
            return cls({}, p)
        try:
            text = read_input(p, MAX_SMALL_FILE, "a slot map").decode("utf-8")
        except InputFileError as err:
            raise StationError.at(str(p), str(err)) from None
        except UnicodeDecodeError as err:
            raise StationError.at(str(p), f"not UTF-8 text: {err.reason}") from None
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as err:
            raise StationError.at(
                str(p), f"not valid JSON: {err.msg}", line=err.lineno, column=err.colno
            ) from None
        if not isinstance(data, dict):
            raise StationError.at(str(p), 'must be a JSON object {"usb location": "slot"}')
        bad = [k for k, v in data.items() if not isinstance(v, str) or not v.strip()]
        if bad:
            raise StationError.at(str(p), "slot names must be non-empty text", key=bad[0])
        names = list(data.values())
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise StationError.at(str(p), "two locations share this slot name", key=dupes[0])
        return cls(data, p)

    def save(self, path: str | Path | None = None) -> None:
        p = Path(path) if path is not None else self.path
        if p is None:
            raise ValueError("no path to save the slot map to")
        p.write_text(json.dumps(self.mapping, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def slot_for(self, location: str | None, device: str) -> str:
        """The slot name of a port: the mapped name, else the USB location, else the device."""
        if location and location in self.mapping:
            return self.mapping[location]
        return location or device

    def assign(self, location: str, name: str) -> None:
        for loc, existing in list(self.mapping.items()):
            if existing == name and loc != location:
                del self.mapping[loc]
        self.mapping[location] = name


def _from_pyserial(info: object, slots: SlotMap) -> PortInfo:
    device = str(getattr(info, "device", ""))
    location = getattr(info, "location", None) or None
    return PortInfo(
        device=device,
        description=str(getattr(info, "description", "") or ""),
        vid=getattr(info, "vid", None),
        pid=getattr(info, "pid", None),
        serial_number=getattr(info, "serial_number", None),
        location=location,
        slot=slots.slot_for(location, device),
    )


def list_ports(slots: SlotMap | None = None, *, usb_only: bool = False) -> list[PortInfo]:
    """The serial ports on this machine, sorted by slot; ``usb_only`` skips built-in UARTs."""
    from serial.tools import list_ports as lp

    slots = slots or SlotMap()
    ports = [_from_pyserial(i, slots) for i in lp.comports()]
    if usb_only:
        ports = [p for p in ports if p.vid is not None]
    return sorted(ports, key=lambda p: (p.slot, p.device))


class PortWatcher:
    """Polls the port list and calls ``on_change(ports)`` whenever ports come or go (and once
    at start). ``lister`` is injectable for tests; the thread starts unless ``start=False``."""

    def __init__(
        self,
        poll_interval: float = 1.0,
        on_change: Callable[[list[PortInfo]], None] | None = None,
        *,
        lister: Callable[[], Iterable[PortInfo]] | None = None,
        start: bool = True,
    ) -> None:
        self.poll_interval = poll_interval
        self.on_change = on_change
        self.lister = lister or (lambda: list_ports(usb_only=True))
        self._last: frozenset[tuple[str, str | None]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        if start:
            self.start()

    def poll(self) -> list[PortInfo] | None:
        """Look once; the new list when it changed, else None (also calls on_change)."""
        try:
            ports = list(self.lister())
        except Exception:  # a flaky OS listing must not kill the watcher; try next time
            self.errors += 1
            return None
        key = frozenset((p.device, p.location) for p in ports)
        if key == self._last:
            return None
        self._last = key
        if self.on_change is not None:
            self.on_change(ports)
        return ports

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="station-port-watcher", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.poll_interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
