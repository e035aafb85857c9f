"""One Matter device's factory data, and the ``chip-factory`` NVS partition that holds it.

:class:`MatterConfig` is what all devices of a lot share (the tool's command line, checked);
:func:`new_device` makes one device's unique values (passcode, discriminator, salt, verifier,
DAC, serial number, rotating device ID unique ID); :func:`device_items` lists the NVS keys in the
order esp-matter-mfg-tool writes them, so :func:`partition_image` is byte-identical to its
partition for the same values. The station's own NVS encoder builds the image.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid as uuidlib
from base64 import b64encode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from station.matter import certs
from station.matter.options import CALENDAR_TYPES, PRODUCT_COLORS, PRODUCT_FINISHES
from station.matter.payload import (
    CommissioningFlow,
    SetupPayload,
    generate_discriminator,
    generate_passcode,
)
from station.matter.spake2p import generate_salt, generate_verifier
from station.nvs import NvsEntry, XtsKeys, encode_image

NAMESPACE = "chip-factory"
SERIAL_BYTES = 16  # a generated serial number: 16 random bytes in hex, as the tool makes it


@dataclass(frozen=True)
class ExtraKey:
    """A line of the --csv schema: an extra key, its namespace, type and encoding."""

    namespace: str
    key: str
    type: str
    encoding: str


@dataclass(frozen=True)
class SupportedMode:
    endpoint: int
    label: str
    mode: int
    tags: tuple[tuple[int, int], ...] = ()  # (value, manufacturer code)


@dataclass(frozen=True)
class MatterConfig:
    """What every device of a run shares."""

    vendor_id: int
    product_id: int
    vendor_name: str | None = None
    product_name: str | None = None
    hw_ver: int | None = None
    hw_ver_str: str | None = None
    mfg_date: str | None = None
    part_number: str | None = None
    product_finish: str | None = None
    product_color: str | None = None
    product_label: str | None = None
    product_url: str | None = None
    calendar_types: tuple[str, ...] | None = None
    locales: tuple[str, ...] | None = None
    fixed_labels: tuple[tuple[int, str, str], ...] | None = None
    supported_modes: tuple[SupportedMode, ...] | None = None
    rotating_id: bool = False
    iteration_count: int = 10000
    flow: CommissioningFlow = CommissioningFlow.STANDARD
    discovery: int = 2
    dynamic_passcode: bool = False
    # attestation: the PAI (signs the DACs unless a DAC is given), certification declaration
    pai: certs.Issuer | None = field(default=None, repr=False)
    pai_der: bytes | None = field(default=None, repr=False)
    cd: bytes | None = field(default=None, repr=False)
    cd_path: str | None = None  # as written into the intermediate CSV
    not_before: dt.datetime | None = None  # DAC validity; None: now
    lifetime_days: int = certs.DEFAULT_LIFETIME_DAYS
    dac_in_secure_cert: bool = False
    commissionable_in_secure_cert: bool = False
    rd_id_uid_in_secure_cert: bool = False
    mqtt_host: str | None = None
    extra_keys: tuple[ExtraKey, ...] = ()

    @property
    def attestation(self) -> bool:
        return self.pai_der is not None

    @property
    def secure_cert(self) -> bool:
        return self.dac_in_secure_cert or self.commissionable_in_secure_cert


@dataclass(frozen=True)
class MatterDevice:
    """One device's unique values. Secrets (passcode, DAC key) never show in its repr."""

    uuid: str
    discriminator: int
    salt: bytes
    iteration_count: int
    serial_num: str
    passcode: int | None = field(default=None, repr=False)  # None with a dynamic passcode
    verifier: bytes | None = field(default=None, repr=False)
    rd_id_uid: bytes | None = None
    dac_der: bytes | None = None
    dac_key_der: bytes | None = field(default=None, repr=False)  # SEC1 DER, as the tool keeps it
    extra: tuple[tuple[str, str], ...] = ()  # values of the extra keys, as (key, value)

    @property
    def dac_key(self) -> ec.EllipticCurvePrivateKey | None:
        if self.dac_key_der is None:
            return None
        return certs.load_private_key(self.dac_key_der)

    def setup_payload(self, config: MatterConfig) -> SetupPayload:
        if self.passcode is None:
            raise ValueError("a dynamic-passcode device has no setup payload")
        return SetupPayload(
            discriminator=self.discriminator,
            passcode=self.passcode,
            vendor_id=config.vendor_id,
            product_id=config.product_id,
            flow=config.flow,
            discovery=config.discovery,
        )


def sec1_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def dac_validity(
    config: MatterConfig, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    start = config.not_before or (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    return start, start + dt.timedelta(days=config.lifetime_days)


def new_device(
    config: MatterConfig,
    *,
    passcode: int | None = None,
    discriminator: int | None = None,
    salt: bytes | None = None,
    verifier: bytes | None = None,
    serial_num: str | None = None,
    rd_id_uid: bytes | None = None,
    dac: tuple[bytes, bytes] | None = None,
    device_uuid: str | None = None,
    extra: Sequence[tuple[str, str]] = (),
    now: dt.datetime | None = None,
) -> MatterDevice:
    """A device: given values are used as they are, the others are made here.

    ``dac`` is (certificate DER, private key DER). Without it, and with a PAI in ``config``, a
    fresh P-256 key and a DAC signed by the PAI are made, whose CN is the device's UUID.
    """
    uid = device_uuid or str(uuidlib.uuid4())
    if discriminator is None:
        discriminator = generate_discriminator()
    if config.dynamic_passcode:
        passcode = None
        verifier = None
        salt = salt or generate_salt()
    else:
        if passcode is None:
            passcode = generate_passcode()
        if salt is None or verifier is None:
            salt = generate_salt()
            verifier = generate_verifier(passcode, salt, config.iteration_count)
    if serial_num is None:
        serial_num = os.urandom(SERIAL_BYTES).hex()
    if (config.rotating_id or config.rd_id_uid_in_secure_cert) and rd_id_uid is None:
        rd_id_uid = os.urandom(16)
    dac_der = key_der = None
    if dac is not None:
        dac_der, key_der = dac
    elif config.pai is not None:
        start, end = dac_validity(config, now)
        cert, key = certs.make_certificate(
            config.pai,
            certs.matter_subject(uid, config.vendor_id, config.product_id),
            start,
            end,
            is_pai=False,
        )
        dac_der, key_der = certs.der(cert), sec1_der(key)
    return MatterDevice(
        uuid=uid,
        discriminator=discriminator,
        salt=salt,
        iteration_count=config.iteration_count,
        serial_num=serial_num,
        passcode=passcode,
        verifier=verifier,
        rd_id_uid=rd_id_uid,
        dac_der=dac_der,
        dac_key_der=key_der,
        extra=tuple(extra),
    )


@dataclass(frozen=True)
class Item:
    """One key of the partition: a value in text, or bytes for binary data."""

    namespace: str
    key: str
    type: str  # data | file
    encoding: str
    value: str | bytes


def device_items(config: MatterConfig, device: MatterDevice) -> list[Item]:
    """The partition's keys, in esp-matter-mfg-tool's order (which decides the bytes)."""
    spaces: dict[str, dict[str, Item]] = {NAMESPACE: {}}

    def put(key: str, typ: str, enc: str, value: str | bytes, ns: str = NAMESPACE) -> None:
        spaces.setdefault(ns, {})[key] = Item(ns, key, typ, enc, value)

    if not config.commissionable_in_secure_cert:
        put("discriminator", "data", "u32", str(device.discriminator))
        put("iteration-count", "data", "u32", str(device.iteration_count))
        put("salt", "data", "string", b64encode(device.salt).decode())
    put("vendor-id", "data", "u32", str(config.vendor_id))
    if config.vendor_name is not None:
        put("vendor-name", "data", "string", config.vendor_name)
    put("product-id", "data", "u32", str(config.product_id))
    if config.product_name is not None:
        put("product-name", "data", "string", config.product_name)
    if config.hw_ver is not None:
        put("hardware-ver", "data", "u32", str(config.hw_ver))
    if config.hw_ver_str is not None:
        put("hw-ver-str", "data", "string", config.hw_ver_str)
    if config.mfg_date is not None:
        put("mfg-date", "data", "string", config.mfg_date)
    if config.rotating_id and not config.rd_id_uid_in_secure_cert:
        put("rd-id-uid", "data", "hex2bin", (device.rd_id_uid or b"").hex())
    if config.product_finish is not None:
        put("product-finish", "data", "u32", str(PRODUCT_FINISHES.index(config.product_finish)))
    if config.product_color is not None:
        put("product-color", "data", "u32", str(PRODUCT_COLORS.index(config.product_color)))
    if config.part_number is not None:
        put("part-number", "data", "string", config.part_number)
    put("serial-num", "data", "string", device.serial_num)
    if config.attestation and not config.dac_in_secure_cert:
        assert device.dac_der is not None and device.dac_key_der is not None
        key = certs.load_private_key(device.dac_key_der)
        put("dac-cert", "file", "binary", device.dac_der)
        put("dac-key", "file", "binary", certs.raw_private_key(key))
        put("dac-pub-key", "file", "binary", certs.raw_public_key(key))
        put("pai-cert", "file", "binary", config.pai_der or b"")
    if not config.dynamic_passcode and not config.commissionable_in_secure_cert:
        put("verifier", "data", "string", b64encode(device.verifier or b"").decode())
    if config.cd is not None:
        put("cert-dclrn", "file", "binary", config.cd)
    if config.mqtt_host is not None:
        put("mqtt_host", "data", "string", config.mqtt_host, "rmaker_creds")
    values = dict(device.extra)
    for extra in config.extra_keys:
        put(extra.key, extra.type, extra.encoding, values.get(extra.key, ""), extra.namespace)
    if config.calendar_types is not None:
        bits = sum(1 << CALENDAR_TYPES.index(c) for c in set(config.calendar_types))
        put("cal-types", "data", "u32", str(bits))
    if config.locales is not None:
        put("locale-sz", "data", "u32", str(len(config.locales)))
        for i, locale in enumerate(config.locales):
            put(f"locale/{i:x}", "data", "string", locale)
    if config.fixed_labels is not None:
        by_ep: dict[int, list[tuple[str, str]]] = {}
        for ep, label, value in config.fixed_labels:
            by_ep.setdefault(ep, []).append((label, value))
        for ep, labels in by_ep.items():
            put(f"fl-sz/{ep:x}", "data", "u32", str(len(labels)))
            for i, (label, value) in enumerate(labels):
                put(f"fl-k/{ep:x}/{i:x}", "data", "string", label)
                put(f"fl-v/{ep:x}/{i:x}", "data", "string", value)
    if config.supported_modes is not None:
        modes: dict[int, list[SupportedMode]] = {}
        for m in config.supported_modes:
            modes.setdefault(m.endpoint, []).append(m)
        for ep, ep_modes in modes.items():
            put(f"sm-sz/{ep:x}", "data", "u32", str(len(ep_modes)))
            for i, m in enumerate(ep_modes):
                put(f"sm-label/{ep:x}/{i:x}", "data", "string", m.label)
                put(f"sm-mode/{ep:x}/{i:x}", "data", "u32", str(m.mode))
                put(f"sm-st-sz/{ep:x}/{i:x}", "data", "u32", str(len(m.tags)))
                for j, (tag, mfg) in enumerate(m.tags):
                    put(f"st-v/{ep:x}/{i:x}/{j:x}", "data", "u32", str(tag))
                    put(f"st-mfg/{ep:x}/{i:x}/{j:x}", "data", "u32", str(mfg))
    if config.product_label is not None:
        put("product-label", "data", "string", config.product_label)
    if config.product_url is not None:
        put("product-url", "data", "string", config.product_url)
    return [item for space in spaces.values() for item in space.values()]


def nvs_entries(items: Iterable[Item], file: str = "", line: int = 0) -> list[NvsEntry]:
    """The items as nvs_partition_gen CSV lines (binary data as hex2bin: the same bytes)."""
    out: list[NvsEntry] = []
    namespace = None
    for item in items:
        if item.namespace != namespace:
            namespace = item.namespace
            out.append(NvsEntry(namespace, "namespace", "", "", file, line))
        if isinstance(item.value, bytes):
            out.append(NvsEntry(item.key, "data", "hex2bin", item.value.hex(), file, line))
        else:
            out.append(NvsEntry(item.key, item.type, item.encoding, item.value, file, line))
    return out


def partition_image(
    config: MatterConfig,
    device: MatterDevice,
    size: int = 0x6000,
    *,
    keys: XtsKeys | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> bytes:
    """The device's ``chip-factory`` NVS partition (encrypted with ``keys`` if given)."""
    return encode_image(
        nvs_entries(device_items(config, device)), size, keys=keys, base_dir=base_dir
    )


def secure_cert_partition(config: MatterConfig, device: MatterDevice) -> bytes:
    """The device's ``esp_secure_cert`` partition (DAC, PAI, key; commissionable data if asked)."""
    from station.matter.secure_cert import secure_cert_image

    assert device.dac_der is not None and device.dac_key_der is not None
    if not config.commissionable_in_secure_cert:
        return secure_cert_image(device.dac_der, config.pai_der or b"", device.dac_key_der)
    return secure_cert_image(
        device.dac_der,
        config.pai_der or b"",
        device.dac_key_der,
        discriminator=device.discriminator,
        verifier=device.verifier or b"",
        salt=device.salt,
        iterations=device.iteration_count,
        rd_id_uid=device.rd_id_uid or os.urandom(16),
    )
