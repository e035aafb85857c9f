"""The SPAKE2+ verifier (PBKDF2-HMAC-SHA256, W0 and L on P-256)."""

from __future__ import annotations

import base64

from station.matter.spake2p import generate_verifier, verifier_matches

# The CHIP SDK's test verifier: passcode 20202021, salt "SPAKE2P Key Salt", 1000 iterations
# (CHIP_DEVICE_CONFIG_USE_TEST_SPAKE2P_VERIFIER).
CHIP_VERIFIER = (
    "uWFwqugDNGiEck/po7KHwwMwwqZgN10XuyBajPGuyzUEV/iree4lOrao5GuwnlQ65CJzbeUB49s31EH+NEkg0JVI5MGC"
    "QGMMT/SRPFNRODm3wH/MBiehuFc6FJ/NH6Rmzw=="
)


def test_chip_test_verifier() -> None:
    verifier = generate_verifier(20202021, b"SPAKE2P Key Salt", 1000)
    assert base64.b64encode(verifier).decode() == CHIP_VERIFIER
    assert len(verifier) == 97 and verifier[32] == 0x04


def test_verifier_matches_only_its_passcode() -> None:
    salt = bytes(range(32))
    verifier = generate_verifier(12345679, salt, 1000)
    assert verifier_matches(verifier, 12345679, salt, 1000)
    assert not verifier_matches(verifier, 12345670, salt, 1000)
    assert not verifier_matches(verifier, 12345679, salt, 1001)
