"""End to end on simulated chips (esp32-mock-bootloader processes with distinct MACs)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from station.cli import main
from station.flashing import SimulatedDevice, open_device, start_simulated_devices
from station.nvs import decode_image
from station.production import Orchestrator, PortUpdate, open_lot
from station.production.lot import Lot
from tests.production.conftest import make_small_lot
from tests.production.jig import Jig

pytestmark = pytest.mark.slow


@pytest.fixture
def sim() -> Iterator[Callable[[int], list[SimulatedDevice]]]:
    started: list[SimulatedDevice] = []

    def start(n: int) -> list[SimulatedDevice]:
        devs = start_simulated_devices(n)
        started.extend(devs)
        return devs

    try:
        yield start
    finally:
        for d in started:
            d.stop()


@pytest.fixture
def jigs() -> Iterator[list[Jig]]:
    made = [Jig() for _ in range(4)]
    try:
        yield made
    finally:
        for j in made:
            j.close()


def read_back(lot: Lot, dev: SimulatedDevice) -> bytes:
    with open_device(dev.port, no_stub=True) as session:
        return session.read(lot.factory.offset, lot.factory.size)


def test_twenty_rows_on_four_ports(
    tmp_path: Path,
    sim: Callable[[int], list[SimulatedDevice]],
    jigs: list[Jig],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make_small_lot(tmp_path / "lot", 20)
    events: list[object] = []
    lock = threading.Lock()

    def on_event(e: object) -> None:
        with lock:
            events.append(e)

    held: dict[str, bytes] = {}
    macs: dict[str, str] = {}
    with open_lot(path) as lot:
        with Orchestrator(lot, on_event=on_event, no_stub=True, operator="ann") as orch:
            for i, jig in enumerate(jigs):
                orch.add_port(jig.port, slot=f"slot {i + 1}")
            for _ in range(5):  # five boards per slot, four at a time
                devs = sim(4)
                for jig, dev in zip(jigs, devs, strict=True):
                    jig.insert(dev.port)
                orch.start_all()
                assert orch.wait_idle(120)
                for dev in devs:
                    held[dev.mac] = read_back(lot, dev)
                    macs[dev.mac] = dev.port
                    dev.stop()
        led = lot.ledger
        assert led.count("done") == 20 and len(held) == 20
        for r in led.rows(0, 20):
            assert r.mac in held
            decoded = decode_image(held[r.mac]).as_dict()["factory"]
            values = lot.row(r.index).values
            assert decoded["serial_no"] == values["serial_no"] == r.unit_id
            assert decoded["device_key"] == bytes.fromhex(values["device_key"])
            assert decoded["hw_rev"] == int(values["hw_rev"])
            assert held[r.mac] == lot.image_for(lot.row(r.index))
    passed = [e for e in events if isinstance(e, PortUpdate) and e.state == "passed"]
    assert len(passed) == 20 and {e.slot for e in passed} == {f"slot {i}" for i in range(1, 5)}
    assert main(["report", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["done"] == 20 and report["summary"]["yield"] == 1.0
    assert {r["mac"] for r in report["rows"]} == set(held)
    assert {r["port"] for r in report["rows"]} == {j.port for j in jigs}
    assert all(r["attempts"] == 1 for r in report["rows"])


@pytest.mark.parametrize("fault", ["cut", "garble"])
def test_a_line_fault_fails_the_unit_which_is_retried(
    tmp_path: Path, sim: Callable[[int], list[SimulatedDevice]], jigs: list[Jig], fault: str
) -> None:
    path = make_small_lot(tmp_path / "lot", 3)
    (dev,) = sim(1)
    jig = jigs[0]
    jig.insert(dev.port)
    # well into the write of the 12 KiB image
    jig.cut_after(8000) if fault == "cut" else jig.garble_after(8000)
    with open_lot(path) as lot:
        with Orchestrator(
            lot,
            on_event=lambda e: None,
            no_stub=True,
            auto_start=True,
            max_units=1,
            auto_retry=1,
            poll_interval=0.05,
        ) as orch:
            orch.add_port(jig.port)
            assert orch.wait_idle(120)
            assert (orch.units_done, orch.units_failed) == (1, 1)
        first, second = lot.ledger.attempts(0)
        assert (first.kind, first.result, first.mac) == ("new", "failed", dev.mac)
        assert "while writing" in first.reason and first.image_sha256 is not None
        assert (second.kind, second.result) == ("retry", "done")
        assert lot.ledger.row(0).state == "done" and lot.ledger.count("pending") == 2
        assert read_back(lot, dev) == lot.image_for(lot.row(0))


def test_close_mid_write_cancels_and_leaves_no_thread(
    tmp_path: Path, sim: Callable[[int], list[SimulatedDevice]], jigs: list[Jig]
) -> None:
    path = make_small_lot(tmp_path / "lot", 2)
    (dev,) = sim(1)
    jig = jigs[0]
    jig.insert(dev.port)
    writing = threading.Event()
    jig.on_bytes = lambda j: writing.set() if j.up >= 8000 else None
    before = set(threading.enumerate())
    with open_lot(path) as lot:
        orch = Orchestrator(lot, on_event=lambda e: None, no_stub=True)
        orch.add_port(jig.port)
        orch.start(jig.port)
        assert writing.wait(60)
        orch.close(timeout=5.0)
        assert not [t for t in threading.enumerate() if t.name.startswith("port ")]
        (a,) = lot.ledger.attempts(0)
        assert a.result == "cancelled" and a.image_sha256 is not None
        r = lot.ledger.row(0)
        assert (r.state, r.mac) == ("failed", dev.mac)  # may hold part of it: kept for that board
    jig.on_bytes = None
    assert {t for t in threading.enumerate() if t.name.startswith("port ")} <= before


def test_a_garbled_line_from_the_flashing_proxy_then_another_port(
    tmp_path: Path, sim: Callable[[int], list[SimulatedDevice]]
) -> None:
    """The flashing layer's fault proxy garbles the line mid-write; the unit fails with the
    reason, the board keeps its row, and on a good port it gets that same row back."""
    from tests.flashing.proxy import FaultProxy

    path = make_small_lot(tmp_path / "lot", 3)
    (dev,) = sim(1)
    with FaultProxy(dev.port, "corrupt", after=8000) as proxy, open_lot(path) as lot:
        with Orchestrator(lot, on_event=lambda e: None, no_stub=True) as orch:
            orch.add_port(proxy.port)
            orch.start(proxy.port)
            assert orch.wait_idle(120)
            r = lot.ledger.row(0)
            assert (r.state, r.mac) == ("failed", dev.mac) and "garbled" in r.reason
            orch.remove_port(proxy.port)
            orch.add_port(dev.port)  # the board moved to a good port
            orch.start(dev.port)
            assert orch.wait_idle(120)
        assert [(a.kind, a.result) for a in lot.ledger.attempts(0)] == [
            ("new", "failed"),
            ("retry", "done"),
        ]
        assert lot.ledger.count("pending") == 2
        assert read_back(lot, dev) == lot.image_for(lot.row(0))


def test_a_lost_ledger_does_not_restart_the_lot(
    tmp_path: Path, sim: Callable[[int], list[SimulatedDevice]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows 1-2 done on two chips; the ledger is then replaced by another --db, emptied,
    deleted: each refused (exit 2, nothing written). Rebuilt from the journal, the lot goes on
    with rows 3-4 on two new chips, and the first two are verified, not re-programmed."""
    path = make_small_lot(tmp_path / "lot", 4, name="LOSS")
    db = path.parent / "LOSS.station.db"
    first = sim(2)
    run = ["run", str(path), "--no-stub", "--poll", "0.05"]
    assert main([*run, "--port", first[0].port, "--port", first[1].port, "--count", "2"]) == 0
    capsys.readouterr()
    images = {d.mac: read_back_port(path, d) for d in first}

    def refused(*extra: str) -> str:
        assert main([*run, "--port", first[0].port, *extra]) == 2
        return capsys.readouterr().err

    err = refused("--db", str(tmp_path / "other.db"))
    assert f"was started with the ledger {db.resolve()}" in err
    assert not (tmp_path / "other.db").exists()
    saved = db.read_bytes()
    db.write_bytes(b"")
    assert "the ledger is empty (0 bytes)" in refused()
    db.unlink()
    assert "the ledger is missing" in refused()
    assert not db.exists()
    db.write_bytes(saved)  # not needed by the rebuild: it is moved aside all the same
    assert main(["ledger", "rebuild", str(path)]) == 0
    assert "2 done, 0 failed, 2 pending" in capsys.readouterr().out
    second = sim(2)
    with open_lot(path) as lot:
        with Orchestrator(lot, on_event=lambda e: None, no_stub=True) as orch:
            for dev in [*first, *second]:
                orch.add_port(dev.port)
            orch.start_all()
            assert orch.wait_idle(120)
        led = lot.ledger
        assert led.count("done") == 4
        assert {led.row(i).mac for i in (0, 1)} == {d.mac for d in first}
        assert {led.row(i).mac for i in (2, 3)} == {d.mac for d in second}
        for i in (0, 1):
            assert [(a.kind, a.result, a.wrote) for a in led.attempts(i)][-1] == (
                "rework",
                "done",
                False,
            )
    for d in first:
        assert read_back_port(path, d) == images[d.mac]


def read_back_port(path: Path, dev: SimulatedDevice) -> bytes:
    with open_device(dev.port, no_stub=True) as session:
        return session.read(0xD000, 0x3000)  # the small lot's fctry partition
