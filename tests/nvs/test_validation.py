"""Every input problem is found in one pass, located as file:line:column: key: message."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.errors import StationError
from station.nvs import NvsEntry, check_entries, encode_image, parse_size, read_nvs_csv


def E(key: str, typ: str, enc: str, value: str, line: int) -> NvsEntry:
    return NvsEntry(key, typ, enc, value, file="lot.csv", line=line)


def problems(
    entries: list[NvsEntry], size: int = 0x6000, version: int = 2, **kw: object
) -> list[str]:
    return [str(p) for p in check_entries(entries, size, version, **kw)]  # type: ignore[arg-type]


def test_all_problems_at_once(tmp_path: Path) -> None:
    entries = [
        E("storage", "namespace", "", "", 2),
        E("a", "data", "u9", "1", 3),
        E("b", "record", "u8", "1", 4),
        E("c", "data", "u8", "256", 5),
        E("d", "data", "i8", "-129", 6),
        E("e", "data", "u32", "12abc", 7),
        E("f", "data", "u64", "", 8),
        E("g", "data", "hex2bin", "abc", 9),
        E("h", "data", "hex2bin", "zz11", 10),
        E("i", "data", "base64", "a$b=", 11),
        E("j", "data", "base64", "abc", 12),
        E("a_key_that_is_too_long", "data", "u8", "1", 13),
        E("k", "file", "binary", "missing.bin", 14),
        E("l", "data", "string", "x" * 4000, 15),
        E("m", "data", "blob_fill(2;0xff)", "abc", 16),
        E("n", "data", "blob_fill(2;ff)", "a", 17),
        E("", "data", "u8", "1", 18),
        E("c", "data", "u8", "1", 19),
        E("namespace_too_long", "namespace", "", "", 20),
    ]
    assert problems(entries, base_dir=tmp_path) == [
        "lot.csv:3:3: a: unknown encoding 'u9' (use u8, i8, u16, i16, u32, i32, u64, i64, string,"
        " hex2bin, base64, binary, blob_fill(N;0xPP) or blob_sz_fill(N;0xPP))",
        "lot.csv:4:2: b: unknown type 'record' (use data, file or namespace)",
        "lot.csv:5:4: c: too large for u8 (0..255)",
        "lot.csv:6:4: d: too small for i8 (-128..127)",
        "lot.csv:7:4: e: not an integer, 5 characters",
        "lot.csv:8:4: f: not an integer, 0 characters",
        "lot.csv:9:4: g: odd number of hex digits (3); each byte needs two",
        "lot.csv:10:4: h: not hexadecimal: character 1 (hex2bin takes 0-9 a-f)",
        "lot.csv:11:4: i: not valid base64 (A-Z a-z 0-9 + /, '=' padding to a multiple of 4)",
        "lot.csv:12:4: j: not valid base64 (A-Z a-z 0-9 + /, '=' padding to a multiple of 4)",
        "lot.csv:13:1: a_key_that_is_too_long: key is 22 bytes long, at most 15 are allowed",
        f"lot.csv:14:4: k: file not found: {tmp_path / 'missing.bin'}",
        "lot.csv:15:4: l: string is 4000 bytes long, at most 3999 are allowed"
        " (4000 with the terminating NUL) in NVS version 2",
        "lot.csv:16:4: m: value is 3 bytes long, longer than the 2 of blob_fill(2;0xff)",
        "lot.csv:17:3: n: bad encoding 'blob_fill(2;ff)'"
        " (write blob_fill(N;0xPP) or blob_sz_fill(N;0xPP))",
        "lot.csv:18:1: -: empty key",
        "lot.csv:19:1: c: key 'c' is already set in this namespace (line 5)",
        "lot.csv:20:1: namespace_too_long: namespace name is 18 bytes long, at most 15 are allowed",
    ]


def test_first_entry_must_be_a_namespace() -> None:
    assert problems([E("a", "data", "u8", "1", 2)]) == [
        "lot.csv:2:2: a: the first entry must be a namespace (key,namespace,,)"
    ]


def test_version1_limits() -> None:
    entries = [
        E("ns", "namespace", "", "", 2),
        E("s", "data", "string", "x" * 1984, 3),
        E("b", "data", "hex2bin", "00" * 1985, 4),
        E("ok", "data", "hex2bin", "00" * 1984, 5),
    ]
    assert problems(entries, version=1) == [
        "lot.csv:3:4: s: string is 1984 bytes long, at most 1983 are allowed"
        " (1984 with the terminating NUL) in NVS version 1",
        "lot.csv:4:4: b: blob is 1985 bytes long; NVS version 1 allows at most 1984"
        " (version 2 splits large blobs over pages)",
    ]
    assert problems(entries[:1] + entries[2:]) == []  # version 2 takes the big blob


def test_data_that_does_not_fit_says_by_how_much() -> None:
    entries = [E("ns", "namespace", "", "", 2)] + [
        E(f"k{i}", "data", "u8", "1", 3 + i) for i in range(300)
    ]
    assert problems(entries, size=0x3000) == [
        "lot.csv:0:0: size: the data does not fit: it needs 3 pages, a 0x3000 partition has 2"
        " for data (the last page is reserved); 1 page(s) (4096 bytes) over,"
        " use a size of at least 0x4000"
    ]
    assert problems(entries, size=0x4000) == []
    assert problems(entries, size=0x2000) == [
        "lot.csv:0:0: size: the data does not fit: it needs 3 pages, a 0x2000 partition has 2"
        " for data; 1 page(s) (4096 bytes) over, use a size of at least 0x3000"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0x6001", "size 0x6001 is not a multiple of 4096 (0x1000); NVS is made of 4 KiB pages"),
        (
            "0",
            "size 0x0 is too small: an NVS partition needs at least 0x1000 bytes"
            " (one page; 0x3000 unless it is flagged readonly)",
        ),
        ("24k", "not a size: '24k' (write e.g. 0x6000 or 24576)"),
        ("", "not a size: '' (write e.g. 0x6000 or 24576)"),
    ],
)
def test_bad_sizes(text: str, message: str) -> None:
    with pytest.raises(StationError) as err:
        parse_size(text, "lot.toml", 4, "nvs_size")
    assert str(err.value) == f"lot.toml:4:0: nvs_size: {message}"


def test_good_sizes() -> None:
    assert parse_size("0x6000") == 0x6000
    assert parse_size(" 24576 ") == 24576
    assert parse_size("0X3000") == 0x3000


def test_size_problem_in_check_entries() -> None:
    assert problems([E("ns", "namespace", "", "", 2)], size=0x2800) == [
        "lot.csv:0:0: size: size 0x2800 is not a multiple of 4096 (0x1000);"
        " NVS is made of 4 KiB pages"
    ]


def test_encode_image_raises_with_every_problem() -> None:
    with pytest.raises(StationError) as err:
        encode_image(
            [
                E("ns", "namespace", "", "", 2),
                E("a", "data", "u8", "x", 3),
                E("b", "data", "u8", "-1", 4),
            ],
            0x3000,
        )
    assert [p.line for p in err.value.problems] == [3, 4]


def test_file_that_is_not_utf8_for_a_string(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"ok\xff")
    assert problems(
        [E("ns", "namespace", "", "", 2), E("s", "file", "string", "bad.txt", 3)], base_dir=tmp_path
    ) == ["lot.csv:3:4: s: file is not UTF-8 text (byte 3)"]


def test_too_many_namespaces() -> None:
    entries = [E(f"ns{i}", "namespace", "", "", i + 2) for i in range(255)]
    assert problems(entries, size=0x10000) == ["lot.csv:256:1: ns254: more than 254 namespaces"]


def test_wifi_side_entry_clash() -> None:
    entries = [
        E("ns", "namespace", "", "", 2),
        E("sta.ssid", "data", "string", "n", 3),
        E("sta.pmk", "data", "hex2bin", "00", 4),
    ]
    assert problems(entries) == [
        "lot.csv:4:1: sta.pmk: key 'sta.pmk' is already set in this namespace (line 3)"
    ]


# --- the CSV reader ---


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "in.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_csv_reader(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# comment\nkey,type,encoding,value\nns,namespace,,\n\n"
        'a,data,STRING,"x,y"\n# another\nb,Data,u8,1\n"m",data,string,"two\nlines"\nc,data,u8,2\n',
    )
    assert read_nvs_csv(path) == [
        NvsEntry("ns", "namespace", "", "", str(path), 3),
        NvsEntry("a", "data", "string", "x,y", str(path), 5),
        NvsEntry("b", "data", "u8", "1", str(path), 7),
        NvsEntry("m", "data", "string", "two\nlines", str(path), 8),
        NvsEntry("c", "data", "u8", "2", str(path), 10),
    ]


def test_csv_columns_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, "type,key,value,encoding\nnamespace,ns,,\ndata,a,5,u8\n")
    assert read_nvs_csv(path)[1] == NvsEntry("a", "data", "u8", "5", str(path), 3)


def test_csv_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "key,type,encoding,value\nns,namespace\na,data,string,x,y\nb,data,u8\n")
    with pytest.raises(StationError) as err:
        read_nvs_csv(path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:3:5: a: 5 fields, the header has 4"
        ' (put values that contain commas in double quotes: "a,b")',
        f"{path}:4:4: b: 3 fields, expected 4 (key,type,encoding,value)",
    ]


def test_csv_header_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "ns,namespace,,\na,data,u8,1\n")
    with pytest.raises(StationError) as err:
        read_nvs_csv(path)
    assert str(err.value) == (
        f"{path}:1:1: -: the header must name the columns"
        " key,type,encoding,value (missing: key, type, encoding, value)"
    )


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, b"key,type,encoding,value\nns,namespace,,\na,data,string,caf\xe9\n")
    with pytest.raises(StationError) as err:
        read_nvs_csv(path)
    assert str(err.value) == f"{path}:3:18: -: not UTF-8 text (save the file as UTF-8)"


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StationError) as err:
        read_nvs_csv(tmp_path / "nope.csv")
    assert "cannot read" in str(err.value)


def test_key_and_file_oddities(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    entries = [
        E("ns", "namespace", "", "", 2),
        E("a\0b", "data", "u8", "1", 3),
        E("f", "file", "string", "folder", 4),
        E("", "namespace", "", "", 5),
    ]
    assert problems(entries, base_dir=tmp_path) == [
        "lot.csv:3:1: a\0b: key contains a NUL character",
        f"lot.csv:4:4: f: {tmp_path / 'folder'} is a folder, not a file",
        "lot.csv:5:1: -: empty namespace name",
    ]


def test_bad_version() -> None:
    assert problems([E("ns", "namespace", "", "", 2)], version=3) == [
        "lot.csv:0:0: version: NVS version must be 1 or 2, not 3"
    ]


def test_blob_over_255_chunks() -> None:
    entries = [E("ns", "namespace", "", "", 2), E("big", "data", "binary", "x" * 1_030_000, 3)]
    assert problems(entries, size=0x120000) == [
        "lot.csv:0:0: big: blob too large: it would need more than 255 chunks"
    ]
    assert (
        problems([*entries[:1], E("big", "data", "binary", "x" * 1000000, 3)], size=0x120000) == []
    )
