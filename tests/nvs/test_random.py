"""Random entry lists: our image equals the official one byte for byte, and decodes back."""

from __future__ import annotations

import base64
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
from esp_idf_nvs_partition_gen import nvs_partition_gen as official_module
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from station.errors import StationError
from station.nvs import decode_image, encode_image, hmac_derive_keys, read_nvs_csv
from tests.nvs.conftest import assert_same
from tests.nvs.official import official_image, write_csv

KEYS = hmac_derive_keys(bytes(range(32)))  # fixed, so a failure can be replayed
RANGES = {
    "u8": (0, 2**8 - 1),
    "i8": (-(2**7), 2**7 - 1),
    "u16": (0, 2**16 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1),
    "i64": (-(2**63), 2**63 - 1),
}
key_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=15)
text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\0"), max_size=200
)


@st.composite
def entry(draw: Any, version: int) -> tuple[str, str, Any]:
    """(encoding, CSV value, expected decoded value)."""
    blob_max = 1984 if version == 1 else 6000
    kind = draw(
        st.sampled_from(
            [
                *RANGES,
                "string",
                "bigstring",
                "bigstring",
                "hex2bin",
                "hex2bin",
                "base64",
                "binary",
                "fill",
            ]
        )
    )
    if kind in RANGES:
        n = draw(st.integers(*RANGES[kind]))
        return kind, str(n), n
    if kind == "string":
        s = draw(text)
        return "string", s, s
    if kind == "bigstring":
        top = 1983 if version == 1 else 3967
        s = "x" * draw(st.one_of(st.integers(top - 200, top), st.integers(0, top)))
        return "string", s, s
    if kind == "hex2bin":
        n = draw(
            st.one_of(st.integers(max(0, blob_max - 2000), blob_max), st.integers(0, blob_max))
        )
        b = hashlib.shake_128(str(draw(st.integers(0, 9))).encode()).digest(n)
        return "hex2bin", b.hex(), b
    if kind == "base64":
        b = draw(st.binary(max_size=600))
        return "base64", base64.b64encode(b).decode(), b
    if kind == "binary":
        s = draw(st.text("abcdefghij ,;:\"'0123456789", max_size=300))
        return "binary", s, s.encode()
    n = draw(st.integers(0, 64))
    s = draw(st.text("abcdef", max_size=n))
    pad = draw(st.integers(0, 255))
    return f"blob_fill({n};0x{pad:02x})", s, s.encode() + bytes([pad]) * (n - len(s))


@st.composite
def lots(draw: Any) -> tuple[int, int, bool, list[tuple[str, str, str, str]], dict]:
    version = draw(st.sampled_from([1, 2]))
    size = draw(st.sampled_from([0x2000, 0x3000, 0x6000, 0x8000, 0x10000, 0x10000]))
    rows: list[tuple[str, str, str, str]] = []
    expected: dict[str, dict[str, Any]] = {}
    for ns in draw(st.lists(key_names, min_size=1, max_size=3, unique=True)):
        rows.append((ns, "namespace", "", ""))
        expected[ns] = {}
        prefix = draw(st.text("abcxyz_", max_size=9))
        for key in [f"{prefix}{i}" for i in range(draw(st.integers(0, 70)))]:
            enc, value, decoded = draw(entry(version))
            rows.append((key, "data", enc, value))
            expected[ns][key] = decoded
    return version, size, draw(st.booleans()), rows, expected


@pytest.mark.slow
@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lots())
def test_random_lots_match_official(lot: tuple[int, int, bool, list, dict]) -> None:
    version, size, encrypt, rows, expected = lot
    keys = KEYS if encrypt else None
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        csv_path = write_csv(tmp / "in.csv", rows)
        keyfile = None
        if keys:
            keyfile = tmp / "keys.bin"
            from station.nvs import key_partition_image

            keyfile.write_bytes(key_partition_image(keys))
        try:
            theirs = official_image(csv_path, size, version, inputkey=keyfile, outdir=tmp)
        except official_module.InsufficientSizeError:
            event("does not fit")
            with pytest.raises(StationError, match="does not fit"):
                encode_image(read_nvs_csv(csv_path), size, version=version, keys=keys)
            return
        ours = encode_image(read_nvs_csv(csv_path), size, version=version, keys=keys)
    assert_same(theirs, ours, size)
    event(f"{sum(b != 0xFF for b in ours[::4096])} pages used")
    image = decode_image(ours, keys)
    assert image.errors == []
    assert image.as_dict() == expected
