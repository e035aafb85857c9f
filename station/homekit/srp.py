"""SRP-6a arithmetic (RFC 5054), generic over the group and the hash.

HomeKit uses the 3072-bit group with g = 5 and SHA-512; RFC 5054's own test vectors use the
1024-bit group and SHA-1. Keeping the group and the hash as parameters lets the tests check this
code against the RFC vectors, so the HomeKit verifier rests on proven arithmetic.

Conventions follow RFC 5054 section 2.6 and HAP: ``x = H(s | H(I | ":" | P))`` with the salt as
given (all 16 bytes, leading zeros kept), ``k = H(N | PAD(g))``, ``u = H(PAD(A) | PAD(B))``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class SrpGroup:
    """A safe prime ``N`` and generator ``g`` (RFC 5054 appendix A)."""

    name: str
    N: int  # the RFC's name
    g: int

    @property
    def size(self) -> int:
        """Length of N in bytes: the width of PAD() and of a stored verifier."""
        return (self.N.bit_length() + 7) // 8


RFC5054_1024 = SrpGroup(
    "RFC 5054 1024-bit",
    int(
        "EEAF0AB9ADB38DD69C33F80AFA8FC5E86072618775FF3C0B9EA2314C9C256576D674DF7496"
        "EA81D3383B4813D692C6E0E0D5D8E250B98BE48E495C1D6089DAD15DC7D7B46154D6B6CE8E"
        "F4AD69B15D4982559B297BCF1885C529F566660E57EC68EDBC3C05726CC02FD4CBF4976EAA"
        "9AFD5138FE8376435B9FC61D2FC0EB06E3",
        16,
    ),
    2,
)

RFC5054_3072 = SrpGroup(
    "RFC 5054 3072-bit",
    int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
        "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
        "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
        "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
        "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
        "955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"
        "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D226"
        "1AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
        "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
        16,
    ),
    5,
)


def _hash(name: str, *parts: bytes) -> bytes:
    h = hashlib.new(name)
    for part in parts:
        h.update(part)
    return h.digest()


def to_bytes(n: int, width: int) -> bytes:
    """``n`` big-endian, left-padded with zeros to ``width`` bytes (RFC 5054 PAD())."""
    return n.to_bytes(width, "big")


def compute_x(hash_name: str, salt: bytes, user: bytes, password: bytes) -> int:
    """The private key ``x = H(s | H(I | ":" | P))``; the salt's leading zeros count."""
    inner = _hash(hash_name, user, b":", password)
    return int.from_bytes(_hash(hash_name, salt, inner), "big")


def compute_verifier(
    group: SrpGroup, hash_name: str, salt: bytes, user: bytes, password: bytes
) -> int:
    """The password verifier ``v = g^x mod N``."""
    return pow(group.g, compute_x(hash_name, salt, user, password), group.N)


def compute_k(group: SrpGroup, hash_name: str) -> int:
    """The SRP-6a multiplier ``k = H(N | PAD(g))``."""
    return int.from_bytes(
        _hash(hash_name, to_bytes(group.N, group.size), to_bytes(group.g, group.size)), "big"
    )


def compute_u(group: SrpGroup, hash_name: str, a_pub: int, b_pub: int) -> int:
    """The scrambling parameter ``u = H(PAD(A) | PAD(B))``."""
    return int.from_bytes(
        _hash(hash_name, to_bytes(a_pub, group.size), to_bytes(b_pub, group.size)), "big"
    )


def client_public(group: SrpGroup, a: int) -> int:
    """``A = g^a mod N``."""
    return pow(group.g, a, group.N)


def server_public(group: SrpGroup, hash_name: str, verifier: int, b: int) -> int:
    """``B = k*v + g^b mod N``."""
    return (compute_k(group, hash_name) * verifier + pow(group.g, b, group.N)) % group.N


def client_premaster(group: SrpGroup, hash_name: str, x: int, a: int, b_pub: int, u: int) -> int:
    """The client's ``S = (B - k*g^x) ^ (a + u*x) mod N``."""
    k = compute_k(group, hash_name)
    base = (b_pub - k * pow(group.g, x, group.N)) % group.N
    return pow(base, a + u * x, group.N)


def server_premaster(group: SrpGroup, a_pub: int, verifier: int, u: int, b: int) -> int:
    """The server's (accessory's) ``S = (A * v^u) ^ b mod N``."""
    return pow(a_pub * pow(verifier, u, group.N) % group.N, b, group.N)
