"""Whole-lot validation: every problem at once, located, exit code 2, nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from station.errors import StationError
from station.mfg import load_mfg
from tests.mfg.conftest import write

Station = Callable[..., tuple[int, str, str]]


def problems(station: Station, lotdir: Path, *args: str, size: str = "0x3000") -> list[str]:
    """Runs generate; asserts exit 2, no traceback and no output at all; returns the problems."""
    code, out, err = station("generate", "c.csv", "v.csv", "dev", size, "--outdir", "out", *args)
    assert code == 2
    assert out == "" and "Traceback" not in err
    assert not (lotdir / "out").exists()
    return err.splitlines()


def lot(lotdir: Path, config: str, values: str) -> None:
    write(lotdir / "c.csv", config)
    write(lotdir / "v.csv", values)


def test_config_problems_all_at_once(station: Station, lotdir: Path) -> None:
    lot(
        lotdir,
        (
            "serial,data,string\n"  # 1: not a namespace first
            "app,namespace,\n"
            "enc,data,strng\n"  # 3: bad encoding
            "typ,date,u8\n"  # 4: bad type
            "this_key_is_too_long,data,u8\n"  # 5: key over 15 characters
            "x,data\n"  # 6: missing encoding
            "y,data,u8,REPEAT,more\n"  # 7: extra field
            "z,data,u8,ONCE\n"  # 8: unknown 4th field
            "a_namespace_too_long,namespace,\n"  # 9
            "ns2,namespace,u8\n"  # 10: namespace with an encoding
            "dup,data,u8\ndup,data,u8\n"  # 11, 12: key twice in one namespace
            "absent,data,u8\n"  # 13: no such column
            "up,data,HEX2BIN\n"  # 14: fine: encodings ignore case
        ),
        "serial,enc,typ,this_key_is_too_long,x,y,z,dup,up\nA,a,1,1,1,1,1,1,00\n",
    )
    assert problems(station, lotdir) == [
        "c.csv:1:2: serial: the first config line must be a namespace (name,namespace,), "
        "so that keys have a namespace",
        "c.csv:3:3: enc: unknown encoding 'strng': use one of u8 i8 u16 i16 u32 i32 u64 i64 "
        "string hex2bin base64 binary, blob_fill(N;0xPP) or blob_sz_fill(N;0xPP)",
        "c.csv:4:2: typ: unknown type 'date': use data, file or namespace",
        "c.csv:5:1: this_key_is_too_long: key is 20 bytes long; NVS allows at most 15",
        "c.csv:6:3: x: missing encoding: a config line is key,type,encoding[,REPEAT]",
        "c.csv:7:5: y: extra fields: a config line is key,type,encoding[,REPEAT]",
        "c.csv:8:4: z: unknown field 'ONCE': only REPEAT may follow the encoding",
        "c.csv:9:1: a_namespace_too_long: namespace name is 20 bytes long; NVS allows at most 15",
        "c.csv:10:3: ns2: a namespace line has no encoding: write ns2,namespace,",
        "c.csv:12:1: dup: key appears twice in namespace 'ns2' (also line 11)",
        "c.csv:13:1: absent: no column 'absent' in the values file v.csv (header line 1)",
    ]


def test_value_problems_located_at_values_line_and_column(station: Station, lotdir: Path) -> None:
    lot(
        lotdir,
        (
            "app,namespace,\nn8,data,u8\ni16,data,i16\nh,data,hex2bin\nb,data,base64\n"
            "f,file,binary\ns,data,string\nfill,data,blob_fill(4;0xff)\n"
        ),
        (
            "meta,n8,i16,h,b,f,s,fill\n"
            "m,256,-32769,abc,!!,nofile.bin,ok,12345\n"
            "\n"
            "m,x,1.5,zz,aGk=,,ok,1234\n"
            "m,1,2,00,aGk=\n"
            "m,1,2,00,aGk=,c.csv,ok,1,extra\n"
            f"m,1,2,00,aGk=,c.csv,{'s' * 4000},1\n"
        ),
    )
    assert problems(station, lotdir) == [
        "v.csv:2:2: n8: too large for u8 (0..255)",
        "v.csv:2:3: i16: too small for i16 (-32768..32767)",
        "v.csv:2:4: h: odd number of hex digits (3): hex2bin needs whole bytes",
        "v.csv:2:5: b: not valid base64 (A-Z a-z 0-9 + / and = padding only)",
        f"v.csv:2:6: f: file not found: {lotdir / 'nofile.bin'} (relative paths start at {lotdir})",
        "v.csv:2:8: fill: value is 5 bytes, longer than the 4 of blob_fill(4;0xff)",
        "v.csv:4:2: n8: not a whole number, 1 character (u8 takes 42, -7 or 0x2A)",
        "v.csv:4:3: i16: not a whole number, 3 characters (i16 takes 42, -7 or 0x2A)",
        "v.csv:4:4: h: character 1 is not a hex digit (hex2bin takes 0-9 and a-f only)",
        "v.csv:4:6: f: empty file name: a type-file key needs the path of a file",
        "v.csv:5:6: f: missing fields: 5 values for 8 columns of the header",
        "v.csv:6:9: -: extra fields: 9 values for 8 columns of the header",
        "v.csv:7:7: s: string is 4000 bytes long, at most 3999 are allowed (4000 with the "
        "terminating NUL) in NVS version 2",
    ]


def test_size_problems(station: Station, lotdir: Path) -> None:
    lot(lotdir, "app,namespace,\nserial,data,string\n", "serial\nA\n")
    assert problems(station, lotdir, size="0x3001") == [
        "command line:0:0: size: size 0x3001 is not a multiple of 4096 (0x1000); "
        "NVS is made of 4 KiB pages"
    ]
    assert problems(station, lotdir, size="12k") == [
        "command line:0:0: size: not a size: '12k' (write e.g. 0x6000 or 24576)"
    ]


def test_device_that_does_not_fit(station: Station, lotdir: Path) -> None:
    lot(
        lotdir,
        "app,namespace,\nserial,data,string\nblob,data,hex2bin\n",
        "serial,blob\nA,00\nB," + "ab" * 9000 + "\nC,11\n",
    )
    found = problems(station, lotdir)
    assert len(found) == 1
    assert found[0].startswith("v.csv:3:0: size: the data does not fit: it needs 3 pages")
    assert found[0].endswith("use a size of at least 0x4000")


def test_file_ids(station: Station, lotdir: Path) -> None:
    lot(
        lotdir,
        "app,namespace,\nserial,data,string\n",
        "serial,batch\nA1,x\na1,x\nB/2,x\n,x\nA1,x\n",
    )
    assert problems(station, lotdir, "--fileid", "serial") == [
        "v.csv:3:1: serial: file id 'a1' is also used on line 2: the files would overwrite "
        "each other (file names ignore case on Windows and macOS)",
        "v.csv:4:1: serial: file id 'B/2' cannot be part of a file name "
        '(no / \\ : * ? " < > |, control characters or outer spaces)',
        "v.csv:5:1: serial: empty file id: every device needs one to name its files",
        "v.csv:6:1: serial: file id 'A1' is also used on line 2: the files would overwrite "
        "each other (file names ignore case on Windows and macOS)",
    ]
    assert problems(station, lotdir, "--fileid", "nope") == [
        "v.csv:1:0: nope: --fileid 'nope' is not a column of the values file"
    ]


def test_repeat_value_that_differs(station: Station, lotdir: Path) -> None:
    lot(
        lotdir,
        "app,namespace,\nmodel,data,string,REPEAT\nserial,data,string\n",
        "model,serial\nM1,A\n,B\nM1,C\nM2,D\n",
    )
    assert problems(station, lotdir) == [
        "v.csv:5:1: model: REPEAT key: the value differs from the first row's (line 2), which "
        "every device gets; leave it empty"
    ]


def test_not_utf8_files(station: Station, lotdir: Path) -> None:
    write(lotdir / "c.csv", "app,namespace,\nname,data,string\n")
    (lotdir / "v.csv").write_bytes(b"name\nok\nM\xfcller\n")
    assert problems(station, lotdir) == [
        "v.csv:3:1: -: not UTF-8 text (byte 0xfc); save the values file as UTF-8"
    ]


def test_missing_and_empty_files(station: Station, lotdir: Path) -> None:
    assert problems(station, lotdir) == [
        "c.csv:0:0: -: config file not found",
        "v.csv:0:0: -: values file not found",
    ]
    write(lotdir / "c.csv", "\n")
    write(lotdir / "v.csv", "a\n")
    assert problems(station, lotdir) == [
        "c.csv:0:0: -: the config file is empty: it needs a namespace line and at least one key",
        "v.csv:1:0: -: no devices: the values file has a header but no rows",
    ]


def test_key_files(station: Station, lotdir: Path) -> None:
    lot(lotdir, "app,namespace,\nserial,data,string\n", "serial\nA\nB\n")
    (lotdir / "short.bin").write_bytes(b"\x00" * 64)
    (lotdir / "hmac.bin").write_bytes(b"\x00" * 31)
    assert problems(station, lotdir, "--inputkey", "short.bin") == [
        "short.bin:0:0: key: a key partition image has 4096 bytes, this file has 64 "
        "(make one with `station generate-key`)"
    ]
    assert problems(
        station, lotdir, "--keygen", "--key_protect_hmac", "--kp_hmac_inputkey", "hmac.bin"
    ) == ["hmac.bin:0:0: hmac key: an HMAC key file has 32 bytes, this one has 31"]
    assert problems(station, lotdir, "--inputkey", "absent.bin") == [
        "absent.bin:0:0: --inputkey: file not found"
    ]


def test_hmac_option_combinations(station: Station, lotdir: Path) -> None:
    lot(lotdir, "app,namespace,\nserial,data,string\n", "serial\nA\nB\n")
    assert problems(station, lotdir, "--kp_hmac_keygen") == [
        "command line:0:0: --kp_hmac_keygen: only with --key_protect_hmac"
    ]
    assert problems(station, lotdir, "--keygen", "--key_protect_hmac") == [
        "command line:0:0: --key_protect_hmac: needs exactly one of --kp_hmac_keygen "
        "(a new HMAC key) and --kp_hmac_inputkey F (a 32-byte HMAC key file)"
    ]
    assert problems(station, lotdir, "--key_protect_hmac", "--kp_hmac_keygen") == [
        "command line:0:0: --key_protect_hmac: needs --keygen: the HMAC scheme derives each "
        "device's NVS keys (with --inputkey the keys are given)"
    ]
    assert problems(
        station,
        lotdir,
        "--keygen",
        "--key_protect_hmac",
        "--kp_hmac_keygen",
        "--kp_hmac_keyfile",
        "h.bin",
    ) == [
        "command line:0:0: --kp_hmac_keyfile: one file name for the HMAC keys of 2 devices: "
        "each device gets its own key; leave the option out to get "
        "keys/hmac-keys-PREFIX-ID.bin per device"
    ]


def test_prefix_and_prefix_num(station: Station, lotdir: Path) -> None:
    lot(lotdir, "app,namespace,\nserial,data,string\n", "serial\n" + "A\n" * 12)
    code, _out, err = station("generate", "c.csv", "v.csv", "a/b", "0x3000", "--outdir", "out")
    assert code == 2 and err.startswith("command line:0:0: prefix: 'a/b' cannot start a file")
    assert problems(station, lotdir, "--prefix_num", "95", "1") == [
        "command line:0:0: --prefix_num: 12 devices from 95 reach 106, which has more than 1 digits"
    ]


def test_existing_output_is_never_overwritten(station: Station, lotdir: Path) -> None:
    lot(lotdir, "app,namespace,\nserial,data,string\n", "serial\nA\nB\n")
    write(lotdir / "out" / "bin" / "dev-2.bin", "keep me")
    code, out, err = station("generate", "c.csv", "v.csv", "dev", "0x3000", "--outdir", "out")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"{Path('out/bin/dev-2.bin')}:0:0: -: already exists; remove it or choose another "
        "--outdir or prefix (nothing is overwritten)"
    ]
    assert sorted(p.name for p in (lotdir / "out").rglob("*") if p.is_file()) == ["dev-2.bin"]
    assert (lotdir / "out" / "bin" / "dev-2.bin").read_text() == "keep me"


def test_load_mfg_raises_with_all_problems(lotdir: Path) -> None:
    lot(lotdir, "app,namespace,\nn,data,u8\n", "n\n1\n300\n-1\n")
    with pytest.raises(StationError) as err:
        load_mfg("c.csv", "v.csv", size=0x3000)
    assert [str(p) for p in err.value.problems] == [
        "v.csv:3:1: n: too large for u8 (0..255)",
        "v.csv:4:1: n: too small for u8 (0..255)",
    ]


def test_problem_list_is_bounded(lotdir: Path) -> None:
    rows = "".join("x" * n + "\n" for n in range(1, 2001))  # 2000 different messages
    lot(lotdir, "app,namespace,\nn,data,u8\n", "n\n" + rows)
    with pytest.raises(StationError) as err:
        load_mfg("c.csv", "v.csv")
    assert len(err.value.problems) == 501
    assert str(err.value.problems[-1]) == "v.csv:0:0: -: 1500 more problems not shown"


def test_identical_problems_are_capped(lotdir: Path) -> None:
    lot(lotdir, "app,namespace,\nn,data,u8\n", "n\n" + "x\n" * 2000)
    with pytest.raises(StationError) as err:
        load_mfg("c.csv", "v.csv")
    shown = [str(p) for p in err.value.problems]
    same = "n: not a whole number, 1 character (u8 takes 42, -7 or 0x2A)"
    assert shown == [f"v.csv:{line}:1: {same}" for line in range(2, 7)] + [
        "v.csv:7:1: n: … and 1995 more like this (lines 7-2001)"
    ]


def test_existing_hmac_key_file_in_a_subfolder_is_never_overwritten(
    station: Station, lotdir: Path
) -> None:
    lot(lotdir, "app,namespace,\nserial,data,string\n", "serial\nA\n")
    write(lotdir / "out" / "keys" / "line2" / "h.bin", "keep me")
    args = ["--keygen", "--key_protect_hmac", "--kp_hmac_keygen", "--kp_hmac_keyfile", "line2/h"]
    code, out, err = station(
        "generate", "c.csv", "v.csv", "dev", "0x3000", "--outdir", "out", *args
    )
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"{Path('out/keys/line2/h.bin')}:0:0: -: already exists; remove it or choose another "
        "--outdir or prefix (nothing is overwritten)"
    ]
    assert (lotdir / "out" / "keys" / "line2" / "h.bin").read_text() == "keep me"
