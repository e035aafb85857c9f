"""Flashing benchmark on simulated devices (run by hand: python tests/bench/bench_flash.py).

One run, three comparisons with the real alternative, figures printed (never asserted):

1. one unit on one port: the engine (connect, identify, partition-table and provisioned
   checks, write, MD5, read-back verify) vs ``esptool write-flash`` as a process (write + MD5
   only) — target <= 0.7x;
2. 8 devices at once with the engine vs 8 in turn with the esptool CLI — target <= 0.25x;
3. 32 devices at once, all verified, vs 32 in turn with the esptool CLI (all 32 measured) —
   target <= 0.15x.

The simulated devices are processes sharing this machine's cores with the engine; ``--split``
puts them on their own core(s) and the engine on the others (tests/bench/cpusplit.py), and the
32-device run prints the CPU per unit of each process. ``--host`` runs the 32 units through the
device host (a child process, as the window does) instead of threads of this process;
``--only32`` skips the first two comparisons.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import cpusplit  # noqa: E402  (tests/bench/, this script's folder)

from station.flashing import FlashJob, WriteRegion, run_job, run_jobs  # noqa: E402
from station.flashing import start_simulated_devices as start  # noqa: E402
from station.nvs import NvsEntry, encode_image  # noqa: E402

OFFSET, SIZE = 0x9000, 0x6000


def image(serial: str) -> bytes:
    return encode_image(
        [
            NvsEntry("factory", "namespace", "", ""),
            NvsEntry("serial_no", "data", "string", serial),
            NvsEntry("wifi_key", "data", "hex2bin", "00112233445566778899aabbccddeeff"),
        ],
        SIZE,
    )


def job(port: str, serial: str) -> FlashJob:
    return FlashJob(
        port,
        (WriteRegion(OFFSET, image(serial), "fctry"),),
        factory_offset=OFFSET,
        factory_size=SIZE,
        allow_overwrite=True,
    )


def esptool_cli(port: str, path: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "esptool", "--port", port, "write-flash", hex(OFFSET), str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"esptool failed: {proc.stdout}{proc.stderr}")
    return time.perf_counter() - t


def host_opener(host: object) -> object:
    """run_job's open_device, with the session in the device host."""

    def open_device(port: str, **kwargs: object) -> object:
        session = host.open_device(port, **kwargs)  # type: ignore[attr-defined]
        session.enter_phase = lambda phase: None  # the host's session announces its phases
        return session

    return open_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", action="store_true", help="chips on their own core(s)")
    parser.add_argument("--host", action="store_true", help="32 units through the device host")
    parser.add_argument("--only32", action="store_true", help="only the 32-device comparison")
    args = parser.parse_args()
    split = cpusplit.plan() if args.split else None
    cpusplit.pin_station(split)
    if split is not None:
        print(split.describe())
    print(cpusplit.load())
    tmp = Path(tempfile.mkdtemp(prefix="bench-flash-"))
    f = tmp / "fctry.bin"
    f.write_bytes(image("SN-CLI"))
    print(f"factory image: {SIZE:#x} bytes at {OFFSET:#x}; simulated ESP32 over TCP")

    if not args.only32:
        first_two(f)
    thirty_two(f, split, args.host)
    print(cpusplit.load())


def first_two(f: Path) -> None:
    # 1. one unit on one port: every unit a fresh (blank) device, as on the line
    devs = start(6)
    try:
        esptool_cli(devs[0].port, f)  # warm the OS file cache
        cli = [esptool_cli(devs[0].port, f) for _ in range(5)]
        eng = []
        for i, dev in enumerate(devs[1:]):
            t = time.perf_counter()
            r = run_job(job(dev.port, f"SN{i}"))
            eng.append(time.perf_counter() - t)
            assert r.ok, r.reason
        phases = {k: round(v, 3) for k, v in r.durations.items()}
    finally:
        for d in devs:
            d.stop()
    cli_unit, eng_unit = statistics.median(cli), statistics.median(eng)
    print("\n1) one unit, one port (median of 5)")
    print(f"   esptool write-flash process : {cli_unit:.3f} s  (write + MD5)")
    print(f"   engine run_job               : {eng_unit:.3f} s  (+ checks + read-back verify)")
    print(f"   ratio {eng_unit / cli_unit:.2f}x  (target <= 0.70x)   phases: {phases}")

    # 2. eight devices
    devs = start(8)
    try:
        # the engine first, on blank devices as on the line (esptool does not care what the
        # devices hold; the engine would read and decode what it finds)
        t = time.perf_counter()
        results = run_jobs([job(d.port, f"SN8-{i}") for i, d in enumerate(devs)])
        eng8 = time.perf_counter() - t
        assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
        t = time.perf_counter()
        for d in devs:
            esptool_cli(d.port, f)
        cli8 = time.perf_counter() - t
    finally:
        for d in devs:
            d.stop()
    print("\n2) 8 devices")
    print(f"   esptool CLI, 8 in turn       : {cli8:.2f} s")
    print(f"   engine, 8 at once (verified) : {eng8:.2f} s")
    print(f"   ratio {eng8 / cli8:.2f}x  (target <= 0.25x)")


def thirty_two(f: Path, split: cpusplit.Split | None, through_host: bool) -> None:
    import station.flashing.jobs as jobs
    from station.flashing.host import DeviceHost

    devs = cpusplit.start_chips(32)
    cpusplit.pin_chips(split, (d.pid for d in devs))
    host = DeviceHost() if through_host else None
    meter = cpusplit.CpuMeter()
    real_open = jobs.open_device
    try:
        if host is not None:
            host.wait_ready()
            jobs.open_device = host_opener(host)  # type: ignore[assignment]
        meter.start(
            {
                "engine": [os.getpid()],
                "host": [host.pid] if host is not None and host.pid else [],
                "chips": [d.pid for d in devs if d.pid],
            }
        )
        t, cpu = time.perf_counter(), time.process_time()
        results = run_jobs([job(d.port, f"SN32-{i}") for i, d in enumerate(devs)])
        eng32 = time.perf_counter() - t
        cpu32 = time.process_time() - cpu
        meter.stop()
        jobs.open_device = real_open
        t = time.perf_counter()
        for d in devs:
            esptool_cli(d.port, f)
        cli32 = time.perf_counter() - t
        ok = sum(r.ok for r in results)
        macs = len({r.mac for r in results})
    finally:
        jobs.open_device = real_open
        if host is not None:
            host.close()
        for d in devs:
            d.stop()
    print("\n3) 32 devices" + (" (through the device host)" if host is not None else ""))
    print(f"   esptool CLI, 32 in turn      : {cli32:.2f} s")
    print(f"   engine, 32 at once           : {eng32:.2f} s  ({ok}/32 verified, {macs} MACs)")
    print(f"   ratio {eng32 / cli32:.2f}x  (target <= 0.15x); engine process CPU {cpu32:.2f} s")
    slowest = max(results, key=lambda r: sum(r.durations.values()))
    print(f"   {meter.report(ok)}")
    print(f"   slowest port phases: { ({k: round(v, 2) for k, v in slowest.durations.items()}) }")


if __name__ == "__main__":
    main()
