"""station.production.assignments: which unit waits for a port's next device."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.errors import StationError
from station.ledger import ClaimRefused
from station.production import LogEvent, PortUpdate, open_lot
from station.production.assignments import Assignments
from station.production.lot import Lot
from station.production.ports import Port, PortTable
from tests.production.conftest import make_small_lot


@pytest.fixture
def lot(tmp_path: Path) -> Iterator[Lot]:
    opened = open_lot(make_small_lot(tmp_path / "lot", 4))
    yield opened
    opened.close()


class Bench:
    def __init__(self, lot: Lot, ports: tuple[str, ...] = ("p1", "p2")) -> None:
        self.table = PortTable()
        for name in ports:
            self.table.ports[name] = Port(name, name.upper())
        self.events: list[object] = []
        self.cards: list[tuple[str, PortUpdate | None]] = []
        self.a = Assignments(
            self.table,
            lot.ledger,
            label=lambda i: f"SN{i + 1:04d}",
            emit=self.events.append,
            emit_port=lambda p, u: self.cards.append((p.name, u)),
            lot_name=lot.name,
            scan_column="serial_no",
        )


def done_on(lot: Lot, row_index: int, mac: str, *, fail: bool = False) -> None:
    led = lot.ledger
    claim = led.claim_row(row_index, mac=mac, port="p1")
    led.set_image(claim, hashlib.sha256(b"%d" % row_index).hexdigest())
    led.mark_written(claim, {})
    if fail:
        led.fail(claim, "writing: timeout", {})
    else:
        led.complete(claim, {})


def test_a_scan_goes_to_a_free_port_and_a_second_scan_needs_replace(lot: Lot) -> None:
    b = Bench(lot)
    assert b.a.assign_scan("SN0002") == ("p1", 1)
    assert b.a.assigned_rows() == {"p1": 1}
    name, card = b.cards[-1]
    assert name == "p1" and card is not None and card.message == "next unit: SN0002"
    assert b.a.assign(None, 2) == "p2"  # p1 has a unit waiting: the next free port
    with pytest.raises(StationError, match="no free port"):
        b.a.assign(None, 3)
    with pytest.raises(ClaimRefused, match="already has unit SN0002 waiting"):
        b.a.assign("p1", 3)
    assert b.a.assign("p1", 3, replace=True) == "p1"
    assert [e.text for e in b.events if isinstance(e, LogEvent)] == [
        "unit SN0002 no longer waits on P1: replaced by unit SN0004"
    ]
    with pytest.raises(ClaimRefused, match="already assigned to port p1"):
        b.a.assign("p2", 3, replace=True)
    with pytest.raises(StationError, match="no unit 'XX' in lot"):
        b.a.assign_scan(" XX ")


def test_unassign_says_so_on_an_idle_port(lot: Lot) -> None:
    b = Bench(lot)
    b.a.assign("p2", 0)
    b.a.unassign("p2")
    assert b.a.assigned_rows() == {}
    name, card = b.cards[-1]
    assert name == "p2" and card is not None and card.message == "unit dropped"
    n = len(b.cards)
    b.a.unassign("p2")  # nothing waits: nothing to say
    assert len(b.cards) == n
    with pytest.raises(StationError, match="no such port"):
        b.a.unassign("p9")


def test_a_done_row_needs_rework_and_goes_only_to_its_own_device(lot: Lot) -> None:
    mac = "24:0a:c4:00:00:01"
    done_on(lot, 0, mac)
    b = Bench(lot)
    with pytest.raises(ClaimRefused, match="rework needs engineer mode"):
        b.a.assign(None, 0)
    with pytest.raises(ClaimRefused, match="it can only go to that device"):
        b.a.assign(None, 0, rework=True)
    b.table.ports["p2"].last_mac = mac
    assert b.a.assign(None, 0, rework=True) == "p2"


def test_retry_goes_to_the_port_of_the_failed_device(lot: Lot) -> None:
    mac = "24:0a:c4:00:00:07"
    b = Bench(lot)
    with pytest.raises(ClaimRefused, match="only failed rows can be retried"):
        b.a.retry(1)
    done_on(lot, 1, mac, fail=True)
    assert lot.ledger.row(1).state == "failed"
    assert b.a.retry(1) == "p1"  # the port the ledger saw it on
    b.table.ports["p1"].assigned = None
    b.table.ports["p2"].last_mac = mac
    assert b.a.retry(1) == "p2"  # the port where the device was seen last
    del b.table.ports["p1"], b.table.ports["p2"]
    with pytest.raises(ClaimRefused, match="is on no port of this station"):
        b.a.retry(1)


def test_a_refused_claim_drops_the_assignment_it_was_planned_with(lot: Lot) -> None:
    b = Bench(lot)
    b.a.assign("p1", 2)
    p = b.table.ports["p1"]
    err = ClaimRefused("db", 2, "is claimed by another station")
    msg = b.a.refused(p, 2, err)
    assert msg == (
        "unit SN0003: is claimed by another station — unit SN0003 is no longer assigned to P1: "
        "scan again"
    )
    assert p.assigned is None
    b.a.assign("p1", 3)  # a newer scan since the unit was planned stays
    assert b.a.refused(p, 2, err) == "unit SN0003: is claimed by another station"
    assert p.assigned == 3
