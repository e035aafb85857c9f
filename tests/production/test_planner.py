"""station.production.planner: which row a device gets, on a real ledger (no devices)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.ledger import ClaimRefused
from station.production import LogEvent, open_lot
from station.production.events import Outcome
from station.production.lot import Lot
from station.production.planner import ClaimPlanner
from station.production.ports import Port, PortTable, Unit
from tests.production.conftest import make_small_lot

BLANK = b"\xff" * 0x3000


@pytest.fixture
def lot(tmp_path: Path) -> Iterator[Lot]:
    opened = open_lot(make_small_lot(tmp_path / "lot", 4))
    yield opened
    opened.close()


class Bench:
    def __init__(self, lot: Lot, max_units: int | None = None) -> None:
        self.lot = lot
        self.table = PortTable()
        self.events: list[object] = []
        self.asked = 0
        self.answer = False
        self.done = 0
        self.planner = ClaimPlanner(
            lot.ledger,
            self.table,
            label=lambda i: f"U{i + 1}",
            emit=self.events.append,
            operator="ann",
            run_id=lot.ledger.start_run(),
            max_units=max_units,
        )

    def port(self, name: str) -> Port:
        p = Port(name, name)
        self.table.ports[name] = p
        return p

    def ask(self) -> bool:
        self.asked += 1
        return self.answer

    def plan(self, p: Port, mac: str, current: bytes = BLANK) -> object:
        u = Unit(started=0.0, mac=mac, chip="ESP32")
        got = self.planner.plan(p, u, current, ask=self.ask, units_done=lambda: self.done)
        if isinstance(got, Outcome):
            return got
        claim, row = got
        assert claim.row_index == row.index
        return row.index


def test_a_blank_device_gets_the_next_pending_row_or_the_one_assigned(lot: Lot) -> None:
    b = Bench(lot)
    p1, p2 = b.port("p1"), b.port("p2")
    assert b.plan(p1, "24:0a:c4:00:00:01") == 0
    assert b.planner.claimed == {"p1"}
    p2.assigned = 3
    assert b.plan(p2, "24:0a:c4:00:00:02") == 3
    assert p2.assigned is None  # the assignment is used up: the next scan may come
    b.planner.finished("p1")
    assert b.planner.claimed == {"p2"}


def finish(lot: Lot, mac: str) -> bytes:
    """Record the claim in progress for ``mac`` as done; returns the image it wrote."""
    led = lot.ledger
    claim = led.claim_next(mac=mac, port="other")
    assert claim is not None
    image = lot.image_for(lot.row(claim.row_index))
    led.set_image(claim, hashlib.sha256(image).hexdigest())
    led.mark_written(claim, {})
    led.complete(claim, {})
    return image


def test_a_device_that_holds_a_row_gets_that_row_and_no_other(lot: Lot) -> None:
    mac = "24:0a:c4:00:00:01"
    finish(lot, mac)  # row 0 is done on this device
    b = Bench(lot)
    p = b.port("p1")
    p.assigned = 2
    with pytest.raises(ClaimRefused, match="it holds unit U1"):
        b.plan(p, mac)
    p.assigned = None
    assert b.plan(p, mac) == 0  # rework of its own row, never a second one
    assert lot.ledger.row(0).state == "claimed"


def test_foreign_data_asks_a_stale_copy_gets_a_new_row(lot: Lot) -> None:
    b = Bench(lot)
    p = b.port("p1")
    foreign = b"\x01" * 0x3000
    assert b.plan(p, "24:0a:c4:00:00:01", foreign) is Outcome.SKIPPED and b.asked == 1
    b.answer = True
    assert b.plan(p, "24:0a:c4:00:00:01", foreign) == 0 and b.asked == 2
    b.planner.finished("p1")
    # a copy of a done unit's image on another device: not foreign, not that unit either
    image = finish(lot, "24:0a:c4:00:00:02")
    asked = b.asked
    assert b.plan(p, "24:0a:c4:00:00:03", image) == 2 and b.asked == asked
    stale = [e for e in b.events if isinstance(e, LogEvent) and "stale copy" in e.text]
    assert len(stale) == 1


def test_the_count_and_the_end_of_the_lot(lot: Lot) -> None:
    b = Bench(lot, max_units=1)
    p1, p2 = b.port("p1"), b.port("p2")
    assert b.plan(p1, "24:0a:c4:00:00:01") == 0
    # one unit in progress elsewhere counts against the limit
    assert b.plan(p2, "24:0a:c4:00:00:02") is Outcome.LIMIT
    b.planner.max_units = None
    assert [b.plan(p2, f"24:0a:c4:00:00:1{i}") for i in range(3)] == [1, 2, 3]
    assert b.plan(p2, "24:0a:c4:00:00:20") is Outcome.NO_ROWS
    assert not b.planner.lot_exhausted()  # p1 and p2 still hold claims
    b.planner.finished("p1")
    b.planner.finished("p2")
    assert b.planner.lot_exhausted()
