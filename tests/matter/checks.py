"""What esp-matter-mfg-tool's own tests check of a device's output folder, as one function.

Used on the station's output and, to prove the checks themselves, on the oracle's.
"""

from __future__ import annotations

import base64
import csv
from pathlib import Path

from cryptography import x509

from station.matter import certs
from station.matter.payload import parse_manual_code, parse_qr_code
from station.matter.secure_cert import CA_CERT, DEV_CERT, PRIV_KEY, parse_secure_cert
from station.matter.spake2p import verifier_matches
from station.nvs import decode_image


def device_folders(top: Path) -> list[Path]:
    return sorted(p for p in top.iterdir() if p.is_dir() and p.name != "staging")


def nvs_values(folder: Path) -> dict[str, object]:
    image = decode_image((folder / f"{folder.name}-partition.bin").read_bytes())
    assert not image.errors, image.errors
    return dict(image.as_dict()["chip-factory"])


def onboarding(folder: Path) -> dict[str, str]:
    with open(folder / f"{folder.name}-onb_codes.csv", newline="") as f:
        return next(csv.DictReader(f))


def check_device(
    folder: Path,
    vid: int,
    pid: int,
    paa: x509.Certificate,
    *,
    dac_may_outlive_pai: bool = False,
    **expect: object,
) -> None:
    """DAC chains to PAI and PAA, the key is the DAC's, the verifier verifies with the passcode,
    the QR and manual codes decode back, and every expected value is in the partition."""
    values = nvs_values(folder)
    assert values["vendor-id"] == vid and values["product-id"] == pid
    if "dac-cert" in values:
        dac_der, key_raw = values["dac-cert"], values["dac-key"]
        pai_der, pub = values["pai-cert"], values["dac-pub-key"]
    else:  # --dac-in-secure-cert
        entries = {
            t: d
            for t, s, d in parse_secure_cert(
                (folder / f"{folder.name}_esp_secure_cert.bin").read_bytes()
            )
            if s == 0 and t < 3
        }
        dac_der, pai_der = entries[DEV_CERT], entries[CA_CERT]
        key = certs.load_private_key(entries[PRIV_KEY])
        key_raw, pub = certs.raw_private_key(key), certs.raw_public_key(key)
    assert isinstance(dac_der, bytes) and isinstance(pai_der, bytes)
    dac, pai = certs.load_certificate(dac_der), certs.load_certificate(pai_der)
    assert certs.dac_problems(dac) == []
    assert certs.pai_problems(pai) == []
    found = certs.chain_problems(dac, pai, "DAC")
    if dac_may_outlive_pai:  # the tool's --paa: see test_differences.py
        found = [f for f in found if "is outside the issuer's" not in f]
    assert found == []
    assert certs.chain_problems(pai, paa, "PAI") == []
    assert certs.vid_pid_problems(dac, vid, pid) == []
    assert certs.common_name_of(dac.subject) == folder.name
    assert pub == certs.raw_public_key(dac.public_key())
    assert isinstance(key_raw, bytes) and len(key_raw) == 32
    from cryptography.hazmat.primitives.asymmetric import ec

    assert (
        ec.derive_private_key(int.from_bytes(key_raw, "big"), ec.SECP256R1()).public_key()
        == dac.public_key()
    )
    codes = onboarding(folder)
    passcode, disc = int(codes["passcode"]), int(codes["discriminator"])
    if "verifier" in values:
        verifier = base64.b64decode(str(values["verifier"]))
        salt = base64.b64decode(str(values["salt"]))
        assert verifier_matches(verifier, passcode, salt, int(str(values["iteration-count"])))
        assert values["discriminator"] == disc
    qr = parse_qr_code(codes["qrcode"])
    assert (qr.vendor_id, qr.product_id, qr.discriminator, qr.passcode) == (
        vid,
        pid,
        disc,
        passcode,
    )
    manual = parse_manual_code(codes["manualcode"])
    assert manual.passcode == passcode and manual.short_discriminator == disc >> 8
    for key_name, value in expect.items():
        assert values[key_name.replace("_", "-")] == value, key_name
