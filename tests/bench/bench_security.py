"""Security recipes benchmark (run by hand): ``python tests/bench/bench_security.py [UNITS]``.

Prints figures, asserts nothing about time. For each chip and recipe, on espefuse's virtual
eFuses (one file per unit):

* **station**: the per-unit time of the station's Provisioner in this process (espefuse and
  espsecure as libraries): read the eFuses, classify, escrow the key, encrypt the regions the
  recipe encrypts, burn every step, lock;
* **commands**: the same steps as separate ``espefuse``/``espsecure`` commands, one process per
  step, as ESP-IDF's host-based workflow guide runs them (``burn-key``, ``burn-efuse``,
  ``write-protect-efuse``, ``encrypt-flash-data``);

side by side, median seconds per unit.
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

from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from station.production.security_commands import load  # noqa: E402
from station.security import JsonlJournal, Kind, Provisioner  # noqa: E402
from tests.security.conftest import make_lot, pem, virtual_esp  # noqa: E402

CHIPS = ("esp32c3", "esp32s3", "esp32c6")
RECIPES = {
    "nvs_hmac": 'recipes = ["nvs_hmac"]\nhmac_key_id = 0\nhmac_keyfile = "hmac.key"\n',
    "flash_encryption": 'recipes = ["flash_encryption"]\n',
    "secure_boot": 'recipes = ["secure_boot"]\nsecure_boot_keys = ["sb0.pem"]\n',
    "all four": (
        'recipes = ["nvs_hmac", "flash_encryption", "secure_boot", "final_lock"]\n'
        'hmac_key_id = 0\nhmac_keyfile = "hmac.key"\nsecure_boot_keys = ["sb0.pem"]\n'
    ),
}
APP_SIZE = 0x100000  # a 1 MiB app: host encryption is part of the recipe's cost


def regions_of(folder: Path) -> list[tuple[int, bytes, str]]:
    build = folder / "build"
    return [
        (0x0, (build / "bootloader.bin").read_bytes(), "bootloader"),
        (0x8000, (build / "partition-table.bin").read_bytes(), "partition table"),
        (0x10000, os.urandom(APP_SIZE), "app"),
    ]


def station_unit(prov: Provisioner, chip: str, unit: str, folder: Path, tmp: Path) -> float:
    from station.flashing.device import WriteRegion
    from station.partitions import load_table

    table = load_table(folder / "partitions.csv")
    plain = [WriteRegion(o, d, n, False) for o, d, n in regions_of(folder)]
    t0 = time.perf_counter()
    keys = prov.keys(unit)
    prov.encrypt(keys, plain, table.partitions, bootloader=0x0, table=0x8000)
    esp = virtual_esp(chip, tmp / f"{unit}.efuse")
    prov.burn(esp, unit, f"dev-{unit}")
    prov.lock(esp, unit, f"dev-{unit}")
    return time.perf_counter() - t0


def commands_unit(prov: Provisioner, chip: str, unit: str, folder: Path, tmp: Path) -> float:
    """The same steps as one espefuse/espsecure process each."""
    efuse = tmp / f"cli-{unit}.efuse"
    key_files: dict[str, Path] = {}
    keys = prov.keys(f"cli-{unit}")  # made before the clock, as a script would have them
    if keys.xts is not None:
        key_files["xts"] = tmp / f"{unit}.xts.bin"
        key_files["xts"].write_bytes(keys.xts)
    if keys.hmac is not None:
        key_files["hmac"] = tmp / f"{unit}.hmac.bin"
        key_files["hmac"].write_bytes(keys.hmac)
    steps = []
    for s in prov.plan.steps:
        if s.kind is Kind.KEY:
            if s.digest is not None:
                f = tmp / f"{s.id}.bin"
                f.write_bytes(s.digest)
                args = ["burn-key", s.target, str(f), str(s.purpose)]
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
    efuse_cmd = [
        sys.executable,
        "-m",
        "espefuse",
        "--virt",
        "--chip",
        chip,
        "--path-efuse-file",
        str(efuse),
        "--do-not-confirm",
    ]
    t0 = time.perf_counter()
    if keys.xts is not None:
        for offset, data, name in regions_of(folder):
            src = tmp / f"{name}.bin"
            src.write_bytes(data + b"\xff" * (-len(data) % 16))
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "espsecure",
                    "encrypt-flash-data",
                    "--aes-xts",
                    "--keyfile",
                    str(key_files["xts"]),
                    "--address",
                    hex(offset),
                    "--output",
                    str(tmp / f"{name}.enc"),
                    str(src),
                ],
                check=True,
                capture_output=True,
            )
    for args in steps:
        subprocess.run([*efuse_cmd, *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    units = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    rsa_pem = pem(rsa.generate_private_key(65537, 3072))
    ecdsa_pem = pem(ec.generate_private_key(ec.SECP256R1()))

    print(f"{units} unit(s) per row; median seconds per unit; app {APP_SIZE // 1024} KiB")
    print(
        f"{'chip':9s} {'recipe':17s} {'steps':>5s} {'station':>8s} {'commands':>9s} {'ratio':>6s}"
    )
    for chip in CHIPS:
        key = rsa_pem if chip != "esp32c61" else ecdsa_pem
        for recipe, table in RECIPES.items():
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                folder = tmp / "lot"
                folder.mkdir()
                (folder / "sb0.pem").write_bytes(key)
                (folder / "hmac.key").write_bytes(os.urandom(32))
                lot = make_lot(folder, chip=chip, security=table, sign_with=key)
                settings = load(str(lot))[0].settings
                assert settings is not None
                prov = Provisioner(settings, JsonlJournal(tmp / "journal.jsonl"))
                ours = [station_unit(prov, chip, f"U{i}", folder, tmp) for i in range(units)]
                theirs = [commands_unit(prov, chip, f"U{i}", folder, tmp) for i in range(units)]
                a, b = statistics.median(ours), statistics.median(theirs)
                print(
                    f"{chip:9s} {recipe:17s} {len(prov.plan.steps):5d} {a:8.2f} {b:9.2f} "
                    f"{b / a:5.1f}x"
                )


if __name__ == "__main__":
    main()
