"""Lots with a [security] table, Secure Boot v2 keys and signed builds, virtual eFuses."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# chips the recipes cover that a lot can name (espefuse also knows esp32h21, esp32h4 and
# esp32s31, which lot.toml does not take yet), and the bootloader offset of each (ESP-IDF)
CHIPS = ("esp32c3", "esp32c5", "esp32c6", "esp32c61", "esp32h2", "esp32p4", "esp32s2", "esp32s3")
BOOTLOADER_AT = {"esp32s2": 0x1000, "esp32p4": 0x2000, "esp32c5": 0x2000, "esp32c61": 0x0}


def pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="session")
def rsa_keys() -> list[bytes]:
    """Two RSA-3072 signing keys (made once: RSA key generation is slow)."""
    return [pem(rsa.generate_private_key(65537, 3072)) for _ in range(2)]


@pytest.fixture(scope="session")
def ecdsa_keys() -> list[bytes]:
    return [pem(ec.generate_private_key(ec.SECP256R1())) for _ in range(2)]


def sign(data: bytes, key_pem: bytes) -> bytes:
    """``data`` signed for Secure Boot v2 with espsecure (padded to 4 KiB + signature sector)."""
    import espsecure

    from station.security.quiet import quiet

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "signed.bin"
        src, keyfile = io.BytesIO(data), io.BytesIO(key_pem)
        src.name = "image.bin"  # espsecure names its input in a message
        keyfile.name = "key.pem"
        with quiet():
            espsecure.sign_secure_boot_v2([keyfile], str(out), False, False, None, None, None, src)
        return out.read_bytes()


def key_for(chip: str, rsa_keys: list[bytes], ecdsa_keys: list[bytes]) -> bytes:
    from station.security import chip_caps

    caps = chip_caps(chip)
    assert caps is not None
    return rsa_keys[0] if "rsa" in caps.sbv2_schemes else ecdsa_keys[0]


def make_lot(
    folder: Path,
    *,
    chip: str = "esp32c3",
    security: str = "",
    rows: int = 3,
    sign_with: bytes | None = None,
    build: bool = True,
    extra: str = "",
) -> Path:
    """A small lot (config, values, partitions, a fake build signed with ``sign_with``) whose
    lot.toml ends with ``[security]`` + ``security``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.csv").write_text(
        "factory,namespace,\nserial_no,data,string\n", encoding="utf-8"
    )
    values = ["serial_no"] + [f"SN{i + 1:04d}" for i in range(rows)]
    (folder / "values.csv").write_text("\n".join(values) + "\n", encoding="utf-8")
    (folder / "partitions.csv").write_text(
        "nvs, data, nvs, 0x9000, 0x3000,\nnvs_key, data, nvs_keys, 0xc000, 0x1000, encrypted\n"
        "fctry, data, nvs, 0xd000, 0x3000,\nfactory, app, factory, 0x10000, 1M,\n",
        encoding="utf-8",
    )
    text = (
        'name = "SEC"\nconfig = "config.csv"\nvalues = "values.csv"\n'
        'partition_table = "partitions.csv"\npartition = "fctry"\nfileid = "serial_no"\n'
        f'chip = "{chip}"\n{extra}'
    )
    if build:
        _build(folder, chip, sign_with)
        text += 'firmware = "build"\n'
    lot = folder / "lot.toml"
    lot.write_text(text + ("\n[security]\n" + security if security else ""), encoding="utf-8")
    return lot


def _build(folder: Path, chip: str, sign_with: bytes | None) -> None:
    from station.partitions import load_table, to_binary

    root = folder / "build"
    root.mkdir()
    boot_at = BOOTLOADER_AT.get(chip, 0x0)
    boot = b"\xe9" + os.urandom(0x1FFF)
    app = b"\xe9" + os.urandom(0x2FFF)
    if sign_with is not None:
        boot, app = sign(boot, sign_with), sign(app, sign_with)
    (root / "bootloader.bin").write_bytes(boot)
    (root / "app.bin").write_bytes(app)
    table = load_table(folder / "partitions.csv")
    (root / "partition-table.bin").write_bytes(to_binary(table))
    files = {
        hex(boot_at): "bootloader.bin",
        "0x8000": "partition-table.bin",
        "0x10000": "app.bin",
    }
    args = {
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "40m"],
        "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"},
        "flash_files": files,
        "bootloader": {"offset": hex(boot_at), "file": "bootloader.bin", "encrypted": "false"},
        "app": {"offset": "0x10000", "file": "app.bin", "encrypted": "false"},
        "partition-table": {
            "offset": "0x8000",
            "file": "partition-table.bin",
            "encrypted": "false",
        },
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "chip": chip},
    }
    (root / "flasher_args.json").write_text(json.dumps(args, indent=4), encoding="utf-8")


def full_recipe(key_files: list[str], *, xts: int = 128, mode: str = "release") -> str:
    return (
        'recipes = ["nvs_hmac", "flash_encryption", "secure_boot", "final_lock"]\n'
        f'mode = "{mode}"\nhmac_key_id = 0\nhmac_keyfile = "hmac.key"\nxts_aes = {xts}\n'
        f"secure_boot_keys = {json.dumps(key_files)}\n"
    )


def virtual_esp(chip: str, efuse_file: Path) -> object:
    """espefuse's virtual eFuse controller for one device (state kept in ``efuse_file``)."""
    import espefuse

    from station.security.quiet import quiet

    with quiet():
        return espefuse.get_esp(chip=chip, virt=True, virt_efuse_file=str(efuse_file))


def espefuse_summary(chip: str, efuse_file: Path) -> dict[str, dict[str, object]]:
    """``espefuse --virt --path-efuse-file F summary --format json``, the real command."""
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "espefuse",
            "--virt",
            "--chip",
            chip,
            "--path-efuse-file",
            str(efuse_file),
            "summary",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(out[out.index("{") : out.rindex("}") + 1])  # type: ignore[no-any-return]
