"""The event bridge folds orchestrator events from many threads into what the window shows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from station.gui.bridge import EventBridge
from station.gui.models import LogBuffer
from station.ledger import Counters
from station.production import CountersUpdate, Orchestrator, open_lot
from station.production.lot import Lot
from tests.production.conftest import make_small_lot


@pytest.fixture
def lot(tmp_path: Path) -> Iterator[Lot]:
    opened = open_lot(make_small_lot(tmp_path / "lot", 4))
    yield opened
    opened.close()


def test_counters_that_arrive_late_do_not_overwrite_newer_ones(lot: Lot) -> None:
    """Two ports finish at once: port A reads the ledger (7 done) before port B's unit is
    recorded, but its event arrives after B's (8 done). The window must keep showing 8 (it
    showed 7 forever: a lost unit in the status bar, seen in the stall benchmark)."""
    bridge = EventBridge(LogBuffer())
    b_emitted = threading.Event()
    a_reading = threading.Event()
    real = lot.ledger.counters()

    def on_event(event: object) -> None:
        bridge.on_event(event)
        if isinstance(event, CountersUpdate) and event.done == 8:
            b_emitted.set()

    orch = Orchestrator(lot, on_event=on_event)
    try:

        def counters_a(now: float | None = None) -> Counters:
            a_reading.set()
            assert b_emitted.wait(30)  # B reads and sends while A is between read and send
            return replace(real, done=7)

        def counters_b(now: float | None = None) -> Counters:
            return replace(real, done=8)

        orch.ledger.counters = counters_a  # type: ignore[method-assign]
        a = threading.Thread(target=orch._counters)
        a.start()
        assert a_reading.wait(30)
        orch.ledger.counters = counters_b  # type: ignore[method-assign]
        orch._counters()
        a.join(30)
        assert not a.is_alive()
    finally:
        del orch.ledger.counters
        orch.close()
    snap = bridge.take()
    assert snap.counters is not None
    assert snap.counters.done == 8


def test_unordered_counters_are_always_taken() -> None:
    bridge = EventBridge(LogBuffer())
    bridge.on_event(CountersUpdate(5, 0, 1, 0.0, seq=10))
    bridge.on_event(CountersUpdate(6, 0, 0, 0.0))  # seq 0: made by hand, not by a port
    assert bridge.take().counters.done == 6  # type: ignore[union-attr]
    bridge.on_event(CountersUpdate(4, 0, 2, 0.0, seq=9))  # older than what was shown
    assert bridge.take().counters is None


def test_take_gives_only_the_ports_that_changed() -> None:
    from station.production import PortUpdate

    bridge = EventBridge(LogBuffer())
    for port in ("A", "B", "C"):
        bridge.add_port(port)
    assert set(bridge.take().ports or {}) == {"A", "B", "C"}
    assert bridge.take().ports is None  # nothing happened since
    bridge.on_event(PortUpdate("B", state="busy", phase="writing", done=1, total=4))
    bridge.on_event(PortUpdate("B", state="busy", phase="writing", done=2, total=4))
    ports = bridge.take().ports
    assert ports is not None and set(ports) == {"B"}
    assert ports["B"].done == 2  # the newest view of the port
    bridge.set_offline("C", True)
    assert set(bridge.take().ports or {}) == {"C"}
