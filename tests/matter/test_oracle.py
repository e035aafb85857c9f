"""``station matter`` against esp-matter-mfg-tool 1.0.29 (the oracle, run as a subprocess).

Fixed inputs: the partition, esp_secure_cert and onboarding files are byte-identical. Generated
inputs: every device of both tools passes the checks of the tool's own tests.
"""

from __future__ import annotations

import base64
import csv
from pathlib import Path

import pytest

from station.matter import certs
from station.matter.secure_cert import RANDOM1, RANDOM2, parse_secure_cert
from station.matter.spake2p import generate_verifier
from tests.matter.checks import check_device, device_folders, nvs_values
from tests.matter.conftest import station
from tests.matter.oracle import run_oracle
from tests.matter.pki import DAC_UUID, Pki

# the first test of a machine makes the oracle's environment from PyPI (a minute or more)
pytestmark = pytest.mark.timeout(900)
SALT = bytes(range(1, 33))


def fixed_args(pki: Pki, iterations: int = 10000, passcode: int = 20202021) -> list[str]:
    verifier = generate_verifier(passcode, SALT, iterations)
    return [
        "-v", "0xFFF2", "-p", "0x8001", "--pai", "-c", "pki/pai_cert.pem",
        "--dac-cert", "pki/dac_cert.pem", "--dac-key", "pki/dac_key.pem", "-cd", "pki/cd.der",
        "--passcode", str(passcode), "--discriminator", "3840",
        "--salt", base64.b64encode(SALT).decode(),
        "--verifier", base64.b64encode(verifier).decode(),
        "--iteration-count", str(iterations),
        "--mfg-date", "2024-05-06", "--serial-num", "SN-0001",
        "--enable-rotating-device-id", "--rd-id-uid", "d2f351f57bb9387445a5f92a601d1c14",
    ]  # fmt: skip


@pytest.fixture
def work(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the PKI under pki/, the current folder for both tools."""
    (tmp_path / "pki").symlink_to(pki.folder, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _both(oracle: Path, work: Path, args: list[str]) -> tuple[Path, Path]:
    result = run_oracle(oracle, [*args, "--outdir", "oracle"], work)
    assert result.returncode == 0, result.stderr + result.stdout
    code, _out, err = station([*args, "--outdir", "station"])
    assert code == 0, err
    return work / "oracle", work / "station"


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    # file paths differ (each tool's own output folder): compare the file rows without the path
    return [r[:3] if len(r) == 4 and r[1] == "file" else r for r in rows]


EXTRA_CSV = (
    "my-u8,data,u8\nmy-str,data,string\nother,namespace,\nblob,data,hex2bin\nnote,data,string\n"
)
EXTRA_MCSV = 'my-u8,my-str,blob,note\n7,"hello, world",00ff10,"two\nlines"\n'

VARIANTS = {
    "given DAC": [],
    "DAC in secure cert": ["--dac-in-secure-cert"],
    "names and instance info": [
        "--vendor-name", "Test Vendor,LLC", "--product-name", "Bulb", "--hw-ver", "2",
        "--hw-ver-str", "rev B", "--product-finish", "satin", "--product-color", "gold",
        "--part-number", "PN-1", "--product-label", "Lamp", "--product-url", "https://e.example",
        "--calendar-types", "Gregorian", "Hebrew", "--locales", "en-US", "de-DE",
        "--fixed-labels", "0/orientation/up", "1/room/kitchen",
        "--supported-modes", "0/low/1", "1/high/1",
    ],
    "user-intent flow, BLE and on-network": ["-cf", "1", "-dm", "6"],
    "custom flow, Thread": ["-cf", "2", "-dm", "32"],
    "bigger partition": ["-s", "0x8000"],
    "RainMaker host": ["--mqtt-host", "mqtt.example.com"],
    "extra keys from --csv/--mcsv": ["--csv", "extra.csv", "--mcsv", "extra_values.csv"],
}  # fmt: skip


@pytest.mark.parametrize("extra", VARIANTS.values(), ids=VARIANTS.keys())
def test_byte_identical_for_fixed_inputs(
    oracle: Path, work: Path, pki: Pki, extra: list[str]
) -> None:
    (work / "extra.csv").write_text(EXTRA_CSV)
    (work / "extra_values.csv").write_text(EXTRA_MCSV)
    args = fixed_args(pki)
    theirs, ours = _both(oracle, work, [*args, *extra])
    t, o = theirs / "fff2_8001" / DAC_UUID, ours / "fff2_8001" / DAC_UUID
    for name in (f"{DAC_UUID}-partition.bin", f"{DAC_UUID}-onb_codes.csv"):
        assert (o / name).read_bytes() == (t / name).read_bytes(), name
    for name in (
        "DAC_cert.der",
        "DAC_key.der",
        "PAI_cert.der",
        "DAC_private_key.bin",
        "DAC_public_key.bin",
    ):
        assert (o / "internal" / name).read_bytes() == (t / "internal" / name).read_bytes(), name
    assert _csv_rows(o / "internal" / "partition.csv") == _csv_rows(
        t / "internal" / "partition.csv"
    )
    if "--dac-in-secure-cert" in extra:
        name = f"{DAC_UUID}_esp_secure_cert.bin"
        assert (o / name).read_bytes() == (t / name).read_bytes()


def test_byte_identical_with_other_iteration_count(oracle: Path, work: Path, pki: Pki) -> None:
    theirs, ours = _both(oracle, work, fixed_args(pki, iterations=1000, passcode=34567890))
    name = f"fff2_8001/{DAC_UUID}/{DAC_UUID}-partition.bin"
    assert (ours / name).read_bytes() == (theirs / name).read_bytes()


def test_all_in_secure_cert_same_but_the_random_blocks(oracle: Path, work: Path, pki: Pki) -> None:
    """With commissionable data in esp_secure_cert the tool adds two blocks of 32 random bytes."""
    args = [
        *fixed_args(pki),
        "--dac-in-secure-cert",
        "--commissionable-data-in-secure-cert",
        "--rd-id-uid-in-secure-cert",
    ]
    theirs, ours = _both(oracle, work, args)
    name = f"fff2_8001/{DAC_UUID}/{DAC_UUID}_esp_secure_cert.bin"
    t = parse_secure_cert((theirs / name).read_bytes())
    o = parse_secure_cert((ours / name).read_bytes())
    assert [e for e in o if e[1] not in (RANDOM1, RANDOM2)] == [
        e for e in t if e[1] not in (RANDOM1, RANDOM2)
    ]
    assert [(e[0], e[1], len(e[2])) for e in o] == [(e[0], e[1], len(e[2])) for e in t]
    part = f"fff2_8001/{DAC_UUID}/{DAC_UUID}-partition.bin"
    assert (ours / part).read_bytes() == (theirs / part).read_bytes()


def test_without_attestation_byte_identical(oracle: Path, work: Path, pki: Pki) -> None:
    verifier = generate_verifier(20202021, SALT, 10000)
    args = [
        "-v", "0xFFF1", "-p", "0x8000", "--passcode", "20202021", "--discriminator", "0xF00",
        "--salt", base64.b64encode(SALT).decode(),
        "--verifier", base64.b64encode(verifier).decode(),
        "--serial-num", "X1", "-cd", "pki/cd.der",
    ]  # fmt: skip
    theirs, ours = _both(oracle, work, args)
    [t] = device_folders(theirs / "fff1_8000")
    [o] = device_folders(ours / "fff1_8000")
    assert (o / f"{o.name}-partition.bin").read_bytes() == (
        t / f"{t.name}-partition.bin"
    ).read_bytes()


@pytest.mark.parametrize(
    "extra",
    [
        ["--pai", "-c", "pki/pai_cert.pem", "-k", "pki/pai_key.pem", "-n", "3"],
        [
            "--pai",
            "-c",
            "pki/pai_cert.pem",
            "-k",
            "pki/pai_key.pem",
            "--dac-in-secure-cert",
            "-n",
            "2",
        ],
        ["--paa", "-c", "pki/paa_cert.pem", "-k", "pki/paa_key.pem", "-n", "2", "-cn", "My bulb"],
        [
            "--pai",
            "-c",
            "pki/pai_cert.pem",
            "-k",
            "pki/pai_key.pem",
            "--enable-rotating-device-id",
            "-cf",
            "1",
        ],
    ],
    ids=["pai", "pai-secure-cert", "paa", "rotating-id"],
)
def test_generated_devices_pass_the_tools_checks(
    oracle: Path, work: Path, pki: Pki, extra: list[str]
) -> None:
    args = ["-v", "0xFFF2", "-p", "0x8001", "-cd", "pki/cd.der", "-lt", "3650", *extra]
    theirs, ours = _both(oracle, work, args)
    paa = certs.load_certificate(Path(pki.paa_cert).read_bytes())
    count = int(extra[extra.index("-n") + 1]) if "-n" in extra else 1
    for top in (theirs, ours):
        folders = device_folders(top / "fff2_8001")
        assert len(folders) == count
        outlive = top == theirs and "--paa" in extra  # the tool's bug, test_differences.py
        for folder in folders:
            check_device(
                folder, 0xFFF2, 0x8001, paa, dac_may_outlive_pai=outlive,
                cert_dclrn=Path(pki.cd).read_bytes(),
            )  # fmt: skip
        values = [nvs_values(f) for f in folders]
        assert len({v["salt"] for v in values}) == count  # a salt per device
        assert len({v["serial-num"] for v in values}) == count
