"""Byte-for-byte comparison with esp-idf-nvs-partition-gen 0.3.0 on hand-picked boundaries."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from station.nvs import decode_image, encode_image, generate_keys, hmac_derive_keys, read_nvs_csv
from tests.nvs.official import official_image

NS = ("storage", "namespace", "", "")


def u8s(n: int, prefix: str = "k") -> list[tuple[str, str, str, str]]:
    """``n`` one-entry items, to move the next item to entry ``n + 1`` of the page."""
    return [(f"{prefix}{i}", "data", "u8", str(i % 256)) for i in range(n)]


PRIMITIVES = [
    ("a", "data", "u8", "0"),
    ("b", "data", "u8", "255"),
    ("c", "data", "i8", "-128"),
    ("d", "data", "i8", "127"),
    ("e", "data", "u16", "65535"),
    ("f", "data", "i16", "-32768"),
    ("g", "data", "i16", "32767"),
    ("h", "data", "u32", "4294967295"),
    ("i", "data", "i32", "-2147483648"),
    ("j", "data", "u64", "18446744073709551615"),
    ("k", "data", "i64", "-9223372036854775808"),
    ("l", "data", "i64", "9223372036854775807"),
    ("m", "data", "u32", " 42 "),
]


@pytest.mark.parametrize("version", [1, 2])
def test_every_primitive(compare: Callable[..., bytes], version: int) -> None:
    compare([NS, *PRIMITIVES], version=version)


@pytest.mark.parametrize("length", [0, 1, 30, 31, 32, 33, 100, 1983])
@pytest.mark.parametrize("version", [1, 2])
def test_strings(compare: Callable[..., bytes], length: int, version: int) -> None:
    compare(
        [NS, ("s", "data", "string", "x" * length), ("t", "data", "string", "héllo ✓")],
        version=version,
    )


# after the namespace entry (1), a string of span S fits its page only if 1 + S < 126
@pytest.mark.parametrize("length", [3935, 3936, 3967, 3968 - 33, 3999 - 32 * 3])
def test_string_page_boundary(compare: Callable[..., bytes], length: int) -> None:
    image = compare([NS, ("s", "data", "string", "y" * length), ("t", "data", "u8", "1")])
    assert decode_image(image).as_dict()["storage"]["s"] == "y" * length


@pytest.mark.parametrize("before", [0, 60, 90, 110, 120, 123, 124, 125])
def test_strings_after_many_items(compare: Callable[..., bytes], before: int) -> None:
    compare([NS, *u8s(before), ("s", "data", "string", "z" * 70), ("t", "data", "u8", "2")])


def test_page_of_primitives_rolls_over(compare: Callable[..., bytes]) -> None:
    image = compare([NS, *u8s(300)], size=0x5000)
    assert [p.state for p in decode_image(image).pages] == [
        "full",
        "full",
        "active",
        "empty",
        "empty",
    ]


@pytest.mark.parametrize("before", [0, 1, 100, 122, 123, 124, 125])
@pytest.mark.parametrize("length", [0, 1, 32, 95, 4000, 4001, 8000, 12345])
def test_version2_blob_chunks(compare: Callable[..., bytes], before: int, length: int) -> None:
    data = bytes(range(256)) * (length // 256 + 1)
    rows = [
        NS,
        *u8s(before),
        ("blob", "data", "hex2bin", data[:length].hex()),
        ("after", "data", "u8", "7"),
    ]
    image = compare(rows, size=0x8000)
    assert decode_image(image).as_dict()["storage"]["blob"] == data[:length]


@pytest.mark.parametrize("before", [0, 61, 62, 63, 100, 125])
@pytest.mark.parametrize("length", [1, 1952, 1953, 1984])
def test_version1_blobs(compare: Callable[..., bytes], before: int, length: int) -> None:
    rows = [NS, *u8s(before), ("blob", "data", "hex2bin", ("ab" * length))]
    image = compare(rows, version=1)
    assert decode_image(image).as_dict()["storage"]["blob"] == b"\xab" * length


@pytest.mark.parametrize("version", [1, 2])
def test_blob_encodings(compare: Callable[..., bytes], version: int) -> None:
    rows = [
        NS,
        ("hex", "data", "hex2bin", "00ffAAbb"),
        ("hexsp", "data", "hex2bin", "  0102  "),
        ("hex0", "data", "hex2bin", ""),
        ("b64", "data", "base64", base64.b64encode(b"\x00\x01binary\xff").decode()),
        ("b64pad", "data", "base64", "YQ=="),
        ("bin", "data", "binary", "plain ascii bytes"),
        ("fill", "data", "blob_fill(16;0xff)", "abc"),
        ("fill0", "data", "blob_fill(4;0x00)", ""),
        ("fullfill", "data", "blob_fill(3;0x5A)", "xyz"),
        ("szfill", "data", "blob_sz_fill(8;0x00)", "hello"),
        ("szfill0", "data", "blob_sz_fill(8;0xee)", ""),
    ]
    image = compare(rows, version=version)
    values = decode_image(image).as_dict()["storage"]
    assert values["hex"] == b"\x00\xff\xaa\xbb"
    assert values["fill"] == b"abc" + b"\xff" * 13
    assert values["szfill"] == b"\x05\0\0\0hello\0\0\0"
    assert values["szfill0"] == b"\0\0\0\0" + b"\xee" * 8


@pytest.mark.parametrize("version", [1, 2])
def test_file_entries(compare: Callable[..., bytes], tmp_path: Path, version: int) -> None:
    (tmp_path / "cert.pem").write_text("-----BEGIN CERT-----\nabc\n-----END CERT-----\n")
    (tmp_path / "raw.bin").write_bytes(bytes(range(256)) * 3)
    (tmp_path / "key.hex").write_text("a1b2c3d4\n")
    (tmp_path / "key.b64").write_text(base64.b64encode(b"secret" * 10).decode() + "\n")
    (tmp_path / "n.txt").write_text("1234\n")
    rows = [
        NS,
        ("cert", "file", "string", "cert.pem"),
        ("raw", "file", "binary", "raw.bin"),
        ("hexkey", "file", "hex2bin", "key.hex"),
        ("b64key", "file", "base64", "key.b64"),
        ("num", "file", "u32", "n.txt"),
    ]
    image = compare(rows, version=version)
    values = decode_image(image).as_dict()["storage"]
    assert values["raw"] == bytes(range(256)) * 3
    assert values["b64key"] == b"secret" * 10
    assert values["num"] == 1234


def test_wifi_side_entries(compare: Callable[..., bytes]) -> None:
    rows = [
        ("nvs.net80211", "namespace", "", ""),
        ("sta.ssid", "data", "binary", "my-network"),
        ("sta.pswd", "data", "binary", "password123"),
        ("ap.ssid", "data", "binary", "station-ap"),
        ("ap.authmode", "data", "u8", "3"),
        ("ap.passwd", "data", "binary", "appassword"),
    ]
    image = compare(rows)
    keys = list(decode_image(image).as_dict()["nvs.net80211"])
    assert keys == [
        "sta.ssid",
        "sta.apinfo",
        "sta.pmk",
        "sta.apsw",
        "sta.pswd",
        "ap.ssid",
        "ap.authmode",
        "ap.pmk_info",
        "ap.passwd",
    ]


def test_open_ap_gets_no_pmk(compare: Callable[..., bytes]) -> None:
    rows = [
        NS,
        ("ap.ssid", "data", "string", "x"),
        ("ap.passwd", "data", "string", "y"),
        ("ap.authmode", "data", "u8", "0"),
    ]
    image = compare(rows)
    assert "ap.pmk_info" not in decode_image(image).as_dict()["storage"]


def test_several_namespaces(compare: Callable[..., bytes]) -> None:
    rows = [
        NS,
        ("a", "data", "u8", "1"),
        ("other", "namespace", "", ""),
        ("a", "data", "u8", "2"),
        ("third", "namespace", "", ""),
        ("s", "data", "string", "x"),
    ]
    image = compare(rows)
    assert decode_image(image).as_dict() == {
        "storage": {"a": 1},
        "other": {"a": 2},
        "third": {"s": "x"},
    }


@pytest.mark.parametrize("size", [0x2000, 0x3000, 0x4000, 0x10000])
@pytest.mark.parametrize("version", [1, 2])
def test_partition_sizes(compare: Callable[..., bytes], size: int, version: int) -> None:
    compare([NS, *u8s(130), ("s", "data", "string", "v" * 500)], size=size, version=version)


def test_read_only_partition_uses_every_page(compare: Callable[..., bytes]) -> None:
    image = compare([NS, *u8s(200)], size=0x2000)  # two data pages, no reserved page
    assert [p.state for p in decode_image(image).pages] == ["full", "active"]


@pytest.mark.parametrize("version", [1, 2])
def test_encrypted(compare: Callable[..., bytes], version: int) -> None:
    keys = generate_keys()
    rows = [
        NS,
        *PRIMITIVES,
        *u8s(100),
        ("s", "data", "string", "secret" * 100),
        ("bb", "data", "hex2bin", "5a" * 1500),
        ("cc", "data", "base64", "AAEC"),
    ]
    image = compare(rows, size=0x6000, version=version, keys=keys)
    decoded = decode_image(image, keys)
    assert not decoded.errors
    assert decoded.as_dict()["storage"]["s"] == "secret" * 100
    assert decode_image(image).errors  # without the key nothing checks out


def test_encrypted_blob_chunks_across_pages(compare: Callable[..., bytes]) -> None:
    keys = generate_keys()
    data = bytes(range(256)) * 40
    image = compare([NS, *u8s(90), ("blob", "data", "hex2bin", data.hex())], size=0x8000, keys=keys)
    assert decode_image(image, keys).as_dict()["storage"]["blob"] == data


def test_encrypted_with_hmac_derived_keys(compare: Callable[..., bytes]) -> None:
    keys = hmac_derive_keys(bytes(range(32)))
    compare([NS, ("serial", "data", "string", "SN-1")], keys=keys)


def test_header_only_csv(compare: Callable[..., bytes]) -> None:
    image = compare([], size=0x3000)
    assert decode_image(image).pages[0].state == "active"


def test_wrapped_base64_file(compare: Callable[..., bytes], tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    wrapped = base64.encodebytes(data).decode()  # 76-character lines
    (tmp_path / "cert.b64").write_text(wrapped)
    image = compare([NS, ("cert", "file", "base64", "cert.b64")])
    assert decode_image(image).as_dict()["storage"]["cert"] == data


def test_non_ascii_key(compare: Callable[..., bytes]) -> None:
    image = compare([NS, ("clé", "data", "u8", "1"), ("clé2", "data", "string", "v")])
    assert decode_image(image).as_dict() == {"storage": {"clé": 1, "clé2": "v"}}


def test_hand_written_csv(tmp_path: Path) -> None:
    """Comments, blank lines, CRLF, quoted commas and newlines: read as the official tool does."""
    path = tmp_path / "hand.csv"
    path.write_bytes(
        b"# factory data\r\nkey,type,encoding,value\r\n\r\nstorage,namespace,,\r\n"
        b'greeting,data,string,"hello, world"\r\n# not a row\r\n'
        b'poem,data,string,"two\r\nlines"\r\ncount,data,i32,-7\r\n\r\n'
    )
    theirs = official_image(path, 0x3000)
    assert encode_image(read_nvs_csv(path), 0x3000) == theirs
    assert decode_image(theirs).as_dict()["storage"]["poem"] == "two\nlines"
