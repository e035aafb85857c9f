"""The library API the GUI and the orchestrator use: load_mfg, row_entries, build_row_image…"""

from __future__ import annotations

from pathlib import Path

import pytest

from station.errors import StationError
from station.mfg import (
    build_row_image,
    intermediate_csv,
    load_mfg,
    mask,
    row_entries,
    secret_columns,
    unit_id,
)
from station.nvs import NvsEntry, encode_image, generate_keys
from tests.mfg.conftest import write


def sample(lotdir: Path, values: str | None = None, encoding: str = "utf-8") -> None:
    write(
        lotdir / "c.csv",
        (
            "app,namespace,\nserial_no,data,string\nmodel,data,string,REPEAT\n"
            "dev_key,data,hex2bin\ncert,file,string\ncount,data,u32\n"
        ),
    )
    write(lotdir / "cert.pem", "CERT\n")
    write(
        lotdir / "v.csv",
        values
        or (
            "serial_no,model,dev_key,cert,count,wifi_password,label\n"
            "SN1,M-7,00ff,cert.pem,1,pw1,first\n"
            "SN2,,01ff,cert.pem,2,pw2,second\n"
        ),
        encoding,
    )


def test_rows_values_and_entries(lotdir: Path) -> None:
    sample(lotdir)
    lot = load_mfg("c.csv", "v.csv", size=0x3000, fileid="serial_no")
    assert [r.line for r in lot.rows] == [2, 3]
    assert lot.columns[-1] == "label"
    row = lot.rows[1]
    assert dict(row.values) == {
        "serial_no": "SN2",
        "model": "M-7",
        "dev_key": "01ff",
        "cert": "cert.pem",
        "count": "2",
        "wifi_password": "pw2",
        "label": "second",
    }
    assert row_entries(lot, row) == [
        NvsEntry("app", "namespace", "", "", "v.csv", 3),
        NvsEntry("serial_no", "data", "string", "SN2", "v.csv", 3),
        NvsEntry("model", "data", "string", "M-7", "v.csv", 3),
        NvsEntry("dev_key", "data", "hex2bin", "01ff", "v.csv", 3),
        NvsEntry("cert", "file", "string", "cert.pem", "v.csv", 3),
        NvsEntry("count", "data", "u32", "2", "v.csv", 3),
    ]
    assert unit_id(lot, row) == "SN2"
    assert intermediate_csv(lot, row).startswith("key,type,encoding,value\r\napp,namespace,,\r\n")


def test_build_row_image_is_the_codec_image_of_the_row(lotdir: Path) -> None:
    sample(lotdir)
    lot = load_mfg("c.csv", "v.csv", size=0x3000)
    keys = generate_keys()
    for row in lot.rows:
        expected = encode_image(row_entries(lot, row), 0x3000, keys=keys, base_dir=lotdir)
        assert build_row_image(lot, row, 0x3000, keys=keys) == expected
    assert unit_id(lot, lot.rows[1]) == "2"


def test_file_values_are_read_once(lotdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample(lotdir)
    lot = load_mfg("c.csv", "v.csv", size=0x3000)
    first = build_row_image(lot, lot.rows[0], 0x3000)
    (lotdir / "cert.pem").unlink()  # cached since the lot was loaded
    assert build_row_image(lot, lot.rows[0], 0x3000) == first


def test_relative_file_values_follow_base_dir(lotdir: Path) -> None:
    sample(lotdir)
    other = lotdir / "elsewhere"
    other.mkdir()
    write(other / "cert.pem", "OTHER CERT\n")
    lot = load_mfg(lotdir / "c.csv", lotdir / "v.csv", size=0x3000, base_dir=other)
    assert b"OTHER CERT" in build_row_image(lot, lot.rows[0], 0x3000)


def test_bom_crlf_and_blank_lines(lotdir: Path) -> None:
    sample(lotdir)
    plain = load_mfg("c.csv", "v.csv", size=0x3000)
    sample(
        lotdir,
        (
            "\ufeffserial_no,model,dev_key,cert,count,wifi_password,label\r\n"
            "\r\n"
            "SN1,M-7,00ff,cert.pem,1,pw1,first\r\n"
            "   \r\n"
            "SN2,,01ff,cert.pem,2,pw2,second\r\n"
            "\r\n"
        ),
    )
    messy = load_mfg("c.csv", "v.csv", size=0x3000)
    assert [r.line for r in messy.rows] == [3, 5]
    for a, b in zip(plain.rows, messy.rows, strict=True):
        assert build_row_image(plain, a, 0x3000) == build_row_image(messy, b, 0x3000)


def test_quoted_values_with_commas_and_newlines(lotdir: Path) -> None:
    write(lotdir / "c.csv", "app,namespace,\nnote,data,string\nn,data,u8\n")
    write(lotdir / "v.csv", 'note,n\n"a, ""b""\nc",1\nplain,2\n')
    lot = load_mfg("c.csv", "v.csv", size=0x3000)
    assert [r.values["note"] for r in lot.rows] == ['a, "b"\nc', "plain"]
    assert [r.line for r in lot.rows] == [2, 4]


def test_secret_columns_and_mask(lotdir: Path) -> None:
    sample(lotdir)
    lot = load_mfg("c.csv", "v.csv")
    assert secret_columns(lot) == {"dev_key", "cert", "wifi_password"}
    assert secret_columns(lot, ["serial_no"]) == {"dev_key", "cert", "wifi_password", "serial_no"}
    assert mask("s3cr3t") == "••••••" and mask("") == ""


def test_lot_without_size_still_checks_lengths(lotdir: Path) -> None:
    write(lotdir / "c.csv", "app,namespace,\ns,data,string\n")
    write(lotdir / "v.csv", "s\n" + "x" * 5000 + "\n")
    with pytest.raises(StationError, match="string is 5000 bytes long"):
        load_mfg("c.csv", "v.csv")


def test_i16_u64_i64_beyond_mfg_gen(lotdir: Path) -> None:
    write(lotdir / "c.csv", "app,namespace,\na,data,i16\nb,data,u64\nc,data,i64\nd,data,u8\n")
    write(lotdir / "v.csv", "a,b,c,d\n-300,18446744073709551615,-5,0x2A\n")
    lot = load_mfg("c.csv", "v.csv", size=0x3000)
    image = build_row_image(lot, lot.rows[0], 0x3000)
    assert len(image) == 0x3000


@pytest.mark.parametrize(
    "value",
    ["", " ", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "crlf\r\n", "#x", "é", "'", "{0}{", "}"],
)
def test_intermediate_csv_quotes_like_the_csv_module(lotdir: Path, value: str) -> None:
    import csv
    import io

    write(lotdir / "c.csv", "app,namespace,\nnote,data,string\n{n},data,u8\n")
    values = io.StringIO()
    csv.writer(values).writerows([["note", "{n}"], [value, "1"]])
    write(lotdir / "v.csv", values.getvalue())
    lot = load_mfg("c.csv", "v.csv")
    assert lot.rows[0].values["note"] == value
    out = io.StringIO()
    csv.writer(out).writerows(
        [
            ["key", "type", "encoding", "value"],
            ["app", "namespace", "", ""],
            ["note", "data", "string", value],
            ["{n}", "data", "u8", "1"],
        ]
    )
    assert intermediate_csv(lot, lot.rows[0]) == out.getvalue()


def test_secret_column_names(lotdir: Path) -> None:
    names = [
        "wifiPassword",
        "dev_key",
        "PIN",
        "sta.pswd",
        "psk",
        "api_token",
        "setupcode",
        "privkey",
        "keyboard",
        "spinner",
        "serial",
        "monkey",
        "pinout",
        "passport",
    ]
    write(lotdir / "c.csv", "app,namespace,\nserial,data,string\n")
    write(lotdir / "v.csv", ",".join(names) + "\n" + ",".join("x" * len(names)) + "\n")
    lot = load_mfg("c.csv", "v.csv")
    assert secret_columns(lot) == {
        "wifiPassword",
        "dev_key",
        "PIN",
        "sta.pswd",
        "psk",
        "api_token",
        "setupcode",
        "privkey",
    }


def test_rows_the_fast_path_refuses_are_reported_by_the_codec(lotdir: Path) -> None:
    """load_mfg checked the lot for one size and version; other ones are checked again."""
    write(lotdir / "c.csv", "app,namespace,\nblob,data,hex2bin\nn,data,u8\n")
    write(lotdir / "v.csv", "blob,n\n" + "ab" * 9000 + ",1\n" + "cd" * 10 + ",2\n")
    lot = load_mfg("c.csv", "v.csv", size=0x4000)
    small = lot.rows[1]
    assert build_row_image(lot, small, 0x3000) == encode_image(row_entries(lot, small), 0x3000)
    with pytest.raises(StationError, match="does not fit"):
        build_row_image(lot, lot.rows[0], 0x3000)
    with pytest.raises(StationError, match="version 1 allows at most 1984"):
        build_row_image(lot, lot.rows[0], 0x4000, version=1)
    assert build_row_image(lot, small, 0x3000, version=1) == encode_image(
        row_entries(lot, small), 0x3000, version=1
    )


def test_wifi_lots_take_the_checked_path(lotdir: Path) -> None:
    write(lotdir / "c.csv", "nvs.net80211,namespace,\nsta.ssid,data,string\nsta.pswd,data,string\n")
    write(lotdir / "v.csv", "sta.ssid,sta.pswd\nnet,secret1\nnet2,secret22\n")
    lot = load_mfg("c.csv", "v.csv", size=0x3000)
    for row in lot.rows:
        expected = encode_image(row_entries(lot, row), 0x3000)
        assert build_row_image(lot, row, 0x3000) == expected
        assert b"sta.apinfo" in expected
