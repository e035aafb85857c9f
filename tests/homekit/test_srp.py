"""The SRP-6a arithmetic against RFC 5054 appendix B, and the HomeKit verifier against `srp`."""

from __future__ import annotations

import secrets

import pytest
import srp as srp_pkg  # the PyPI package esp-homekit-sdk's tool is built on
import srp._pysrp as pysrp

from station.homekit import generate_setup_code, srp_salt_verifier
from station.homekit import srp as s


def h(text: str) -> int:
    return int("".join(text.split()), 16)


# RFC 5054 appendix B: 1024-bit group, SHA-1, I = "alice", P = "password123".
SALT = bytes.fromhex("BEB25379D1A8581EB5A727673A2441EE")
K = h("7556AA04 5AEF2CDD 07ABAF0F 665C3E81 8913186F")
X = h("94B7555A ABE9127C C58CCF49 93DB6CF8 4D16C124")
V = h(
    "7E273DE8 696FFC4F 4E337D05 B4B375BE B0DDE156 9E8FA00A 9886D812 9BADA1F1 822223CA 1A605B53"
    " 0E379BA4 729FDC59 F105B478 7E5186F5 C671085A 1447B52A 48CF1970 B4FB6F84 00BBF4CE BFBB1681"
    " 52E08AB5 EA53D15C 1AFF87B2 B9DA6E04 E058AD51 CC72BFC9 033B564E 26480D78 E955A5E2 9E7AB245"
    " DB2BE315 E2099AFB"
)
A_PRIV = h("60975527 035CF2AD 1989806F 0407210B C81EDC04 E2762A56 AFD529DD DA2D4393")
B_PRIV = h("E487CB59 D31AC550 471E81F0 0F6928E0 1DDA08E9 74A004F4 9E61F5D1 05284D20")
A_PUB = h(
    "61D5E490 F6F1B795 47B0704C 436F523D D0E560F0 C64115BB 72557EC4 4352E890 3211C046 92272D8B"
    " 2D1A5358 A2CF1B6E 0BFCF99F 921530EC 8E393561 79EAE45E 42BA92AE ACED8251 71E1E8B9 AF6D9C03"
    " E1327F44 BE087EF0 6530E69F 66615261 EEF54073 CA11CF58 58F0EDFD FE15EFEA B349EF5D 76988A36"
    " 72FAC47B 0769447B"
)
B_PUB = h(
    "BD0C6151 2C692C0C B6D041FA 01BB152D 4916A1E7 7AF46AE1 05393011 BAF38964 DC46A067 0DD125B9"
    " 5A981652 236F99D9 B681CBF8 7837EC99 6C6DA044 53728610 D0C6DDB5 8B318885 D7D82C7F 8DEB75CE"
    " 7BD4FBAA 37089E6F 9C6059F3 88838E7A 00030B33 1EB76840 910440B1 B27AAEAE EB4012B7 D7665238"
    " A8E3FB00 4B117B58"
)
U = h("CE38B959 3487DA98 554ED47D 70A7AE5F 462EF019")
PREMASTER = h(
    "B0DC82BA BCF30674 AE450C02 87745E79 90A3381F 63B387AA F271A10D 233861E3 59B48220 F7C4693C"
    " 9AE12B0A 6F67809F 0876E2D0 13800D6C 41BB59B6 D5979B5C 00A172B4 A2A5903A 0BDCAF8A 709585EB"
    " 2AFAFA8F 3499B200 210DCC1F 10EB3394 3CD67FC8 8A2F39A4 BE5BEC4E C0A3212D C346D7E4 74B29EDE"
    " 8A469FFE CA686E5A"
)
G = s.RFC5054_1024


def test_rfc5054_vectors() -> None:
    assert s.compute_k(G, "sha1") == K
    assert s.compute_x("sha1", SALT, b"alice", b"password123") == X
    assert s.compute_verifier(G, "sha1", SALT, b"alice", b"password123") == V
    assert s.client_public(G, A_PRIV) == A_PUB
    assert s.server_public(G, "sha1", V, B_PRIV) == B_PUB
    assert s.compute_u(G, "sha1", A_PUB, B_PUB) == U
    assert s.client_premaster(G, "sha1", X, A_PRIV, B_PUB, U) == PREMASTER
    assert s.server_premaster(G, A_PUB, V, U, B_PRIV) == PREMASTER


def test_rfc5054_wrong_password_gives_other_verifier() -> None:
    assert s.compute_verifier(G, "sha1", SALT, b"alice", b"password124") != V


def test_homekit_group_is_rfc5054_3072() -> None:
    group = s.RFC5054_3072
    assert group.g == 5
    assert group.N.bit_length() == 3072
    assert group.size == 384
    # the RFC 3526 primes: N = 2^3072 - 2^3008 - 1 + 2^64 * (floor(2^2942 * pi) + 1550565)
    assert group.N >> 3008 == (1 << 64) - 1  # top 64 bits all ones
    assert group.N & ((1 << 64) - 1) == (1 << 64) - 1  # bottom 64 bits all ones
    assert pow(2, group.N - 1, group.N) == 1  # Fermat probable prime


def _official_verifier(code: str, salt: bytes) -> bytes:
    """What the `srp` package (factory_nvs_gen's dependency) computes for this salt."""
    group = s.RFC5054_3072
    x = pysrp.gen_x(pysrp._hash_map[srp_pkg.SHA512], salt, "Pair-Setup", code)
    return pysrp.long_to_bytes(pow(group.g, x, group.N))


def test_verifier_matches_srp_package_for_many_random_codes() -> None:
    for _ in range(60):
        code = generate_setup_code()
        salt, verifier = srp_salt_verifier(code)
        assert len(salt) == 16 and len(verifier) == 384
        theirs = _official_verifier(code, salt)
        assert verifier == theirs.rjust(384, b"\0")


def test_verifier_matches_srp_create_salted_verification_key() -> None:
    """The package's own entry point (as factory_nvs_gen calls it), with the salt it chose."""
    n_hex = format(s.RFC5054_3072.N, "X")
    checked = 0
    for _ in range(20):
        code = generate_setup_code()
        salt, theirs = srp_pkg.create_salted_verification_key(
            "Pair-Setup", code, srp_pkg.SHA512, srp_pkg.NG_CUSTOM, n_hex.encode(), b"5", salt_len=16
        )
        if len(salt) != 16:  # the package dropped a leading zero byte (1 in 256)
            continue
        assert srp_salt_verifier(code, salt)[1] == theirs.rjust(384, b"\0")
        checked += 1
    assert checked >= 15


def _pairs(code_typed: str, salt: bytes, verifier: bytes) -> bool:
    """Run SRP-6a between a controller (knows code + stored salt) and the accessory (verifier)."""
    group = s.RFC5054_3072
    a, b = secrets.randbits(256), secrets.randbits(256)
    a_pub = s.client_public(group, a)
    b_pub = s.server_public(group, "sha512", int.from_bytes(verifier, "big"), b)
    u = s.compute_u(group, "sha512", a_pub, b_pub)
    x = s.compute_x("sha512", salt, b"Pair-Setup", code_typed.encode())
    client = s.client_premaster(group, "sha512", x, a, b_pub, u)
    server = s.server_premaster(group, a_pub, int.from_bytes(verifier, "big"), u, b)
    return client == server


def test_controller_pairs_with_our_verifier_even_when_salt_starts_with_zero() -> None:
    code = "518-08-582"
    for salt in (bytes(16), b"\0\0\x01" + secrets.token_bytes(13), secrets.token_bytes(16)):
        got_salt, verifier = srp_salt_verifier(code, salt)
        assert got_salt == salt
        assert _pairs(code, salt, verifier)
        assert not _pairs("518-08-583", salt, verifier)


def test_official_tool_salt_truncation_breaks_pairing() -> None:
    """What factory_nvs_gen does with a salt starting 0x00: verifier from the short salt,
    salt written zero-filled to 16 bytes. The controller then cannot pair. Ours can."""
    code = "518-08-582"
    salt = b"\0" + secrets.token_bytes(15)
    short = pysrp.long_to_bytes(int.from_bytes(salt, "big"))
    assert len(short) < 16
    official_verifier = _official_verifier(code, short).rjust(384, b"\0")
    stored_salt = bytes.fromhex(short.hex().zfill(32))
    assert stored_salt == salt
    assert not _pairs(code, stored_salt, official_verifier)
    assert _pairs(code, salt, srp_salt_verifier(code, salt)[1])


def test_salt_must_be_16_bytes() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        srp_salt_verifier("518-08-582", b"\1" * 15)
