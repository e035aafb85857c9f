"""A test PKI for Matter: PAA, PAI, DAC and a certification declaration, made on the fly."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.37244.2.1")
PID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.37244.2.2")
DAC_UUID = "5b5a6c4e-6f0c-4b3e-9a47-2f4c4d1e8a11"
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)


def _name(cn: str, vid: int | None = None, pid: int | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if vid is not None:
        attrs.append(x509.NameAttribute(VID_OID, f"{vid:04X}"))
    if pid is not None:
        attrs.append(x509.NameAttribute(PID_OID, f"{pid:04X}"))
    return x509.Name(attrs)


def make_cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
    start: dt.datetime = START,
    end: dt.datetime = END,
    serial: int = 0x1234,
) -> x509.Certificate:
    ku = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(ku, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    return b.sign(issuer_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def fake_cd() -> bytes:
    """DER shaped like a CMS SignedData (ContentInfo), which is all the station checks."""
    oid = bytes.fromhex("06092a864886f70d010702")
    inner = bytes.fromhex("a0023000")
    body = oid + inner
    return bytes([0x30, len(body)]) + body


@dataclass
class Pki:
    folder: Path
    vid: int
    pid: int

    @property
    def paa_cert(self) -> str:
        return str(self.folder / "paa_cert.pem")

    @property
    def paa_key(self) -> str:
        return str(self.folder / "paa_key.pem")

    @property
    def pai_cert(self) -> str:
        return str(self.folder / "pai_cert.pem")

    @property
    def pai_key(self) -> str:
        return str(self.folder / "pai_key.pem")

    @property
    def dac_cert(self) -> str:
        return str(self.folder / "dac_cert.pem")

    @property
    def dac_key(self) -> str:
        return str(self.folder / "dac_key.pem")

    @property
    def cd(self) -> str:
        return str(self.folder / "cd.der")


def make_pki(folder: Path, vid: int = 0xFFF2, pid: int = 0x8001, *, pai_pid: bool = True) -> Pki:
    """PAA (no VID), PAI (VID, PID) and a DAC whose CN is a UUID, as files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paa_key = ec.generate_private_key(ec.SECP256R1())
    pai_key = ec.generate_private_key(ec.SECP256R1())
    dac_key = ec.generate_private_key(ec.SECP256R1())
    paa_name = _name("Test PAA")
    paa = make_cert(paa_name, paa_key, paa_name, paa_key, ca=True, path_length=1)
    pai_name = _name("Test PAI", vid, pid if pai_pid else None)
    pai = make_cert(pai_name, pai_key, paa_name, paa_key, ca=True, path_length=0)
    dac = make_cert(
        _name(DAC_UUID, vid, pid),
        dac_key,
        pai_name,
        pai_key,
        ca=False,
        start=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
        end=dt.datetime(2125, 1, 1, tzinfo=dt.timezone.utc),
    )
    pki = Pki(folder, vid, pid)
    Path(pki.paa_cert).write_bytes(pem(paa))
    Path(pki.paa_key).write_bytes(key_pem(paa_key))
    Path(pki.pai_cert).write_bytes(pem(pai))
    Path(pki.pai_key).write_bytes(key_pem(pai_key))
    Path(pki.dac_cert).write_bytes(pem(dac))
    Path(pki.dac_key).write_bytes(key_pem(dac_key))
    Path(pki.cd).write_bytes(fake_cd())
    return pki
