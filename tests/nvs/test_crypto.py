"""Encryption, key partitions and the HMAC scheme, against cryptography and the official tool."""

from __future__ import annotations

import ast
import contextlib
import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from esp_idf_nvs_partition_gen import nvs_partition_gen as official

import station.nvs
from station.errors import StationError
from station.nvs import (
    XtsKeys,
    generate_keys,
    hmac_derive_keys,
    key_partition_image,
    parse_key_partition,
)
from station.nvs.crypto import decrypt_entries, encrypt_entries


def reference_xts(data: bytes, keys: XtsKeys, page: int, first: int) -> bytes:
    """One XTS data unit per 32-byte entry, tweak = offset of the entry, as the official tool."""
    out = b""
    for i in range(len(data) // 32):
        tweak = (page * 4096 + 64 + (first + i) * 32).to_bytes(16, "little")
        enc = Cipher(algorithms.AES(keys.raw), modes.XTS(tweak)).encryptor()
        out += enc.update(data[i * 32 : i * 32 + 32])
    return out


@pytest.mark.parametrize(("page", "first", "count"), [(0, 0, 126), (1, 5, 3), (300, 125, 1)])
def test_xts_matches_reference(page: int, first: int, count: int) -> None:
    keys = generate_keys()
    data = os.urandom(32 * count)
    encrypted = encrypt_entries(data, keys, page, first)
    assert encrypted == reference_xts(data, keys, page, first)
    assert decrypt_entries(encrypted, keys, page, first) == data


def run_official_generate_key(tmp_path: Path, **options: object) -> bytes:
    args = SimpleNamespace(
        keyfile="k.bin",
        outdir=str(tmp_path),
        key_protect_hmac=False,
        kp_hmac_keygen=False,
        kp_hmac_keyfile=None,
        kp_hmac_inputkey=None,
    )
    vars(args).update(options)
    with contextlib.redirect_stdout(io.StringIO()):
        official.generate_key(args)
    return (tmp_path / "keys" / "k.bin").read_bytes()


def test_hmac_scheme_matches_official(tmp_path: Path) -> None:
    hmac_key = bytes(range(100, 132))
    (tmp_path / "hmac.bin").write_bytes(hmac_key)
    theirs = run_official_generate_key(
        tmp_path, key_protect_hmac=True, kp_hmac_inputkey=str(tmp_path / "hmac.bin")
    )
    assert key_partition_image(hmac_derive_keys(hmac_key)) == theirs


def test_official_key_partition_parses(tmp_path: Path) -> None:
    data = run_official_generate_key(tmp_path)
    keys = parse_key_partition(data, "k.bin")
    assert key_partition_image(keys) == data


def test_key_partition_round_trip() -> None:
    keys = generate_keys()
    image = key_partition_image(keys)
    assert len(image) == 4096 and image[68:] == b"\xff" * (4096 - 68)
    assert parse_key_partition(image) == keys


def test_key_partition_errors() -> None:
    image = key_partition_image(generate_keys())
    with pytest.raises(StationError) as err:
        parse_key_partition(image[:64], "short.bin")
    assert str(err.value) == (
        "short.bin:0:0: key: a key partition image has 4096 bytes, this file has 64"
        " (make one with `station generate-key`)"
    )
    damaged = bytes([image[0] ^ 1]) + image[1:]
    with pytest.raises(StationError, match="CRC is wrong"):
        parse_key_partition(damaged, "bad.bin")


def test_generated_keys_are_fresh_and_hidden() -> None:
    a, b = generate_keys(), generate_keys()
    assert a != b and a.data_key != a.tweak_key
    assert "secret" in repr(a) and a.data_key.hex() not in repr(a)
    with pytest.raises(ValueError):
        XtsKeys(b"short", b"x" * 32)
    with pytest.raises(ValueError):
        hmac_derive_keys(b"x" * 31)


def test_no_module_uses_random() -> None:
    """Key material comes from `secrets`; the `random` module is never imported."""
    for path in Path(station.nvs.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name != "random" for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert node.module != "random", path
