"""The line's figures (station.ledger.stats) on SQLite and, where a server is given, PostgreSQL:
the same lot gives the same figures on both."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from station.errors import StationError
from station.ledger import Ledger, stats
from station.ledger.readonly import open_read_only
from tests.conftest import PG_URL
from tests.ledger.line import T0, Clock, busy_line, failed, passed, rows


def fill(url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lot of 40 rows worked by two stations over three hours."""
    monkeypatch.setattr("station.ledger.connection.time", clock)
    a = Ledger(url, station_id="line-a")
    a.import_lot("L1", "r", rows(40))
    b = Ledger(url, station_id="line-b")
    b.attach("L1")
    a.start_run()
    run_b = b.start_run()
    n = 0
    for hour, units in enumerate((6, 10, 2)):
        clock.now = T0 + hour * 3600 + 10
        for _ in range(units):
            n += 1
            led = a if n % 2 else b
            passed(
                led,
                clock,
                f"24:0a:c4:00:00:{n:02x}",
                f"slot {n % 3 + 1}",
                {
                    "connecting": 0.5 + n / 100,
                    "writing": 2.0 + n / 10,
                    "verifying": 1.0,
                },
            )
            clock.now += 60
    clock.now = T0 + 2 * 3600 + 900
    for i, mac in enumerate(("24:0a:c4:00:01:01", "24:0a:c4:00:01:02", "24:0a:c4:00:01:03")):
        failed(a, clock, mac, "slot 1", f"writing: timed out after {3 + i}.0 s on /dev/ttyUSB{i}")
    failed(b, clock, "24:0a:c4:00:01:04", "slot 2", "connecting: no answer from COM7")
    b.end_run(run_b)
    a.close()
    b.close()


def check(led: Ledger) -> None:
    s = stats.line_stats(led, now=T0 + 3 * 3600)
    assert s.lot == "L1" and s.total == 40
    assert s.states["done"] == 18 and s.passed == 18 and s.failed == 4
    # 2 h 15 min of work: 5-minute buckets (at most 48), none left out when empty
    tp = s.throughput
    assert tp.bucket_seconds == 300
    assert [b.start for b in tp.buckets] == [T0 + i * 300 for i in range(len(tp.buckets))]
    hourly = [
        sum(b.passed for b in tp.buckets if h * 3600 <= b.start - T0 < h * 3600 + 3600)
        for h in range(3)
    ]
    assert hourly == [6, 10, 2]
    assert tp.buckets[-1].failed == 4 and tp.buckets[-1].start == T0 + 7200 + 900
    assert tp.units_per_hour(tp.buckets[0]) == 5 * 12.0  # 5 units in its first 5 minutes
    # the current rate is the status bar's: over the last hour of work
    assert s.units_per_hour == led.counters(now=s.at).units_per_hour > 0
    # yield per station and per slot (named by station: the line has two)
    ys = {y.name: (y.passed, y.failed) for y in s.stations_yield}
    assert ys == {"line-a": (9, 3), "line-b": (9, 1)}
    slots = {y.name: (y.passed, y.failed) for y in s.slots}
    assert slots["line-a / slot 1"][1] == 3 and slots["line-b / slot 2"][1] == 1
    assert sum(p for p, _ in slots.values()) == 18
    # the same failure on three ports and with three timeouts is one reason
    assert [(r.reason, r.count) for r in s.reasons] == [
        ("writing: timed out after N s on <port>", 3),
        ("connecting: no answer from <port>", 1),
    ]
    assert s.other_failures == 0
    # phases in the order a unit goes through them, over the passed attempts only
    assert [p.phase for p in s.phases] == ["connecting", "writing", "verifying"]
    w = next(p for p in s.phases if p.phase == "writing")
    assert w.count == 18 and w.minimum == pytest.approx(2.1) and w.maximum == pytest.approx(3.8)
    assert w.p25 <= w.p50 <= w.p75 <= w.p95 <= w.maximum
    assert sum(c for _lo, _hi, c in w.bins) == 18
    # stations: a is still running (its run is open), b ended its run
    st = {x.station_id: x for x in s.stations}
    assert st["line-a"].running and not st["line-b"].running
    assert st["line-a"].failed == 3 and st["line-b"].passed == 9
    assert st["line-a"].state(T0 + 7200 + 900 + 10) == "running"
    assert st["line-a"].state(T0 + 7200 + 900 + 3 + stats.QUIET + 1) == "quiet"  # died?
    assert st["line-b"].state(T0) == "stopped"
    # the last failure was b's, one second after a's three
    assert st["line-a"].last_activity == T0 + 7200 + 900 + 3
    assert st["line-b"].last_activity == T0 + 7200 + 900 + 4
    fails, total = stats.failures(led, limit=3)
    assert total == 4 and len(fails) == 3
    assert fails[0].unit_id.startswith("SN") and fails[0].reason.startswith("connecting")


def test_figures_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "lot.station.db")
    fill(url, Clock(), monkeypatch)
    with Ledger(url) as led:
        led.attach("L1")
        check(led)


def test_a_read_only_ledger_reads_the_figures_and_never_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = tmp_path / "lot.station.db"
    fill(str(url), Clock(), monkeypatch)
    copy = tmp_path / "ro" / "lot.station.db"
    copy.parent.mkdir()
    src, dst = sqlite3.connect(url), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    copy.chmod(0o444)
    copy.parent.chmod(0o555)
    try:
        before = copy.read_bytes()
        led = open_read_only(copy, "L1")
        try:
            check(led)
            assert led.count() == 40
            with pytest.raises(StationError, match="read-only"):
                led.audit("x", "y")
        finally:
            led.close()
        assert copy.read_bytes() == before
        # SQLite may make its shared-memory index of a WAL database (as root, even in a folder
        # it may not write to); the log of changes stays empty
        wal = copy.with_name(copy.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
    finally:
        copy.parent.chmod(0o755)


def test_reading_only_a_missing_lot_or_ledger_is_a_located_problem(tmp_path: Path) -> None:
    with pytest.raises(StationError, match="no ledger database"):
        open_read_only(tmp_path / "none.db", "L1")
    Ledger(tmp_path / "l.db").close()
    with pytest.raises(StationError, match="no lot named"):
        open_read_only(tmp_path / "l.db", "L1")


def test_an_empty_lot_has_empty_figures(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as led:
        led.import_lot("L1", "r", rows(3))
        s = stats.line_stats(led)
    assert s.total == 3 and s.throughput.buckets == () and s.reasons == () and s.phases == ()
    assert s.slots == () and s.stations == ()


@pytest.mark.parametrize(
    ("reason", "normal"),
    [
        ("writing: timed out after 3.0 s", "writing: timed out after N s"),
        (
            "interrupted while writing to 24:0A:C4:00:00:01; it is checked when",
            "interrupted while writing to <MAC>; it is checked when",
        ),
        (
            "interrupted: the station stopped during this attempt (run 1a2b3c4d)",
            "interrupted: the station stopped during this attempt (run <id>)",
        ),
        ("verifying: read back differs at 0x9000", "verifying: read back differs at <hex>"),
        ("connecting: socket://127.0.0.1:9001 refused", "connecting: <port> refused"),
        ("", "(no reason given)"),
    ],
)
def test_reasons_are_normalised(reason: str, normal: str) -> None:
    assert stats.normalise_reason(reason) == normal


def test_top_reasons_keep_ten_and_count_the_rest() -> None:
    counted = [(f"error kind {chr(65 + i)}", 20 - i) for i in range(12)]
    top, rest = stats.group_reasons(counted)
    assert len(top) == 10 and top[0].reason == "error kind A" and top[0].count == 20
    assert rest == 9 + 10


def test_phase_distribution() -> None:
    p = stats.phase_stats("writing", [float(x) for x in range(1, 101)])
    assert (p.minimum, p.maximum, p.count) == (1.0, 100.0, 100)
    assert p.p50 == pytest.approx(50.5) and p.p95 == pytest.approx(95.05)
    assert sum(c for *_, c in p.bins) == 100
    assert p.bins[-1][1] == float("inf") and p.bins[0][0] == 0.0


def test_phases_come_in_a_units_order_the_efuse_burn_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr("station.ledger.connection.time", clock)
    led = Ledger(tmp_path / "l.station.db")
    led.import_lot("L1", "r", rows(2))
    led.start_run()
    timings = {"resetting": 0.1, "burning eFuses": 4.0, "writing": 1.0, "connecting": 0.5}
    passed(led, clock, "aa:00", "slot 1", {**timings, "verifying": 0.3, "foreign step": 1.0})
    names = [p.phase for p in stats.phases(led)]
    assert names == [
        "connecting",
        "writing",
        "verifying",
        "burning eFuses",
        "resetting",
        "foreign step",  # a name the station does not know goes last
    ]
    led.close()


# --- PostgreSQL ----------------------------------------------------------------------------
@pytest.fixture
def pg_url(pg_schema_url: str) -> str:
    return pg_schema_url


def test_figures_on_postgresql(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(pg_url, Clock(), monkeypatch)
    with Ledger(pg_url) as led:
        led.attach("L1")
        check(led)


def test_read_only_on_postgresql_is_refused_by_the_server(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    fill(pg_url, Clock(), monkeypatch)
    led = open_read_only(pg_url, "L1")
    try:
        check(led)
        con: Any = led._con()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            con.execute("UPDATE rows SET reason = 'x'")
    finally:
        led.close()


def test_a_busy_line_has_the_same_figures_on_both_engines(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr("station.ledger.connection.time", clock)
    figures = []
    for url in (str(tmp_path / "l.db"), pg_url):
        clock.now = T0
        busy_line(url, clock, hours=2, lot_rows=400)
        with Ledger(url) as led:
            led.attach("LINE-1")
            figures.append((stats.line_stats(led, now=T0), stats.failures(led)))
    assert figures[0] == figures[1]
    s = figures[0][0]
    assert len(s.stations) == 3 and len(s.slots) == 12 and s.passed > 200
    assert [p.phase for p in s.phases] == [
        "connecting",
        "checking",
        "writing",
        "verifying",
        "resetting",
    ]


def test_a_watcher_reads_again_after_the_server_dropped_its_connection(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    fill(pg_url, Clock(), monkeypatch)
    led = open_read_only(pg_url, "L1")
    admin = psycopg.connect(PG_URL, autocommit=True)
    try:
        assert stats.line_stats(led).passed == 18
        pid = led._con().info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # as a server restart does
        with pytest.raises(psycopg.OperationalError):
            stats.line_stats(led)
        assert stats.line_stats(led).passed == 18  # a new connection
        assert led._con().info.backend_pid != pid
    finally:
        admin.close()
        led.close()


def test_a_supervisor_login_with_select_rights_only_can_watch(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    fill(pg_url, Clock(), monkeypatch)
    role = f"station_watch_{secrets.token_hex(4)}"
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f"CREATE ROLE {role}")
    try:
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
        led = open_read_only(pg_url.replace("options=", f"options=-crole%3D{role}%20"), "L1")
        try:
            assert led._con().execute("SELECT current_user").fetchone()[0] == role
            check(led)
        finally:
            led.close()
    finally:
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")
        admin.close()
