"""The line's figures on a big lot (run by hand): ``python tests/bench/bench_stats.py [UNITS]``.

Builds a lot of UNITS rows with one finished attempt each (3 stations x 8 slots, 3 % failures,
timings of five phases) by bulk SQL, then times :func:`station.ledger.stats.line_stats` (what the
Dashboard reads every 5 s, on its worker thread) and :func:`write_report` (the HTML page), on
SQLite and, with STATION_TEST_POSTGRES set, on PostgreSQL. Prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from station.ledger import Ledger, LedgerRow, stats  # noqa: E402
from station.production.report_html import write_report  # noqa: E402


def fill(url: str, n: int) -> None:
    rnd = random.Random(1)
    led = Ledger(url, station_id="line-a")
    led.import_lot(
        "BIG", "r", [LedgerRow(i, i + 2, f"SN{i:08d}", None, [str(i)]) for i in range(n)]
    )
    lot = led.lot_id
    t0 = time.time() - n * 1.2
    attempts = []
    for i in range(n):
        ok = rnd.random() > 0.03
        t = t0 + i * 1.2
        timings = {
            "connecting": rnd.gauss(0.8, 0.1),
            "checking": 0.3,
            "writing": rnd.gauss(4, 0.4),
            "verifying": rnd.gauss(1.6, 0.2),
            "resetting": 0.2,
        }
        attempts.append(
            (
                lot,
                i,
                "new",
                f"COM{i % 8}",
                f"slot {i % 8 + 1}",
                f"mac{i}",
                "failed" if not ok else "done",
                "" if ok else f"writing: timed out after {rnd.randint(2, 9)}.0 s on COM{i % 8}",
                json.dumps(timings),
                f"line-{'abc'[i % 3]}",
                t,
                t + 7,
            )
        )
    with led._write() as c:
        led._executemany(
            c,
            "INSERT INTO attempts (lot_id, row_idx, kind, port, slot, mac, result, reason,"
            " timings, station_id, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)",
            attempts,
        )
    led.close()


def measure(url: str, n: int, label: str) -> None:
    t = time.perf_counter()
    fill(url, n)
    print(f"{label}: {n} units filled in {time.perf_counter() - t:.1f} s")
    with Ledger(url) as led:
        led.attach("BIG")
        best = []
        for _ in range(3):
            t = time.perf_counter()
            s = stats.line_stats(led)
            best.append(time.perf_counter() - t)
        t = time.perf_counter()
        stats.phases(led)
        phases = time.perf_counter() - t
        print(
            f"{label}: line_stats {min(best) * 1000:.0f} ms (best of 3; of which phase "
            f"timings {phases * 1000:.0f} ms over {stats.PHASE_SAMPLE} units) — "
            f"{s.passed} passed, {s.failed} failed, {len(s.throughput.buckets)} buckets"
        )
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            write_report(led, Path(tmp) / "r.html")
            size = (Path(tmp) / "r.html").stat().st_size
            print(f"{label}: write_report {time.perf_counter() - t:.2f} s, {size // 1024} KiB")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        measure(str(Path(tmp) / "big.db"), n, "SQLite")
    pg = os.environ.get("STATION_TEST_POSTGRES", "")
    if pg:
        import psycopg

        schema = f"station_bench_{secrets.token_hex(4)}"
        admin = psycopg.connect(pg, autocommit=True)
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            url = pg + ("&" if "?" in pg else "?") + f"options=-csearch_path%3D{schema}"
            measure(url, n, "PostgreSQL")
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()


if __name__ == "__main__":
    main()
