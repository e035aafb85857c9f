"""Checks of one value against its encoding, fast enough for every cell of a 100,000-row lot.

Each check returns ``(message, size)``: ``message`` says what is wrong (None when the value is
good) and ``size`` is the number of bytes the value takes in NVS, which decides where items land
on the pages. Length limits and page placement are left to the codec (``check_entries``), which
sees one device per distinct combination of sizes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

INT_RANGES: dict[str, tuple[int, int]] = {
    "u8": (0, 0xFF),
    "i8": (-0x80, 0x7F),
    "u16": (0, 0xFFFF),
    "i16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFF_FFFF),
    "i32": (-0x8000_0000, 0x7FFF_FFFF),
    "u64": (0, 0xFFFF_FFFF_FFFF_FFFF),
    "i64": (-0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF),
}
VARLEN_ENCODINGS = ("string", "hex2bin", "base64", "binary")
ENCODINGS = (*INT_RANGES, *VARLEN_ENCODINGS)
# what mfg_gen.py itself accepts in a config file (it rejects i16, u64 and i64)
MFG_GEN_ENCODINGS = ("string", "binary", "hex2bin", "u8", "i8", "u16", "u32", "i32", "base64")
FILL_RE = re.compile(r"(blob_fill|blob_sz_fill)\(([0-9]+);(0x[0-9a-f]{2})\)\Z")
MAX_BLOB = 508_000  # as station.files.MAX_BLOB (NVS's largest blob); bounds blob_fill(N;…)
_INT_RE = re.compile(r"\s*[+-]?(?:[0-9]+|0[xX][0-9a-fA-F]+)\s*\Z")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})*\Z")
_SPACE_RE = re.compile(r"\s+")

Check = Callable[[str], "tuple[str | None, int]"]


def normal_encoding(encoding: str) -> str:
    """The encoding as the codec reads it: case and outer spaces do not matter."""
    return encoding.strip().lower()


def encoding_problem(encoding: str) -> str | None:
    """What is wrong with an encoding name (already normalised), or None."""
    if encoding in ENCODINGS:
        return None
    fill = FILL_RE.match(encoding)
    if fill:
        if int(fill.group(2)) > MAX_BLOB:
            return (
                f"{fill.group(1)} length has {len(fill.group(2))} digits: NVS holds at most "
                f"{MAX_BLOB} bytes in one blob"
            )
        return None
    if encoding.startswith(("blob_fill", "blob_sz_fill")):
        return f"bad encoding {encoding!r}: write blob_fill(N;0xPP) or blob_sz_fill(N;0xPP)"
    if encoding == "":
        return (
            "the encoding is missing (u8 i8 u16 i16 u32 i32 u64 i64 string hex2bin base64 binary)"
        )
    return (
        f"unknown encoding {encoding!r}: use one of u8 i8 u16 i16 u32 i32 u64 i64 string "
        "hex2bin base64 binary, blob_fill(N;0xPP) or blob_sz_fill(N;0xPP)"
    )


def _int_check(encoding: str) -> Check:
    low, high = INT_RANGES[encoding]

    def check(value: str) -> tuple[str | None, int]:
        if not _INT_RE.match(value):
            if value.strip() == "":
                return f"empty value: {encoding} needs a whole number", 0
            return f"not a whole number, {_chars(value)} ({encoding} takes 42, -7 or 0x2A)", 0
        number = int(value.strip(), 0 if "x" in value.lower() else 10)
        if not low <= number <= high:
            side = "too large" if number > high else "too small"
            return f"{side} for {encoding} ({low}..{high})", 0
        return None, 0

    return check


def _chars(value: str) -> str:
    """The shape of a value for a message: its length, never the value (it may be a secret)."""
    return f"{len(value)} character{'s' if len(value) != 1 else ''}"


def _string(value: str) -> tuple[str | None, int]:
    return None, (len(value) if value.isascii() else len(value.encode("utf-8"))) + 1


def _binary(value: str) -> tuple[str | None, int]:
    return None, len(value.encode("utf-8"))


def _hex2bin(value: str) -> tuple[str | None, int]:
    text = value.strip()
    if _HEX_RE.match(text):
        return None, len(text) // 2
    if len(text) % 2:
        return f"odd number of hex digits ({len(text)}): hex2bin needs whole bytes", 0
    bad = next(i for i, c in enumerate(text) if c not in "0123456789abcdefABCDEF")
    return f"character {bad + 1} is not a hex digit (hex2bin takes 0-9 and a-f only)", 0


_B64_RE = re.compile(r"[A-Za-z0-9+/]*(={0,2})\Z")


def _base64(value: str) -> tuple[str | None, int]:
    match = _B64_RE.match(value)
    if match and len(value) % 4 == 0:  # the usual case: no white space, no decoding needed
        return None, len(value) // 4 * 3 - len(match.group(1))
    try:
        return None, len(base64.b64decode(_SPACE_RE.sub("", value), validate=True))
    except (binascii.Error, ValueError):
        return "not valid base64 (A-Z a-z 0-9 + / and = padding only)", 0


def _fill_check(encoding: str) -> Check:
    match = FILL_RE.match(encoding)
    assert match is not None
    length = int(match.group(2))
    size = length + (4 if match.group(1) == "blob_sz_fill" else 0)

    def check(value: str) -> tuple[str | None, int]:
        used = len(value.encode("utf-8"))
        if used > length:
            return f"value is {used} bytes, longer than the {length} of {encoding}", size
        return None, size

    return check


def value_check(encoding: str) -> Check:
    """The check for a (valid) encoding name."""
    if encoding in INT_RANGES:
        return _int_check(encoding)
    if encoding.startswith(("blob_fill", "blob_sz_fill")):
        return _fill_check(encoding)
    return {"string": _string, "binary": _binary, "hex2bin": _hex2bin, "base64": _base64}[encoding]


def _filled(encoding: str, data: bytes) -> bytes:
    match = FILL_RE.match(encoding)
    assert match is not None
    length, pad = int(match.group(2)), bytes((int(match.group(3), 16),))
    filled = data + pad * (length - len(data))
    if match.group(1) == "blob_sz_fill":
        filled = len(data).to_bytes(4, "little") + filled
    return filled


def file_content_check(encoding: str, data: bytes) -> tuple[str | None, int]:
    """Checks the bytes of a type-file value as nvs_partition_gen would read them."""
    if encoding == "binary":
        return None, len(data)
    if FILL_RE.match(encoding):
        size = len(_filled(encoding, b""))
        length = int(FILL_RE.match(encoding).group(2))  # type: ignore[union-attr]
        if len(data) > length:
            return f"the file is {len(data)} bytes, longer than the {length} of {encoding}", size
        return None, size
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"the file is not UTF-8 text, as encoding {encoding} needs (use binary)", 0
    message, size = (_hex2bin if encoding == "hex2bin" else value_check(encoding))(text)
    return (f"file content: {message}" if message else None), size


def file_entry_encoding(encoding: str) -> str:
    """The encoding of the data entry that stands for a type-file value (file_entry_value)."""
    if encoding in ("binary", "hex2bin") or FILL_RE.match(encoding):
        return "hex2bin"
    return encoding


def file_entry_value(encoding: str, data: bytes) -> tuple[str, str]:
    """(encoding, value) of a data entry that encodes exactly like a file entry with these bytes."""
    if encoding == "binary":
        return "hex2bin", data.hex()
    if FILL_RE.match(encoding):
        return "hex2bin", _filled(encoding, data).hex()
    text = data.decode("utf-8")
    if encoding == "hex2bin":
        return "hex2bin", text.strip()
    return encoding, text
