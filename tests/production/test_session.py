"""The station session without Qt: scans, Next (F6), retry, release, labels on pass, reprint,
hot-plug and the worker thread, on in-memory devices."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from station.labels import LabelOutcome
from station.production import PortUpdate, RowUpdate
from station.production.session import (
    PortOffline,
    PortsPlugged,
    SessionConfig,
    StationSession,
)
from tests.production.conftest import make_small_lot
from tests.production.fakes import FakeBench, FakeDevice

PORTS = ["fake://1", "fake://2"]
LABEL = """
[label]
width_mm = 50
height_mm = 25
lines = ["SN {serial_no}", "MAC {mac}"]
code128 = "{serial_no}"
"""


class Events:
    def __init__(self) -> None:
        self.items: list[object] = []
        self.lock = threading.Lock()
        self.labels = threading.Condition(self.lock)

    def __call__(self, event: object) -> None:
        with self.lock:
            self.items.append(event)
            self.labels.notify_all()

    def of(self, kind: type) -> list[Any]:
        with self.lock:
            return [e for e in self.items if isinstance(e, kind)]

    def wait_labels(self, n: int) -> list[LabelOutcome]:
        with self.labels:
            assert self.labels.wait_for(
                lambda: len([e for e in self.items if isinstance(e, LabelOutcome)]) >= n, 20
            )
        return self.of(LabelOutcome)


@pytest.fixture
def bench() -> FakeBench:
    return FakeBench()


@pytest.fixture
def events() -> Events:
    return Events()


def make_session(
    tmp_path: Path, bench: FakeBench, events: Events, *, extra: str = "", **config: Any
) -> StationSession:
    session = StationSession(
        SessionConfig(operator="ann", auto_start=False, poll_interval=0.01, **config),
        opener=bench.opener,
    )
    session.subscribe(events)
    session.open(str(make_small_lot(tmp_path / "lot", 10, extra=extra)))
    for port in PORTS:
        assert session.add_port(port)
    return session


@pytest.fixture
def session(tmp_path: Path, bench: FakeBench, events: Events) -> Iterator[StationSession]:
    s = make_session(tmp_path, bench, events)
    yield s
    s.shutdown()


def test_a_scan_goes_to_a_ready_port_and_twice_is_refused(session: StationSession) -> None:
    first = session.scan("SN0003")
    assert first.ok and first.row_index == 2 and first.port == PORTS[0]
    assert first.message == "✔ SN0003 → fake://1"
    again = session.scan("SN0003")
    assert not again.ok and "already assigned" in again.message
    second = session.scan("SN0004")  # the first port has a unit waiting: the next one
    assert second.ok and second.port == PORTS[1]
    assert session.orchestrator.assigned_rows() == {PORTS[0]: 2, PORTS[1]: 3}  # type: ignore[union-attr]


def test_an_unknown_scan_and_no_lot_are_refused(session: StationSession, bench: FakeBench) -> None:
    refused = session.scan("NOPE")
    assert not refused.ok and "no unit 'NOPE'" in refused.message
    empty = StationSession(opener=bench.opener)
    assert empty.scan("SN0001").message == "✘ SN0001: no lot is open"
    assert not empty.next().ok and not empty.retry(0).ok
    empty.shutdown()


def test_a_done_unit_scanned_again_is_put_aside(
    session: StationSession, bench: FakeBench, events: Events
) -> None:
    bench.put(PORTS[0], FakeDevice("24:0a:c4:00:00:01"))
    assert session.scan("SN0001").ok
    session.start(PORTS[0])
    assert session.orchestrator.wait_idle(20)  # type: ignore[union-attr]
    assert session.reads.row(0).state == "done"
    again = session.scan("SN0001")
    assert not again.ok and again.message == "✘ SN0001: already done, put it aside"
    assert session.counters().done == 1  # type: ignore[union-attr]
    assert any(isinstance(e, PortUpdate) and e.state == "passed" for e in events.items)


def test_next_sends_the_selected_pending_row_once_then_the_next_pending_row(
    session: StationSession,
) -> None:
    assert session.next(selected=7).row_index == 7
    assert session.next(selected=7).row_index == 0  # waiting on a port already: the next one
    refused = session.next()
    assert not refused.ok and "no free port" in refused.message
    assert session.orchestrator.assigned_rows() == {PORTS[0]: 7, PORTS[1]: 0}  # type: ignore[union-attr]


def test_a_chosen_port_wins(session: StationSession) -> None:
    assert session.scan("SN0005", PORTS[1]).port == PORTS[1]
    assert session.next(port=PORTS[0]).port == PORTS[0]


def test_retry_and_release_of_a_failed_unit(
    session: StationSession, bench: FakeBench, events: Events
) -> None:
    bench.put(PORTS[0], FakeDevice("24:0a:c4:00:00:02", faults={"writing": 1}))
    assert session.scan("SN0002").ok
    session.start(PORTS[0])
    assert session.orchestrator.wait_idle(20)  # type: ignore[union-attr]
    assert [r.index for r in session.failed()] == [1]
    retried = session.retry(1)
    assert retried.ok and retried.message == "↻ SN0002 → retry on fake://1"
    assert session.orchestrator.wait_idle(20)  # type: ignore[union-attr]
    assert session.reads.row(1).state == "done" and session.failed() == []
    # release: engineer mode only, audited
    refused = session.release(1, "label damaged", "eve")
    assert not refused.ok and "Engineer mode needed" in refused.message
    session.engineer = True
    released = session.release(1, "label damaged", "eve")
    assert released.ok and released.message == "Row 2 released"
    assert session.reads.row(1).state == "pending"
    assert any(e.row_index == 1 and e.state == "pending" for e in events.of(RowUpdate))
    assert any("label damaged" in a.detail for a in session.lot.ledger.audit_log())  # type: ignore[union-attr]


def test_labels_print_on_pass_only_when_the_station_does_so(
    tmp_path: Path, bench: FakeBench, events: Events
) -> None:
    out = tmp_path / "labels"
    out.mkdir()
    session = make_session(tmp_path, bench, events, extra=LABEL)
    try:
        # as the orchestrator reports a pass: off first, then on
        session.deliver(PortUpdate(PORTS[0], "Slot 1", "passed", row_index=4))
        session.deliver(PortUpdate(PORTS[0], "Slot 1", "idle"))
        output = f"zpl:{out}/x.zpl"
        session.configure(SessionConfig(operator="ann", label_output=output, print_on_pass=True))
        lot = session.lot
        claim = lot.ledger.claim_row(5, mac="24:0a:c4:00:00:05", port=PORTS[0], chip="ESP32")  # type: ignore[union-attr]
        lot.ledger.complete(claim, {})  # type: ignore[union-attr]
        session.deliver(PortUpdate(PORTS[0], "Slot 1", "passed", row_index=5))
        session.deliver(PortUpdate(PORTS[0], "Slot 1", "passed", row_index=5))  # same pass
        (outcome,) = events.wait_labels(1)
        assert outcome.ok and outcome.unit_id == "SN0006" and not outcome.reprint
        audits = [a for a in lot.ledger.audit_log() if a.action.startswith("label")]  # type: ignore[union-attr]
        assert [a.action for a in audits] == ["label"] and audits[0].operator == "ann"
        # reprint: only a flashed unit has a label
        assert not session.reprint(0).ok
        reprint = session.reprint(5)
        assert reprint.ok and "label reprint sent" in reprint.message
        assert events.wait_labels(2)[1].reprint
        armed = session.scan("SN0001", reprint=True)
        assert not armed.ok and "not flashed yet" in armed.message
    finally:
        session.shutdown()


def test_reprint_says_why_it_cannot_print(session: StationSession) -> None:
    lot = session.lot
    claim = lot.ledger.claim_row(0, mac="24:0a:c4:00:00:09", port=PORTS[0], chip="ESP32")  # type: ignore[union-attr]
    lot.ledger.complete(claim, {})  # type: ignore[union-attr]
    assert "this lot has no label" in session.reprint(0).message
    assert not session.label_policy.goes_to_printer()


def test_hot_plug_adds_new_ports_and_marks_unplugged_ones(
    session: StationSession, events: Events
) -> None:
    session.hot_plug.changed(["fake://9", PORTS[0]])
    plugged = events.of(PortsPlugged)
    assert plugged == [PortsPlugged((("fake://9", None),))]  # a known port needs no new slot
    session.hot_plug.changed(["fake://9"])
    assert events.of(PortOffline)[-1] == PortOffline(PORTS[0], True)
    assert session.ready_port() == PORTS[1]  # an unplugged port gets no scan
    session.hot_plug.changed(["fake://9", PORTS[0]])
    assert events.of(PortOffline)[-1] == PortOffline(PORTS[0], False)


def test_a_foreign_decision_needs_an_engineer(session: StationSession) -> None:
    from station.production import Decision

    asked: list[str] = []
    decision = Decision(PORTS[0], 0, "Overwrite?")
    assert not session.decide(decision, lambda q: asked.append(q) is None)
    assert asked == []
    session.engineer = True
    assert session.decide(decision, lambda q: asked.append(q) is None)
    assert asked == ["Overwrite?"]


def test_the_worker_runs_ledger_calls_in_order_off_the_calling_thread(
    session: StationSession,
) -> None:
    names: list[str] = []

    def counters() -> Any:
        names.append(threading.current_thread().name)
        return session.counters()

    first = session.submit(session.scan, "SN0002")
    second = session.submit(counters)
    assert first.result(10).ok
    assert second.result(10).remaining == 10  # type: ignore[union-attr]
    assert names and names[0].startswith("session")
    assert session.reads.image_usage().used > 0


def test_settings_that_need_a_new_orchestrator(session: StationSession) -> None:
    old = session.orchestrator
    session.configure(SessionConfig(baud=921600, auto_start=False, poll_interval=0.01))
    assert session.needs_restart
    assert session.restart()
    assert session.orchestrator is not old and session.orchestrator.baud == 921600  # type: ignore[union-attr]
    assert session.orchestrator.ports() == PORTS  # type: ignore[union-attr]
    assert not session.needs_restart


def test_a_security_lot_opens_devices_in_this_process() -> None:
    """espefuse needs the unit's esptool loader where the recipe runs: not the device host."""
    from types import SimpleNamespace

    from station.production.session import opener_for

    host = SimpleNamespace(open_device=object())
    given = object()
    assert opener_for(SimpleNamespace(security=object()), None, host) is None
    assert opener_for(SimpleNamespace(security=None), None, host) is host.open_device
    assert opener_for(SimpleNamespace(security=None), None, None) is None
    assert opener_for(SimpleNamespace(security=object()), given, host) is given
