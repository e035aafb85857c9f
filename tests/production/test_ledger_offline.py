"""A lost ledger connection is told to every port at once, and so is its return, even while
no port touches the ledger; production then goes on. On a real PostgreSQL server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from station.ledger import LedgerOffline
from station.production import LogEvent, Orchestrator, open_lot
from station.production.events import LedgerStatus
from tests.production.conftest import make_small_lot
from tests.production.fakes import FakeBench, FakeDevice
from tests.production.test_orchestrator import Events, run_round


def terminate_connections(ledger: object) -> int:
    """End every server backend of this ledger's connections, as a server restart does."""
    import psycopg

    from tests.conftest import PG_URL

    pids = [con.info.backend_pid for con in list(ledger._connections)]  # type: ignore[attr-defined]
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return len(pids)


def test_every_port_is_told_when_the_ledger_goes_and_comes_back(
    tmp_path: Path, pg_schema_url: str
) -> None:
    lot = open_lot(make_small_lot(tmp_path / "lot", 6), db_url=pg_schema_url)
    bench = FakeBench()
    ports = ["fake://1", "fake://2"]
    for i, port in enumerate(ports):
        bench.put(port, FakeDevice(f"24:0a:c4:00:00:{i:02x}"))
    events = Events()
    back = threading.Event()
    orch = Orchestrator(lot, on_event=events, opener=bench.opener, poll_interval=0.01)  # type: ignore[arg-type]
    for port in ports:
        orch.add_port(port)
    lot.ledger.on_status(lambda offline: None if offline else back.set())
    try:
        assert terminate_connections(lot.ledger) >= 1
        # the first call that finds it (here the window's counters) tells every port ...
        with pytest.raises(LedgerOffline):
            lot.ledger.counters()
        # ... and the station reconnects by itself, with no port working
        assert back.wait(30)
        told = [e.offline for e in events.of(LedgerStatus)]
        assert told == [True, False]
        log = [e.text for e in events.of(LogEvent)]
        assert any(t.startswith("ledger offline: reconnecting") for t in log)
        assert "ledger back online" in log
        run_round(orch)  # production goes on: both boards get a row
        assert lot.ledger.counters().done == 2
    finally:
        orch.close()
        lot.close()
    assert not [t for t in threading.enumerate() if t.name == "ledger-online"]


def _lose_the_connection_after_the_claim(lot: object, lose: object) -> None:
    """The first claim of the lot commits, then ``lose()`` runs: the planner's read of the
    claimed row is the first call to meet the lost connection."""
    ledger = lot.ledger  # type: ignore[attr-defined]
    claim_next = ledger.claim_next
    done = threading.Event()

    def claim_then_lose(**kw: object) -> object:
        got = claim_next(**kw)
        if not done.is_set():
            done.set()
            lose()  # type: ignore[operator]
        return got

    ledger.claim_next = claim_then_lose


def _the_unit_is_done_once_after_its_lost_claim(lot: object, orch: Orchestrator) -> None:
    led = lot.ledger  # type: ignore[attr-defined]
    run_round(orch)  # the unit stops: the claim's fate was lost with the connection
    assert led.active_attempts() == []  # recovered before the port went on
    assert led.row(0).state == "pending"  # nothing was written: back to the line
    run_round(orch)  # the same board again: it gets its row
    assert led.row(0).state == "done"
    assert [a.result for a in led.attempts(0)] == ["interrupted", "done"]


def test_a_claim_whose_row_could_not_be_read_back_is_recovered(
    tmp_path: Path, pg_schema_url: str
) -> None:
    """The server goes right after a claim commits: the planner's read of the claimed row
    meets the lost connection, outside any of the claim's steps. The claim was held on for
    ever (renewed, never recovered); the same board then met its own claim ("is being
    written right now") and the row stayed claimed (tests/ledger/test_line.py)."""
    lot = open_lot(make_small_lot(tmp_path / "lot", 2), db_url=pg_schema_url)
    bench = FakeBench()
    bench.put("fake://1", FakeDevice("24:0a:c4:00:00:01"))
    orch = Orchestrator(lot, on_event=Events(), opener=bench.opener, poll_interval=0.01)  # type: ignore[arg-type]
    orch.add_port("fake://1")

    def lose() -> None:  # the port's own connection (a restart would end them all)
        import psycopg

        from tests.conftest import PG_URL

        pid = lot.ledger._con().info.backend_pid
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    _lose_the_connection_after_the_claim(lot, lose)
    try:
        _the_unit_is_done_once_after_its_lost_claim(lot, orch)
    finally:
        orch.close()
        lot.close()


def test_a_lost_claim_is_recovered_when_another_port_reconnected_first(tmp_path: Path) -> None:
    """A port that meets the lost connection after another port brought the ledger back finds
    it online: it still recovers its own claim before it goes on."""
    lot = open_lot(make_small_lot(tmp_path / "lot", 2))
    bench = FakeBench()
    bench.put("fake://1", FakeDevice("24:0a:c4:00:00:01"))
    orch = Orchestrator(lot, on_event=Events(), opener=bench.opener, poll_interval=0.01)  # type: ignore[arg-type]
    orch.add_port("fake://1")
    row = lot.ledger.row
    lost = threading.Event()

    def lose() -> None:  # the next read meets a connection that is gone, and back already
        def row_once(index: int) -> object:
            if not lost.is_set():
                lost.set()
                raise LedgerOffline("ledger", "ledger offline: connection lost")
            return row(index)

        lot.ledger.row = row_once  # type: ignore[method-assign]

    _lose_the_connection_after_the_claim(lot, lose)
    try:
        _the_unit_is_done_once_after_its_lost_claim(lot, orch)
        assert lost.is_set() and not lot.ledger.offline
    finally:
        orch.close()
        lot.close()
