"""Benchmark: the official flow vs `station generate`, on the same 5,000-row lot, in one run.

The official flow is what mfg_gen.py does, in process (fair to it: no subprocess per device, its
log output silenced): build each device's intermediate CSV from the config and values files,
write it, and call esp-idf-nvs-partition-gen 0.3.0's ``generate`` on it. `station generate` is
called in process too, and writes the same files (bin/ and csv/). Wall and CPU time (user +
system, worker processes included), best of 3 interleaved runs each. The "floor" line writes the
same files with bare system calls: what creating two files per device costs on this machine,
whatever makes them. Before each run the page cache is written back (os.sync), so that no run
pays for the previous one's files. Also printed: how long a 100,000-row lot takes to load and
validate, and build_row_image's rate in memory.

Run by hand:  python tests/bench/bench_generate.py [ROWS [ROUNDS]]
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import resource
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


def timed(fn, *args) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall seconds, CPU seconds of this process and of its finished worker processes)."""
    start, cpu = time.perf_counter(), _cpu()
    fn(*args)
    return time.perf_counter() - start, _cpu() - cpu


def _cpu() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def write_files(files: list[tuple[str, bytes]]) -> None:
    """The floor: the same files created and written with bare system calls, nothing else."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for path, data in files:
        fd = os.open(path, flags, 0o666)
        os.write(fd, data)
        os.close(fd)


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

            def floor(outdir: str) -> None:
                for sub in ("bin", "csv"):
                    os.makedirs(os.path.join(outdir, sub))
                write_files([(os.path.join(outdir, name), data) for name, data in outputs])

            # the machine may be shared: interleave the runs, best of ROUNDS each
            best: dict[str, list[float]] = {}
            outputs: list[tuple[str, bytes]] = []
            for n in range(ROUNDS):
                runs = {
                    "official": (theirs, f"theirs{n}"),
                    "single": (ours, "1", f"one{n}"),
                    "station": (ours, "", f"ours{n}"),
                    "floor": (floor, f"floor{n}"),
                }
                for name, (fn, *args) in runs.items():
                    if name == "floor":  # the files station just wrote, to write them bare
                        outputs = [
                            (os.path.join(sub, p.name), p.read_bytes())
                            for sub in ("bin", "csv")
                            for p in sorted((d / f"ours{n}" / sub).iterdir())
                        ]
                    os.sync()  # no run pays for writing back the files of the one before
                    wall, cpu = timed(fn, *args)
                    old_wall, old_cpu = best.get(name, (1e9, 1e9))
                    best[name] = [min(old_wall, wall), min(old_cpu, cpu)]
            same = all(
                (d / out / sub / p.name).read_bytes() == p.read_bytes()
                for out in ("ours0", "one0")
                for sub in ("bin", "csv")
                for p in (d / "theirs0" / sub).iterdir()
            )
            official = best["official"][0]
            print(
                f"lot: {rows} devices, 0x6000 partitions, 10 keys in 2 namespaces; "
                f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
                f"best of {ROUNDS} interleaved runs; CPU = user + system, workers included"
            )
            labels = {
                "official": "official flow (mfg_gen CSVs + nvs_partition_gen)",
                "single": "station generate --jobs 1",
                "station": "station generate (default: worker per core)",
                "floor": "floor: the same 2 files per device, bare os.write",
            }
            for name, label in labels.items():
                wall, cpu = best[name]
                ratio = "" if name == "official" else f"  ratio {official / wall:4.1f}x"
                print(
                    f"{label:50} {wall:6.2f} s {rows / wall:8.0f} images/s"
                    f"  CPU {cpu:5.2f} s ({cpu / rows * 1e6:4.0f} us/device){ratio}"
                )
            print(f"identical output: {same}")

            lot = load_mfg("config.csv", "values.csv", size=0x6000)
            build, _cpu_s = timed(lambda: [build_row_image(lot, r, 0x6000) for r in lot.rows])
            print(f"build_row_image in memory: {rows / build:8.0f} images/s")

            make_lot(d, 100_000)
            load, _cpu_s = timed(lambda: load_mfg("config.csv", "values.csv", size=0x6000))
            mb = (d / "values.csv").stat().st_size / 1e6
            print(f"load_mfg, 100,000 rows like the above ({mb:.0f} MB): {load:.2f} s")
            make_typical_lot(d, 100_000)
            load, _cpu_s = timed(lambda: load_mfg("typical.csv", "typical_values.csv", size=0x6000))
            mb = (d / "typical_values.csv").stat().st_size / 1e6
            print(f"load_mfg, 100,000 rows of serial/MAC/key/model ({mb:.0f} MB): {load:.2f} s")
        finally:
            os.chdir(old)


if __name__ == "__main__":
    ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
