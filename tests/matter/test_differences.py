"""Where ``station matter`` differs from esp-matter-mfg-tool 1.0.29 on purpose (docs/matter.md).

Each case runs the oracle too, to show what it does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from tests.matter.conftest import station
from tests.matter.oracle import run_oracle
from tests.matter.pki import END, START, Pki, _name, key_pem, pem

# the first test of a machine makes the oracle's environment from PyPI (a minute or more)
pytestmark = pytest.mark.timeout(900)
BASE = ["-v", "0xFFF2", "-p", "0x8001"]


def test_passcode_above_the_range(oracle: Path, tmp_path: Path) -> None:
    """The tool's range check (``< 1 and > 99999998``) can never be true: it takes 123456789,
    which does not fit a manual pairing code. The station refuses it."""
    args = [*BASE, "--passcode", "123456789"]
    assert run_oracle(oracle, [*args, "--outdir", "o"], tmp_path).returncode == 0
    code, _out, err = station([*args, "--outdir", str(tmp_path / "s")])
    assert code == 2 and "--passcode: passcode 123456789 is out of range" in err


def test_certification_declaration_must_be_der(oracle: Path, tmp_path: Path) -> None:
    """The tool stores any file as the CD; the station wants a DER CMS SignedData."""
    cd = tmp_path / "cd.pem"
    cd.write_text("-----BEGIN CMS-----\nnot a CD\n-----END CMS-----\n")
    args = [*BASE, "-cd", str(cd)]
    assert run_oracle(oracle, [*args, "--outdir", "o"], tmp_path).returncode == 0
    code, _out, err = station([*args, "--outdir", str(tmp_path / "s")])
    assert code == 2 and f"{cd}:0:0: --cert-dclrn: is not DER" in err


def test_valid_from_as_its_help_writes_it(oracle: Path, pki: Pki, tmp_path: Path) -> None:
    """--help says ``YYYY-MM-DD [HH:MM:SS]`` but the tool only parses ``YYYY-MM-DDTHH:MM:SS``."""
    args = [
        *BASE,
        "--pai",
        "-c",
        pki.pai_cert,
        "-k",
        pki.pai_key,
        "-vf",
        "2025-01-01",
        "-lt",
        "3650",
    ]
    assert run_oracle(oracle, [*args, "--outdir", "o"], tmp_path).returncode != 0
    code, _out, err = station([*args, "--outdir", str(tmp_path / "s")])
    assert code == 0, err
    [folder] = [p for p in (tmp_path / "s" / "fff2_8001").iterdir() if p.is_dir()]
    dac = x509.load_der_x509_certificate((folder / "internal" / "DAC_cert.der").read_bytes())
    assert dac.not_valid_before_utc.isoformat() == "2025-01-01T00:00:00+00:00"


def test_existing_output_is_not_overwritten(oracle: Path, pki: Pki, tmp_path: Path) -> None:
    """A given DAC names the device folder: the tool overwrites it on a second run."""
    args = [
        *BASE,
        "--pai",
        "-c",
        pki.pai_cert,
        "--dac-cert",
        pki.dac_cert,
        "--dac-key",
        pki.dac_key,
    ]
    for _ in range(2):
        assert run_oracle(oracle, [*args, "--outdir", "o"], tmp_path).returncode == 0
    assert station([*args, "--outdir", str(tmp_path / "s")])[0] == 0
    code, _out, err = station([*args, "--outdir", str(tmp_path / "s")])
    assert code == 2 and "nothing is overwritten" in err


def test_authority_key_id_is_the_pais_key_id(
    oracle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tool computes the DAC's authority key ID from the PAI's key (SHA-1 method); a PAI
    whose subject key ID was made otherwise gets DACs that do not name it. The station copies
    the PAI's subject key ID, as RFC 5280 wants."""
    paa_key, pai_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ski = bytes(range(20))
    pai = (
        x509.CertificateBuilder()
        .subject_name(_name("PAI", 0xFFF2, 0x8001))
        .issuer_name(_name("PAA"))
        .public_key(pai_key.public_key())
        .serial_number(7)
        .not_valid_before(START)
        .not_valid_after(END)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(paa_key.public_key()), critical=False
        )
        .sign(paa_key, hashes.SHA256())
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pai.pem").write_bytes(pem(pai))
    (tmp_path / "pai_key.pem").write_bytes(key_pem(pai_key))
    args = [*BASE, "--pai", "-c", "pai.pem", "-k", "pai_key.pem", "-lt", "365"]
    assert run_oracle(oracle, [*args, "--outdir", "o"], tmp_path).returncode == 0
    code, _out, err = station([*args, "--outdir", str(tmp_path / "s")])
    assert code == 0, err

    def aki(top: Path) -> bytes | None:
        [folder] = [p for p in (top / "fff2_8001").iterdir() if p.is_dir() and p.name != "staging"]
        dac = x509.load_der_x509_certificate((folder / "internal" / "DAC_cert.der").read_bytes())
        value = dac.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
        return value.key_identifier  # type: ignore[no-any-return, attr-defined]

    assert aki(tmp_path / "o") != ski
    assert aki(tmp_path / "s") == ski


def test_paa_mode_dacs_share_the_pais_validity(pki: Pki, tmp_path: Path) -> None:
    """With --paa the tool stamps the PAI and then each DAC with its own "now", so a DAC can end
    up to a second after its PAI (seen as a flaky chain check of the tool's own output; its
    validate_certificate_chain would refuse such a DAC). The station gives them one window."""
    args = [*BASE, "--paa", "-c", pki.paa_cert, "-k", pki.paa_key, "-lt", "365", "-n", "3"]
    code, _out, err = station([*args, "--outdir", str(tmp_path)])
    assert code == 0, err
    folders = [p for p in (tmp_path / "fff2_8001").iterdir() if p.is_dir() and p.name != "staging"]
    pai = x509.load_der_x509_certificate((folders[0] / "internal" / "PAI_cert.der").read_bytes())
    for folder in folders:
        dac = x509.load_der_x509_certificate((folder / "internal" / "DAC_cert.der").read_bytes())
        assert dac.not_valid_before_utc == pai.not_valid_before_utc
        assert dac.not_valid_after_utc == pai.not_valid_after_utc


def test_dac_in_secure_cert_needs_a_dac(oracle: Path, tmp_path: Path) -> None:
    """Without --pai/--paa the tool takes --dac-in-secure-cert and silently makes neither a DAC
    nor an esp_secure_cert partition; the station says what is missing."""
    args = [*BASE, "--dac-in-secure-cert"]
    assert run_oracle(oracle, [*args, "--outdir", "o"], tmp_path).returncode == 0
    assert not list((tmp_path / "o").rglob("*_esp_secure_cert.bin"))
    code, _out, err = station([*args, "--outdir", str(tmp_path / "s")])
    assert code == 2 and "--dac-in-secure-cert: needs a DAC" in err


@pytest.mark.parametrize("flag", [["-ds", "--target", "esp32h2", "--efuse-key-id", "1"]])
def test_ds_peripheral_is_not_done_here(flag: list[str], tmp_path: Path) -> None:
    """The tool can burn the DAC key into an eFuse (DS peripheral); the station leaves eFuses to
    ``station security`` and refuses the option rather than write a partition without the key."""
    code, _out, err = station([*BASE, *flag, "--outdir", str(tmp_path)])
    assert code == 2 and "--ds-peripheral:" in err
