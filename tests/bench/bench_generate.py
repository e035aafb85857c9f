"""Benchmark: the official flow vs `station generate`, on the same 5,000-row lot, in one run.

The official flow is what mfg_gen.py does, in process (fair to it: no subprocess per device, its
log output silenced): build each device's intermediate CSV from the config and values files,
write it, and call esp-idf-nvs-partition-gen 0.3.0's ``generate`` on it. `station generate` is
called in process too, and writes the same files (bin/ and csv/). Also printed: how long a
100,000-row lot takes to load and validate, and build_row_image's rate in memory.

Run by hand:  python tests/bench/bench_generate.py [ROWS]
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from station.cli import main  # noqa: E402
from station.mfg import build_row_image, load_mfg  # noqa: E402
from tests.mfg.reference import official_generate  # noqa: E402

CONFIG = """device,namespace,
serial_no,data,string
model,data,string,REPEAT
hw_rev,data,u8,REPEAT
unit_id,data,u32
mac,data,hex2bin
dev_key,data,hex2bin
dev_cert,data,base64
ca_cert,file,string
wifi,namespace,
ssid,data,string
psk,data,string
"""
ROUNDS = 3
CA = "-----BEGIN CERTIFICATE-----\n" + "A" * 1200 + "\n-----END CERTIFICATE-----\n"


def make_lot(folder: Path, rows: int) -> None:
    (folder / "config.csv").write_text(CONFIG)
    (folder / "ca.pem").write_text(CA)
    lines = ["batch,serial_no,model,hw_rev,unit_id,mac,dev_key,dev_cert,ca_cert,ssid,psk"]
    for i in range(rows):
        lines.append(
            ",".join(
                [
                    "B1",
                    f"SN{i:07d}",
                    "M-100" if i == 0 else "",
                    "3" if i == 0 else "",
                    str(i),
                    secrets.token_bytes(6).hex(),
                    secrets.token_bytes(32).hex(),
                    base64.b64encode(secrets.token_bytes(600)).decode(),
                    "ca.pem",
                    f"factory-{i % 7}",
                    secrets.token_hex(12),
                ]
            )
        )
    (folder / "values.csv").write_text("\n".join(lines) + "\n")


def make_typical_lot(folder: Path, rows: int) -> None:
    """Serial number, MAC, a 16-byte key, a model (REPEAT) and a counter per device."""
    (folder / "typical.csv").write_text(
        "app,namespace,\nserial_no,data,string\nmac,data,hex2bin\nkey,data,hex2bin\n"
        "model,data,string,REPEAT\nboot_count,data,u32\n"
    )
    lines = ["serial_no,mac,key,model,boot_count,operator"]
    for i in range(rows):
        lines.append(
            f"SN{i:08d},{secrets.token_hex(6)},{secrets.token_hex(16)},"
            f"{'M-100' if i == 0 else ''},0,ann"
        )
    (folder / "typical_values.csv").write_text("\n".join(lines) + "\n")


CPU: dict[str, float] = {}


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    """Wall-clock seconds; the best CPU seconds of this process are kept in CPU by name."""
    start, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    name = getattr(fn, "__name__", "?") + (str(args[0]) if args and args[0] in ("1", "") else "")
    CPU[name] = min(CPU.get(name, 1e9), time.process_time() - cpu)
    return time.perf_counter() - start


def run(rows: int) -> None:
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        os.chdir(d)
        try:
            make_lot(d, rows)

            def theirs(outdir: str) -> None:
                official_generate(
                    Path("config.csv"),
                    Path("values.csv"),
                    "dev",
                    "0x6000",
                    d / outdir,
                    fileid="serial_no",
                )

            def ours(jobs: str, outdir: str) -> None:
                args = [
                    "generate",
                    "config.csv",
                    "values.csv",
                    "dev",
                    "0x6000",
                    "--outdir",
                    outdir,
                    "--fileid",
                    "serial_no",
                ]
                with contextlib.redirect_stdout(io.StringIO()):
                    code = main(args + (["--jobs", jobs] if jobs else []))
                assert code == 0

            # the machine may be shared: interleave the three, best of ROUNDS each
            best = {"official": 1e9, "single": 1e9, "station": 1e9}
            for n in range(ROUNDS):
                best["official"] = min(best["official"], timed(theirs, f"theirs{n}"))
                best["single"] = min(best["single"], timed(ours, "1", f"one{n}"))
                best["station"] = min(best["station"], timed(ours, "", f"ours{n}"))
            official, single, station = best["official"], best["single"], best["station"]
            same = all(
                (d / out / sub / p.name).read_bytes() == p.read_bytes()
                for out in ("ours0", "one0")
                for sub in ("bin", "csv")
                for p in (d / "theirs0" / sub).iterdir()
            )
            print(
                f"lot: {rows} devices, 0x6000 partitions, 10 keys in 2 namespaces; "
                f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
                f"best of {ROUNDS} interleaved runs"
            )
            print(
                f"official flow (mfg_gen CSVs + nvs_partition_gen): {official:7.2f} s "
                f"{rows / official:8.0f} images/s"
            )
            print(
                f"station generate --jobs 1:                        {single:7.2f} s "
                f"{rows / single:8.0f} images/s   ratio {official / single:.1f}x"
            )
            print(
                f"station generate (default: worker per core):      {station:7.2f} s "
                f"{rows / station:8.0f} images/s   ratio {official / station:.1f}x"
            )
            cpu_official, cpu_single = CPU["theirs"], CPU["ours1"]
            print(
                f"CPU time of this process (a shared machine hurts wall time more): official "
                f"{cpu_official:.2f} s, station --jobs 1 {cpu_single:.2f} s, ratio "
                f"{cpu_official / cpu_single:.1f}x"
            )
            print(f"identical output: {same}")

            lot = load_mfg("config.csv", "values.csv", size=0x6000)
            build = timed(lambda: [build_row_image(lot, r, 0x6000) for r in lot.rows])
            print(f"build_row_image in memory: {rows / build:8.0f} images/s")

            make_lot(d, 100_000)
            load = timed(lambda: load_mfg("config.csv", "values.csv", size=0x6000))
            mb = (d / "values.csv").stat().st_size / 1e6
            print(f"load_mfg, 100,000 rows like the above ({mb:.0f} MB): {load:.2f} s")
            make_typical_lot(d, 100_000)
            load = timed(lambda: load_mfg("typical.csv", "typical_values.csv", size=0x6000))
            mb = (d / "typical_values.csv").stat().st_size / 1e6
            print(f"load_mfg, 100,000 rows of serial/MAC/key/model ({mb:.0f} MB): {load:.2f} s")
        finally:
            os.chdir(old)


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
