"""A line's ledger throughput (run by hand): ``python tests/bench/bench_line.py [UNITS] [URL]``.

Three station processes work one lot of UNITS rows at once through PostgreSQL (URL, else
STATION_TEST_POSTGRES): each unit is claim + image recorded + written + done, the four
transactions a real unit makes (no device). Run with leases (every claim under a run whose
lease the ledger's renewer thread renews, and which watches for expired claims, as `station
run` does) and without (claims of no run: nothing to renew), alternately, three times each.
Prints units/s; asserts nothing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from station.ledger import Ledger, LedgerRow  # noqa: E402

STATIONS = 3
PORTS = 4  # threads per station, as ports would be


def station(
    url: str,
    name: str,
    leases: bool,
    ready: mp.Queue,  # type: ignore[type-arg]
    go: mp.Event,
    done: mp.Queue,  # type: ignore[type-arg]
) -> None:
    import threading

    led = Ledger(url, station_id=name)
    led.attach("BENCH")
    run = led.start_run() if leases else ""
    ready.put(name)  # imported and connected: the clock may start
    count = [0]
    lock = threading.Lock()

    def port(p: int) -> None:
        n = 0
        while True:
            n += 1
            c = led.claim_next(mac=f"{name}-{p}-{n}", port=f"p{p}", run_id=run)
            if c is None:
                break
            led.set_image(c, "ab" * 32)
            led.mark_written(c, {"writing": 1.0})
            led.complete(c, {"verifying": 0.5})
            with lock:
                count[0] += 1
        led.release_thread()

    go.wait()
    threads = [threading.Thread(target=port, args=(p,)) for p in range(PORTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if run:
        led.end_run(run)
    led.close()
    done.put(count[0])


def one(url: str, units: int, leases: bool) -> float:
    led = Ledger(url, station_id="bench")
    led.import_lot(
        "BENCH", "r", [LedgerRow(i, i + 2, f"SN{i}", None, [str(i)]) for i in range(units)]
    )
    led.close()
    ctx = mp.get_context("spawn")
    ready, go, done = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=station, args=(url, f"line-{i}", leases, ready, go, done))
        for i in range(STATIONS)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)  # every station imported and connected before the clock starts
    t0 = time.perf_counter()
    go.set()
    total = sum(done.get() for _ in procs)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    assert total == units, (total, units)
    return units / elapsed


def main() -> None:
    units = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    base = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("STATION_TEST_POSTGRES", "")
    if not base:
        sys.exit("give a PostgreSQL URL (or set STATION_TEST_POSTGRES)")
    import psycopg

    print(f"{units} units, {STATIONS} station processes x {PORTS} threads, {base.split('?')[0]}")
    for leases in (False, True) * 3:
        schema = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        url = base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"
        try:
            rate = one(url, units, leases)
        finally:
            with psycopg.connect(base, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
        print(f"  {'with leases   ' if leases else 'without leases'}: {rate:7.1f} units/s")


if __name__ == "__main__":
    main()
