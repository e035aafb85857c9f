"""The hap_setup entries in NVS images, compared with Espressif's generator on the same CSV."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from station.errors import StationError
from station.homekit import (
    HomeKitSettings,
    homekit_entries,
    merge_entries,
    setup_for_row,
    srp_salt_verifier,
)
from station.nvs import NvsEntry, decode_image, encode_image

CODE, SETUP_ID = "518-08-582", "7OSX"


def _lot_entries() -> list[NvsEntry]:
    return [
        NvsEntry("device", "namespace", "", ""),
        NvsEntry("serial_no", "data", "string", "SN-000123"),
        NvsEntry("hw_rev", "data", "u8", "3"),
    ]


def _write_csv(path: Path, entries: list[NvsEntry]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "type", "encoding", "value"])
        for e in entries:
            w.writerow([e.key, e.type, e.encoding, e.value])


def _official(tmp_path: Path, entries: list[NvsEntry], size: int, name: str) -> bytes:
    src, out = tmp_path / f"{name}.csv", tmp_path / f"{name}.bin"
    _write_csv(src, entries)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "esp_idf_nvs_partition_gen",
            "generate",
            str(src),
            str(out),
            hex(size),
            "--version",
            "2",
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    return out.read_bytes()


def test_entries_as_factory_nvs_gen_writes_them() -> None:
    salt = bytes(range(16))
    salt, verifier = srp_salt_verifier(CODE, salt)
    entries = homekit_entries(CODE, SETUP_ID, salt, verifier)
    assert [(e.key, e.type, e.encoding) for e in entries] == [
        ("hap_setup", "namespace", ""),
        ("setup_id", "data", "binary"),
        ("setup_salt", "data", "hex2bin"),
        ("setup_verifier", "data", "hex2bin"),
    ]
    assert entries[1].value == "7OSX"
    assert entries[2].value == "000102030405060708090a0b0c0d0e0f"
    assert len(entries[3].value) == 768 and entries[3].value == verifier.hex()


def test_entries_refuse_a_verifier_of_another_code() -> None:
    salt, verifier = srp_salt_verifier(CODE)
    with pytest.raises(ValueError, match="does not belong"):
        homekit_entries("518-08-583", SETUP_ID, salt, verifier)
    with pytest.raises(ValueError, match="setup ID"):
        homekit_entries(CODE, "7os", salt, verifier)
    with pytest.raises(ValueError, match="16/384"):
        homekit_entries(CODE, SETUP_ID, salt[:15], verifier)


@pytest.mark.parametrize("salt_head", [b"", b"\0", b"\0\0\0"])
def test_image_matches_official_generator(tmp_path: Path, salt_head: bytes) -> None:
    salt = salt_head + bytes(range(0x40, 0x40 + 16 - len(salt_head)))
    setup = setup_for_row(
        HomeKitSettings(category=7, wac=True), {"setup_code": CODE, "setup_id": SETUP_ID}, salt=salt
    )
    entries = merge_entries(_lot_entries(), setup.entries())
    size = 0x6000
    ours = encode_image(entries, size)
    assert ours == _official(tmp_path, entries, size, "hk")
    stored = decode_image(ours).as_dict()
    assert stored["device"]["serial_no"] == "SN-000123"
    assert stored["hap_setup"]["setup_id"] == b"7OSX"
    assert stored["hap_setup"]["setup_salt"] == salt  # all 16 bytes, leading zeros kept
    assert stored["hap_setup"]["setup_verifier"] == setup.verifier
    assert len(setup.verifier) == 384


def test_merge_into_existing_hap_setup_namespace(tmp_path: Path) -> None:
    lot = [
        NvsEntry("hap_setup", "namespace", "", ""),
        NvsEntry("token", "data", "hex2bin", "c0ffee"),
        NvsEntry("device", "namespace", "", ""),
        NvsEntry("serial_no", "data", "string", "SN-1"),
    ]
    salt, verifier = srp_salt_verifier(CODE)
    merged = merge_entries(lot, homekit_entries(CODE, SETUP_ID, salt, verifier))
    assert [e.key for e in merged] == [
        "hap_setup",
        "token",
        "setup_id",
        "setup_salt",
        "setup_verifier",
        "device",
        "serial_no",
    ]
    image = encode_image(merged, 0x6000)
    assert image == _official(tmp_path, merged, 0x6000, "merged")
    stored = decode_image(image).as_dict()
    assert set(stored["hap_setup"]) == {"token", "setup_id", "setup_salt", "setup_verifier"}


def test_merge_refuses_lot_that_sets_homekit_keys() -> None:
    lot = [
        NvsEntry("hap_setup", "namespace", "", "", "config.csv", 3),
        NvsEntry("setup_salt", "data", "hex2bin", "00", "config.csv", 4),
    ]
    salt, verifier = srp_salt_verifier(CODE)
    with pytest.raises(StationError) as e:
        merge_entries(lot, homekit_entries(CODE, SETUP_ID, salt, verifier))
    assert str(e.value).startswith("config.csv:4:0: setup_salt: hap_setup.setup_salt is written")
