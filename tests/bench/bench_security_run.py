"""Security lots per unit on simulated devices (run by hand):
``python tests/bench/bench_security_run.py [UNITS] [CHIP ...]``.

Prints figures, asserts nothing about time. For each chip and recipe, UNITS fresh simulated
devices (esp32-mock-bootloader, each paired with its own virtual eFuse file), one at a time:

* **station**: the whole unit through the orchestrator, as ``station run`` does it on one
  connection (check the eFuses, claim, escrow the keys, encrypt on the host, write, verify,
  burn, lock, record); the seconds per unit and, of them, the "burning eFuses" phase;
* **commands**: the same unit as separate commands on the same kind of device, one process
  each, as ESP-IDF's host-based workflow guide runs them: ``espsecure encrypt-flash-data``
  per encrypted region, ``esptool write-flash`` and ``verify-flash``, then one ``espefuse``
  command per eFuse step (``burn-key``, ``burn-efuse``, ``write-protect-efuse``).

Median seconds per unit, side by side. "none" is the lot without a [security] table.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from station.flashing.simulated import SimulatedDevice  # noqa: E402
from station.production import Orchestrator, open_lot  # noqa: E402
from station.security import Kind  # noqa: E402
from tests.security.conftest import make_lot, pem  # noqa: E402

CHIPS = ("esp32c3", "esp32s3", "esp32c6")
RECIPES = {
    "none": "",
    "nvs_hmac": 'recipes = ["nvs_hmac"]\nhmac_key_id = 0\nhmac_keyfile = "hmac.key"\n',
    "flash_encryption": 'recipes = ["flash_encryption"]\n',
    "secure_boot": 'recipes = ["secure_boot"]\nsecure_boot_keys = ["sb0.pem"]\n',
    "all four": (
        'recipes = ["nvs_hmac", "flash_encryption", "secure_boot", "final_lock"]\n'
        'hmac_key_id = 0\nhmac_keyfile = "hmac.key"\nsecure_boot_keys = ["sb0.pem"]\n'
    ),
}


def station_units(lot_path: Path, chip: str, units: int, tmp: Path) -> list[tuple[float, float]]:
    """(seconds per unit, of them burning eFuses) for ``units`` devices, one after another."""
    out = []
    with open_lot(lot_path) as lot, Orchestrator(lot, on_event=lambda e: None, no_stub=True) as o:
        for i in range(units):
            with SimulatedDevice(chip=chip, efuse_file=str(tmp / f"st{i}.efuse")) as dev:
                o.add_port(dev.port)
                t0 = time.perf_counter()
                o.start(dev.port)
                assert o.wait_idle(600)
                took = time.perf_counter() - t0
                o.remove_port(dev.port)
            attempt = lot.ledger.attempts(i)[-1]
            assert attempt.result == "done", attempt
            out.append((took, attempt.timings.get("burning eFuses", 0.0)))
    return out


def commands_unit(lot_path: Path, chip: str, index: int, tmp: Path) -> float:
    """The same unit, one process per step, on a fresh simulated device."""
    from station.production.security_step import SecurityStep

    with open_lot(lot_path) as lot:
        row = lot.row(index)
        regions = list(lot.regions_for(row))  # made before the clock (mfg_gen's part)
        encrypted: set[int] = set()
        steps: list[list[str]] = []
        key_files: dict[str, Path] = {}
        if lot.security is not None:
            step = SecurityStep(lot)
            unit = f"cli-{index}"
            keys = step.provisioner.keys(unit)
            ours = step.regions(unit, "cli", regions)
            encrypted = {r.offset for r, p in zip(ours, regions, strict=True) if r.data != p.data}
            for name, k in (("xts", keys.xts), ("hmac", keys.hmac)):
                if k is not None:
                    key_files[name] = tmp / f"{unit}.{name}.bin"
                    key_files[name].write_bytes(k)
            for s in step.plan.steps:
                if s.kind is Kind.KEY:
                    if s.digest is not None:
                        f = tmp / f"{s.id}.bin"
                        f.write_bytes(s.digest)
                        src = f
                    else:
                        src = key_files["hmac" if s.purpose == "HMAC_UP" else "xts"]
                    args = ["burn-key", s.target, str(src), str(s.purpose)]
                    if not s.read_protect:
                        args.append("--no-read-protect")
                elif s.kind is Kind.EFUSE:
                    args = ["burn-efuse", *(x for n, v in s.values for x in (n, str(v)))]
                else:
                    args = ["write-protect-efuse", s.target]
                steps.append(args)
    py = [sys.executable, "-m"]
    with SimulatedDevice(chip=chip, efuse_file=str(tmp / f"cli{index}.efuse")) as dev:
        common = ["--chip", chip, "--port", dev.port, "--baud", "115200"]
        t0 = time.perf_counter()
        files: list[str] = []
        for r in regions:
            plain = tmp / f"r{r.offset:x}.bin"
            plain.write_bytes(r.data)
            src = plain
            if r.offset in encrypted:
                src = tmp / f"r{r.offset:x}.enc"
                run(
                    [*py, "espsecure", "encrypt-flash-data", "--aes-xts", "--keyfile",
                     str(key_files["xts"]), "--address", hex(r.offset), "--output", str(src),
                     str(plain)]
                )  # fmt: skip
            files += [hex(r.offset), str(src)]
        run([*py, "esptool", *common, "--no-stub", "write-flash", *files])
        run([*py, "esptool", *common, "--no-stub", "verify-flash", *files])
        for args in steps:
            run([*py, "espefuse", *common, "--do-not-confirm", *args])
        return time.perf_counter() - t0


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[2:5])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def main() -> None:
    units = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    chips = tuple(sys.argv[2:]) or CHIPS
    key = pem(rsa.generate_private_key(65537, 3072))
    print(f"{units} unit(s) per row, simulated devices, one at a time; median seconds per unit")
    print(
        f"{'chip':9s} {'recipe':17s} {'steps':>5s} {'station':>8s} {'of it eFuses':>12s} "
        f"{'commands':>9s} {'ratio':>6s}"
    )
    for chip in chips:
        for recipe, table in RECIPES.items():
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                folder = tmp / "lot"
                folder.mkdir()
                (folder / "sb0.pem").write_bytes(key)
                (folder / "hmac.key").write_bytes(os.urandom(32))
                lot_path = make_lot(
                    folder, chip=chip, security=table, sign_with=key, rows=2 * units
                )
                ours = station_units(lot_path, chip, units, tmp)
                theirs = [commands_unit(lot_path, chip, units + i, tmp) for i in range(units)]
                with open_lot(lot_path) as lot:
                    from station.production.security_step import for_lot

                    step = for_lot(lot)
                    n = len(step.plan.steps) if step is not None else 0
                a = statistics.median(t for t, _ in ours)
                burn = statistics.median(b for _, b in ours)
                b = statistics.median(theirs)
                print(
                    f"{chip:9s} {recipe:17s} {n:5d} {a:8.2f} {burn:12.2f} {b:9.2f} {b / a:5.1f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
