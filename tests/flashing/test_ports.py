"""Port discovery, slot names by USB location, and hot-plug polling (injected listers)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from station.errors import StationError
from station.flashing import PortInfo, PortWatcher, SlotMap, list_ports


def fake_comports(*ports: SimpleNamespace):  # type: ignore[no-untyped-def]
    return lambda: list(ports)


def usb(device: str, location: str, serial: str = "S1") -> SimpleNamespace:
    return SimpleNamespace(
        device=device,
        description="CP2102N",
        vid=0x10C4,
        pid=0xEA60,
        serial_number=serial,
        location=location,
    )


def test_list_ports_names_slots_by_usb_location(monkeypatch, tmp_path: Path) -> None:
    import serial.tools.list_ports as lp

    slots_file = tmp_path / "slots.json"
    slots_file.write_text('{"1-4.2": "slot 2", "1-4.1": "slot 1"}', encoding="utf-8")
    monkeypatch.setattr(
        lp,
        "comports",
        fake_comports(
            usb("/dev/ttyUSB7", "1-4.2"),
            usb("/dev/ttyUSB3", "1-4.1"),
            SimpleNamespace(
                device="/dev/ttyS0",
                description="n/a",
                vid=None,
                pid=None,
                serial_number=None,
                location=None,
            ),
        ),
    )
    slots = SlotMap.load(slots_file)
    ports = list_ports(slots, usb_only=True)
    assert [(p.slot, p.device) for p in ports] == [
        ("slot 1", "/dev/ttyUSB3"),
        ("slot 2", "/dev/ttyUSB7"),
    ]
    assert ports[0].usb_id == "10c4:ea60" and ports[0].serial_number == "S1"
    # the OS renumbers the ports: the slots keep their names
    monkeypatch.setattr(
        lp, "comports", fake_comports(usb("/dev/ttyUSB0", "1-4.2"), usb("/dev/ttyUSB1", "1-4.1"))
    )
    assert {p.slot: p.device for p in list_ports(slots)} == {
        "slot 2": "/dev/ttyUSB0",
        "slot 1": "/dev/ttyUSB1",
    }
    everything = list_ports(SlotMap())
    assert {p.slot for p in everything} == {"1-4.2", "1-4.1"}


def test_slot_map_round_trip_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "slots.json"
    m = SlotMap.load(f)  # missing file: empty
    m.assign("1-1", "A")
    m.assign("1-2", "A")  # a name moves to its new location
    m.save(f)
    assert SlotMap.load(f).mapping == {"1-2": "A"}
    f.write_text('{\n  "1-1": "A",\n  "1-2": }', encoding="utf-8")
    with pytest.raises(StationError) as info:
        SlotMap.load(f)
    assert str(info.value.problems[0]).startswith(f"{f}:3:")
    f.write_text('{"1-1": "A", "1-2": "A"}', encoding="utf-8")
    with pytest.raises(StationError, match="share this slot name"):
        SlotMap.load(f)


def test_port_watcher_reports_changes_only() -> None:
    present: list[PortInfo] = [PortInfo("COM3", location="1-1")]
    seen: list[list[str]] = []
    w = PortWatcher(
        on_change=lambda ports: seen.append([p.device for p in ports]),
        lister=lambda: list(present),
        start=False,
    )
    w.poll()
    w.poll()  # nothing changed
    present.append(PortInfo("COM4", location="1-2"))
    w.poll()
    present.pop(0)
    w.poll()
    assert seen == [["COM3"], ["COM3", "COM4"], ["COM4"]]


def test_port_watcher_thread_survives_a_failing_lister() -> None:
    import threading

    calls = 0
    changed = threading.Event()

    def lister() -> list[PortInfo]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("device busy")
        return [PortInfo("COM9")]

    w = PortWatcher(poll_interval=0.01, on_change=lambda ports: changed.set(), lister=lister)
    try:
        assert changed.wait(10)
    finally:
        w.stop()
    assert w.errors == 1
