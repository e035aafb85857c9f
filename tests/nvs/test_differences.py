"""Where Espressif's generator is wrong we differ on purpose (docs/compatibility.md). Each test
shows the official behaviour and ours side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
from esp_idf_nvs_partition_gen import nvs_partition_gen as official_module

from station.errors import StationError
from station.nvs import NvsEntry, decode_image, encode_image, read_nvs_csv
from tests.nvs.official import official_image, write_csv

NS = ("storage", "namespace", "", "")


def test_reopened_namespace_keeps_its_index(tmp_path: Path) -> None:
    rows = [
        NS,
        ("a", "data", "u8", "1"),
        ("other", "namespace", "", ""),
        ("b", "data", "u8", "2"),
        NS,
        ("c", "data", "u8", "3"),
    ]
    csv_path = write_csv(tmp_path / "in.csv", rows)
    theirs = decode_image(official_image(csv_path, 0x3000)).as_dict()
    assert theirs == {"storage": {"a": 1}, "other": {"b": 2, "c": 3}}  # c lands in "other"
    ours = decode_image(encode_image(read_nvs_csv(csv_path), 0x3000)).as_dict()
    assert ours == {"storage": {"a": 1, "c": 3}, "other": {"b": 2}}


def test_upper_case_encodings_are_encodings(tmp_path: Path) -> None:
    upper = [
        NS,
        ("h", "data", "HEX2BIN", "0102"),
        ("s", "data", "String", "x"),
        ("n", "data", "U16", "7"),
    ]
    lower = [(k, t, e.lower(), v) for k, t, e, v in upper]
    theirs = decode_image(official_image(write_csv(tmp_path / "u.csv", upper), 0x3000))
    assert theirs.as_dict()["storage"]["h"] == b"0102"  # the official tool stores the text
    ours = encode_image(read_nvs_csv(write_csv(tmp_path / "u2.csv", upper)), 0x3000)
    assert ours == official_image(write_csv(tmp_path / "l.csv", lower), 0x3000)
    assert decode_image(ours).as_dict()["storage"]["h"] == b"\x01\x02"
    fill = encode_image([NvsEntry(*NS), NvsEntry("f", "data", "BLOB_FILL(4;0xAB)", "z")], 0x3000)
    assert fill == encode_image(
        [NvsEntry(*NS), NvsEntry("f", "data", "blob_fill(4;0xab)", "z")], 0x3000
    )


@pytest.mark.parametrize("length", [3968, 3969, 3990, 3999])
def test_strings_that_need_a_whole_page(tmp_path: Path, length: int) -> None:
    rows = [
        NS,
        ("before", "data", "u8", "1"),
        ("s", "data", "string", "q" * length),
        ("after", "data", "u8", "2"),
    ]
    csv_path = write_csv(tmp_path / "in.csv", rows)
    if length >= 3968:  # 3968 characters + NUL = 3969 bytes: the official tool crashes
        with pytest.raises(official_module.PageFullError):
            official_image(csv_path, 0x6000)
    image = encode_image(read_nvs_csv(csv_path), 0x6000)
    decoded = decode_image(image)
    assert not decoded.errors
    assert decoded.as_dict() == {"storage": {"before": 1, "s": "q" * length, "after": 2}}
    item = next(i for i in decoded.items if i.key == "s")
    assert (item.page, item.entry) == (1, 0)  # a fresh page, all of it
    assert decoded.pages[1].used == 126


def test_string_over_4000_bytes_is_a_clean_error() -> None:
    entries = [
        NvsEntry(*NS, file="x.csv", line=2),
        NvsEntry("s", "data", "string", "q" * 4000, file="x.csv", line=3),
    ]
    with pytest.raises(StationError) as err:
        encode_image(entries, 0x6000)
    assert str(err.value) == (
        "x.csv:3:4: s: string is 4000 bytes long, at most 3999 are allowed"
        " (4000 with the terminating NUL) in NVS version 2"
    )


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "plain.csv", [NS, ("a", "data", "u8", "1")])
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    with pytest.raises(KeyError):  # the official tool cannot find the "key" column
        official_image(bom, 0x3000)
    assert encode_image(read_nvs_csv(bom), 0x3000) == official_image(plain, 0x3000)


def test_read_only_image_is_padded_to_the_partition(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "in.csv", [NS, ("a", "data", "u8", "1")])
    theirs = official_image(csv_path, 0x2000)
    assert len(theirs) == 0x1000  # would leave the second page's old content on the chip
    ours = encode_image(read_nvs_csv(csv_path), 0x2000)
    assert ours == theirs + b"\xff" * 0x1000


def test_non_ascii_binary_is_stored_as_utf8(tmp_path: Path) -> None:
    ours = encode_image([NvsEntry(*NS), NvsEntry("b", "data", "binary", "é✓")], 0x3000)
    assert decode_image(ours).as_dict()["storage"]["b"] == "é✓".encode()


def test_hex_integers_are_accepted() -> None:
    ours = encode_image([NvsEntry(*NS), NvsEntry("n", "data", "u16", "0x1F")], 0x3000)
    assert ours == encode_image([NvsEntry(*NS), NvsEntry("n", "data", "u16", "31")], 0x3000)


def test_non_ascii_key_fields_stay_in_place(tmp_path: Path) -> None:
    """The official tool places fields by character count: for a key whose UTF-8 is two or more
    bytes longer, a string header's reserved bytes become 00 00 instead of FF FF."""
    csv_path = write_csv(tmp_path / "in.csv", [NS, ("ключ", "data", "string", "v")])
    theirs = official_image(csv_path, 0x3000)
    ours = encode_image(read_nvs_csv(csv_path), 0x3000)
    header = 64 + 32  # entry 1
    assert theirs[header + 26 : header + 28] == b"\0\0"
    assert ours[header + 26 : header + 28] == b"\xff\xff"
    assert decode_image(ours).as_dict() == {"storage": {"ключ": "v"}}


def test_one_page_read_only_partition_like_the_official_tool(tmp_path: Path) -> None:
    """0x1000: not a difference any more. ESP-IDF's gen_esp32part accepts a readonly NVS
    partition of any size, nvs_partition_gen makes one-page images, and nvs_flash loads one:
    PageManager::load needs a free page only for a writable partition (nvs_pagemanager.cpp), so
    a single full or active page is all a read-only partition needs."""
    csv_path = write_csv(
        tmp_path / "in.csv", [NS, ("a", "data", "u8", "1"), ("s", "data", "string", "x")]
    )
    theirs = official_image(csv_path, 0x1000)
    ours = encode_image(read_nvs_csv(csv_path), 0x1000)
    assert ours == theirs and len(ours) == 0x1000
    assert decode_image(ours).as_dict() == {"storage": {"a": 1, "s": "x"}}
    too_much = [NvsEntry(*NS)] + [NvsEntry(f"k{i}", "data", "u8", "1") for i in range(126)]
    with pytest.raises(StationError) as err:
        encode_image(too_much, 0x1000)
    assert "a 0x1000 partition has 1 for data" in str(err.value)


def test_wifi_ssid_from_a_file_is_the_file_content(tmp_path: Path) -> None:
    (tmp_path / "ssid.txt").write_text("my-network", encoding="utf-8")
    rows = [("nvs.net80211", "namespace", "", ""), ("sta.ssid", "file", "string", "ssid.txt")]
    csv_path = write_csv(tmp_path / "in.csv", rows)
    theirs = decode_image(official_image(csv_path, 0x3000)).as_dict()
    assert theirs["nvs.net80211"]["sta.ssid"] == "ssid.txt"  # the path, not the network name
    ours = decode_image(encode_image(read_nvs_csv(csv_path), 0x3000, base_dir=tmp_path))
    assert ours.as_dict()["nvs.net80211"]["sta.ssid"] == "my-network"
