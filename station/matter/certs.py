"""Device attestation certificates: load, check and make PAI/DAC as Matter wants them.

The checks are those esp-matter-mfg-tool makes (Matter core spec 6.2.2: version 3,
ecdsa-with-SHA256, P-256, the VID/PID DN attributes, basic constraints and key usage, key
identifiers) and return every finding as text, so the caller can report them all with a location.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

VENDOR_ID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.37244.2.1")
PRODUCT_ID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.37244.2.2")
DEFAULT_LIFETIME_DAYS = 36500  # the tool's default: "no well-defined expiration"
CMS_SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")  # 1.2.840.113549.1.7.2, DER


def load_certificate(data: bytes) -> x509.Certificate:
    """A PEM or DER certificate; ValueError if it is neither."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_private_key(data: bytes, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """A PEM or DER EC private key; ValueError/TypeError if it is not one."""
    if b"-----BEGIN" in data:
        key = serialization.load_pem_private_key(data, password)
    else:
        key = serialization.load_der_private_key(data, password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an elliptic-curve private key")
    return key


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def raw_private_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The 32-byte private scalar, as the tool stores ``dac-key``."""
    return key.private_numbers().private_value.to_bytes(32, "big")


def raw_public_key(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The 65-byte uncompressed public point, as the tool stores ``dac-pub-key``."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def vendor_id_of(name: x509.Name) -> str | None:
    return _attr(name, VENDOR_ID_OID)


def product_id_of(name: x509.Name) -> str | None:
    return _attr(name, PRODUCT_ID_OID)


def common_name_of(name: x509.Name) -> str | None:
    return _attr(name, NameOID.COMMON_NAME)


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def _common(cert: x509.Certificate, what: str) -> list[str]:
    found = []
    if cert.version != x509.Version.v3:
        found.append(f"{what} certificate must be X.509 version 3")
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        found.append(f"{what} certificate must be signed with ecdsa-with-SHA256")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        found.append(f"{what} certificate's key must be on P-256 (prime256v1)")
    return found


def _constraints(
    cert: x509.Certificate, what: str, *, ca: bool, path_length: Iterable[int | None]
) -> list[str]:
    found = []
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if bc is None:
        found.append(f"{what} has no basic constraints extension")
    else:
        if not bc.critical:
            found.append(f"{what} basic constraints must be critical")
        if bc.value.ca != ca:
            found.append(f"{what} must {'' if ca else 'not '}be a CA certificate")
        elif ca and bc.value.path_length not in path_length:
            found.append(f"{what} path length must be {next(iter(path_length))}")
    ku = _ext(cert, ExtensionOID.KEY_USAGE)
    if ku is None:
        found.append(f"{what} has no key usage extension")
    else:
        u = ku.value
        if not ku.critical:
            found.append(f"{what} key usage must be critical")
        if ca and not (u.key_cert_sign and u.crl_sign):
            found.append(f"{what} key usage must allow keyCertSign and cRLSign")
        if not ca and not u.digital_signature:
            found.append(f"{what} key usage must allow digitalSignature")
        other = u.content_commitment or u.key_encipherment or u.data_encipherment
        other = other or u.key_agreement or (not ca and (u.key_cert_sign or u.crl_sign))
        if other:
            found.append(f"{what} key usage allows more than Matter permits")
    if _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER) is None:
        found.append(f"{what} has no subject key identifier")
    return found


def paa_problems(cert: x509.Certificate) -> list[str]:
    found = _common(cert, "PAA")
    if cert.subject != cert.issuer:
        found.append("PAA must be self-signed")
    if product_id_of(cert.subject) is not None:
        found.append("PAA must not have a product ID")
    found += _constraints(cert, "PAA", ca=True, path_length=(1, None))
    return found


def pai_problems(cert: x509.Certificate) -> list[str]:
    found = _common(cert, "PAI")
    vid = vendor_id_of(cert.subject)
    if vid is None:
        found.append("PAI has no vendor ID in its subject")
    issuer_vid = vendor_id_of(cert.issuer)
    if issuer_vid is not None and vid is not None and issuer_vid != vid:
        found.append(f"PAI vendor ID {vid} differs from its issuer's {issuer_vid}")
    found += _constraints(cert, "PAI", ca=True, path_length=(0,))
    if _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER) is None:
        found.append("PAI has no authority key identifier")
    return found


def dac_problems(cert: x509.Certificate) -> list[str]:
    found = _common(cert, "DAC")
    if vendor_id_of(cert.subject) is None:
        found.append("DAC has no vendor ID in its subject")
    if product_id_of(cert.subject) is None:
        found.append("DAC has no product ID in its subject")
    found += _constraints(cert, "DAC", ca=False, path_length=(None,))
    if _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER) is None:
        found.append("DAC has no authority key identifier")
    return found


def vid_pid_problems(cert: x509.Certificate, vendor_id: int, product_id: int) -> list[str]:
    """The PAI's VID (and PID, if it has one) must be the lot's."""
    found = []
    for label, text, want in (
        ("vendor ID", vendor_id_of(cert.subject), vendor_id),
        ("product ID", product_id_of(cert.subject), product_id),
    ):
        if text is None:
            continue
        try:
            value = int(text, 16)
        except ValueError:
            found.append(f"{label} {text!r} in the certificate is not hexadecimal")
            continue
        if value != want:
            found.append(f"certificate has {label} 0x{value:04X}, the lot 0x{want:04X}")
    return found


def chain_problems(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> list[str]:
    """Why ``cert`` is not issued by ``issuer`` (name, key identifiers, signature, validity)."""
    found = []
    if cert.issuer != issuer.subject:
        found.append(f"{what}'s issuer is not the subject of the certificate given to sign it")
    aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    ski = _ext(issuer, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if aki is not None and ski is not None and aki.value.key_identifier != ski.value.digest:
        found.append(f"{what}'s authority key identifier is not its issuer's key identifier")
    public = issuer.public_key()
    try:
        if (
            not isinstance(public, ec.EllipticCurvePublicKey)
            or cert.signature_hash_algorithm is None
        ):
            raise InvalidSignature
        public.verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
        )
    except InvalidSignature:
        found.append(f"{what} is not signed by its issuer's key")
    window = covers(issuer, cert.not_valid_before_utc, cert.not_valid_after_utc)
    if window:
        found.append(f"{what}: {window}")
    return found


def key_matches(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    return bool(cert.public_key() == key.public_key())


def not_valid_now(cert: x509.Certificate, now: dt.datetime) -> str | None:
    if now < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    return None


def covers(issuer: x509.Certificate, start: dt.datetime, end: dt.datetime) -> str | None:
    """Why ``issuer``'s validity does not cover ``start..end``, or None."""
    nvb, nva = issuer.not_valid_before_utc, issuer.not_valid_after_utc
    if nvb <= start <= nva and nvb <= end <= nva:
        return None
    return (
        f"validity {start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} is outside the "
        f"issuer's {nvb:%Y-%m-%d %H:%M:%S} to {nva:%Y-%m-%d %H:%M:%S} (UTC)"
    )


def cd_problem(data: bytes) -> str | None:
    """Why ``data`` is not a DER certification declaration (a CMS SignedData), or None."""
    if len(data) < 2 or data[0] != 0x30:
        return "is not DER (a certification declaration is a CMS SignedData SEQUENCE)"
    n = data[1]
    pos = 2
    if n & 0x80:
        count = n & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return "is not DER (bad length)"
        n = int.from_bytes(data[2 : 2 + count], "big")
        pos += count
    if pos + n != len(data):
        return f"is not DER (the SEQUENCE says {n} bytes, the file has {len(data) - pos})"
    if not data[pos:].startswith(CMS_SIGNED_DATA_OID):
        return "is DER but not a CMS SignedData (not a certification declaration)"
    return None


@dataclass(frozen=True)
class Issuer:
    """A certificate and key that sign certificates, with the parts every signature reuses."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        ski = _ext(self.cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
        if ski is not None:
            return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())


def matter_subject(common_name: str, vendor_id: int, product_id: int | None) -> x509.Name:
    """CN plus the Matter VID/PID attributes, 4 upper-case hex digits, as the tool writes them."""
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(VENDOR_ID_OID, f"{vendor_id:04X}"),
    ]
    if product_id is not None:
        attrs.append(x509.NameAttribute(PRODUCT_ID_OID, f"{product_id:04X}"))
    return x509.Name(attrs)


def make_certificate(
    issuer: Issuer,
    subject: x509.Name,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    is_pai: bool,
    aki: x509.AuthorityKeyIdentifier | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A fresh P-256 key and its certificate signed by ``issuer`` (a PAI or a DAC)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=is_pai, path_length=0 if is_pai else None), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_pai,
                crl_sign=is_pai,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(aki or issuer.authority_key_id, critical=False)
    )
    return builder.sign(issuer.key, hashes.SHA256()), key
