"""`station run` in-process on in-memory devices: one line per unit, count, exit codes."""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any

import pytest

import station.flashing
from station.cli import main
from station.ledger import Ledger
from tests.production.conftest import make_small_lot
from tests.production.fakes import FakeBench, FakeDevice, FakeSession


class Conveyor(FakeBench):
    """Each port has a queue of boards; once a board's row is done, the next one is put in."""

    def __init__(self, db: Path, lot_name: str) -> None:
        super().__init__()
        self.queues: dict[str, deque[FakeDevice]] = {}
        self.db, self.lot_name = db, lot_name
        self.local = threading.local()

    def load(self, port: str, devices: list[FakeDevice]) -> None:
        self.queues[port] = deque(devices)
        self.put(port, self.queues[port].popleft())

    def opener(self, port: str, **kw: Any) -> FakeSession:
        led = getattr(self.local, "led", None)
        if led is None:
            led = self.local.led = Ledger(self.db)
            led.attach(self.lot_name)
        dev = self.devices.get(port)
        if dev is not None and self.queues[port]:
            row = led.row_of_mac(dev.mac)
            if row is not None and (row.state == "done" or row.attempts >= 2):
                self.put(port, self.queues[port].popleft())
        return super().opener(port, **kw)


def boards(prefix: int, n: int, **kw: Any) -> list[FakeDevice]:
    return [FakeDevice(f"24:0a:c4:{prefix:02x}:00:{i:02x}", **kw) for i in range(n)]


@pytest.fixture
def lot(tmp_path: Path) -> Path:
    return make_small_lot(tmp_path / "lot", 8, name="RUN")


def run(lot: Path, bench: Conveyor, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(station.flashing, "open_device", bench.opener)
    ports = [a for p in bench.queues for a in ("--port", p)]
    return main(["run", str(lot), *ports, "--poll", "0.01", *args])


def test_run_flashes_the_whole_lot(
    lot: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = Conveyor(lot.parent / "RUN.station.db", "RUN")
    bench.load("sim://1", boards(1, 4))
    bench.load("sim://2", boards(2, 4))
    assert run(lot, bench, monkeypatch, "--operator", "ann") == 0
    out = capsys.readouterr().out.splitlines()
    passed = [line for line in out if line.startswith("PASS ")]
    assert len(passed) == 8
    assert sorted(line.split()[2] for line in passed) == [f"unit=SN{i:04d}" for i in range(1, 9)]
    assert out[-1] == "run: 8 done, 0 failed; lot: 8 done, 0 failed, 0 remaining"


def test_run_count_stops_after_n_units(
    lot: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = Conveyor(lot.parent / "RUN.station.db", "RUN")
    bench.load("sim://1", boards(1, 4))
    bench.load("sim://2", boards(2, 4))
    assert run(lot, bench, monkeypatch, "--count", "3") == 0
    out = capsys.readouterr().out
    assert out.count("PASS ") == 3 and "lot: 3 done, 0 failed, 5 remaining" in out


def test_run_reports_failed_units_and_exits_1(
    lot: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = Conveyor(lot.parent / "RUN.station.db", "RUN")
    bench.load("sim://1", boards(1, 1, faults={"writing": 2}) + boards(3, 8))
    assert run(lot, bench, monkeypatch, "--retries", "1") == 1
    captured = capsys.readouterr()
    fails = [line for line in captured.out.splitlines() if line.startswith("FAIL ")]
    assert len(fails) == 2 and all("write failed" in line for line in fails)
    assert "row=1 " in fails[0] and "lot: 7 done, 1 failed, 0 remaining" in captured.out
    assert "error: sim://1" in captured.err


def test_run_refuses_a_bad_count(lot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(lot), "--port", "x", "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err


def test_run_names_ports_by_their_slots(
    lot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from station.flashing import PortInfo

    slots = tmp_path / "slots.json"
    slots.write_text('{"1-4.2": "slot A"}', encoding="utf-8")

    def fake_list_ports(slot_map, **_):  # type: ignore[no-untyped-def]
        return [PortInfo("sim://1", location="1-4.2", slot=slot_map.slot_for("1-4.2", "sim://1"))]

    monkeypatch.setattr(station.flashing, "list_ports", fake_list_ports)
    bench = Conveyor(lot.parent / "RUN.station.db", "RUN")
    bench.load("sim://1", boards(1, 1))
    bench.load("sim://2", boards(2, 1))
    assert run(lot, bench, monkeypatch, "--count", "2", "--slots", str(slots)) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("PASS")]
    assert sorted(line.split()[1] for line in lines) == ["sim://2", "slot"]
    assert any(line.startswith("PASS slot A unit=") for line in lines)


class LateBoard(FakeBench):
    """A port where a board arrives only after the station has looked ``polls`` times."""

    def __init__(self, polls: int) -> None:
        super().__init__()
        self.polls, self.looks = polls, 0

    def opener(self, port: str, **kw: Any) -> FakeSession:
        self.looks += 1
        if self.looks == self.polls:
            self.put(port, FakeDevice("24:0a:c4:77:00:01"))
        return super().opener(port, **kw)


def test_a_port_waiting_for_a_device_says_so_once(
    lot: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = LateBoard(polls=25)
    monkeypatch.setattr(station.flashing, "open_device", bench.opener)
    assert main(["run", str(lot), "--port", "sim://late", "--poll", "0.001", "--count", "1"]) == 0
    out, err = capsys.readouterr()
    assert bench.looks >= 25
    waiting = [line for line in err.splitlines() if line.startswith("waiting:")]
    assert waiting == ["waiting: sim://late: waiting for a device (no device answers on this port)"]
    assert out.count("PASS ") == 1


@pytest.mark.parametrize(
    ("lot_lease", "flag", "held"),
    [("", [], 30.0), ("lease = 12\n", [], 12.0), ("lease = 12\n", ["--lease", "5"], 5.0)],
)
def test_a_run_holds_its_claims_under_the_lots_lease_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lot_lease: str, flag: list[str], held: float
) -> None:
    lot = make_small_lot(tmp_path / "lot", 2, name="RUN", extra=lot_lease)
    bench = Conveyor(lot.parent / "RUN.station.db", "RUN")
    bench.load("sim://1", boards(1, 2))
    assert run(lot, bench, monkeypatch, "--count", "1", *flag) == 0
    led = Ledger(lot.parent / "RUN.station.db")
    assert [r[0] for r in led._q("SELECT lease_s FROM runs")] == [held]
    led.close()
