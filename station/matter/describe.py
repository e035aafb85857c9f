"""A Matter ``chip-factory`` namespace in words, for ``station inspect``; never the DAC key."""

from __future__ import annotations

import base64
import dataclasses

from station.matter import certs
from station.matter.factory import NAMESPACE
from station.nvs import NvsImage

SECRET_KEYS = frozenset({"dac-key"})  # the DAC's private key: never shown
HIDDEN = "(secret: not shown)"


def hide_secrets(image: NvsImage) -> NvsImage:
    """The image with the DAC private key's value replaced by a note."""
    if not any(i.namespace == NAMESPACE and i.key in SECRET_KEYS for i in image.items):
        return image
    items = [
        dataclasses.replace(i, value=HIDDEN)
        if i.namespace == NAMESPACE and i.key in SECRET_KEYS
        else i
        for i in image.items
    ]
    return dataclasses.replace(image, items=items)


def _cert_lines(label: str, der: object) -> list[str]:
    if not isinstance(der, bytes):
        return [f"  {label}: not a certificate"]
    try:
        cert = certs.load_certificate(der)
    except ValueError:
        return [f"  {label}: {len(der)} bytes, not a certificate"]
    vid, pid = certs.vendor_id_of(cert.subject), certs.product_id_of(cert.subject)
    names = {certs.VENDOR_ID_OID: "VID", certs.PRODUCT_ID_OID: "PID"}
    return [
        f"  {label}: {cert.subject.rfc4514_string(names)}",
        f"    issued by {cert.issuer.rfc4514_string(names)}",
        f"    valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d},"
        f" serial {cert.serial_number:x}"
        + (f", VID {vid}" if vid else "")
        + (f", PID {pid}" if pid else ""),
    ]


def matter_summary(image: NvsImage) -> list[str]:
    """Lines describing the image's Matter factory data; empty if it has none."""
    values = image.as_dict().get(NAMESPACE)
    if not values:
        return []
    lines = ["Matter factory data (chip-factory):"]

    def num(key: str) -> str | None:
        v = values.get(key)
        return None if v is None else str(v)

    vid, pid = values.get("vendor-id"), values.get("product-id")
    if isinstance(vid, int) and isinstance(pid, int):
        lines.append(f"  vendor ID 0x{vid:04X}, product ID 0x{pid:04X}")
    for key, label in (
        ("vendor-name", "vendor"),
        ("product-name", "product"),
        ("serial-num", "serial number"),
        ("mfg-date", "manufactured"),
        ("hardware-ver", "hardware version"),
        ("hw-ver-str", "hardware version string"),
    ):
        if (v := num(key)) is not None:
            lines.append(f"  {label}: {v}")
    if isinstance(d := values.get("discriminator"), int):
        lines.append(f"  discriminator {d} (0x{d:03X})")
    verifier = values.get("verifier")
    if isinstance(verifier, str):
        try:
            ok = len(base64.b64decode(verifier)) == 97
        except ValueError:
            ok = False
        salt = values.get("salt")
        salt_len = len(base64.b64decode(salt)) if isinstance(salt, str) else 0
        lines.append(
            f"  SPAKE2+ verifier present{'' if ok else ' (but not 97 bytes)'},"
            f" salt {salt_len} bytes, {num('iteration-count')} iterations"
        )
    else:
        lines.append("  no SPAKE2+ verifier (dynamic passcode, or kept in esp_secure_cert)")
    if "dac-cert" in values:
        lines += _cert_lines("DAC", values["dac-cert"])
        has_key = "dac-key" in values
        lines.append("  DAC private key present (not shown)" if has_key else "  no DAC key")
    if "pai-cert" in values:
        lines += _cert_lines("PAI", values["pai-cert"])
    if "cert-dclrn" in values:
        cd = values["cert-dclrn"]
        size = len(cd) if isinstance(cd, bytes) else 0
        lines.append(f"  certification declaration: {size} bytes")
    if "rd-id-uid" in values:
        lines.append("  rotating device ID unique ID present")
    return lines
