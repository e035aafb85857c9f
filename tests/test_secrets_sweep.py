"""No secret value leaves the places it must be: a lot with known secret values (a device key,
a Wi-Fi password, a PIN, a PEM private key file per device) goes through ``generate``, a bad
copy of it through the error path, ``run`` on simulated devices, ``report`` (text, JSON, CSV)
and ``inspect``; every byte printed, and every file the station wrote that is not a device's
own output (the ledger, its journal and backups, logs, exports), is searched for every secret."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.flashing import SimulatedDevice, start_simulated_devices

pytestmark = pytest.mark.slow
ROWS = 2


def station(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "station", *args], cwd=cwd, capture_output=True, timeout=300, env=env
    )


@pytest.fixture
def devices() -> Iterator[list[SimulatedDevice]]:
    devs = start_simulated_devices(ROWS)
    try:
        yield devs
    finally:
        for d in devs:
            d.stop()


def make_lot(folder: Path) -> tuple[list[bytes], set[Path]]:
    """The lot's files and the secrets in it (as they could appear: text, and raw bytes of the
    hex key); returns the secrets and the input files (which hold them by design)."""
    folder.mkdir()
    (folder / "config.csv").write_text(
        "factory,namespace,\nserial_no,data,string\ndevice_key,data,hex2bin\n"
        "wifi_pass,data,string\npin,data,u32\npriv_key,file,binary\nhw_rev,data,u32\n",
        encoding="utf-8",
    )
    secrets: list[bytes] = []
    rows = ["serial_no,device_key,wifi_pass,pin,priv_key,hw_rev"]
    inputs = {folder / "config.csv", folder / "values.csv"}
    for i in range(ROWS):
        key = os.urandom(16).hex()
        password = f"Wifi-Pass-{os.urandom(6).hex()}"
        pin = str(73914826 + i * 1111)
        body = f"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC{os.urandom(12).hex()}"
        pem = folder / f"key{i + 1}.pem"
        pem.write_text(
            f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n", encoding="utf-8"
        )
        inputs.add(pem)
        rows.append(f"SN-SWEEP-{i + 1},{key},{password},{pin},{pem.name},3")
        secrets += [
            key.encode(),
            bytes.fromhex(key),
            password.encode(),
            pin.encode(),
            body.encode(),
        ]
    (folder / "values.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "partitions.csv").write_text(
        "nvs, data, nvs, 0x9000, 0x4000,\nfctry, data, nvs, 0xd000, 0x3000,\n"
        "factory, app, factory, 0x10000, 1M,\n",
        encoding="utf-8",
    )
    (folder / "lot.toml").write_text(
        'name = "SWEEP"\nconfig = "config.csv"\nvalues = "values.csv"\n'
        'partition_table = "partitions.csv"\npartition = "fctry"\nfileid = "serial_no"\n'
        'scan_column = "serial_no"\n',
        encoding="utf-8",
    )
    inputs.add(folder / "lot.toml")
    inputs.add(folder / "partitions.csv")
    return secrets, inputs


def leaks(secrets: list[bytes], data: bytes) -> list[bytes]:
    return [s for s in secrets if s in data]


def test_no_secret_in_any_output(tmp_path: Path, devices: list[SimulatedDevice]) -> None:
    lot = tmp_path / "lot"
    secrets, inputs = make_lot(lot)
    outputs: dict[str, bytes] = {}

    def keep(name: str, done: subprocess.CompletedProcess[bytes], code: int) -> None:
        assert done.returncode == code, (name, done.returncode, done.stderr.decode())
        assert b"Traceback" not in done.stderr, done.stderr.decode()
        outputs[f"{name} stdout"] = done.stdout
        outputs[f"{name} stderr"] = done.stderr

    # generate, encrypted: the images and intermediate CSVs hold the values (that is their job)
    keep(
        "generate",
        station(
            lot,
            "generate",
            "config.csv",
            "values.csv",
            "dev",
            "0x3000",
            "--outdir",
            "../gen",
            "--fileid",
            "serial_no",
            "--keygen",
        ),
        0,
    )
    image = tmp_path / "gen" / "bin" / "dev-SN-SWEEP-1.bin"
    keep("inspect (no key)", station(lot, "inspect", str(image)), 1)
    keep("inspect --json (no key)", station(lot, "inspect", str(image), "--json"), 1)

    # the error path: the same lot with a typo in a PIN and the key file read as a number
    bad = tmp_path / "bad"
    bad.mkdir()
    text = (lot / "values.csv").read_text(encoding="utf-8")
    (bad / "values.csv").write_text(text.replace("73914826", "7391a826"), encoding="utf-8")
    (bad / "config.csv").write_text(
        (lot / "config.csv").read_text(encoding="utf-8").replace("file,binary", "file,u32"),
        encoding="utf-8",
    )
    for pem in lot.glob("*.pem"):
        (bad / pem.name).write_bytes(pem.read_bytes())
    secrets.append(b"7391a826")
    done = station(bad, "generate", "config.csv", "values.csv", "dev", "0x3000", "--outdir", "o")
    keep("generate (bad lot)", done, 2)
    assert b"pin: not a whole number, 8 characters" in done.stderr
    assert b"priv_key: file content: not a whole number" in done.stderr

    # production on simulated devices, then every report
    ports = [a for d in devices for a in ("--port", d.port)]
    keep("run", station(lot, "run", "lot.toml", *ports, "--no-stub", "--count", str(ROWS)), 0)
    assert outputs["run stdout"].count(b"PASS ") == ROWS
    keep("report", station(lot, "report", "lot.toml"), 0)
    keep("report --json", station(lot, "report", "lot.toml", "--json"), 0)
    keep("report --csv", station(lot, "report", "lot.toml", "--csv", "../report.csv"), 0)
    outputs["report.csv"] = (tmp_path / "report.csv").read_bytes()

    # every file the station wrote beside the lot: ledger, journal, backups, logs, key files
    written = [p for p in lot.rglob("*") if p.is_file() and p not in inputs]
    assert any(p.name.endswith(".station.db") for p in written)
    for p in written:
        outputs[str(p.relative_to(tmp_path))] = p.read_bytes()
    # generate's key files hold keys, never a value of the lot
    for p in (tmp_path / "gen" / "keys").iterdir():
        outputs[str(p.relative_to(tmp_path))] = p.read_bytes()

    found = {name: leaks(secrets, data) for name, data in outputs.items()}
    assert {name: hits for name, hits in found.items() if hits} == {}
    assert len(outputs) >= 14
