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
