"""RowEncoder (the fast path for validated lots) gives exactly encode_image's bytes, or None."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from station.errors import StationError
from station.nvs import NvsEntry, encode_image
from station.nvs.encoder import RowEncoder
from tests.nvs.test_random import KEYS, lots

Rows = list[tuple[str, str, str, str]]


def checked(rows: Rows, size: int, version: int, keys: Any = None) -> bytes | None:
    """encode_image's image, or None when it refuses the entries."""
    entries = [NvsEntry(k, t, e, v, "in.csv", n) for n, (k, t, e, v) in enumerate(rows, 2)]
    try:
        return encode_image(entries, size, version=version, keys=keys)
    except StationError:
        return None


def structure(rows: Rows) -> list[tuple[str, str]]:
    return [(k, "" if t == "namespace" else e) for k, t, e, _v in rows]


def values(rows: Rows) -> list[str]:
    return [v for _k, t, _e, v in rows if t != "namespace"]


def shorter(rows: Rows) -> Rows:
    """The same structure with other value lengths: halves of the texts (still valid values)."""
    out = []
    for k, t, e, v in rows:
        if e in ("string", "binary") or e.startswith("blob_"):
            v = v[: len(v) // 2]
        elif e == "hex2bin":
            v = v[: len(v) // 4 * 2]
        elif e == "base64":
            v = ""
        out.append((k, t, e, v))
    return out


@pytest.mark.slow
@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lots())
def test_same_bytes_as_encode_image(lot: tuple[int, int, bool, Rows, Any]) -> None:
    version, size, encrypt, rows, _expected = lot
    keys = KEYS if encrypt else None
    encoder = RowEncoder.create(structure(rows), version)
    assert encoder is not None
    # three devices of one lot: a second shape, then the first shape again (cached layout)
    for device in (rows, shorter(rows), rows):
        assert encoder.encode(values(device), size, keys) == checked(device, size, version, keys)


NS = ("ns", "namespace", "", "")


@pytest.mark.parametrize(
    "rows",
    [
        [("a", "data", "u8", "1")],  # no namespace first
        [NS, ("sta.ssid", "data", "string", "x")],  # Wi-Fi keys add value-dependent entries
        [NS, ("ap.ssid", "data", "string", "x")],
        [NS, ("a", "data", "u8", "1"), ("a", "data", "u8", "2")],  # a key twice
        [NS, ("a", "data", "U9", "1")],  # unknown encoding
        [NS, ("a" * 16, "data", "u8", "1")],  # key too long
    ],
)
def test_structures_left_to_the_checked_path(rows: Rows) -> None:
    assert RowEncoder.create(structure(rows)) is None


@pytest.mark.parametrize(
    ("encoding", "value", "size", "version"),
    [
        ("u8", "256", 0x6000, 2),
        ("i8", "x", 0x6000, 2),
        ("hex2bin", "abc", 0x6000, 2),
        ("hex2bin", "zz", 0x6000, 2),
        ("base64", "abc", 0x6000, 2),
        ("string", "x" * 4000, 0x6000, 2),
        ("hex2bin", "00" * 1985, 0x6000, 1),
        ("blob_fill(2;0xff)", "abc", 0x6000, 2),
        ("hex2bin", "00" * 9000, 0x3000, 2),  # does not fit
        ("u8", "1", 0x3001, 2),  # not a size
    ],
)
def test_values_left_to_the_checked_path(
    encoding: str, value: str, size: int, version: int
) -> None:
    rows = [NS, ("k", "data", encoding, value)]
    encoder = RowEncoder.create(structure(rows), version)
    assert encoder is not None
    assert encoder.encode(values(rows), size) is None
    assert checked(rows, size, version) is None  # and the checked path reports it


def test_good_values_after_a_refused_one() -> None:
    rows = [NS, ("k", "data", "hex2bin", "00" * 3000), ("n", "data", "u32", "7")]
    encoder = RowEncoder.create(structure(rows))
    assert encoder is not None
    assert encoder.encode(["00" * 9000, "7"], 0x3000) is None
    assert encoder.encode(values(rows), 0x3000) == checked(rows, 0x3000, 2)
    assert encoder.encode(["aa" * 3000, "8"], 0x3000) == checked(
        [NS, ("k", "data", "hex2bin", "aa" * 3000), ("n", "data", "u32", "8")], 0x3000, 2
    )
