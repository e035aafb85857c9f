"""`station generate` against the official flow (mfg_gen intermediate CSV + Espressif's generator),
byte for byte: every image and every intermediate CSV."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mfg.conftest import files_under, write
from tests.mfg.reference import official_generate, official_generate_key

Station = Callable[..., tuple[int, str, str]]

SAMPLE_CONFIG = """app,namespace,
firmware_key,data,hex2bin
serial_no,data,string,REPEAT
device_no,data,i32
"""
SAMPLE_VALUES = """id,firmware_key,serial_no,device_no
1,1a2b3c4d5e6faabb,A1,101
2,1a2b3c4d5e6fccdd,,102
3,1a2b3c4d5e6feeff,,103
"""


def compare(
    station: Station,
    lotdir: Path,
    conf: str,
    values: str,
    size: str,
    *extra: str,
    fileid: str | None = None,
    version: int = 2,
) -> dict[str, bytes]:
    """Runs both flows on the same inputs; asserts identical bin/ and csv/; returns station's."""
    args = ["generate", conf, values, "dev", size, "--outdir", "ours", "--version", str(version)]
    if fileid:
        args += ["--fileid", fileid]
    code, _out, err = station(*args, *extra)
    assert (code, err) == (0, "")
    official_generate(
        Path(conf), Path(values), "dev", size, lotdir / "theirs", fileid=fileid, version=version
    )
    ours, theirs = files_under(lotdir / "ours"), files_under(lotdir / "theirs")
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name] == theirs[name], name
    return ours


def test_documented_sample(station: Station, lotdir: Path) -> None:
    write(lotdir / "config.csv", SAMPLE_CONFIG)
    write(lotdir / "values.csv", SAMPLE_VALUES)
    ours = compare(station, lotdir, "config.csv", "values.csv", "0x3000")
    assert sorted(ours) == [
        "bin/dev-1.bin",
        "bin/dev-2.bin",
        "bin/dev-3.bin",
        "csv/dev-1.csv",
        "csv/dev-2.csv",
        "csv/dev-3.csv",
    ]
    # REPEAT: every device gets the first row's serial number
    assert ours["csv/dev-3.csv"] == (
        b"key,type,encoding,value\r\napp,namespace,,\r\nfirmware_key,data,hex2bin,"
        b"1a2b3c4d5e6feeff\r\nserial_no,data,string,A1\r\ndevice_no,data,i32,103\r\n"
    )


def test_fileid_metadata_columns_and_blank_lines(station: Station, lotdir: Path) -> None:
    write(lotdir / "config.csv", "app,namespace,\n\nserial_no,data,string\nmodel,data,u16,REPEAT\n")
    write(
        lotdir / "values.csv",
        (
            "batch,serial_no,note,model,operator\n"
            'B7,SN-0001,first,"42",ann\n'
            "\n   \n"
            'B7,SN-0002,"a, b",,ann\n'
            "B7,SN-0003,,,bob\n"
        ),
    )
    ours = compare(station, lotdir, "config.csv", "values.csv", "0x4000", fileid="serial_no")
    assert "bin/dev-SN-0002.bin" in ours


def test_every_encoding_and_file_types(station: Station, lotdir: Path) -> None:
    write(lotdir / "files" / "cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END-----\n")
    (lotdir / "files" / "blob.bin").write_bytes(bytes(range(256)) * 9)
    write(lotdir / "files" / "key.hex", "00112233445566778899aabbccddeeff\n")
    write(lotdir / "files" / "b64.txt", base64.b64encode(b"\x01\x02" * 700).decode())
    write(
        lotdir / "config.csv",
        (
            "ints,namespace,\n"
            "a_u8,data,u8\na_i8,data,i8\na_u16,data,u16\na_i16,data,i16\n"
            "a_u32,data,u32\na_i32,data,i32\na_u64,data,u64\na_i64,data,i64\n"
            "blobs,namespace,\n"
            "a_str,data,string\na_hex,data,hex2bin\na_b64,data,base64\n"
            "f_cert,file,string\nf_blob,file,binary\nf_hex,file,hex2bin\nf_b64,file,base64\n"
        ),
    )
    write(
        lotdir / "values.csv",
        (
            "a_u8,a_i8,a_u16,a_i16,a_u32,a_i32,a_u64,a_i64,a_str,a_hex,a_b64,"
            "f_cert,f_blob,f_hex,f_b64\n"
            "255,-128,65535,-32768,4294967295,-2147483648,18446744073709551615,"
            '-9223372036854775808,"héllo, wörld",deadbeef,aGVsbG8=,'
            "files/cert.pem,files/blob.bin,files/key.hex,files/b64.txt\n"
            "0,127,0,32767,0,2147483647,0,9223372036854775807,x,00,,"
            "files/cert.pem,files/blob.bin,files/key.hex,files/b64.txt\n"
        ),
    )
    compare(station, lotdir, "config.csv", "values.csv", "0x6000")


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("length", [1984, 2000, 3967, 4000, 4001, 8100])
def test_page_boundaries(station: Station, lotdir: Path, version: int, length: int) -> None:
    # strings up to a page, blobs around the 1984-byte (v1) and 4000-byte (v2 chunk) limits
    string = "s" * min(length, 1983 if version == 1 else 3966)
    blob = (bytes(range(256)) * 40)[: length if version == 2 else min(length, 1984)].hex()
    write(lotdir / "config.csv", "ns,namespace,\nfill,data,string\nbig,data,hex2bin\nn,data,u8\n")
    write(lotdir / "values.csv", f"fill,big,n\n{string},{blob},1\n")
    compare(station, lotdir, "config.csv", "values.csv", "0x8000", version=version)


# (0x2000, read-only: the official tool writes only the used pages, not the whole partition;
# that is the codec's business and is tested in tests/nvs)
@pytest.mark.parametrize("size", ["0x3000", "12288", "0x10000"])
def test_small_and_read_only_sizes(station: Station, lotdir: Path, size: str) -> None:
    write(lotdir / "config.csv", "ns,namespace,\nserial,data,string\n")
    write(lotdir / "values.csv", "serial\nA\nB\n")
    compare(station, lotdir, "config.csv", "values.csv", size)


def test_wifi_side_entries(station: Station, lotdir: Path) -> None:
    write(
        lotdir / "config.csv",
        (
            "nvs.net80211,namespace,\nsta.ssid,data,string\nsta.pswd,data,string\n"
            "ap.ssid,data,string\nap.passwd,data,string\nap.authmode,data,u8\n"
        ),
    )
    write(
        lotdir / "values.csv",
        "sta.ssid,sta.pswd,ap.ssid,ap.passwd,ap.authmode\n"
        "home,secret12,dev-ap,apsecret1,3\nhome,secret12,dev-ap,apsecret1,0\n",
    )
    compare(station, lotdir, "config.csv", "values.csv", "0x6000")


def test_encrypted_with_inputkey(station: Station, lotdir: Path) -> None:
    write(lotdir / "config.csv", SAMPLE_CONFIG)
    write(lotdir / "values.csv", SAMPLE_VALUES)
    keyfile = official_generate_key(lotdir, "given.bin")
    code, _out, err = station(
        "generate",
        "config.csv",
        "values.csv",
        "dev",
        "0x3000",
        "--outdir",
        "ours",
        "--inputkey",
        keyfile,
    )
    assert (code, err) == (0, "")
    official_generate(
        Path("config.csv"),
        Path("values.csv"),
        "dev",
        "0x3000",
        lotdir / "theirs",
        inputkeys={f"{i}": keyfile for i in (1, 2, 3)},
    )
    assert files_under(lotdir / "ours") == files_under(lotdir / "theirs")
    assert not (lotdir / "ours" / "keys").exists()


def test_keygen_one_key_per_device(station: Station, lotdir: Path) -> None:
    write(lotdir / "config.csv", SAMPLE_CONFIG)
    write(lotdir / "values.csv", SAMPLE_VALUES)
    code, _out, err = station(
        "generate",
        "config.csv",
        "values.csv",
        "dev",
        "0x3000",
        "--outdir",
        "ours",
        "--keygen",
        "--fileid",
        "id",
    )
    assert (code, err) == (0, "")
    keys = {i: lotdir / "ours" / "keys" / f"keys-dev-{i}.bin" for i in ("1", "2", "3")}
    assert len({k.read_bytes() for k in keys.values()}) == 3
    for k in keys.values():
        assert k.stat().st_mode & 0o777 == 0o600
    official_generate(
        Path("config.csv"),
        Path("values.csv"),
        "dev",
        "0x3000",
        lotdir / "theirs",
        fileid="id",
        inputkeys=keys,
    )
    ours, theirs = files_under(lotdir / "ours"), files_under(lotdir / "theirs")
    for name, data in theirs.items():
        assert ours[name] == data, name


def test_hmac_scheme_with_input_key(station: Station, lotdir: Path) -> None:
    write(lotdir / "config.csv", SAMPLE_CONFIG)
    write(lotdir / "values.csv", SAMPLE_VALUES)
    (lotdir / "hmac.bin").write_bytes(bytes(range(32)))
    code, _out, err = station(
        "generate",
        "config.csv",
        "values.csv",
        "dev",
        "0x3000",
        "--outdir",
        "ours",
        "--keygen",
        "--key_protect_hmac",
        "--kp_hmac_inputkey",
        "hmac.bin",
    )
    assert (code, err) == (0, "")
    derived = official_generate_key(lotdir, "derived.bin", hmac_inputkey=lotdir / "hmac.bin")
    for i in ("1", "2", "3"):
        assert (lotdir / "ours" / "keys" / f"keys-dev-{i}.bin").read_bytes() == derived.read_bytes()
    official_generate(
        Path("config.csv"),
        Path("values.csv"),
        "dev",
        "0x3000",
        lotdir / "theirs",
        inputkeys={i: derived for i in ("1", "2", "3")},
    )
    ours, theirs = files_under(lotdir / "ours"), files_under(lotdir / "theirs")
    for name, data in theirs.items():
        assert ours[name] == data, name


def test_quoted_empty_value_is_a_device_blank_line_is_not(station: Station, lotdir: Path) -> None:
    write(lotdir / "config.csv", "app,namespace,\nnote,data,string\n")
    write(lotdir / "values.csv", 'note\n""\n\n   \nx\n')
    ours = compare(station, lotdir, "config.csv", "values.csv", "0x3000")
    assert sorted(ours) == ["bin/dev-1.bin", "bin/dev-2.bin", "csv/dev-1.csv", "csv/dev-2.csv"]
