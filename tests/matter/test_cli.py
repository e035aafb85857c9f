"""``station matter``'s command line: the tool's options and combinations, and bad input.

The option cases are ported from esp-matter-mfg-tool's tests/test_cli.py and the refusals from its
test_data/test_integration_inputs.json (with this test PKI instead of the CHIP test certificates).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import pytest

from station.cli import build_parser
from station.matter.spake2p import generate_verifier
from tests.matter.conftest import station
from tests.matter.pki import Pki, make_pki

BASE = ["-v", "0xFFF2", "-p", "0x8001"]


def parse(args: list[str]):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["matter", *args])


def test_defaults() -> None:
    a = parse(BASE)
    assert (a.count, a.target, a.size, a.iteration_count, a.lifetime) == (
        "1",
        "esp32",
        "0x6000",
        "10000",
        "36500",
    )
    assert (a.cn_prefix, a.commissioning_flow, a.discovery_mode, a.log_level) == (
        "ESP32",
        "0",
        "2",
        "info",
    )
    assert a.generate_bin and not a.encrypt and not a.paa and not a.pai
    assert a.outdir == os.path.join(os.getcwd(), "out")


def test_short_forms_as_the_tools_help_lists_them() -> None:
    a = parse(
        [*BASE, "-n", "3", "-s", "0x8000", "-e", "-cf", "1", "-dm", "6", "-lt", "100",
         "-vf", "2025-01-01T00:00:00", "-cn", "Bulb", "-c", "c.pem", "-k", "k.pem", "-cd", "cd.der",
         "--pwd", "secret", "--pai"]
    )  # fmt: skip
    assert (a.count, a.size, a.encrypt, a.commissioning_flow, a.discovery_mode) == (
        "3",
        "0x8000",
        True,
        "1",
        "6",
    )
    assert (a.lifetime, a.valid_from, a.cn_prefix) == ("100", "2025-01-01T00:00:00", "Bulb")
    assert (a.cert, a.key, a.cert_dclrn, a.priv_key_pass, a.pai) == (
        "c.pem",
        "k.pem",
        "cd.der",
        "secret",
        True,
    )
    assert parse([*BASE, "--password", "x"]).priv_key_pass == "x"
    assert parse([*BASE, "-ds"]).ds_peripheral


def test_multi_value_options_stop_at_the_next_option() -> None:
    a = parse(
        [
            *BASE,
            "--locales",
            "en-US",
            "en-GB",
            "--calendar-types",
            "Gregorian",
            "Hebrew",
            "--hw-ver",
            "1",
        ]
    )
    assert a.locales == ["en-US", "en-GB"] and a.calendar_types == ["Gregorian", "Hebrew"]
    assert a.hw_ver == "1"
    assert parse([*BASE, "--fixed-labels", "0/orientation/up", "1/room/kitchen"]).fixed_labels == [
        "0/orientation/up",
        "1/room/kitchen",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "0x8001"],  # no vendor ID
        ["-v", "0xFFF2"],  # no product ID
        [],
        [*BASE, "--paa", "--pai"],  # mutually exclusive
        [*BASE, "--log-level", "verbose"],
        [*BASE, "--calendar-types", "Martian"],
        [*BASE, "--product-color", "plaid"],
        [*BASE, "--nonexistent-option"],
        [*BASE, "--vendor"],  # no abbreviations: click has none either
    ],
)
def test_refused_by_the_parser(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _out, _err = station(args)
    assert code == 2
    assert not (tmp_path / "out").exists()


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--vendor-id",
        "--product-id",
        "-cd",
        "-lt",
        "-vf",
        "--dac-in-secure-cert",
        "--mcsv",
    ):
        assert option in text


@pytest.mark.parametrize(
    "option,values",
    [
        ("-dm", ["0", "1", "64", "0x40", "3", "0xFF"]),
        ("-cf", ["3", "-1"]),
        ("--iteration-count", ["999", "100001"]),
        ("--discriminator", ["4096", "0x1000"]),
        ("--passcode", ["0", "11111111", "12345678", "87654321", "99999999", "100000000"]),
        ("--vendor-id", ["0x10000"]),
        ("--product-id", ["65536"]),
        ("--hw-ver", ["0x10000"]),
        ("--rd-id-uid", ["abc", "d2f351f57bb9387445a5f92a601d1c1"]),
        ("--mfg-date", ["2002/02/02", "20020202x", "2024-5-06"]),
        ("--serial-num", ["12345678901234567"]),
        ("--vendor-name", ["V" * 33]),
        ("--fixed-labels", ["0/orientation", "xyz/a/b"]),
        ("-vf", ["yesterday"]),
    ],
)
def test_bad_values_are_refused(option: str, values: list[str], tmp_path: Path) -> None:
    for value in values:
        code, _out, err = station(
            ["-v", "0xFFF2", "-p", "0x8001", option, value, "--outdir", str(tmp_path / "o")]
        )
        assert code == 2, (option, value)
        key = {"-dm": "--discovery-mode", "-cf": "--commissioning-flow", "-vf": "--valid-from"}.get(
            option, option
        )
        assert f"command line:0:0: {key}: " in err, (option, value, err)
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "value,expected",
    [("2", 2), ("4", 4), ("6", 6), ("0x3E", 0x3E), ("32", 32), ("0x12", 0x12)],
)
def test_discovery_bitmask_values_accepted(value: str, expected: int, tmp_path: Path) -> None:
    code, _out, err = station([*BASE, "-dm", value, "--outdir", str(tmp_path)])
    assert code == 0, err


def test_hex_and_decimal_numbers(tmp_path: Path) -> None:
    code, out, err = station(
        ["-v", "65522", "-p", "0x8001", "-n", "0x2", "-s", "0x4000", "--outdir", str(tmp_path)]
    )
    assert code == 0, err
    folders = [p for p in (tmp_path / "fff2_8001").iterdir() if p.is_dir()]
    assert len(folders) == 2
    assert all((f / f"{f.name}-partition.bin").stat().st_size == 0x4000 for f in folders)
    assert out.count("Generated output files at:") == 2


# ---- combinations the tool refuses (its integration tests 14, 15, 18-20, 24, 28-32) --------


def _refused(args: list[str], tmp_path: Path, *needles: str) -> str:
    out = tmp_path / "out"
    code, _out, err = station([*args, "--outdir", str(out)])
    assert code == 2, err
    for needle in needles:
        assert needle in err, err
    assert not out.exists(), "nothing is written"
    assert "Traceback" not in err
    return err


def test_paa_given_as_dac_is_refused(pki: Pki, tmp_path: Path) -> None:  # tool test 14
    _refused(
        [*BASE, "--pai", "-c", pki.pai_cert, "--dac-cert", pki.paa_cert, "--dac-key", pki.paa_key],
        tmp_path, "DAC must not be a CA certificate", "--dac-cert",
    )  # fmt: skip


def test_dac_of_another_pai_is_refused(pki: Pki, tmp_path: Path) -> None:  # tool test 15
    other = make_pki(tmp_path / "other")
    err = _refused(
        [*BASE, "--pai", "-c", pki.pai_cert, "--dac-cert", other.dac_cert,
         "--dac-key", other.dac_key],
        tmp_path, "DAC is not signed by its issuer's key",
    )  # fmt: skip
    assert f"{other.dac_cert}:0:0: --dac-cert: " in err


def test_paa_key_mismatch_is_refused(pki: Pki, tmp_path: Path) -> None:  # tool test 18
    _refused(
        [*BASE, "--paa", "-c", pki.paa_cert, "-k", pki.dac_key],
        tmp_path, f"{pki.dac_key}:0:0: --key: is not the private key of the PAA certificate",
    )  # fmt: skip


def test_vid_pid_not_of_the_pai_is_refused(pki: Pki, tmp_path: Path) -> None:  # tool test 19
    _refused(
        ["-v", "0x1001", "-p", "0x1001", "--pai", "-c", pki.pai_cert, "-k", pki.pai_key],
        tmp_path, "certificate has vendor ID 0xFFF2, the lot 0x1001",
        "certificate has product ID 0x8001, the lot 0x1001",
    )  # fmt: skip


def test_validity_outside_the_pai_is_refused(tmp_path: Path) -> None:  # tool test 20
    pki = make_pki(tmp_path / "pki")  # its PAI is valid from 2024-01-01
    _refused(
        [*BASE, "--pai", "-c", pki.pai_cert, "-k", pki.pai_key, "-vf", "2001-01-01T00:00:00",
         "--lifetime", "1000"],
        tmp_path, "command line:0:0: --lifetime: the certificates to make: validity 2001-01-01",
    )  # fmt: skip


def test_port_with_several_devices_is_refused(tmp_path: Path) -> None:  # tool test 24
    _refused([*BASE, "--port", "/dev/ttyUSB0", "-n", "3"], tmp_path, "--port: is for one device")


@pytest.mark.parametrize(
    "flags",
    [
        ["--commissionable-data-in-secure-cert"],
        ["--rd-id-uid-in-secure-cert"],
        ["--dac-in-secure-cert", "--rd-id-uid-in-secure-cert"],
        ["--dac-in-secure-cert", "--commissionable-data-in-secure-cert"],
        ["--rd-id-uid-in-secure-cert", "--commissionable-data-in-secure-cert"],
    ],
)
def test_secure_cert_options_go_together(
    flags: list[str], pki: Pki, tmp_path: Path
) -> None:  # 28-32
    _refused([*BASE, "--pai", "-c", pki.pai_cert, "-k", pki.pai_key, *flags], tmp_path, "all three")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--passcode", "20202021", "-n", "2"], "--passcode: is for one device"),
        (["--serial-num", "S1", "-n", "2"], "--serial-num: is for one device"),
        (["--salt", "AAAAAAAAAAAAAAAAAAAAAA=="], "--salt and --verifier go together"),
        (["--csv", "x.csv"], "--csv and --mcsv go together"),
        (["--dac-cert", "d.pem"], "--dac-cert and --dac-key go together"),
        (["--pai"], "--pai: needs -c CERT and -k KEY"),
        (["-c", "x.pem"], "-c: say what it is: --paa or --pai"),
        (["-ds", "--target", "esp32h2", "--efuse-key-id", "1"], "--ds-peripheral:"),
        (
            [
                "--enable-dynamic-passcode",
                "--salt",
                "AAAAAAAAAAAAAAAAAAAAAA==",
                "--verifier",
                "AA==",
                "--passcode",
                "20202021",
            ],
            "cannot be used with --enable-dynamic-passcode",
        ),
    ],
)
def test_other_refused_combinations(args: list[str], needle: str, tmp_path: Path) -> None:
    _refused([*BASE, *args], tmp_path, needle)


def test_verifier_of_another_passcode_is_refused(tmp_path: Path) -> None:
    salt = bytes(32)
    verifier = base64.b64encode(generate_verifier(20202021, salt, 10000)).decode()
    _refused(
        [*BASE, "--passcode", "20202022", "--salt", base64.b64encode(salt).decode(),
         "--verifier", verifier],
        tmp_path, "--verifier: is not the verifier of --passcode",
    )  # fmt: skip


# ---- every problem of a lot at once ------------------------------------------------------


def test_every_problem_at_once_located(pki: Pki, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    bad_cd = tmp_path / "cd.bin"
    bad_cd.write_bytes(b"not DER at all")
    err = _refused(
        ["-v", "0x1FFF2", "-p", "-1", "--passcode", "12345678", "--discriminator", "5000",
         "--pai", "-c", pki.pai_cert, "-k", other.pai_key, "--paa-cert", other.paa_cert,
         "-cd", str(bad_cd), "-vf", "2001-01-01", "-lt", "30"],
        tmp_path,
        "command line:0:0: --vendor-id: vendor ID 131058 is out of range",
        "command line:0:0: --product-id: product ID -1 is out of range",
        "command line:0:0: --passcode: passcode 12345678 is one the Matter spec forbids",
        "command line:0:0: --discriminator: discriminator 5000 is out of range",
        f"{other.pai_key}:0:0: --key: is not the private key of the PAI certificate",
        f"{pki.pai_cert}:0:0: --cert: PAI is not signed by its issuer's key",
        f"{bad_cd}:0:0: --cert-dclrn: is not DER",
        "command line:0:0: --lifetime: the certificates to make: validity 2001-01-01",
    )  # fmt: skip
    assert len(err.strip().splitlines()) >= 8


def test_expired_certificates_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.matter.pki import _name, make_cert, pem

    paa_key, pai_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    start, end = (
        dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc),
    )
    pai = make_cert(
        _name("Old PAI", 0xFFF2, 0x8001),
        pai_key,
        _name("PAA"),
        paa_key,
        ca=True,
        path_length=0,
        start=start,
        end=end,
    )
    cert = tmp_path / "old_pai.pem"
    cert.write_bytes(pem(pai))
    key = tmp_path / "old_pai_key.pem"
    from tests.matter.pki import key_pem

    key.write_bytes(key_pem(pai_key))
    _refused(
        [*BASE, "--pai", "-c", str(cert), "-k", str(key)],
        tmp_path,
        f"{cert}:0:0: --cert: PAI certificate is expired on 2021-01-01",
    )


def test_extra_values_are_checked_with_their_place(tmp_path: Path) -> None:
    conf = tmp_path / "extra.csv"
    conf.write_text("my-u8,data,u8\nmy-str,data,string\nbad,dato,u8\n")
    values = tmp_path / "values.csv"
    values.write_text("my-u8,my-str,bad,stray\n7,ok,1,x\n300,fine,2,y\n")
    err = _refused(
        [*BASE, "--csv", str(conf), "--mcsv", str(values)],
        tmp_path,
        f"{conf}:3:2: bad: type 'dato' must be data or file",
        f"{values}:1:4: stray: not a key of {conf}",
    )
    assert "Traceback" not in err


def test_extra_value_out_of_range_is_located(tmp_path: Path) -> None:
    conf = tmp_path / "extra.csv"
    conf.write_text("my-u8,data,u8\n")
    values = tmp_path / "values.csv"
    values.write_text("my-u8\n7\n300\n")
    _refused([*BASE, "--csv", str(conf), "--mcsv", str(values)], tmp_path, f"{values}:3:1: my-u8: ")


def test_existing_device_folder_is_not_overwritten(pki: Pki, tmp_path: Path) -> None:
    args = [
        *BASE,
        "--pai",
        "-c",
        pki.pai_cert,
        "--dac-cert",
        pki.dac_cert,
        "--dac-key",
        pki.dac_key,
        "--outdir",
        str(tmp_path),
    ]
    assert station(args)[0] == 0
    code, _out, err = station(args)
    assert code == 2 and "already exists; nothing is overwritten" in err


def test_secrets_are_owner_only(pki: Pki, tmp_path: Path) -> None:
    code, _o, err = station(
        [
            *BASE,
            "--pai",
            "-c",
            pki.pai_cert,
            "-k",
            pki.pai_key,
            "-lt",
            "365",
            "-e",
            "--outdir",
            str(tmp_path),
        ]
    )
    assert code == 0, err
    [folder] = [p for p in (tmp_path / "fff2_8001").iterdir() if p.is_dir()]
    for name in (f"{folder.name}-partition.bin", f"{folder.name}-keys-partition.bin",
                 f"{folder.name}-onb_codes.csv", "internal/DAC_key.pem", "internal/DAC_key.der",
                 "internal/DAC_private_key.bin"):  # fmt: skip
        assert (folder / name).stat().st_mode & 0o077 == 0, name
    summary = next((tmp_path / "fff2_8001").glob("summary-*.csv"))
    assert summary.stat().st_mode & 0o077 == 0


def test_encrypted_partition_decrypts_with_its_key(pki: Pki, tmp_path: Path) -> None:
    from station.nvs import decode_image, parse_key_partition

    code, _o, err = station([*BASE, "-e", "--passcode", "20202021", "--outdir", str(tmp_path)])
    assert code == 0, err
    [folder] = [p for p in (tmp_path / "fff2_8001").iterdir() if p.is_dir()]
    keys = parse_key_partition((folder / f"{folder.name}-keys-partition.bin").read_bytes(), "keys")
    image = decode_image((folder / f"{folder.name}-partition.bin").read_bytes(), keys=keys)
    assert image.as_dict()["chip-factory"]["vendor-id"] == 0xFFF2


def _png_lum(png: bytes) -> tuple[bytes, int, int]:
    """An 8-bit grey image from segno's PNG (1-bit grey or palette): no imaging library needed."""
    import struct
    import zlib

    pos, idat, palette = 8, b"", None
    width = height = depth = ctype = 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"PLTE":
            palette = [body[i] for i in range(0, len(body), 3)]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert depth == 1 and ctype in (0, 3)
    stride = (width + 7) // 8 + 1
    out = bytearray()
    prev = bytes(stride - 1)
    for y in range(height):
        kind, line = raw[y * stride], bytearray(raw[y * stride + 1 : (y + 1) * stride])
        assert kind in (0, 1, 2), f"PNG filter {kind}"
        for i in range(len(line)):
            if kind == 1:
                line[i] = (line[i] + (line[i - 1] if i else 0)) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + prev[i]) & 0xFF
        prev = bytes(line)
        for x in range(width):
            bit = (line[x // 8] >> (7 - x % 8)) & 1
            out.append(palette[bit] if palette else 255 * bit)
    return bytes(out), width, height


def test_qr_png_reads_back(pki: Pki, tmp_path: Path) -> None:
    from tests.labels.conftest import decode_lum

    code, _o, err = station(
        [*BASE, "--passcode", "20202021", "--discriminator", "3840", "--outdir", str(tmp_path)]
    )
    assert code == 0, err
    [folder] = [p for p in (tmp_path / "fff2_8001").iterdir() if p.is_dir()]
    lum, width, height = _png_lum((folder / f"{folder.name}-qrcode.png").read_bytes())
    assert width == height == (25 + 8) * 6  # version 2, quiet zone 4, scale 6: as the tool's
    assert decode_lum(lum, width, height, width) == [("QRCode", "MT:634J042C00KA0648G00")]


@pytest.mark.parametrize("mode", ["--pai", "--paa"])
def test_worker_processes_make_the_same_kind_of_devices(
    mode: str, pki: Pki, tmp_path: Path
) -> None:
    """With --jobs, devices are made in worker processes; a PAI made from the PAA is shared."""
    from cryptography.x509 import load_pem_x509_certificate

    from tests.matter.checks import check_device, device_folders

    cert, key = (pki.pai_cert, pki.pai_key) if mode == "--pai" else (pki.paa_cert, pki.paa_key)
    args = [*BASE, mode, "-c", cert, "-k", key, "-lt", "365", "-n", "6", "--jobs", "2"]
    code, _o, err = station([*args, "--outdir", str(tmp_path)])
    assert code == 0, err
    paa = load_pem_x509_certificate(Path(pki.paa_cert).read_bytes())
    folders = device_folders(tmp_path / "fff2_8001")
    assert len(folders) == 6
    pais = set()
    for folder in folders:
        check_device(folder, 0xFFF2, 0x8001, paa)
        pais.add((folder / "internal" / "PAI_cert.der").read_bytes())
    assert len(pais) == 1


def test_certificates_that_would_be_expired_are_refused(pki: Pki, tmp_path: Path) -> None:
    """The tool would make them (its PAI covers the window); the station refuses."""
    _refused(
        [*BASE, "--pai", "-c", pki.pai_cert, "-k", pki.pai_key, "-vf", "2024-06-01", "-lt", "30"],
        tmp_path, "--valid-from: the certificates to make would have expired on 2024-07-01",
    )  # fmt: skip
