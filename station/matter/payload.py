"""Matter commissioning values: passcode, discriminator and the onboarding payload.

The QR string is ``MT:`` + Base-38 of the packed setup payload (Matter core spec 5.1.3), the
manual pairing code is 11 digits (21 with VID/PID for a non-standard commissioning flow) ending in
a Verhoeff check digit (5.1.4). Both decode back, so tests and labels can check what they print.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

# Matter core spec 5.1.7.1: passcodes a device must never use
INVALID_PASSCODES = frozenset(
    (
        0,
        11111111,
        22222222,
        33333333,
        44444444,
        55555555,
        66666666,
        77777777,
        88888888,
        99999999,
        12345678,
        87654321,
    )
)
PASSCODE_MIN, PASSCODE_MAX = 1, 99999998
DISCRIMINATOR_MAX = 0xFFF
# discovery capabilities: bit 1 BLE, 2 on-network, 3 Wi-Fi PAF, 4 NFC, 5 Thread
DISCOVERY_MASK = 0x3E


class CommissioningFlow(enum.IntEnum):
    STANDARD = 0
    USER_INTENT = 1
    CUSTOM = 2


def passcode_problem(passcode: int) -> str | None:
    """Why ``passcode`` may not be used, or None."""
    if not PASSCODE_MIN <= passcode <= PASSCODE_MAX:
        return f"passcode {passcode} is out of range ({PASSCODE_MIN}..{PASSCODE_MAX})"
    if passcode in INVALID_PASSCODES:
        return f"passcode {passcode:08d} is one the Matter spec forbids (too easy to guess)"
    return None


def generate_passcode() -> int:
    """A passcode from the operating system's CSPRNG, never one of the forbidden ones."""
    while True:
        passcode = PASSCODE_MIN + secrets.randbelow(PASSCODE_MAX - PASSCODE_MIN + 1)
        if passcode not in INVALID_PASSCODES:
            return passcode


def generate_discriminator() -> int:
    """A random 12-bit discriminator."""
    return secrets.randbelow(DISCRIMINATOR_MAX + 1)


def discovery_problem(mode: int) -> str | None:
    if mode <= 0 or mode & ~DISCOVERY_MASK:
        return (
            f"discovery mode {mode} is not allowed: use 2 (BLE), 4 (on-network), 8 (Wi-Fi PAF), "
            "16 (NFC), 32 (Thread) or a sum of them (e.g. 6 = 2 + 4)"
        )
    return None


# ---- Base-38 -------------------------------------------------------------------------------

_B38 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-."
_B38_INDEX = {c: i for i, c in enumerate(_B38)}
_B38_CHARS = {1: 2, 2: 4, 3: 5}  # bytes in a chunk -> characters


def base38_encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data), 3):
        chunk = data[i : i + 3]
        value = int.from_bytes(chunk, "little")
        for _ in range(_B38_CHARS[len(chunk)]):
            value, digit = divmod(value, 38)
            out.append(_B38[digit])
    return "".join(out)


def base38_decode(text: str) -> bytes:
    out = bytearray()
    chars_bytes = {v: k for k, v in _B38_CHARS.items()}
    i = 0
    while i < len(text):
        n = min(5, len(text) - i)
        if n not in chars_bytes:
            raise ValueError(f"bad Base-38 length {len(text)}")
        value = 0
        for c in reversed(text[i : i + n]):
            if c not in _B38_INDEX:
                raise ValueError(f"not a Base-38 character: {c!r}")
            value = value * 38 + _B38_INDEX[c]
        nbytes = chars_bytes[n]
        if value >= 1 << (8 * nbytes):
            raise ValueError("Base-38 chunk out of range")
        out += value.to_bytes(nbytes, "little")
        i += n
    return bytes(out)


# ---- Verhoeff --------------------------------------------------------------------------------

_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]
_INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_check_digit(digits: str) -> str:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[(i + 1) % 8][int(ch)]]
    return str(_INV[c])


def verhoeff_valid(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


# ---- the payload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupPayload:
    """What a commissioner needs: the codes are computed from it, and parse back into it."""

    discriminator: int
    passcode: int
    vendor_id: int = 0
    product_id: int = 0
    flow: CommissioningFlow = CommissioningFlow.STANDARD
    discovery: int = 2  # BLE

    def __repr__(self) -> str:  # the passcode is a secret
        return (
            f"SetupPayload(discriminator={self.discriminator}, passcode=<secret>, "
            f"vendor_id={self.vendor_id:#06x}, product_id={self.product_id:#06x}, "
            f"flow={self.flow.name}, discovery={self.discovery})"
        )

    def qr_code(self) -> str:
        """``MT:`` + Base-38 of the 88-bit payload (version 0, no TLV data)."""
        bits = (
            0  # version, 3 bits
            | self.vendor_id << 3
            | self.product_id << 19
            | int(self.flow) << 35
            | self.discovery << 37
            | self.discriminator << 45
            | self.passcode << 57
            # 4 padding bits at 84..87
        )
        return "MT:" + base38_encode(bits.to_bytes(11, "little"))

    def manual_code(self) -> str:
        """The 11-digit code (21 digits with VID and PID when the flow is not standard)."""
        short = self.discriminator >> 8
        vid_pid = self.flow != CommissioningFlow.STANDARD
        chunk1 = (short >> 2) | (int(vid_pid) << 2)
        chunk2 = (self.passcode & 0x3FFF) | ((short & 0x3) << 14)
        chunk3 = self.passcode >> 14
        digits = f"{chunk1:01d}{chunk2:05d}{chunk3:04d}"
        if vid_pid:
            digits += f"{self.vendor_id:05d}{self.product_id:05d}"
        return digits + verhoeff_check_digit(digits)


def format_manual_code(code: str) -> str:
    """As printed on labels: 1234-567-8901 (long codes over two lines, as the tool writes them)."""
    if len(code) == 11:
        return f"{code[:4]}-{code[4:7]}-{code[7:]}"
    first = f"{code[:4]}-{code[4:7]}-{code[7:11]}"
    return f"{first}\n{code[11:15]}-{code[15:18]}-{code[18:20]}-{code[20:]}"


def parse_qr_code(text: str) -> SetupPayload:
    """The payload of an ``MT:`` string; ValueError if it is not one."""
    if not text.startswith("MT:"):
        raise ValueError("a Matter QR payload starts with MT:")
    data = base38_decode(text[3:])
    if len(data) < 11:
        raise ValueError("Matter QR payload too short")
    bits = int.from_bytes(data[:11], "little")
    if bits & 0x7:
        raise ValueError(f"unknown QR payload version {bits & 0x7}")
    return SetupPayload(
        vendor_id=(bits >> 3) & 0xFFFF,
        product_id=(bits >> 19) & 0xFFFF,
        flow=CommissioningFlow((bits >> 35) & 0x3),
        discovery=(bits >> 37) & 0xFF,
        discriminator=(bits >> 45) & 0xFFF,
        passcode=(bits >> 57) & 0x7FFFFFF,
    )


@dataclass(frozen=True)
class ManualCode:
    """What a manual pairing code carries: only the top 4 bits of the discriminator."""

    short_discriminator: int
    passcode: int
    vendor_id: int | None = None
    product_id: int | None = None


def parse_manual_code(text: str) -> ManualCode:
    """Digits of a manual pairing code (dashes and spaces ignored); ValueError if invalid."""
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) not in (11, 21) or any(c not in "0123456789-\n " for c in text):
        raise ValueError("a manual pairing code has 11 or 21 digits")
    if not verhoeff_valid(digits):
        raise ValueError("check digit does not match")
    chunk1, chunk2, chunk3 = int(digits[0]), int(digits[1:6]), int(digits[6:10])
    vid_pid = bool(chunk1 & 0x4)
    if vid_pid != (len(digits) == 21):
        raise ValueError("length does not match the VID/PID flag")
    short = ((chunk1 & 0x3) << 2) | (chunk2 >> 14)
    passcode = (chunk2 & 0x3FFF) | (chunk3 << 14)
    if vid_pid:
        return ManualCode(short, passcode, int(digits[10:15]), int(digits[15:20]))
    return ManualCode(short, passcode)
