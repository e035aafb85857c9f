"""Matter factory data for N devices with a PAI (a fresh DAC each): station vs esp-matter-mfg-tool.

Run by hand: ``python tests/bench/bench_matter.py [--count 1000] [--jobs N]``. Both tools write
their files (partition, onboarding CSV, QR PNG, DAC files, summary) into a temporary folder. The
oracle runs from its cached environment (tests/matter/oracle.py; made on first use). Prints
figures, asserts nothing: per-device time for each, and where the station's time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def per_unit(n: int, fn: Callable[[], object]) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def breakdown(pki_dir: Path, samples: int) -> None:
    """Where one device's time goes, step by step, in one process."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from station.matter import certs
    from station.matter.commands import _png
    from station.matter.factory import MatterConfig, new_device, partition_image
    from station.matter.spake2p import pbkdf2, verifier_from_ws

    pai = certs.Issuer(
        certs.load_certificate((pki_dir / "pai_cert.pem").read_bytes()),
        certs.load_private_key((pki_dir / "pai_key.pem").read_bytes()),
    )
    config = MatterConfig(
        0xFFF2, 0x8001, pai=pai, pai_der=certs.der(pai.cert), cd=(pki_dir / "cd.der").read_bytes()
    )
    subject = certs.matter_subject("5b5a6c4e-6f0c-4b3e-9a47-2f4c4d1e8a11", 0xFFF2, 0x8001)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=3650)
    ws = pbkdf2(20202021, bytes(32), 10000)
    device = new_device(config)
    payload = device.setup_payload(config)
    steps = {
        "PBKDF2-HMAC-SHA256, 10,000 iterations": lambda: pbkdf2(20202021, bytes(32), 10000),
        "verifier W0 and L = w1*G": lambda: verifier_from_ws(ws),
        "DAC key generation (P-256)": lambda: ec.generate_private_key(ec.SECP256R1()),
        "DAC certificate (key + build + ECDSA signing)": lambda: certs.make_certificate(
            pai, subject, start, end, is_pai=False
        ),
        "chip-factory NVS image (station encoder)": lambda: partition_image(config, device),
        "onboarding codes (QR string, manual code)": lambda: (
            payload.qr_code(),
            payload.manual_code(),
        ),
        "QR code PNG (segno)": lambda: _png(payload.qr_code()),
    }
    times = {name: per_unit(samples, fn) for name, fn in steps.items()}
    keygen = times["DAC key generation (P-256)"]
    times["DAC certificate (key + build + ECDSA signing)"] -= keygen
    times["DAC signing (build + ECDSA, without the key)"] = times.pop(
        "DAC certificate (key + build + ECDSA signing)"
    )
    total = sum(times.values())
    print(f"\nstation, one device, one process ({samples} samples each):")
    for name, t in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<48} {t * 1000:7.2f} ms  {100 * t / total:5.1f} %")
    print(f"  {'sum':<48} {total * 1000:7.2f} ms")


def run_station(args: list[str]) -> float:
    from station.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["matter", *args])
    elapsed = time.perf_counter() - start
    assert code == 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--jobs", type=int, help="station worker processes (default: auto)")
    parser.add_argument("--samples", type=int, default=100, help="samples for the breakdown")
    parser.add_argument("--no-oracle", action="store_true")
    opts = parser.parse_args()

    from station.matter.commands import auto_jobs
    from tests.matter.oracle import ensure_oracle
    from tests.matter.pki import make_pki

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pki = make_pki(root / "pki")
        common = ["-v", "0xFFF2", "-p", "0x8001", "--pai", "-c", pki.pai_cert, "-k", pki.pai_key]
        common += ["-cd", pki.cd, "-lt", "3650", "-n", str(opts.count)]
        jobs = opts.jobs or auto_jobs(opts.count)
        n = opts.count
        print(f"{n} devices, PAI given, a fresh DAC each, files written")
        t1 = run_station([*common, "--jobs", "1", "--outdir", str(root / "station1")])
        print(f"station, 1 process:        {t1:8.2f} s  {t1 / n * 1000:7.2f} ms/device")
        tj = t1
        if jobs > 1:
            tj = run_station([*common, "--jobs", str(jobs), "--outdir", str(root / "stationN")])
            print(f"station, {jobs} processes:      {tj:8.2f} s  {tj / n * 1000:7.2f} ms/device")
        if not opts.no_oracle:
            tool = ensure_oracle()
            start = time.perf_counter()
            subprocess.run(
                [str(tool), *common, "--outdir", str(root / "oracle")],
                cwd=root,
                check=True,
                capture_output=True,
            )
            to = time.perf_counter() - start
            print(f"esp-matter-mfg-tool 1.0.29: {to:8.2f} s  {to / n * 1000:7.2f} ms/device")
            print(f"  speed-up: {to / t1:.2f}x in one process, {to / tj:.2f}x with {jobs}")
        breakdown(root / "pki", opts.samples)


if __name__ == "__main__":
    main()
