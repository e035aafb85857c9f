"""More of esp-matter-mfg-tool's integration cases (test_data/test_integration_inputs.json),
with this test PKI: the numbers in the names are the tool's test numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from station.matter import certs
from tests.matter.checks import check_device, device_folders
from tests.matter.conftest import station
from tests.matter.oracle import run_oracle
from tests.matter.pki import Pki, _name, key_pem, make_cert, pem

pytestmark = pytest.mark.timeout(900)  # the oracle's environment may be made by this module


def _paa(pki: Pki) -> object:
    return certs.load_certificate(Path(pki.paa_cert).read_bytes())


def test_02_short_vid_pid_with_a_made_pai(oracle: Path, pki: Pki, tmp_path: Path) -> None:
    args = [
        "-v",
        "0x4d2",
        "-p",
        "0xb",
        "--paa",
        "-c",
        pki.paa_cert,
        "-k",
        pki.paa_key,
        "-lt",
        "365",
    ]
    assert run_oracle(oracle, [*args, "--outdir", "o"], tmp_path).returncode == 0
    code, _out, err = station([*args, "--outdir", str(tmp_path / "s")])
    assert code == 0, err
    for top in (tmp_path / "o", tmp_path / "s"):
        [folder] = device_folders(top / "4d2_b")  # the tool's folder name: hex without zeros
        dac = certs.load_certificate((folder / "internal" / "DAC_cert.der").read_bytes())
        assert (
            certs.vendor_id_of(dac.subject) == "04D2" and certs.product_id_of(dac.subject) == "000B"
        )
    [ours] = device_folders(tmp_path / "s" / "4d2_b")
    check_device(ours, 0x4D2, 0xB, _paa(pki))  # type: ignore[arg-type]


def test_10_no_bin(pki: Pki, tmp_path: Path) -> None:
    code, _out, err = station(
        ["-v", "0xFFF2", "-p", "0x8001", "--pai", "-c", pki.pai_cert, "-k", pki.pai_key,
         "-lt", "365", "--no-bin", "--outdir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, err
    [folder] = device_folders(tmp_path / "fff2_8001")
    assert not (folder / f"{folder.name}-partition.bin").exists()
    assert (folder / f"{folder.name}-onb_codes.csv").exists()
    assert (folder / "internal" / "partition.csv").exists()


def test_12_given_dac_without_a_uuid_common_name(pki: Pki, tmp_path: Path) -> None:
    pai_key = certs.load_private_key(Path(pki.pai_key).read_bytes())
    pai = certs.load_certificate(Path(pki.pai_cert).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    dac = make_cert(
        _name("Bulb 7", 0xFFF2, 0x8001), key, pai.subject, pai_key, ca=False, start=start,
        end=start + dt.timedelta(days=3650),
    )  # fmt: skip
    (tmp_path / "dac.pem").write_bytes(pem(dac))
    (tmp_path / "dac_key.pem").write_bytes(key_pem(key))
    code, _out, err = station(
        ["-v", "0xFFF2", "-p", "0x8001", "--pai", "-c", pki.pai_cert, "--dac-cert",
         str(tmp_path / "dac.pem"), "--dac-key", str(tmp_path / "dac_key.pem"),
         "--outdir", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0, err
    [folder] = device_folders(tmp_path / "out" / "fff2_8001")
    assert len(folder.name) == 36  # a fresh UUID names the folder
    assert (folder / "internal" / "DAC_cert.der").read_bytes() == certs.der(dac)


def test_26_port_with_one_device(pki: Pki, tmp_path: Path) -> None:
    code, _out, err = station(
        ["-v", "0xFFF2", "-p", "0x8001", "--port", "/dev/ttyUSB0", "--outdir", str(tmp_path)]
    )
    assert code == 0, err


def test_36_no_secure_cert_bin(pki: Pki, tmp_path: Path) -> None:
    code, _out, err = station(
        ["-v", "0xFFF2", "-p", "0x8001", "--pai", "-c", pki.pai_cert, "-k", pki.pai_key,
         "-lt", "365", "--dac-in-secure-cert", "--no-secure-cert-bin", "--outdir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, err
    [folder] = device_folders(tmp_path / "fff2_8001")
    assert not list(folder.glob("*_esp_secure_cert.bin"))
