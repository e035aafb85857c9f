"""The orchestrator's decisions on in-memory devices: rows, rework, foreign data, faults."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.errors import StationError
from station.ledger import ClaimRefused
from station.nvs import decode_image
from station.production import (
    CountersUpdate,
    Decision,
    LogEvent,
    Orchestrator,
    PortUpdate,
    RowUpdate,
    open_lot,
)
from station.production.lot import Lot
from tests.production.conftest import make_small_lot
from tests.production.fakes import FakeBench, FakeDevice

PORTS = ["fake://1", "fake://2", "fake://3", "fake://4"]


class Events:
    def __init__(self) -> None:
        self.items: list[object] = []
        self.lock = threading.Lock()
        self.decision = threading.Event()

    def __call__(self, event: object) -> None:
        with self.lock:
            self.items.append(event)
        if isinstance(event, Decision):
            self.decision.set()

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        with self.lock:
            return [e for e in self.items if isinstance(e, kind)]


@pytest.fixture
def lot(tmp_path: Path) -> Iterator[Lot]:
    opened = open_lot(make_small_lot(tmp_path / "lot", 20))
    yield opened
    opened.close()


def orchestrator(lot: Lot, bench: FakeBench, events: Events, **kw: object) -> Orchestrator:
    return Orchestrator(
        lot, on_event=events, opener=bench.opener, operator="ann", poll_interval=0.01, **kw
    )  # type: ignore[arg-type]


def region(lot: Lot, dev: FakeDevice) -> bytes:
    f = lot.factory
    return bytes(dev.flash[f.offset : f.offset + f.size])


def held_serial(lot: Lot, dev: FakeDevice) -> str:
    return decode_image(region(lot, dev)).as_dict()["factory"]["serial_no"]  # type: ignore[return-value]


def run_round(orch: Orchestrator) -> None:
    orch.start_all()
    assert orch.wait_idle(30)


def test_twenty_rows_on_four_ports(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    devices = []
    with orchestrator(lot, bench, events) as orch:
        for p in PORTS:
            orch.add_port(p, slot=f"slot {p[-1]}")
        for _ in range(5):
            batch = [FakeDevice(f"24:0a:c4:00:{len(devices) + i:02x}:01") for i in range(4)]
            devices += batch
            for p, d in zip(PORTS, batch, strict=True):
                bench.put(p, d)
            run_round(orch)
    led = lot.ledger
    assert led.count("done") == 20
    for r in led.rows(0, 20):
        dev = next(d for d in devices if d.mac == r.mac)
        assert held_serial(lot, dev) == r.unit_id
        assert region(lot, dev) == lot.image_for(lot.row(r.index))
    assert len({r.mac for r in led.rows(0, 20)}) == 20
    assert len(led._connections) == 1  # worker threads close their connections as they end
    passed = [e for e in events.of(PortUpdate) if e.state == "passed"]
    assert len(passed) == 20 and {e.slot for e in passed} == {f"slot {i}" for i in "1234"}
    assert events.of(CountersUpdate)[-1].done == 20
    assert {e.state for e in events.of(RowUpdate)} >= {"claimed", "written", "done"}


def test_a_provisioned_device_keeps_its_row_and_is_reworked_only_if_changed(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:01")
    bench.put(PORTS[0], dev)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0])
        run_round(orch)
        assert held_serial(lot, dev) == "SN0001" and dev.writes == 1
        run_round(orch)  # same device again: verified by read-back, not rewritten
        assert dev.writes == 1 and lot.ledger.count("done") == 1
        f = lot.factory
        dev.flash[f.offset + 100] ^= 0xFF  # the region got damaged: rework the same row
        run_round(orch)
        assert dev.writes == 2 and held_serial(lot, dev) == "SN0001"
    kinds = [a.kind for a in lot.ledger.attempts(0)]
    assert kinds == ["new", "rework", "rework"] and lot.ledger.count("done") == 1
    assert lot.ledger.row(1).state == "pending"


def test_foreign_data_is_never_overwritten_without_an_answer(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:02")
    f = lot.factory
    dev.flash[f.offset : f.offset + 16] = b"someone else's!!"
    bench.put(PORTS[0], dev)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0])
        orch.start(PORTS[0])
        assert events.decision.wait(30)
        orch.answer(PORTS[0], False)
        assert orch.wait_idle(30)
        assert region(lot, dev)[:16] == b"someone else's!!" and dev.writes == 0
        assert lot.ledger.count("pending") == 20
        events.decision.clear()
        orch.start(PORTS[0])
        assert events.decision.wait(30)
        orch.answer(PORTS[0], True)
        assert orch.wait_idle(30)
    assert held_serial(lot, dev) == "SN0001"
    assert any(a.action == "overwrite" and a.operator == "ann" for a in lot.ledger.audit_log())


def test_failed_units_are_recorded_and_retried_on_the_same_device(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:03", faults={"writing": 1}, partial_write=True)
    bench.put(PORTS[0], dev)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0])
        run_round(orch)
        r = lot.ledger.row(0)
        assert (r.state, r.mac) == ("failed", dev.mac) and "write failed" in r.reason
        other = FakeDevice("24:0a:c4:00:00:04")
        bench.put(PORTS[1], other)
        orch.add_port(PORTS[1])
        orch.start(PORTS[1])  # another device gets row 2, never the failed row 1
        assert orch.wait_idle(30)
        assert lot.ledger.row(1).mac == other.mac and lot.ledger.row(0).state == "failed"
        orch.assign(PORTS[0], 5)  # a unit scanned for the next board on that port
        with pytest.raises(ClaimRefused, match="already has unit SN0006 waiting"):
            orch.retry(0)  # the retry does not silently drop it
        orch.unassign(PORTS[0])
        last = events.of(PortUpdate)[-1]
        assert (last.port, last.state, last.row_index, last.message) == (
            PORTS[0],
            "idle",
            None,
            "unit dropped",
        )
        assert orch.retry(0) == PORTS[0]
        assert orch.wait_idle(30)
    assert lot.ledger.row(0).state == "done" and held_serial(lot, dev) == "SN0001"
    results = [(a.kind, a.result) for a in lot.ledger.attempts(0)]
    assert results[0] == ("new", "failed") and results[-1] == ("retry", "done")
    errors = [e.text for e in events.of(LogEvent) if e.level == "error"]
    assert any("write failed" in t for t in errors)


def test_auto_mode_retries_a_failed_unit_once(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:05", faults={"verifying": 1})
    bench.put(PORTS[0], dev)
    with orchestrator(lot, bench, events, auto_start=True, max_units=1) as orch:
        orch.add_port(PORTS[0])
        assert orch.wait_idle(30)
        assert orch.units_done == 1 and orch.units_failed == 1
    assert [(a.kind, a.result) for a in lot.ledger.attempts(0)] == [
        ("new", "failed"),
        ("retry", "done"),
    ]


def test_a_scanned_unit_goes_to_its_port(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:06")
    bench.put(PORTS[1], dev)
    with orchestrator(lot, bench, events) as orch:
        for p in PORTS[:2]:
            orch.add_port(p)
        assert orch.assign_scan("SN0013", PORTS[1]) == (PORTS[1], 12)
        with pytest.raises(StationError, match="already assigned"):
            orch.assign(PORTS[0], 12)
        with pytest.raises(StationError, match="no unit"):
            orch.assign_scan("NOPE")
        orch.start(PORTS[1])
        assert orch.wait_idle(30)
    assert held_serial(lot, dev) == "SN0013" and lot.ledger.row(12).state == "done"
    again = Orchestrator(lot, on_event=events, opener=bench.opener)
    with pytest.raises(StationError, match="SN0013 is already done on 24:0a:c4:00:00:06"):
        again.assign(None, 12)
    with pytest.raises(StationError, match="done on device 24:0a:c4:00:00:06; it can only go"):
        again.assign(None, 12, rework=True)  # engineer mode still needs the device itself
    again.close()


def test_a_done_unit_scanned_again_is_refused_unless_rework(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:0a")
    bench.put(PORTS[0], dev)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0])
        assert orch.assign_scan("SN0001", PORTS[0]) == (PORTS[0], 0)
        run_round(orch)
        assert lot.ledger.row(0).state == "done" and dev.writes == 1
        for call in (lambda: orch.assign_scan("SN0001"), lambda: orch.assign(PORTS[0], 0)):
            with pytest.raises(ClaimRefused) as refused:
                call()
            msg = refused.value.problems[0].message
            assert msg == "SN0001 is already done on 24:0a:c4:00:00:0a; rework needs engineer mode"
        run_round(orch)  # nothing was assigned: the same device is only verified, not written
        assert dev.writes == 1
        dev.flash[lot.factory.offset + 100] ^= 0xFF
        assert orch.assign(PORTS[0], 0, rework=True) == PORTS[0]  # the engineer's rework
        run_round(orch)
    assert dev.writes == 2 and held_serial(lot, dev) == "SN0001"
    assert [a.kind for a in lot.ledger.attempts(0)] == ["new", "rework", "rework"]
    assert lot.ledger.count("done") == 1


def test_an_explicit_port_with_a_unit_waiting_is_refused_unless_replace(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:0b")
    bench.put(PORTS[0], dev)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0], slot="slot A")
        orch.add_port(PORTS[1])
        assert orch.assign(PORTS[0], 4) == PORTS[0]
        assert orch.assign(PORTS[0], 4) == PORTS[0]  # the same unit again changes nothing
        with pytest.raises(ClaimRefused) as refused:
            orch.assign_scan("SN0008", PORTS[0])
        assert "port slot A already has unit SN0005 waiting" in str(refused.value)
        assert orch.assign(None, 7) == PORTS[1]  # no port named: a free one
        with pytest.raises(ClaimRefused, match="already has unit SN0005"):
            orch.assign(PORTS[0], 9)
        assert orch.assign(PORTS[1], 9, replace=True) == PORTS[1]
        assert any(
            "unit SN0008 no longer waits on fake://2: replaced by unit SN0010" in e.text
            for e in events.of(LogEvent)
        )
        orch.start(PORTS[0])
        assert orch.wait_idle(30)
    assert held_serial(lot, dev) == "SN0005" and lot.ledger.row(4).state == "done"


def test_a_unit_scanned_for_a_busy_port_shows_as_next_without_hiding_the_current_one(
    lot: Lot,
) -> None:
    bench, events = FakeBench(), Events()
    first, second = FakeDevice("24:0a:c4:00:00:21"), FakeDevice("24:0a:c4:00:00:22")
    bench.put(PORTS[0], first)
    writing, scanned = threading.Event(), threading.Event()

    def hold_the_write(port: str, dev: FakeDevice) -> None:
        if dev is first:
            writing.set()
            assert scanned.wait(30)

    bench.hook = hold_the_write
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0], slot="slot A")
        assert orch.assign_scan("SN0001", PORTS[0]) == (PORTS[0], 0)
        orch.start(PORTS[0])
        assert writing.wait(30)  # SN0001 is in progress: its assignment is used up
        sent = len(events.of(PortUpdate))
        assert orch.assign_scan("SN0008", PORTS[0]) == (PORTS[0], 7)  # the operator scans ahead
        scanned.set()
        assert orch.wait_idle(30)
        updates = events.of(PortUpdate)
        on_scan = updates[sent]
        assert (on_scan.state, on_scan.unit_id, on_scan.next_unit) == ("busy", "SN0001", "SN0008")
        assert on_scan.next_row_index == 7
        passed = updates[-1]
        assert (passed.state, passed.unit_id, passed.next_unit) == ("passed", "SN0001", "SN0008")
        assert all(u.next_unit == "" for u in updates[:sent] if u.unit_id == "SN0001")
        bench.put(PORTS[0], second)  # the next board goes in; its unit is the one scanned
        orch.start(PORTS[0])
        assert orch.wait_idle(30)
        done = events.of(PortUpdate)[-1]
        assert (done.state, done.unit_id, done.next_unit) == ("passed", "SN0008", "")
    assert held_serial(lot, first) == "SN0001" and held_serial(lot, second) == "SN0008"


def test_a_refused_claim_drops_the_assignment_so_the_operator_scans_again(lot: Lot) -> None:
    from station.ledger import Ledger

    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:0c")
    bench.put(PORTS[0], dev)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0], slot="slot A")
        orch.assign_scan("SN0005", PORTS[0])
        line2 = Ledger(lot.ledger.path, station_id="line-2")  # another station takes the row
        line2.attach(lot.ledger.lot_name)
        c = line2.claim_row(4, mac="24:0a:c4:99:00:01", port="COM9")
        line2.set_image(c, "00" * 32)
        line2.mark_written(c, {})
        line2.complete(c, {})
        line2.close()
        orch.start(PORTS[0])
        assert orch.wait_idle(30)
        assert dev.writes == 0 and lot.ledger.row(4).mac == "24:0a:c4:99:00:01"
        last = [e for e in events.of(PortUpdate) if e.port == PORTS[0]][-1]
        assert last.state == "attention" and last.row_index is None
        assert last.message.startswith("unit SN0005: is done on device 24:0a:c4:99:00:01")
        assert last.message.endswith("unit SN0005 is no longer assigned to slot A: scan again")
        assert any(e.level == "error" and "scan again" in e.text for e in events.of(LogEvent))
        orch.start(PORTS[0])  # nothing assigned any more: the device gets the next pending row
        assert orch.wait_idle(30)
    assert held_serial(lot, dev) == "SN0001"


def test_auto_mode_never_gives_a_refused_device_another_row(lot: Lot) -> None:
    from station.ledger import Ledger

    bench, events = FakeBench(), Events()
    refused = threading.Event()

    def on_event(e: object) -> None:
        events(e)
        if isinstance(e, PortUpdate) and "connect the next device" in e.message:
            refused.set()  # the port moved on: it waits for another device

    dev = FakeDevice("24:0a:c4:00:00:0d")
    orch = Orchestrator(
        lot, on_event=on_event, opener=bench.opener, poll_interval=0.01, auto_start=True
    )
    with orch:
        orch.add_port(PORTS[0])
        orch.assign(PORTS[0], 2)
        line2 = Ledger(lot.ledger.path, station_id="line-2")
        line2.attach(lot.ledger.lot_name)
        c = line2.claim_row(2, mac="24:0a:c4:99:00:02", port="COM9")
        line2.close()
        bench.put(PORTS[0], dev)
        assert refused.wait(30)
    assert dev.writes == 0 and lot.ledger.count("pending") == 19
    assert [a.mac for a in lot.ledger.attempts()] == [c.mac]
    assert any("scan again" in e.text for e in events.of(LogEvent))


def test_max_units_stops_claiming(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    devices = [FakeDevice(f"24:0a:c4:00:01:{i:02x}") for i in range(4)]
    for p, d in zip(PORTS, devices, strict=True):
        bench.put(p, d)
    with orchestrator(lot, bench, events, auto_start=True, max_units=3) as orch:
        for p in PORTS:
            orch.add_port(p)
        assert orch.wait_idle(30)
        assert orch.units_done == 3
    assert lot.ledger.count("done") == 3 and lot.ledger.count("pending") == 17


def test_close_with_a_pending_decision_leaves_no_thread(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:07")
    dev.flash[lot.factory.offset] = 0
    bench.put(PORTS[0], dev)
    before = set(threading.enumerate())
    orch = orchestrator(lot, bench, events)
    orch.add_port(PORTS[0])
    orch.start(PORTS[0])
    assert events.decision.wait(30)
    orch.close(timeout=5)
    assert set(threading.enumerate()) <= before
    assert lot.ledger.active_attempts() == []


def _dead_pid() -> int:
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


# the simulated crash ends the worker thread with an exception nobody catches, on purpose
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("complete_on_device", [True, False])
def test_recovery_after_a_crash_during_writing(lot: Lot, complete_on_device: bool) -> None:
    """A station dies while writing: the row stays with that device, then is completed."""
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:00:08")
    bench.put(PORTS[0], dev)
    crashed = threading.Event()

    def die(port: str, d: FakeDevice) -> None:  # the image reaches the device, then the PC dies
        f = lot.factory
        image = lot.image_for(lot.row(0))
        n = len(image) if complete_on_device else 100  # a page header and a bit
        d.flash[f.offset : f.offset + n] = image[:n]
        crashed.set()
        raise SystemExit  # ends the worker thread without any bookkeeping, like SIGKILL would

    bench.hook = die
    orch = orchestrator(lot, bench, events)
    orch.add_port(PORTS[0])
    orch.start(PORTS[0])
    assert crashed.wait(30)
    assert orch.wait_idle(30)
    assert lot.ledger.row(0).state == "claimed"
    con = sqlite3.connect(lot.ledger.path)  # the process is gone: its pid no longer runs
    con.execute("UPDATE runs SET pid = ?", (_dead_pid(),))
    con.commit()
    con.close()
    bench.hook = None
    # another device must not get row 1 while the first may hold it
    with orchestrator(lot, bench, Events()) as again:
        r = lot.ledger.row(0)
        assert (r.state, r.mac) == ("failed", dev.mac) and "interrupted" in r.reason
        other = FakeDevice("24:0a:c4:00:00:09")
        bench.put(PORTS[1], other)
        again.add_port(PORTS[1])
        again.add_port(PORTS[0])
        run_round(again)
    assert held_serial(lot, other) == "SN0002"
    assert lot.ledger.row(0).state == "done" and held_serial(lot, dev) == "SN0001"
    assert dev.writes == (0 if complete_on_device else 1)
    results = [a.result for a in lot.ledger.attempts(0)]
    assert results == ["interrupted", "done"]


def test_no_secret_in_any_event(lot: Lot) -> None:
    bench, events = FakeBench(), Events()
    devs = [FakeDevice("24:0a:c4:00:02:01", faults={"writing": 1}), FakeDevice("24:0a:c4:00:02:02")]
    for p, d in zip(PORTS, devs, strict=False):
        bench.put(p, d)
    with orchestrator(lot, bench, events) as orch:
        for p in PORTS[:2]:
            orch.add_port(p)
        run_round(orch)
    secrets = [lot.row(i).values["device_key"] for i in range(20)]
    text = "\n".join(repr(e) for e in events.items)
    assert "SN0001" in text
    assert not any(s in text or s.upper() in text for s in secrets)


def test_a_row_whose_image_cannot_be_built_fails_alone(
    lot: Lot, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench, events = FakeBench(), Events()
    dev = FakeDevice("24:0a:c4:00:03:01")
    bench.put(PORTS[0], dev)
    real = lot.image_for

    def image_for(row):  # type: ignore[no-untyped-def]
        if row.index == 0:
            raise StationError.at("files/cert.pem", "file not found", key="ca_cert")
        return real(row)

    monkeypatch.setattr(lot, "image_for", image_for)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0])
        run_round(orch)
        r = lot.ledger.row(0)
        assert (r.state, r.mac) == ("failed", None) and "file not found" in r.reason
        assert dev.writes == 0
        with pytest.raises(StationError, match="release"):
            orch.retry(0)
        run_round(orch)  # the board is free: it gets the next row
        assert held_serial(lot, dev) == "SN0002"
        orch.release(0, "certificate restored", "boss")
    assert lot.ledger.row(0).state == "pending"
    assert any(
        e.state == "attention" and "cannot build" in e.message for e in events.of(PortUpdate)
    )


def test_a_device_whose_table_moves_the_factory_partition_is_left_untouched(lot: Lot) -> None:
    from station.partitions import parse_csv_text, to_binary

    bench, events = FakeBench(), Events()
    other = FakeDevice("24:0a:c4:00:04:01")
    table = parse_csv_text(
        "nvs, data, nvs, 0x9000, 0x4000,\nfctry, data, nvs, 0xe000, 0x3000,\n"
        "factory, app, factory, 0x10000, 1M,\n"
    )
    other.flash[0x8000:0x8C00] = to_binary(table)
    same = FakeDevice("24:0a:c4:00:04:02")
    same.flash[0x8000:0x8C00] = to_binary(lot.table)
    bench.put(PORTS[0], other)
    bench.put(PORTS[1], same)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0])
        orch.add_port(PORTS[1])
        run_round(orch)
    assert other.writes == 0 and same.writes == 1
    assert lot.ledger.count("done") == 1 and lot.ledger.attempts(0)[0].mac == same.mac
    refused = [e for e in events.of(PortUpdate) if e.port == PORTS[0] and e.state == "attention"]
    assert refused and "at 0xe000" in refused[-1].message


def test_a_claim_recovered_under_a_running_unit_is_refused_at_completion(lot: Lot) -> None:
    """If the ledger takes the claim away while the device is written (a supervisor's tool
    recovering runs it wrongly believes dead), the unit is not counted as done: the port asks
    for attention, the row stays bound to that device, and no other device gets it."""
    bench, events = FakeBench(), Events()
    first, second = FakeDevice("24:0a:c4:00:00:31"), FakeDevice("24:0a:c4:00:00:32")
    bench.put(PORTS[0], first)
    bench.put(PORTS[1], second)
    recovered: list[object] = []

    def recover_mid_write(port: str, dev: FakeDevice) -> None:
        if dev is first and not recovered:
            recovered.extend(lot.ledger.recover(is_dead=lambda run_id: True))

    bench.hook = recover_mid_write
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0])
        orch.start(PORTS[0])
        assert orch.wait_idle(30)
        assert len(recovered) == 1
        last = events.of(PortUpdate)[-1]
        assert last.state == "attention"
        assert "no longer active" in last.message
        assert orch.units_done == 0
        row = lot.ledger.row(0)
        assert row.state == "failed" and row.mac == first.mac
        orch.add_port(PORTS[1])
        orch.start(PORTS[1])
        assert orch.wait_idle(30)
        assert orch.units_done == 1
    assert held_serial(lot, second) == "SN0002"  # the next row, never the recovered one
    assert lot.ledger.row(0).state == "failed"


def test_a_released_row_goes_to_its_old_board_only_while_no_other_device_has_it(
    lot: Lot,
) -> None:
    bench, events = FakeBench(), Events()
    old, new = FakeDevice("24:0a:c4:00:05:01"), FakeDevice("24:0a:c4:00:05:02")
    bench.put(PORTS[0], old)
    with orchestrator(lot, bench, events) as orch:
        orch.add_port(PORTS[0])
        orch.add_port(PORTS[1])
        assert orch.assign_scan("SN0001", PORTS[0]) == (PORTS[0], 0)
        run_round(orch)
        assert (lot.ledger.row(0).state, old.writes) == ("done", 1)
        orch.release(0, "board sent to rework bench", "boss")
        assert lot.ledger.row(0).state == "pending"
        # the old board comes back first: it holds the row's image, verified, nothing written
        bench.put(PORTS[0], None)
        bench.put(PORTS[0], old)
        orch.start(PORTS[0])
        assert orch.wait_idle(30)
        row = lot.ledger.row(0)
        assert (row.state, row.mac, old.writes) == ("done", old.mac, 1)
        # released again, and this time another board takes it first
        orch.release(0, "board scrapped", "boss")
        bench.put(PORTS[1], new)
        assert orch.assign_scan("SN0001", PORTS[1]) == (PORTS[1], 0)
        orch.start(PORTS[1])
        assert orch.wait_idle(30)
        assert (lot.ledger.row(0).state, lot.ledger.row(0).mac) == ("done", new.mac)
        # the old board turns up after all: its copy is stale, so it gets a new row
        orch.start(PORTS[0])
        assert orch.wait_idle(30)
    assert held_serial(lot, new) == "SN0001"
    assert held_serial(lot, old) != "SN0001" and old.writes == 2
    assert lot.ledger.row_of_mac(old.mac).state == "done"  # type: ignore[union-attr]
    assert any("stale copy of unit SN0001" in e.text for e in events.of(LogEvent))


def test_given_an_opener_the_station_process_never_imports_esptool() -> None:
    """The window opens devices through its device host: esptool (and its import, seconds of
    CPU on a loaded PC while 32 ports start) stays in the host's process."""
    code = (
        "import sys, tempfile\n"
        "from pathlib import Path\n"
        "from tests.production.conftest import make_small_lot\n"
        "from tests.production.fakes import FakeBench, FakeDevice\n"
        "from station.production import Orchestrator, open_lot\n"
        "lot = open_lot(make_small_lot(Path(tempfile.mkdtemp()) / 'lot', 2))\n"
        "bench = FakeBench()\n"
        "bench.put('fake://1', FakeDevice('24:0a:c4:00:00:01'))\n"
        "o = Orchestrator(lot, on_event=lambda e: None, opener=bench.opener, poll_interval=0.01)\n"
        "o.add_port('fake://1')\n"
        "o.start_all()\n"
        "assert o.wait_idle(30)\n"
        "o.close()\n"
        "print(lot.ledger.counters().done, sorted(m for m in sys.modules if 'esptool' in m))\n"
        "lot.close()\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "1 []"
