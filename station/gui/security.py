"""The engineer PIN: stored only as a salted scrypt hash, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os

_N, _R, _P = 2**14, 8, 1
_PREFIX = "scrypt"


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """A storable hash of ``pin``: ``scrypt$N$r$p$salt$hash`` (hex), with a fresh random salt."""
    if not pin:
        raise ValueError("the PIN is empty")
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"{_PREFIX}${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, stored: str) -> bool:
    """True if ``pin`` matches a hash made by :func:`hash_pin`; False for anything malformed."""
    try:
        prefix, n, r, p, salt_hex, digest_hex = stored.split("$")
        if prefix != _PREFIX:
            return False
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
        n_i, r_i, p_i = int(n), int(r), int(p)
    except ValueError:
        return False
    if not pin or n_i > 2**20 or r_i > 32 or p_i > 16:
        return False
    digest = hashlib.scrypt(
        pin.encode("utf-8"), salt=salt, n=n_i, r=r_i, p=p_i, dklen=len(expected)
    )
    return hmac.compare_digest(digest, expected)
