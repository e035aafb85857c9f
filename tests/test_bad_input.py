"""Every bad input is a clean error: exit code 2, ``file:line:column: key: message``, no
traceback, nothing written. Each case runs the real command line in a child process with a
time limit (a FIFO used to hang ``generate`` and ``run``; ``/dev/zero`` read until memory ran
out; an absurd ``blob_fill`` and a deeply nested lot file were Python tracebacks)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")
LOCATED = re.compile(r"^.+:\d+:\d+: \S.*: .+$")


def station(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "station", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test instead of the run
        env=env,
    )


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def refused(done: subprocess.CompletedProcess[str], *expected: str) -> list[str]:
    """The run exited 2 with located problems only (no traceback); returns the lines."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert lines and all(LOCATED.match(line) for line in lines), lines
    for text in expected:
        assert any(text in line for line in lines), (text, lines)
    return lines


CONFIG = "dev,namespace,\nserial_no,data,string\ncert,file,binary\n"


@pytest.fixture
def lotdir(tmp_path: Path) -> Path:
    (tmp_path / "config.csv").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n", encoding="utf-8")
    return tmp_path


def generate(lotdir: Path, values: str, config: str = "config.csv") -> list[str]:
    (lotdir / "values.csv").write_text(values, encoding="utf-8")
    before = files(lotdir)
    done = station(lotdir, "generate", config, "values.csv", "dev", "0x6000", "--outdir", "out")
    assert files(lotdir) == before, "nothing is written"
    return refused(done)


def test_blob_fill_with_an_absurd_size(lotdir: Path) -> None:
    (lotdir / "fill.csv").write_text(
        "dev,namespace,\nserial_no,data,string\npad,data,blob_fill(99999999999999;0xff)\n",
        encoding="utf-8",
    )
    lines = generate(lotdir, "serial_no,pad\nSN1,x\n", config="fill.csv")
    assert lines == [
        "fill.csv:3:3: pad: blob_fill length has 14 digits: NVS holds at most 508000 bytes in "
        "one blob"
    ]


def test_blob_fill_with_an_absurd_size_in_an_nvs_csv(tmp_path: Path) -> None:
    (tmp_path / "n.csv").write_text(
        "key,type,encoding,value\ndev,namespace,,\npad,data,blob_sz_fill(99999999999;0x00),x\n",
        encoding="utf-8",
    )
    lines = refused(station(tmp_path, "nvs", "n.csv", "out.bin", "0x6000"))
    assert lines[0].startswith("n.csv:3:3: pad: blob_sz_fill length has 11 digits")
    assert not (tmp_path / "out.bin").exists()


def test_deeply_nested_lot_file(tmp_path: Path) -> None:
    lot = tmp_path / "lot.toml"
    lot.write_text('name = "X"\nnested = ' + "[" * 50000 + "]" * 50000 + "\n", encoding="utf-8")
    for command in (["run", "lot.toml", "--port", "socket://127.0.0.1:9"], ["report", "lot.toml"]):
        lines = refused(station(tmp_path, *command))
        assert lines == [
            "lot.toml:2:0: -: not valid TOML for a lot: arrays or tables nested too deeply"
        ]
    assert files(tmp_path) == {"lot.toml"}


@posix_only
def test_values_path_in_a_symlink_loop(lotdir: Path) -> None:
    (lotdir / "a.csv").symlink_to("b.csv")
    (lotdir / "b.csv").symlink_to("a.csv")
    before = files(lotdir)
    done = station(lotdir, "generate", "config.csv", "a.csv", "dev", "0x6000", "--outdir", "out")
    refused(
        done, "a.csv:0:0: -: the values file: cannot read a.csv: Too many levels of symbolic links"
    )
    assert files(lotdir) == before


@posix_only
def test_file_value_in_a_symlink_loop(lotdir: Path) -> None:
    (lotdir / "a.pem").symlink_to("b.pem")
    (lotdir / "b.pem").symlink_to("a.pem")
    lines = generate(lotdir, "serial_no,cert\nSN1,a.pem\n")
    assert lines == [
        f"values.csv:2:2: cert: cannot read {lotdir / 'a.pem'}: Too many levels of symbolic links"
    ]


@posix_only
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_file_value_that_is_not_a_regular_file(lotdir: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(lotdir / "cert.fifo")
        path = str(lotdir / "cert.fifo")
    else:
        path = "/dev/zero"
    lines = generate(lotdir, f"serial_no,cert\nSN1,{path}\nSN2,cert.pem\n")
    assert lines == [
        f"values.csv:2:2: cert: {path} is not an ordinary file (a FIFO, device or socket); only "
        "a regular file can be read"
    ]


@posix_only
def test_values_and_lot_files_that_are_fifos(lotdir: Path) -> None:
    os.mkfifo(lotdir / "values.fifo")
    os.mkfifo(lotdir / "lot.toml")
    before = files(lotdir)
    done = station(lotdir, "generate", "config.csv", "values.fifo", "dev", "0x6000")
    refused(done, "values.fifo:0:0: -: the values file: values.fifo is not an ordinary file")
    refused(station(lotdir, "run", "lot.toml", "--port", "socket://127.0.0.1:9"), "lot.toml:0:0")
    refused(station(lotdir, "nvs", "values.fifo", "out.bin", "0x3000"), "values.fifo:0:0")
    assert files(lotdir) == before


def test_file_value_larger_than_any_nvs_value(lotdir: Path) -> None:
    with (lotdir / "big.bin").open("wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    lines = generate(lotdir, "serial_no,cert\nSN1,big.bin\n")
    assert lines == [
        f"values.csv:2:2: cert: {lotdir / 'big.bin'} is 67108864 bytes: too large for an NVS "
        "value (at most 1081536 bytes)"
    ]


def test_file_value_larger_than_the_partition(lotdir: Path) -> None:
    (lotdir / "big.bin").write_bytes(b"\x5a" * 100_000)
    lines = generate(lotdir, "serial_no,cert\nSN1,big.bin\n")
    assert len(lines) == 1 and lines[0].startswith("values.csv:2:0: size: the data does not fit")


def test_run_with_a_fifo_file_value_is_refused(lotdir: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("no FIFOs")
    os.mkfifo(lotdir / "cert.fifo")
    (lotdir / "values.csv").write_text("serial_no,cert\nSN1,cert.fifo\n", encoding="utf-8")
    (lotdir / "partitions.csv").write_text(
        "nvs, data, nvs, 0x9000, 0x4000,\nfctry, data, nvs, 0xd000, 0x6000,\n"
        "factory, app, factory, 0x20000, 1M,\n",
        encoding="utf-8",
    )
    (lotdir / "lot.toml").write_text(
        'name = "FIFO"\nconfig = "config.csv"\nvalues = "values.csv"\n'
        'partition_table = "partitions.csv"\npartition = "fctry"\nfileid = "serial_no"\n',
        encoding="utf-8",
    )
    before = files(lotdir)
    refused(
        station(lotdir, "run", "lot.toml", "--port", "socket://127.0.0.1:9"),
        "values.csv:2:2: cert:",
    )
    assert files(lotdir) == before


def test_identical_problems_are_capped(lotdir: Path) -> None:
    (lotdir / "n.csv").write_text("dev,namespace,\nn,data,u8\n", encoding="utf-8")
    lines = generate(lotdir, "n\n" + "300\n" * 200, config="n.csv")
    assert lines == [f"values.csv:{n}:1: n: too large for u8 (0..255)" for n in range(2, 7)] + [
        "values.csv:7:1: n: … and 195 more like this (lines 7-201)"
    ]


def test_warnings_do_not_stop_a_lot_and_never_show_a_value(lotdir: Path) -> None:
    (lotdir / "w.csv").write_text(
        "dev,namespace,\nserial_no,data,string\ndevice_key,data,hex2bin\nname,data,string\n",
        encoding="utf-8",
    )
    (lotdir / "values.csv").write_text(
        "serial_no,device_key,name,\n"
        "SN1,c0ffee00c0ffee01,plain,\n"
        "SN2,c0ffee00c0ffee01,ab\0cd,\n"
        "SN2,c0ffee00c0ffee01,ab\0cd,\n",
        encoding="utf-8",
    )
    done = station(lotdir, "generate", "w.csv", "values.csv", "dev", "0x6000", "--outdir", "out")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "values.csv:1:4: -: warning: a column without a name",
        "values.csv:3:2: device_key: warning: same value as line 2; two devices would share a "
        "key or secret",
        "values.csv:3:3: name: warning: the string holds a NUL character; the device reads it "
        "only up to there",
        "values.csv:4:1: -: warning: the row is identical to line 3; two devices would get the "
        "same data",
        "values.csv:4:2: device_key: warning: same value as line 2; two devices would share a "
        "key or secret",
        "values.csv:4:3: name: warning: the string holds a NUL character; the device reads it "
        "only up to there",
    ]
    assert "c0ffee" not in done.stderr + done.stdout


def test_a_bad_value_is_described_never_shown(lotdir: Path) -> None:
    """A PIN with a typo and a PEM private key in a u32 file column: say the shape only."""
    (lotdir / "key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n",
        encoding="utf-8",
    )
    (lotdir / "p.csv").write_text(
        "dev,namespace,\npin,data,u32\nkey,file,u32\ncode,data,hex2bin\nmodel,data,string,REPEAT\n",
        encoding="utf-8",
    )
    lines = generate(
        lotdir,
        "pin,key,code,model\n12a4567890,key.pem,00zz,M1\n99999999999,cert.pem,0g,SECRETMODEL\n",
        config="p.csv",
    )
    text = "\n".join(lines)
    for secret in ("12a4567890", "TOPSECRET", "PRIVATE", "99999999999", "zz", "SECRETMODEL", "'g'"):
        assert secret not in text
    assert lines[:3] == [
        "values.csv:2:1: pin: not a whole number, 10 characters (u32 takes 42, -7 or 0x2A)",
        "values.csv:2:2: key: file content: not a whole number, 75 characters (u32 takes 42, -7 "
        "or 0x2A)",
        "values.csv:2:3: code: character 3 is not a hex digit (hex2bin takes 0-9 and a-f only)",
    ]
    assert "values.csv:3:1: pin: too large for u32 (0..4294967295)" in lines
    assert any(
        line.startswith("values.csv:3:4: model: REPEAT key: the value differs") for line in lines
    )


@posix_only
def test_key_files_that_are_not_regular_files(lotdir: Path) -> None:
    (lotdir / "values.csv").write_text("serial_no,cert\nSN1,cert.pem\n", encoding="utf-8")
    os.mkfifo(lotdir / "key.fifo")
    before = files(lotdir)
    for option in ("--inputkey", "--kp_hmac_inputkey"):
        extra = ["--keygen", "--key_protect_hmac"] if option == "--kp_hmac_inputkey" else []
        done = station(
            lotdir,
            "generate",
            "config.csv",
            "values.csv",
            "dev",
            "0x6000",
            *extra,
            option,
            "/dev/zero",
        )
        refused(done, f"/dev/zero:0:0: {option}: cannot read: /dev/zero is not an ordinary file")
        done = station(
            lotdir,
            "generate",
            "config.csv",
            "values.csv",
            "dev",
            "0x6000",
            *extra,
            option,
            "key.fifo",
        )
        refused(done, f"key.fifo:0:0: {option}: cannot read: key.fifo is not an ordinary file")
    assert files(lotdir) == before


@posix_only
def test_other_files_a_command_reads_must_be_regular_files(tmp_path: Path) -> None:
    """Key files, images, partition tables, build folders and slot maps: a FIFO or a device is
    refused before it is opened, with the file named, whichever command reads it."""
    os.mkfifo(tmp_path / "in.fifo")
    (tmp_path / "n.csv").write_text(
        "key,type,encoding,value\ndev,namespace,,\nsn,data,string,SN1\n", encoding="utf-8"
    )
    build = tmp_path / "build"
    build.mkdir()
    (build / "flasher_args.json").write_text(
        '{"flash_files": {"0x10000": "../in.fifo"}, "extra_esptool_args": {"chip": "esp32"}}',
        encoding="utf-8",
    )
    before = files(tmp_path)
    cases = [
        (["nvs", "n.csv", "out.bin", "0x3000", "--inputkey", "in.fifo"], "in.fifo"),
        (["inspect", "/dev/zero"], "/dev/zero"),
        (["inspect", "in.fifo"], "in.fifo"),
        (["partitions", "in.fifo"], "in.fifo"),
        (["partitions", "/dev/zero"], "/dev/zero"),
        (
            ["flash", "--port", "socket://127.0.0.1:9", "--firmware", "build/flasher_args.json"],
            "in.fifo",
        ),
        (["flash", "--port", "socket://127.0.0.1:9", "0x9000", "in.fifo"], "in.fifo"),
        (["ports", "--slots", "in.fifo"], "in.fifo"),
    ]
    for args, named in cases:
        lines = refused(station(tmp_path, *args, timeout=60), named)
        assert any("not an ordinary file" in line or "not a regular file" in line for line in lines)
    assert files(tmp_path) == before
