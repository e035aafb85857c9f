"""The ``esp_secure_cert`` partition (TLV format) as esp-matter-mfg-tool writes it for Matter.

Each entry: a 12-byte header (magic 0xBA5EBA11, flags, 3 reserved, type, subtype, length), the
data padded with zeros to 16 bytes, and a CRC-32 (zlib, seed 0xFFFFFFFF) of all that. The tool
writes only the used bytes, not the whole 8 KiB partition.
"""

from __future__ import annotations

import os
import struct
import zlib

TLV_MAGIC = 0xBA5EBA11
CA_CERT, DEV_CERT, PRIV_KEY = 0, 1, 2
MATTER_TLV = 201  # the tool's private type for commissionable data
DISCRIMINATOR, VERIFIER, SALT, ITERATIONS, RD_ID_UID = 0, 1, 2, 3, 4
RANDOM1, RANDOM2 = 128, 129  # 32 random bytes each, as the tool adds them
PARTITION_SIZE = 0x2000


def tlv(typ: int, subtype: int, data: bytes, flags: int = 0) -> bytes:
    header = struct.pack("<IB3xBBH", TLV_MAGIC, flags, typ, subtype, len(data))
    body = header + data + b"\0" * (-len(data) % 16)
    return body + struct.pack("<I", zlib.crc32(body, 0xFFFFFFFF) & 0xFFFFFFFF)


def secure_cert_image(
    dac_der: bytes,
    pai_der: bytes,
    dac_key_der: bytes,
    *,
    discriminator: int | None = None,
    verifier: bytes | None = None,
    salt: bytes | None = None,
    iterations: int | None = None,
    rd_id_uid: bytes | None = None,
    random: bytes | None = None,
) -> bytes:
    """The TLV entries: DAC, PAI, DAC key; with commissionable data, those and two random blocks.

    ``random`` (64 bytes) replaces the two random blocks, for byte-for-byte comparisons.
    """
    out = tlv(DEV_CERT, 0, dac_der) + tlv(CA_CERT, 0, pai_der) + tlv(PRIV_KEY, 0, dac_key_der)
    optional = (discriminator, verifier, salt, iterations, rd_id_uid)
    if any(v is not None for v in optional):
        if any(v is None for v in optional):
            raise ValueError("discriminator, verifier, salt, iterations and rd_id_uid go together")
        assert discriminator is not None and iterations is not None
        assert verifier is not None and salt is not None and rd_id_uid is not None
        rand = random if random is not None else os.urandom(64)
        out += tlv(MATTER_TLV, DISCRIMINATOR, discriminator.to_bytes(2, "little"))
        out += tlv(MATTER_TLV, VERIFIER, verifier)
        out += tlv(MATTER_TLV, SALT, salt)
        out += tlv(MATTER_TLV, ITERATIONS, iterations.to_bytes(4, "little"))
        out += tlv(MATTER_TLV, RD_ID_UID, rd_id_uid)
        out += tlv(MATTER_TLV, RANDOM1, rand[:32]) + tlv(MATTER_TLV, RANDOM2, rand[32:64])
    if len(out) > PARTITION_SIZE:
        raise ValueError(f"esp_secure_cert data is {len(out)} bytes, more than {PARTITION_SIZE}")
    return out


def parse_secure_cert(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, subtype, data) of each entry, up to the first byte that is not an entry."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        magic, _flags, typ, sub, length = struct.unpack_from("<IB3xBBH", data, pos)
        if magic != TLV_MAGIC:
            break
        end = pos + 12 + length + (-length % 16)
        if end + 4 > len(data):
            raise ValueError(f"entry at {pos} runs past the end")
        (crc,) = struct.unpack_from("<I", data, end)
        if crc != zlib.crc32(data[pos:end], 0xFFFFFFFF) & 0xFFFFFFFF:
            raise ValueError(f"entry at {pos}: CRC does not match")
        out.append((typ, sub, data[pos + 12 : pos + 12 + length]))
        pos = end + 4
    return out
