"""Ledger benchmark (run by hand): ``python tests/bench/bench_ledger.py [ROWS]``.

Prints figures, asserts nothing about time:

1. opening a 100,000-row lot (``open_lot``: lot file, partition table, whole-lot validation of
   config + values, ledger import) — wall time and peak memory of a fresh process;
2. the ledger import alone (executemany in one transaction) against the naive alternative
   (one INSERT per row, one commit each), the latter measured on a slice and extrapolated;
3. claim + record throughput (claim, image hash, written, done: four durable commits per unit)
   with one claimer and with four threads: synchronous=FULL as shipped, with and without the
   lot's journal (one fsynced line per commit, as a production run writes it), and NORMAL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_lot(folder: Path, n: int) -> Path:
    """A lot like the sample lot, with ``n`` rows (one secret hex column, a u32, strings)."""
    (folder / "config.csv").write_text(
        "factory,namespace,\nserial_no,data,string\ndevice_key,data,hex2bin\n"
        "hw_rev,data,u32\nmodel,data,string\n",
        encoding="utf-8",
    )
    with (folder / "values.csv").open("w", encoding="utf-8") as f:
        f.write("serial_no,device_key,hw_rev,model\n")
        for i in range(n):
            f.write(f"SN{i:08d},{os.urandom(16).hex()},{i % 7},BENCH-MODEL\n")
    (folder / "partitions.csv").write_text(
        "nvs, data, nvs, 0x9000, 0x6000,\nphy_init, data, phy, 0xf000, 0x1000,\n"
        "fctry, data, nvs, 0x10000, 0x6000,\nfactory, app, factory, 0x20000, 1M,\n",
        encoding="utf-8",
    )
    lot = folder / "lot.toml"
    lot.write_text(
        'name = "BENCH"\nconfig = "config.csv"\nvalues = "values.csv"\n'
        'partition_table = "partitions.csv"\npartition = "fctry"\nfileid = "serial_no"\n'
        'scan_column = "serial_no"\n',
        encoding="utf-8",
    )
    return lot


def in_child(code: str, **env: str) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter; it prints a JSON dict; peak RSS is added."""
    wrapper = textwrap.dedent(code) + textwrap.dedent(
        """
        import resource, json as _j
        _r["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(_j.dumps(_r))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, **env},
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lot = make_lot(folder, n)
        print(f"lot of {n:,} rows ({(folder / 'values.csv').stat().st_size / 1e6:.1f} MB CSV)")

        r = in_child(
            f"""
            import time
            t0 = time.perf_counter()
            from station.production import open_lot
            t1 = time.perf_counter()
            c1 = time.process_time()
            lot = open_lot({str(lot)!r})
            t2 = time.perf_counter()
            c2 = time.process_time()
            lot.close()
            lot = open_lot({str(lot)!r})   # re-open: every row checked against the ledger
            t3 = time.perf_counter()
            from station.production import ledgerlink
            ledgerlink.health_check(lot.ledger, lot.settings)
            t4 = time.perf_counter()
            lot.backup()
            t5 = time.perf_counter()
            _r = dict(first=t2 - t1, first_cpu=c2 - c1, reopen=t3 - t2, rows=lot.ledger.count(),
                      check=t4 - t3, backup=t5 - t4)
            """
        )
        print(
            f"open_lot, first open (validate + import): {r['first']:.2f} s "
            f"({r['first_cpu']:.2f} s CPU)"
        )
        print(f"open_lot, re-open (validate + check):     {r['reopen']:.2f} s")
        print(
            f"  of which the ledger's quick_check {r['check']:.2f} s and its rolling backup "
            f"{r['backup']:.2f} s"
        )
        print(
            f"  peak memory of that process:            {r['peak_mb']:.0f} MB "
            f"(target < 400 MB, import < 3 s)"
        )

        r = in_child(
            """
            import os, sqlite3, time
            from station.ledger import Ledger, LedgerRow
            n, folder = int(os.environ["BENCH_N"]), os.environ["BENCH_DIR"]
            rows = [LedgerRow(i, i + 2, f"SN{i:08d}", f"SN{i:08d}",
                              [f"SN{i:08d}", os.urandom(16).hex(), str(i % 7), "M"])
                    for i in range(n)]
            led = Ledger(os.path.join(folder, "import.db"))
            t0 = time.perf_counter()
            c0 = time.process_time()
            led.import_lot("X", "r", rows)
            t1 = time.perf_counter()
            c1 = time.process_time()
            # the naive alternative: one INSERT + commit per row, on a slice
            con = sqlite3.connect(os.path.join(folder, "naive.db"), isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL"); con.execute("PRAGMA synchronous=FULL")
            con.execute("CREATE TABLE rows (idx INTEGER PRIMARY KEY, unit TEXT, fp TEXT)")
            k = 2000
            t2 = time.perf_counter()
            for r in rows[:k]:
                con.execute("INSERT INTO rows VALUES (?, ?, ?)", (r.index, r.unit_id, "x"))
            t3 = time.perf_counter()
            _r = dict(bulk=t1 - t0, bulk_cpu=c1 - c0, naive=(t3 - t2) * n / k)
            """,
            BENCH_N=str(n),
            BENCH_DIR=str(folder),
        )
        print(
            f"ledger import alone, executemany + one transaction: {r['bulk']:.2f} s "
            f"({r['bulk_cpu']:.2f} s CPU)"
        )
        print(f"  naive alternative (INSERT + commit per row, extrapolated): {r['naive']:.1f} s")

        # the variants take turns, 50 units at a time, so that each sees the same disk: the
        # per-commit cost is the disk's fsync latency, which other work on the machine moves a lot
        r = in_child(
            f"""
            import statistics, time
            from pathlib import Path
            from station.ledger import Ledger, LedgerRow
            from station.ledger.lotfiles import Journal
            folder = Path({str(folder)!r})
            variants = {{
                "FULL, no journal": ("FULL", None),
                "FULL, journal as shipped (4 lines, 1 fsync)": ("FULL", False),
                "FULL, journal fsyncing every line (4 fsyncs)": ("FULL", True),
                "NORMAL, no journal": ("NORMAL", None),
            }}
            leds = {{}}
            for n, (name, (sync, every)) in enumerate(variants.items()):
                led = Ledger(folder / f"claims-{{n}}.db")
                led.import_lot("C", "r", [LedgerRow(i, i, str(i), None, [str(i)])
                                          for i in range(20000)])
                led._con().execute(f"PRAGMA synchronous={{sync}}")
                if every is not None:
                    led.attach_journal(Journal(folder / f"claims-{{n}}.journal",
                                               every_line=every), "bench-lot")
                leds[name] = led
            import os
            syncs = [0]
            real_sync = getattr(os, "fdatasync", os.fsync)
            def counting(fd):
                syncs[0] += 1
                return real_sync(fd)
            os.fdatasync = os.fsync = counting  # the journal's syncs (SQLite syncs in C)
            rates = {{name: [] for name in variants}}
            per_unit = {{}}
            for rnd in range(12):
                for name, led in leds.items():
                    t0 = time.perf_counter()
                    for k in range(50):
                        c = led.claim_next(mac=f"{{rnd}}-{{k}}", port="p")
                        led.set_image(c, "ab" * 32)
                        led.mark_written(c, {{"writing": 1.0}})
                        led.complete(c, {{"verifying": 1.0}})
                    rates[name].append(50 / (time.perf_counter() - t0))
                    per_unit[name] = per_unit.get(name, 0) + syncs[0]
                    syncs[0] = 0
            _r = {{}}
            for name, xs in rates.items():
                _r[name + "|median"] = statistics.median(xs)
                _r[name + "|best"] = max(xs)
                _r[name + "|worst"] = min(xs)
                _r[name + "|syncs"] = per_unit[name] / (50 * len(xs))
            """
        )
        print("claim + record (4 durable commits per unit), 12 rounds of 50 units, taking turns:")
        names = [k.split("|")[0] for k in r if k.endswith("|median")]
        for name in names:
            print(
                f"  {name:<46} median {r[name + '|median']:5.0f} units/s "
                f"(rounds {r[name + '|worst']:.0f}-{r[name + '|best']:.0f}); "
                f"journal fsyncs per unit: {r[name + '|syncs']:.2f}"
            )


if __name__ == "__main__":
    main()
