"""Reading images back: values, page states, damage reported (not raised), decryption."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.nvs import NvsEntry, decode_image, encode_image, generate_keys
from tests.nvs.official import official_image, write_csv

NS = ("storage", "namespace", "", "")
ROWS = [
    NS,
    ("u8", "data", "u8", "200"),
    ("i8", "data", "i8", "-5"),
    ("u16", "data", "u16", "60000"),
    ("i16", "data", "i16", "-30000"),
    ("u32", "data", "u32", "4000000000"),
    ("i32", "data", "i32", "-2000000000"),
    ("u64", "data", "u64", "18000000000000000000"),
    ("i64", "data", "i64", "-9000000000000000000"),
    ("str", "data", "string", "héllo"),
    ("hex", "data", "hex2bin", "deadbeef" * 600),
    ("b64", "data", "base64", base64.b64encode(b"abc").decode()),
    ("wifi", "namespace", "", ""),
    ("bin", "data", "binary", "raw"),
]
EXPECTED = {
    "storage": {
        "u8": 200,
        "i8": -5,
        "u16": 60000,
        "i16": -30000,
        "u32": 4000000000,
        "i32": -2000000000,
        "u64": 18000000000000000000,
        "i64": -9000000000000000000,
        "str": "héllo",
        "hex": bytes.fromhex("deadbeef" * 600),
        "b64": b"abc",
    },
    "wifi": {"bin": b"raw"},
}


@pytest.mark.parametrize("version", [1, 2])
def test_decoding_official_images_gives_the_input(tmp_path: Path, version: int) -> None:
    rows = ROWS if version == 2 else [r for r in ROWS if r[0] != "hex"]
    expected = {ns: dict(v) for ns, v in EXPECTED.items()}
    if version == 1:
        del expected["storage"]["hex"]
    image = decode_image(official_image(write_csv(tmp_path / "in.csv", rows), 0x6000, version))
    assert image.errors == []
    assert image.as_dict() == expected
    assert {p.version for p in image.pages if p.state != "empty"} == {version}
    types = {i.key: i.type for i in image.items}
    assert (
        types["u16"] == "u16"
        and types["str"] == "string"
        and types["hex" if version == 2 else "b64"] == "blob"
    )


def test_item_positions_and_pages() -> None:
    image = decode_image(
        encode_image(
            [
                NvsEntry(*NS),
                NvsEntry("a", "data", "u8", "1"),
                NvsEntry("s", "data", "string", "x" * 40),
            ],
            0x4000,
        )
    )
    assert image.namespaces == {1: "storage"}
    assert [(i.key, i.page, i.entry) for i in image.items] == [("a", 0, 1), ("s", 0, 2)]
    p0 = image.pages[0]
    assert (p0.state, p0.seq, p0.version, p0.header_ok, p0.used, p0.erased) == (
        "active",
        0,
        2,
        True,
        5,
        0,
    )
    assert [p.state for p in image.pages[1:]] == ["empty", "empty", "empty"]


def encoded(rows: list[NvsEntry], size: int = 0x4000) -> bytearray:
    return bytearray(encode_image(rows, size))


def test_damaged_item_header_is_reported() -> None:
    data = encoded(
        [NvsEntry(*NS), NvsEntry("a", "data", "u8", "1"), NvsEntry("b", "data", "u8", "2")]
    )
    data[64 + 32 + 24] ^= 0xFF  # the value of "a"
    image = decode_image(bytes(data))
    assert image.errors == ["page 0 entry 1: item header CRC mismatch"]
    assert image.as_dict() == {"storage": {"b": 2}}


def test_damaged_string_data_is_reported() -> None:
    data = encoded([NvsEntry(*NS), NvsEntry("s", "data", "string", "hello")])
    data[64 + 64] ^= 0x01
    image = decode_image(bytes(data))
    assert image.errors == ["page 0 entry 1: key 's': data CRC mismatch"]


def test_damaged_page_header_is_reported() -> None:
    data = encoded([NvsEntry(*NS)])
    data[8] = 0x00  # the version byte, covered by the header CRC
    image = decode_image(bytes(data))
    assert image.errors == [
        "page 0: header CRC mismatch; the firmware treats the page as corrupt, ignores it and "
        "erases it when it needs the space; its 1 written entries are ignored"
    ]
    assert image.pages[0].header_ok is False and image.pages[0].state == "corrupt"
    assert image.as_dict() == {}


def test_erased_entries_and_missing_chunks() -> None:
    blob = bytes(range(256)) * 20  # two chunks
    data = encoded([NvsEntry(*NS), NvsEntry("b", "data", "hex2bin", blob.hex())], 0x5000)
    data[32] &= 0b11110011  # entry 1 (the first chunk's header) marked erased
    image = decode_image(bytes(data))
    assert image.pages[0].erased == 1
    assert any("blob chunk 0 is missing" in e for e in image.errors)


def test_truncated_and_uninitialised_pages() -> None:
    data = encoded([NvsEntry(*NS)])
    assert decode_image(bytes(data[:5000])).errors[0].startswith("image is 5000 bytes")
    data[4096 + 100] = 0
    assert (
        "page 1: marked uninitialised but holds data; the firmware treats it as corrupt and "
        "ignores it"
    ) in decode_image(bytes(data)).errors


def test_encrypted_image() -> None:
    keys = generate_keys()
    rows = [
        NvsEntry(*NS),
        NvsEntry("s", "data", "string", "top secret"),
        NvsEntry("b", "data", "hex2bin", "00" * 5000),
    ]
    data = encode_image(rows, 0x5000, keys=keys)
    assert b"top secret" not in data
    image = decode_image(data, keys)
    assert image.encrypted and image.errors == []
    assert image.as_dict() == {"storage": {"s": "top secret", "b": b"\0" * 5000}}
    plain = decode_image(data)
    assert plain.errors[-1] == (
        "most entries fail their CRC: is the image encrypted? (give the key file)"
    )


def test_json_has_every_field() -> None:
    image = decode_image(
        encode_image(
            [
                NvsEntry(*NS),
                NvsEntry("b", "data", "hex2bin", "0aff"),
                NvsEntry("n", "data", "i8", "-1"),
            ],
            0x3000,
        )
    )
    doc = json.loads(json.dumps(image.to_json()))
    assert doc["items"] == [
        {
            "namespace": "storage",
            "key": "b",
            "type": "blob",
            "value": "0aff",
            "page": 0,
            "entry": 3,
            "span": 1,
            "ns_index": 1,
            "chunks": 1,
            "parts": [{"chunk": 0, "page": 0, "entry": 1, "span": 2, "size": 2}],
            "blob_index": {"size": 2, "chunk_count": 1, "chunk_start": 0},
        },
        {
            "namespace": "storage",
            "key": "n",
            "type": "i8",
            "value": -1,
            "page": 0,
            "entry": 4,
            "span": 1,
            "ns_index": 1,
            "chunks": 0,
            "parts": [],
            "blob_index": None,
        },
    ]
    assert doc["namespaces"] == {"1": "storage"}
    assert doc["pages"][0] == {
        "index": 0,
        "state": "active",
        "seq": 0,
        "version": 2,
        "header_ok": True,
        "used": 5,
        "erased": 0,
    }
    assert doc["errors"] == [] and doc["size"] == 0x3000 and doc["encrypted"] is False


_SAMPLE = encode_image(
    [
        NvsEntry(*NS),
        NvsEntry("s", "data", "string", "x" * 300),
        NvsEntry("b", "data", "hex2bin", "ab" * 5000),
        NvsEntry("n", "data", "u32", "7"),
    ],
    0x6000,
)


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.lists(st.tuples(st.integers(0, 3 * 4096 - 1), st.integers(0, 255)), max_size=40),
    st.binary(max_size=300),
)
def test_decoder_never_raises(flips: list[tuple[int, int]], noise: bytes) -> None:
    """Foreign or damaged flash is reported in ``errors``, never raised."""
    data = bytearray(_SAMPLE)
    for offset, value in flips:
        data[offset] = value
    data[4096 : 4096 + len(noise)] = noise
    image = decode_image(bytes(data))
    image.to_json()
    image.as_dict()
    decode_image(bytes(data), KEYS)
    decode_image(noise * 50)


KEYS = generate_keys()


def _with_seq(page: bytes, seq: int) -> bytes:
    """A page with another sequence number (and its header CRC made right again)."""
    import struct
    import zlib

    page = bytearray(page)
    struct.pack_into("<I", page, 4, seq)
    struct.pack_into("<I", page, 28, zlib.crc32(bytes(page[4:28]), 0xFFFFFFFF))
    return bytes(page)


def test_pages_are_read_in_sequence_order_and_the_newer_copy_counts() -> None:
    """Firmware writes a new copy of a value before erasing the old one; power lost in between
    leaves both. NVS uses pages by sequence number, not by place in flash."""
    old = encode_image([NvsEntry(*NS), NvsEntry("a", "data", "u8", "1")], 0x3000)
    new = encode_image([NvsEntry(*NS), NvsEntry("a", "data", "u8", "2")], 0x3000)
    # the newer page (seq 5) sits first in flash, the older one (seq 0) after it
    data = _with_seq(new[:4096], 5) + old[:4096] + b"\xff" * 4096
    image = decode_image(data)
    assert image.as_dict() == {"storage": {"a": 2}}
    assert [(i.key, i.value, i.page) for i in image.items] == [("a", 2, 0)]
    assert image.errors == [
        "page 0 entry 0: namespace 'storage' is written twice (also at page 1 entry 0, seq 0); "
        "this newer copy (seq 5) counts",
        "page 0 entry 1: key 'a' is written twice (also at page 1 entry 1, seq 0); "
        "this newer copy (seq 5) counts",
    ]
    # the same pages in the other order of sequence: the other copy counts
    swapped = decode_image(new[:4096] + _with_seq(old[:4096], 5) + b"\xff" * 4096)
    assert swapped.as_dict() == {"storage": {"a": 1}}


def test_a_blob_chunk_written_twice_keeps_the_newer_copy() -> None:
    blob_old, blob_new = bytes(100), bytes(range(100))
    old = encode_image([NvsEntry(*NS), NvsEntry("b", "data", "hex2bin", blob_old.hex())], 0x3000)
    new = encode_image([NvsEntry(*NS), NvsEntry("b", "data", "hex2bin", blob_new.hex())], 0x3000)
    image = decode_image(old[:4096] + _with_seq(new[:4096], 1) + b"\xff" * 4096)
    assert image.as_dict() == {"storage": {"b": blob_new}}
    assert any("blob chunk 0 is written twice" in e for e in image.errors)
