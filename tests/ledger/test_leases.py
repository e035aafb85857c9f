"""Leases: a run's claims are its own while it renews them (the database's clock); once a lease
ran out any station recovers them with the usual rules; a lost connection raises LedgerOffline
and never records a step the line has since decided otherwise. On SQLite and, where a server is
given (``STATION_TEST_POSTGRES``), on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from station.ledger import Claim, ClaimOfAnotherStation, ClaimRefused, Ledger, LedgerRow
from station.ledger.ledger import LedgerOffline
from tests.conftest import PG_URL, TellingLock

ROWS = [LedgerRow(i, i + 2, f"SN{i}", f"SN{i}", [f"SN{i}", "v"]) for i in range(6)]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "lot.station.db")
    return str(request.getfixturevalue("pg_schema_url"))


def ledger(url: str, station: str, lease: float = 30.0) -> Ledger:
    led = Ledger(url, station_id=station, lease=lease)
    led.import_lot("L1", "r", ROWS)
    return led


def on_another_host(led: Ledger, run: str, *, expired: bool) -> None:
    """The run is another PC's (only its lease tells whether it is alive); ``expired``: as
    when that PC stopped renewing longer than the lease ago (the database's clock)."""
    with led._write() as c:
        c.execute(led.dialect.sql("UPDATE runs SET host = 'line-far' WHERE id = ?"), (run,))
        if expired:
            c.execute(
                led.dialect.sql("UPDATE runs SET lease_until = DB_NOW - 1 WHERE id = ?"), (run,)
            )


def db_clock(led: Ledger, run: str) -> tuple[float, float]:
    """The run's lease end and the database's clock now."""
    found = led._q("SELECT lease_until, DB_NOW FROM runs WHERE id = ?", (run,))
    return float(found[0][0]), float(found[0][1])


def wait_for(what: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until a condition of the database holds (polled, as qtbot.waitUntil does)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not what():
        assert time.monotonic() < deadline, "condition not reached"
        pause.wait(0.02)


def test_a_dead_station_elsewhere_is_recovered_once_its_lease_ran_out(url: str) -> None:
    a, b = ledger(url, "line-a"), ledger(url, "line-b")
    run = a.start_run()
    sent = a.claim_next(mac="aa:00", port="p1", run_id=run)  # nothing sent yet
    writing = a.claim_next(mac="aa:01", port="p2", run_id=run)
    assert sent is not None and writing is not None
    a.set_image(writing, "ab" * 32)  # bytes may reach the device from here on
    a.close()  # the PC is switched off: its run stays open, nobody renews its lease
    on_another_host(b, run, expired=False)
    assert b.recover_expired() == []  # alive as far as anyone can tell
    with pytest.raises(ClaimOfAnotherStation):
        b.release(sent.row_index, "gone?", "boss")
    on_another_host(b, run, expired=True)
    got = {r.attempt.row_index: r.row_state for r in b.recover_expired()}
    assert got == {sent.row_index: "pending", writing.row_index: "failed"}
    assert b.row(writing.row_index).mac == "aa:01"
    with pytest.raises(ClaimRefused, match="only go to that device"):
        b.claim_row(writing.row_index, mac="bb:09", port="q")
    assert b.claim_row(writing.row_index, mac="aa:01", port="q").kind == "retry"
    again = b.claim_next(mac="bb:00", port="q")
    assert again is not None and again.row_index == sent.row_index
    b.close()


def test_a_station_looking_for_work_recovers_the_expired_claims_first(url: str) -> None:
    a, b = ledger(url, "line-a"), ledger(url, "line-b")
    run = a.start_run()
    claims = [a.claim_next(mac=f"aa:{n:02x}", port="p", run_id=run) for n in range(len(ROWS))]
    assert all(claims)
    a.close()
    on_another_host(b, run, expired=False)
    assert b.claim_next(mac="bb:00", port="q") is None  # every row is claimed, alive
    on_another_host(b, run, expired=True)
    c = b.claim_next(mac="bb:00", port="q")  # recovers them, then takes the first
    assert c is not None and c.row_index == 0
    assert b.state_counts()["pending"] == len(ROWS) - 1
    b.close()


def test_a_working_station_renews_its_lease_and_keeps_its_claims(url: str) -> None:
    a, b = ledger(url, "line-a", lease=0.6), ledger(url, "line-b")
    run = a.start_run()
    c = a.claim_next(mac="aa:00", port="p", run_id=run)
    assert c is not None
    on_another_host(b, run, expired=False)
    first, _ = db_clock(b, run)
    wait_for(lambda: db_clock(b, run)[1] > first + 0.3)  # past the first lease, by the DB
    assert db_clock(b, run)[0] > first  # renewed meanwhile
    assert b.recover_expired() == []
    renewer = a._renewer
    assert renewer is not None
    a.set_image(c, "ab" * 32)
    a.complete(c, {})
    assert b.row(c.row_index).state == "done"
    assert renewer.is_alive()  # the run goes on: it still watches the line
    a.end_run(run)
    renewer.join(10.0)  # no run, no claim held: nothing to renew, the renewer ends at once
    assert not renewer.is_alive()
    a.close()
    b.close()


def test_a_step_after_the_lease_ran_out_is_refused(url: str) -> None:
    a, b = ledger(url, "line-a"), ledger(url, "line-b")
    run = a.start_run()
    c = a.claim_next(mac="aa:00", port="p", run_id=run)
    assert c is not None
    a.set_image(c, "ab" * 32)
    a._stop_renewer()  # cut off: it cannot renew; the line moves on
    on_another_host(b, run, expired=True)
    assert [r.row_state for r in b.recover_expired()] == ["failed"]
    with pytest.raises(ClaimRefused, match="no longer active"):
        a.mark_written(c, {"writing": 1.0})
    with pytest.raises(ClaimRefused, match="no longer active"):
        a.complete(c, {})
    row = b.row(c.row_index)
    assert (row.state, row.mac) == ("failed", "aa:00")  # retried on that board only
    assert b.counters().done == 0
    a.close()
    b.close()


def test_a_claim_made_before_a_run_ended_is_recovered_at_once(url: str) -> None:
    a, b = ledger(url, "line-a"), ledger(url, "line-b")
    run = a.start_run()
    c = a.claim_next(mac="aa:00", port="p", run_id=run)
    assert c is not None
    a._stop_renewer()
    a.end_run(run)  # ended with a claim still open (e.g. ended after its own lease ran out)
    assert [r.row_state for r in b.recover_expired(look_closer=False)] == ["pending"]
    a.close()
    b.close()


def test_the_lease_length_is_kept_with_the_run(url: str) -> None:
    a = ledger(url, "line-a", lease=45.0)
    run = a.start_run()
    until, now = db_clock(a, run)
    assert 40.0 < until - now <= 45.0
    a.close()


# --- a lost connection (a real server: its backend is terminated, as a restart does) -------
@pytest.fixture
def pg(url: str) -> str:
    if not url.startswith("postgresql"):
        pytest.skip("a connection to lose needs PostgreSQL")
    return url


def terminate(led: Ledger) -> None:
    import psycopg

    pid = led._con().info.backend_pid
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_lost_connection_is_offline_then_connects_again(pg: str) -> None:
    a = ledger(pg, "line-a")
    run = a.start_run()
    told: list[bool] = []
    stop = a.on_status(told.append)
    terminate(a)
    with pytest.raises(LedgerOffline, match="ledger offline"):
        a.claim_next(mac="aa:00", port="p", run_id=run)
    assert a.offline
    assert told == [True]
    assert a.wait_online()
    assert not a.offline and told == [True, False]
    c = a.claim_next(mac="aa:00", port="p", run_id=run)
    assert c is not None and c.row_index == 0
    stop()
    terminate(a)
    with pytest.raises(LedgerOffline):
        a.claim_next(mac="aa:01", port="p", run_id=run)
    assert told == [True, False]  # a stopped listener hears nothing more
    a.close()


def a_claim_lost_with_the_connection(url: str) -> tuple[Ledger, Claim]:
    """A station's claim whose step (the image) went with the connection: still active in
    the database, its fate unknown to the station (its orphan)."""
    a = ledger(url, "line-a")
    run = a.start_run()
    c = a.claim_next(mac="aa:00", port="p", run_id=run)
    assert c is not None
    terminate(a)
    with pytest.raises(LedgerOffline):
        a.set_image(c, "ab" * 32)
    return a, c


def test_a_claim_whose_step_was_lost_is_recovered_when_the_ledger_is_back(pg: str) -> None:
    """The connection goes before the image is recorded: the unit stops before writing; the
    claim (still active in the database) is this station's orphan and goes back to pending."""
    a, c = a_claim_lost_with_the_connection(pg)
    assert a.wait_online()  # back: the orphan is recovered at once
    assert [x.result for x in a.attempts(0)] == ["interrupted"]
    assert a.recover_expired(look_closer=False) == []
    with pytest.raises(ClaimRefused, match="no longer active"):
        a.complete(c, {})
    assert a.row(0).state == "pending" and a.counters().done == 0
    a.close()


def test_a_look_for_leftovers_waits_for_the_recovery_already_under_way(pg: str) -> None:
    """Back online, every port of a station and its lease renewer look for the line's
    leftovers at once. The first one takes the station's orphans and recovers them; another
    one found nothing left to do and went on at once, before that recovery was committed: its
    port then met its own lost claim still active ("is being written right now") and gave up
    the unit (tests/ledger/test_line.py, about one run in twenty)."""
    a, _ = a_claim_lost_with_the_connection(pg)
    entered, go = threading.Event(), threading.Event()
    recover = a.recover

    def slow_recover(*args: object, **kw: object) -> object:
        entered.set()
        go.wait(30.0)
        return recover(*args, **kw)  # type: ignore[arg-type]

    a.recover = slow_recover  # type: ignore[method-assign]
    lock = a._recover_lock = TellingLock(asker="second")  # type: ignore[assignment]
    first = threading.Thread(target=a.recover_expired, kwargs={"look_closer": False})
    first.start()
    assert entered.wait(30.0)
    seen: list[object] = []
    returned = threading.Event()

    def second() -> None:
        a.recover_expired(look_closer=False)
        seen.extend(x.result for x in a.attempts(0))
        returned.set()

    threading.Thread(target=second, name="second").start()
    while not lock.asked.wait(0.01) and not returned.is_set():
        pass  # until it waits for the first, or (the bug) returned without waiting
    go.set()
    first.join(30.0)
    assert returned.wait(30.0)
    assert seen == ["interrupted"]  # it went on only once the orphan was recovered
    a.close()
