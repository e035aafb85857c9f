"""`station nvs` and `station inspect`: exit codes, located errors, nothing written on error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from station import cli
from station.nvs import (
    decode_image,
    encode_image,
    hmac_derive_keys,
    key_partition_image,
    parse_key_partition,
    read_nvs_csv,
)
from tests.nvs.official import write_csv

ROWS = [
    ("storage", "namespace", "", ""),
    ("serial", "data", "string", "SN-0001"),
    ("n", "data", "u16", "513"),
]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "in.csv", ROWS)
    return tmp_path


def test_nvs_writes_the_image(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["nvs", "in.csv", "out.bin", "0x4000"]) == 0
    assert (work / "out.bin").read_bytes() == encode_image(read_nvs_csv(work / "in.csv"), 0x4000)
    assert capsys.readouterr().out == (
        "Created NVS binary: out.bin (0x4000 bytes, version 2, 1 page(s) used)\n"
    )
    assert cli.main(["nvs", "in.csv", "v1.bin", "16384", "--version", "1"]) == 0
    assert decode_image((work / "v1.bin").read_bytes()).pages[0].version == 1


def test_bad_size_exits_2_and_writes_nothing(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["nvs", "in.csv", "out.bin", "0x4001"]) == 2
    assert capsys.readouterr().err == (
        "command line:0:0: size: size 0x4001 is not a multiple of 4096 (0x1000);"
        " NVS is made of 4 KiB pages\n"
    )
    assert not (work / "out.bin").exists()


def test_official_tool_exits_0_on_a_bad_size(work: Path) -> None:
    """What we fix: Espressif's generator says nothing useful and reports success."""
    done = subprocess.run(
        [sys.executable, "-m", "esp_idf_nvs_partition_gen", "generate", "in.csv", "out.bin", "abc"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and not (work / "out.bin").exists()


def test_every_problem_on_stderr(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(
        work / "bad.csv",
        [
            ("storage", "namespace", "", ""),
            ("a", "data", "u8", "300"),
            ("b", "data", "hex2bin", "abc"),
        ],
    )
    (work / "out.bin").write_bytes(b"old")
    assert cli.main(["nvs", "bad.csv", "out.bin", "big", "--inputkey", "missing.bin"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "command line:0:0: size: not a size: 'big' (write e.g. 0x6000 or 24576)",
        "missing.bin:0:0: -: key file not found",
    ]
    assert cli.main(["nvs", "bad.csv", "out.bin", "0x3000"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "bad.csv:3:4: a: too large for u8 (0..255)",
        "bad.csv:4:4: b: odd number of hex digits (3); each byte needs two",
    ]
    assert (work / "out.bin").read_bytes() == b"old"  # untouched
    assert "Traceback" not in err


def test_inputkey(work: Path) -> None:
    keys = hmac_derive_keys(b"k" * 32)
    (work / "keys.bin").write_bytes(key_partition_image(keys))
    assert cli.main(["nvs", "in.csv", "enc.bin", "0x3000", "--inputkey", "keys.bin"]) == 0
    data = (work / "enc.bin").read_bytes()
    assert data == encode_image(read_nvs_csv(work / "in.csv"), 0x3000, keys=keys)
    (work / "short.bin").write_bytes(b"x" * 64)
    assert cli.main(["nvs", "in.csv", "e2.bin", "0x3000", "--inputkey", "short.bin"]) == 2
    assert not (work / "e2.bin").exists()


def test_keygen_never_overwrites(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a.bin", "b.bin", "c.bin"):
        assert cli.main(["nvs", "in.csv", name, "0x3000", "--keygen", "--outdir", "out"]) == 0
    files = sorted((work / "out" / "keys").iterdir())
    assert len(files) == 3  # the same minute: three key files, none overwritten
    contents = {f.read_bytes() for f in files}
    assert len(contents) == 3
    for image_name in ("a.bin", "b.bin", "c.bin"):
        data = (work / image_name).read_bytes()
        decoded = [decode_image(data, parse_key_partition(c)) for c in contents]
        assert sum(not d.errors for d in decoded) == 1
    capsys.readouterr()
    assert (
        cli.main(
            [
                "nvs",
                "in.csv",
                "d.bin",
                "0x3000",
                "--keygen",
                "--outdir",
                "out",
                "--keyfile",
                files[0].name,
            ]
        )
        == 2
    )
    assert "never overwritten" in capsys.readouterr().err
    assert not (work / "d.bin").exists()


def test_keygen_with_hmac_scheme(work: Path) -> None:
    (work / "hmac.bin").write_bytes(b"h" * 32)
    assert (
        cli.main(
            [
                "nvs",
                "in.csv",
                "a.bin",
                "0x3000",
                "--keygen",
                "--keyfile",
                "k.bin",
                "--key_protect_hmac",
                "--kp_hmac_inputkey",
                "hmac.bin",
            ]
        )
        == 0
    )
    keys = hmac_derive_keys(b"h" * 32)
    assert (work / "keys" / "k.bin").read_bytes() == key_partition_image(keys)
    assert not decode_image((work / "a.bin").read_bytes(), keys).errors

    assert (
        cli.main(
            [
                "nvs",
                "in.csv",
                "b.bin",
                "0x3000",
                "--key_protect_hmac",
                "--kp_hmac_keygen",
                "--keyfile",
                "k2.bin",
            ]
        )
        == 0
    )
    hmac_key = (work / "keys" / "hmac-k2.bin").read_bytes()
    assert len(hmac_key) == 32
    derived = hmac_derive_keys(hmac_key)
    assert parse_key_partition((work / "keys" / "k2.bin").read_bytes()) == derived
    assert not decode_image((work / "b.bin").read_bytes(), derived).errors


def test_conflicting_key_options(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "hmac.bin").write_bytes(b"h" * 31)
    assert (
        cli.main(
            [
                "nvs",
                "in.csv",
                "a.bin",
                "0x3000",
                "--key_protect_hmac",
                "--kp_hmac_inputkey",
                "hmac.bin",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == (
        "hmac.bin:0:0: hmac key: an HMAC key file has 32 bytes, this one has 31\n"
    )
    assert cli.main(["nvs", "in.csv", "a.bin", "0x3000", "--keygen", "--inputkey", "x.bin"]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (work / "a.bin").exists() and not (work / "keys").exists()


def test_inspect(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["nvs", "in.csv", "out.bin", "0x3000"]) == 0
    capsys.readouterr()
    assert cli.main(["inspect", "out.bin"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "out.bin: 12288 bytes, 3 pages",
        "  page 0: active, seq 0, version 2, 4/126 entries used, 0 erased",
        "  page 1: empty",
        "  page 2: empty",
        "namespace storage:",
        '    serial          string "SN-0001"',
        "    n               u16    513",
    ]
    assert cli.main(["inspect", "out.bin", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(i["key"], i["value"]) for i in doc["items"]] == [("serial", "SN-0001"), ("n", 513)]


def test_inspect_encrypted_and_damaged(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = hmac_derive_keys(b"z" * 32)
    (work / "keys.bin").write_bytes(key_partition_image(keys))
    assert cli.main(["nvs", "in.csv", "enc.bin", "0x3000", "--inputkey", "keys.bin"]) == 0
    capsys.readouterr()
    assert cli.main(["inspect", "enc.bin", "--key", "keys.bin"]) == 0
    assert '"SN-0001"' in capsys.readouterr().out
    assert cli.main(["inspect", "enc.bin"]) == 1  # no key: CRC errors, reported
    out = capsys.readouterr().out
    assert "problem(s):" in out and "is the image encrypted?" in out
    assert cli.main(["inspect", "nothing.bin"]) == 2
    assert capsys.readouterr().err == "nothing.bin:0:0: -: image not found\n"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_generated_keys_are_for_their_owner_only(work: Path) -> None:
    """--keygen and --kp_hmac_keygen wrote 0644 keys; now 0600 in a 0700 keys/ folder."""
    assert cli.main(["nvs", "in.csv", "a.bin", "0x3000", "--keygen", "--keyfile", "k.bin"]) == 0
    args = ["nvs", "in.csv", "b.bin", "0x3000", "--key_protect_hmac", "--kp_hmac_keygen"]
    assert cli.main([*args, "--keyfile", "k2.bin"]) == 0
    keys = work / "keys"
    assert sorted(p.name for p in keys.iterdir()) == ["hmac-k2.bin", "k.bin", "k2.bin"]
    assert {p.name: _mode(p) for p in keys.iterdir()} == dict.fromkeys(
        ("hmac-k2.bin", "k.bin", "k2.bin"), 0o600
    )
    assert _mode(keys) == 0o700
