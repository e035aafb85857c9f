"""Per-device keys: escrowed durably (0600 in a 0700 folder) with their SHA-256 on record
before the burn; exported with a manifest; host copies deleted on request. Host-based flash
encryption: every region ESP-IDF encrypts decrypts back (espsecure) to the plain image."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from station.cli import main
from station.flashing.device import WriteRegion
from station.partitions import load_table
from station.production.security_commands import journal_path, load
from station.security import JsonlJournal, KeyEscrow, Provisioner
from station.security.flashenc import decrypt, encrypt
from tests.security.conftest import make_lot, virtual_esp


@pytest.fixture
def fe_lot(tmp_path: Path) -> Path:
    return make_lot(
        tmp_path / "lot",
        chip="esp32s3",
        security=(
            'recipes = ["flash_encryption"]\nxts_aes = 256\ndelete_keys_after_verify = true\n'
        ),
    )


def test_keys_are_escrowed_before_the_burn(fe_lot: Path, tmp_path: Path) -> None:
    settings = load(str(fe_lot))[0].settings
    assert settings is not None
    journal = JsonlJournal(journal_path(settings.lot_file, "SEC"))
    prov = Provisioner(settings, journal)
    prov.burn(virtual_esp("esp32s3", tmp_path / "u.efuse"), "SN0001")
    key_file = settings.key_folder / "SN0001.xts.bin"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.key_folder.stat().st_mode) == 0o700
    assert len(key_file.read_bytes()) == 64
    records = [json.loads(line) for line in journal.path.read_text().splitlines()]
    assert records[0]["event"] == "key"  # the hash is on record before the first step begins
    assert records[0]["sha256"] == __import__("hashlib").sha256(key_file.read_bytes()).hexdigest()
    assert records[1] == {**records[1], "event": "begun", "step": "flash_encryption.key0"}
    assert key_file.read_bytes().hex() not in journal.path.read_text()
    assert prov.keys("SN0001").xts == key_file.read_bytes()  # the same key every time

    key_file.write_bytes(os.urandom(64))  # someone replaced the escrowed key
    with pytest.raises(Exception, match="not the key unit SN0001 was given"):
        prov.keys("SN0001")


def test_export_and_delete(
    fe_lot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load(str(fe_lot))[0].settings
    assert settings is not None
    journal = JsonlJournal(journal_path(settings.lot_file, "SEC"))
    prov = Provisioner(settings, journal)
    for unit in ("SN0001", "SN0002"):
        prov.burn(virtual_esp("esp32s3", tmp_path / f"{unit}.efuse"), unit, f"mac-{unit}")
    keys = {u: (settings.key_folder / f"{u}.xts.bin").read_bytes() for u in ("SN0001", "SN0002")}

    out = tmp_path / "handover"
    assert main(["security", "export", str(fe_lot), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "exported 2 key file(s)" in printed.out
    for k in keys.values():
        assert k.hex() not in printed.out + printed.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(e["unit"], e["key"]) for e in manifest["keys"]] == [
        ("SN0001", "xts"),
        ("SN0002", "xts"),
    ]
    assert all(e["sha256"] == e["recorded_sha256"] and e["device"] for e in manifest["keys"])
    assert (out / "SN0002.xts.bin").read_bytes() == keys["SN0002"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700

    archive = tmp_path / "handover.tar.gz"
    assert main(["security", "export", str(fe_lot), "--out", str(archive)]) == 0
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [
            "keys/SN0001.xts.bin",
            "keys/SN0002.xts.bin",
            "manifest.json",
        ]
        f = tar.extractfile("keys/SN0001.xts.bin")
        assert f is not None and f.read() == keys["SN0001"]
    assert main(["security", "export", str(fe_lot), "--out", str(archive)]) == 2  # no overwrite

    prov.verified("SN0001")  # delete_keys_after_verify = true
    assert not (settings.key_folder / "SN0001.xts.bin").exists()
    assert (settings.key_folder / "SN0002.xts.bin").exists()


def test_escrow_is_kept_unless_asked(tmp_path: Path) -> None:
    escrow = KeyEscrow(tmp_path / "keys", JsonlJournal(tmp_path / "j.jsonl"))
    a = escrow.key("U1", "xts", 32)
    assert escrow.key("U1", "xts", 32) == a
    assert escrow.key("U2", "xts", 32) != a
    with pytest.raises(Exception, match="letters, digits"):
        escrow.key("../evil", "xts", 32)


@pytest.mark.parametrize("size", [32, 64])
def test_regions_decrypt_back_with_espsecure(tmp_path: Path, size: int) -> None:
    """Every region ESP-IDF encrypts is encrypted for its own offset; espsecure's own
    decrypt-flash-data (the real command) gives the plain image back."""
    make_lot(tmp_path / "lot", chip="esp32s3")
    table = load_table(tmp_path / "lot" / "partitions.csv")
    key = os.urandom(size)
    build = tmp_path / "lot" / "build"
    plain = [
        WriteRegion(0x0, (build / "bootloader.bin").read_bytes(), "bootloader", False),
        WriteRegion(0x8000, (build / "partition-table.bin").read_bytes(), "partition table", False),
        WriteRegion(0xC000, os.urandom(0x1000), "nvs_key"),  # flagged encrypted
        WriteRegion(0xD000, os.urandom(0x3000), "fctry"),  # NVS: never flash-encrypted
        WriteRegion(0x10000, (build / "app.bin").read_bytes() + b"\x01\x02\x03", "app", False),
    ]
    from station.security.flashenc import encrypt_regions

    out = encrypt_regions(key, plain, table.partitions, bootloader=0x0, table=0x8000)
    assert [r.name for r in out] == [
        "bootloader (encrypted)",
        "partition table (encrypted)",
        "nvs_key (encrypted)",
        "fctry",
        "app (encrypted)",
    ]
    assert out[3] == plain[3]
    (tmp_path / "key.bin").write_bytes(key)
    for p, e in zip(plain, out, strict=True):
        if p is e:
            continue
        assert e.data != p.data[: len(e.data)]
        padded = p.data + b"\xff" * (-len(p.data) % 16)
        assert decrypt(key, p.offset, e.data) == padded
        assert encrypt(key, p.offset + 0x1000, p.data) != e.data  # bound to its offset
        src, dst = tmp_path / "enc.bin", tmp_path / "dec.bin"
        src.write_bytes(e.data)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "espsecure",
                "decrypt-flash-data",
                "--aes-xts",
                "--keyfile",
                str(tmp_path / "key.bin"),
                "--address",
                hex(p.offset),
                "--output",
                str(dst),
                str(src),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        assert dst.read_bytes() == padded


def test_export_to_a_folder_that_cannot_be_made(fe_lot: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["security", "export", str(fe_lot), "--out", str(tmp_path / "file" / "k")]) == 2
    assert main(["security", "export", str(fe_lot), "--out", str(tmp_path / "no" / "k.tgz")]) == 2


def test_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    j = JsonlJournal(tmp_path / "j.jsonl")
    assert j.record_key("U1", "xts", "aa") == "aa"
    assert j.record_key("U1", "xts", "bb") == "aa"  # the first record wins
    j.begin("U1", "mac1", "s1")
    j.done("U1", "mac1", "s1")
    j.begin("U1", "mac1", "s2")
    with j.path.open("a") as f:
        f.write('{"event": "done", "unit": "U1", "dev')  # power cut mid-write
    again = JsonlJournal(j.path)
    assert again.steps("mac1") == {"s1": "done", "s2": "begun"}
    assert again.keys() == {("U1", "xts"): "aa"}
    assert again.devices() == {"mac1": "U1"}
    again.done("U1", "mac1", "s2")  # the record after the torn line is not lost
    assert JsonlJournal(j.path).steps("mac1") == {"s1": "done", "s2": "done"}
    assert stat.S_IMODE(j.path.stat().st_mode) == 0o600


def test_per_unit_hmac_keys(tmp_path: Path) -> None:
    lot = make_lot(
        tmp_path / "lot",
        chip="esp32c6",
        build=False,
        security=('recipes = ["nvs_hmac"]\nhmac_key_id = 1\nhmac_key = "per-unit"\n'),
    )
    settings = load(str(lot))[0].settings
    assert settings is not None and settings.hmac_keyfile is None
    prov = Provisioner(settings, JsonlJournal(tmp_path / "j.jsonl"))
    prov.burn(virtual_esp("esp32c6", tmp_path / "a.efuse"), "SN0001", "mac-a")
    prov.burn(virtual_esp("esp32c6", tmp_path / "b.efuse"), "SN0002", "mac-b")
    a = (settings.key_folder / "SN0001.hmac.bin").read_bytes()
    b = (settings.key_folder / "SN0002.hmac.bin").read_bytes()
    assert len(a) == len(b) == 32 and a != b
    assert prov.keys("SN0001").hmac == a
