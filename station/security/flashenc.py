"""Host-based flash encryption: each region the unit gets is encrypted for its own offset.

ESP-IDF encrypts the bootloader, the partition table, every app partition and every partition
flagged ``encrypted`` (``nvs_keys`` among them); NVS data partitions are never flash-encrypted
(NVS has its own encryption). The ciphertext comes from espsecure's ``encrypt_flash_data``
(XTS-AES, the chip's addressing), so what the station writes is what the chip decrypts.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from station.flashing.device import WriteRegion

XTS_BLOCK = 16  # XTS-AES needs whole 16-byte blocks; flash padding is 0xFF (erased)


def encrypt(key: bytes, offset: int, data: bytes) -> bytes:
    """``data`` as it must lie in flash at ``offset`` for the chip to decrypt it with ``key``
    (32 bytes: XTS-AES-128; 64: XTS-AES-256). Padded with 0xFF to 16 bytes."""
    return _xts(key, offset, _pad(data), decrypt=False)


def decrypt(key: bytes, offset: int, data: bytes) -> bytes:
    """What the chip reads back through flash encryption (for checks and tests)."""
    return _xts(key, offset, data, decrypt=True)


def _pad(data: bytes) -> bytes:
    extra = -len(data) % XTS_BLOCK
    return data + b"\xff" * extra


def _xts(key: bytes, offset: int, data: bytes, *, decrypt: bool) -> bytes:
    import espsecure

    from station.security.quiet import quiet

    out = io.BytesIO()
    fn = espsecure.decrypt_flash_data if decrypt else espsecure.encrypt_flash_data
    with quiet():
        # flash_crypt_conf only matters to the ESP32's own scheme; aes_xts=True for the rest
        fn(io.BytesIO(key), out, offset, 0xF, True, io.BytesIO(data))
    return out.getvalue()


def must_encrypt(
    region: WriteRegion, partitions: Iterable[Any], *, bootloader: int | None, table: int | None
) -> bool:
    """True if ESP-IDF's flash encryption covers ``region``: the bootloader, the partition
    table, an app partition or a partition flagged ``encrypted``."""
    if region.offset in (bootloader, table):
        return True
    for p in partitions:
        if p.offset <= region.offset < p.end:
            return bool(p.type_name == "app" or p.encrypted)
    return False


def encrypt_regions(
    key: bytes,
    regions: Sequence[WriteRegion],
    partitions: Iterable[Any],
    *,
    bootloader: int | None,
    table: int | None,
) -> tuple[WriteRegion, ...]:
    """The unit's regions with those flash encryption covers encrypted for their offsets
    (the others unchanged); names get an ``(encrypted)`` mark for messages."""
    parts = tuple(partitions)
    out = []
    for r in regions:
        if must_encrypt(r, parts, bootloader=bootloader, table=table):
            data = encrypt(key, r.offset, r.data)
            out.append(WriteRegion(r.offset, data, f"{r.name} (encrypted)", r.readback))
        else:
            out.append(r)
    return tuple(out)
