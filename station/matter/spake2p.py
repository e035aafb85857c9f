"""The SPAKE2+ verifier a Matter device keeps instead of its passcode (Matter core spec 3.10).

``w0s || w1s = PBKDF2-HMAC-SHA256(passcode as 4 little-endian bytes, salt, iterations, 80)``,
``w0 = w0s mod n``, ``w1 = w1s mod n``; the verifier is ``w0`` (32 bytes) followed by
``L = w1·G`` uncompressed (65 bytes), on P-256 — as esp-matter-mfg-tool and the CHIP SDK compute it.
"""

from __future__ import annotations

import hmac
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
WS_LENGTH = 40  # 32-byte scalar + 8 bytes, so the reduction mod n is unbiased
VERIFIER_LENGTH = 97
ITERATIONS_MIN, ITERATIONS_MAX = 1000, 100000
SALT_MIN, SALT_MAX = 16, 32


def pbkdf2(passcode: int, salt: bytes, iterations: int) -> bytes:
    """The 80 bytes w0s || w1s (cryptography's PBKDF2: hashlib's needs Python's own OpenSSL,
    which the Linux bundle leaves to the system)."""
    kdf = PBKDF2HMAC(hashes.SHA256(), 2 * WS_LENGTH, salt, iterations)
    return kdf.derive(passcode.to_bytes(4, "little"))


def verifier_from_ws(ws: bytes) -> bytes:
    """``w0 || L`` from the PBKDF2 output."""
    w0 = int.from_bytes(ws[:WS_LENGTH], "big") % P256_ORDER
    w1 = int.from_bytes(ws[WS_LENGTH:], "big") % P256_ORDER
    point = ec.derive_private_key(w1, ec.SECP256R1()).public_key()
    return w0.to_bytes(32, "big") + point.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def generate_verifier(passcode: int, salt: bytes, iterations: int) -> bytes:
    """The 97-byte SPAKE2+ verifier for ``passcode``."""
    return verifier_from_ws(pbkdf2(passcode, salt, iterations))


def verifier_matches(verifier: bytes, passcode: int, salt: bytes, iterations: int) -> bool:
    """True if ``verifier`` belongs to ``passcode`` with this salt and iteration count."""
    return hmac.compare_digest(verifier, generate_verifier(passcode, salt, iterations))


def generate_salt() -> bytes:
    """32 random bytes, as the tool uses."""
    return os.urandom(SALT_MAX)
