"""NVS encryption: AES-XTS per 32-byte entry, key partition images, the HMAC key scheme.

Each written entry is one XTS data unit whose tweak is its offset in the partition (little
endian). Instead of one cipher object per entry, a page is done in two AES-ECB calls: the
tweak key encrypts all tweaks of the page at once (cached per page number), the data key does all
entries at once between two XORs with those tweak values. That is plain XTS, written out.
"""

from __future__ import annotations

import hmac
import secrets
import struct
import threading
import zlib
from collections import OrderedDict
from hashlib import sha256

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from station.errors import StationError
from station.nvs.model import (
    ENTRIES_PER_PAGE,
    ENTRY_SIZE,
    FIRST_ENTRY_OFFSET,
    PAGE_SIZE,
    XtsKeys,
)

KEY_PARTITION_SIZE = 4096
HMAC_KEY_SIZE = 32
_EKEY_SEED = b"\x5a\x5a\xbe\xae" * 8  # HMAC message for the data key (ESP-IDF nvs_sec_provider)
_TKEY_SEED = b"\xa5\xa5\xde\xce" * 8  # HMAC message for the tweak key

_MASK128 = (1 << 128) - 1
_MASK_CACHE: OrderedDict[tuple[bytes, int], bytes] = OrderedDict()
_MASK_CACHE_MAX = 512
_MASK_LOCK = threading.Lock()  # images are built from several worker threads at once


def generate_keys() -> XtsKeys:
    """Two fresh random 32-byte keys from the operating system's secure generator."""
    return XtsKeys(secrets.token_bytes(32), secrets.token_bytes(32))


def generate_hmac_key() -> bytes:
    """A fresh random 32-byte HMAC key (to be burnt into an eFuse key block)."""
    return secrets.token_bytes(HMAC_KEY_SIZE)


def hmac_derive_keys(hmac_key: bytes) -> XtsKeys:
    """The NVS keys the firmware derives from an eFuse HMAC key (HMAC-SHA256 of fixed seeds)."""
    if len(hmac_key) != HMAC_KEY_SIZE:
        raise ValueError(f"an HMAC key has {HMAC_KEY_SIZE} bytes, not {len(hmac_key)}")
    return XtsKeys(
        hmac.new(hmac_key, _EKEY_SEED, sha256).digest(),
        hmac.new(hmac_key, _TKEY_SEED, sha256).digest(),
    )


def key_partition_image(keys: XtsKeys) -> bytes:
    """The 4 KiB ``nvs_keys`` partition: data key, tweak key, CRC32 of both, 0xFF padding."""
    raw = keys.raw
    crc = zlib.crc32(raw, 0xFFFFFFFF)
    return raw + struct.pack("<I", crc) + b"\xff" * (KEY_PARTITION_SIZE - len(raw) - 4)


def parse_key_partition(data: bytes, file: str = "") -> XtsKeys:
    """Keys from a key partition image; StationError if its length or CRC is wrong."""
    if len(data) != KEY_PARTITION_SIZE:
        raise StationError.at(
            file or "key file",
            f"a key partition image has {KEY_PARTITION_SIZE} bytes, this file has {len(data)}"
            " (make one with `station generate-key`)",
            key="key",
        )
    raw = data[:64]
    (crc,) = struct.unpack_from("<I", data, 64)
    if crc != zlib.crc32(raw, 0xFFFFFFFF):
        raise StationError.at(
            file or "key file",
            "the key partition's CRC is wrong (damaged or not a key partition image)",
            key="key",
        )
    return XtsKeys(raw[:32], raw[32:])


def read_hmac_key(data: bytes, file: str = "") -> bytes:
    """Check an HMAC key file's content (exactly 32 bytes)."""
    if len(data) != HMAC_KEY_SIZE:
        raise StationError.at(
            file or "HMAC key file",
            f"an HMAC key file has {HMAC_KEY_SIZE} bytes, this one has {len(data)}",
            key="hmac key",
        )
    return bytes(data)


def _times_alpha(block: int) -> int:
    """Multiply a little-endian 128-bit tweak by x in GF(2^128), as XTS does per block."""
    carry = block >> 127
    return ((block << 1) & _MASK128) ^ (0x87 if carry else 0)


def _page_mask(tweak_key: bytes, page: int) -> bytes:
    """The XTS tweak values of every entry of one page, 32 bytes per entry (cached)."""
    cache_key = (tweak_key, page)
    with _MASK_LOCK:
        mask = _MASK_CACHE.get(cache_key)
        if mask is not None:
            _MASK_CACHE.move_to_end(cache_key)
            return mask
    base = page * PAGE_SIZE + FIRST_ENTRY_OFFSET
    tweaks = b"".join(
        (base + i * ENTRY_SIZE).to_bytes(16, "little") for i in range(ENTRIES_PER_PAGE)
    )
    enc = Cipher(algorithms.AES(tweak_key), modes.ECB()).encryptor()  # noqa: S305 - XTS tweaks
    t0s = enc.update(tweaks) + enc.finalize()
    parts = []
    for i in range(0, len(t0s), 16):
        t0 = t0s[i : i + 16]
        parts.append(t0)
        parts.append(_times_alpha(int.from_bytes(t0, "little")).to_bytes(16, "little"))
    mask = b"".join(parts)
    with _MASK_LOCK:
        _MASK_CACHE[cache_key] = mask
        if len(_MASK_CACHE) > _MASK_CACHE_MAX:
            _MASK_CACHE.popitem(last=False)
    return mask


def _xor(a: bytes, b: bytes) -> bytes:
    n = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b[:n], "little")).to_bytes(n, "little")


def encrypt_entries(data: bytes, keys: XtsKeys, page: int, first_entry: int = 0) -> bytes:
    """Encrypt whole entries of one page, starting at entry ``first_entry``."""
    if not data:
        return b""
    mask = _page_mask(keys.tweak_key, page)[first_entry * ENTRY_SIZE :]
    enc = Cipher(algorithms.AES(keys.data_key), modes.ECB()).encryptor()  # noqa: S305 - XTS
    return _xor(enc.update(_xor(data, mask)) + enc.finalize(), mask)


def decrypt_entries(data: bytes, keys: XtsKeys, page: int, first_entry: int = 0) -> bytes:
    """Decrypt whole entries of one page, starting at entry ``first_entry``."""
    if not data:
        return b""
    mask = _page_mask(keys.tweak_key, page)[first_entry * ENTRY_SIZE :]
    dec = Cipher(algorithms.AES(keys.data_key), modes.ECB()).decryptor()  # noqa: S305 - XTS
    return _xor(dec.update(_xor(data, mask)) + dec.finalize(), mask)
