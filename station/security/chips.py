"""What each chip's eFuses can do, read from espefuse's own tables (not typed in by hand).

The station's recipes need a chip with key blocks and key purposes (``BLOCK_KEY0``..``5``,
``KEY_PURPOSE_n``): ESP32-C3, -C5, -C6, -C61, -H2, -P4, -S2, -S3 and newer. The ESP32 (BLOCK1 /
BLOCK2, ``FLASH_CRYPT_CNT``, ``ABS_DONE_1``) and the ESP32-C2 (one shared key block) keep their
keys differently; they are refused with that reason rather than half supported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# Secure Boot v2 signature schemes per chip (ESP-IDF soc_caps: SOC_SECURE_BOOT_V2_RSA / _ECC).
_SBV2_RSA_ONLY = frozenset({"esp32s2", "esp32s3", "esp32c3"})
_SBV2_ECDSA_ONLY = frozenset({"esp32c61"})

# the chips whose eFuses the station's recipes do not cover, and why
UNSUPPORTED = {
    "esp32": "the ESP32 keeps its flash-encryption key in BLOCK1 and its Secure Boot v2 digest "
    "in BLOCK2 with no key purposes; the station's recipes need key blocks with purposes "
    "(ESP32-C3, -C6, -H2, -S3, …)",
    "esp32c2": "the ESP32-C2 shares one key block between flash encryption and secure boot; "
    "the station's recipes need separate key blocks with purposes (ESP32-C3, -C6, -H2, -S3, …)",
}


@dataclass(frozen=True)
class ChipCaps:
    """A chip family's eFuse facts, as espefuse describes them."""

    chip: str
    key_blocks: tuple[str, ...]  # BLOCK_KEY0 .. BLOCK_KEY5
    purposes: frozenset[str]  # every key purpose espefuse knows for the chip
    fields: frozenset[str]  # every eFuse name
    crypt_cnt_max: int  # SPI_BOOT_CRYPT_CNT with all bits set (release mode)

    @property
    def hmac(self) -> bool:
        return "HMAC_UP" in self.purposes

    @property
    def xts_aes_128(self) -> bool:
        return "XTS_AES_128_KEY" in self.purposes

    @property
    def xts_aes_256(self) -> bool:
        return "XTS_AES_256_KEY_1" in self.purposes

    @property
    def sbv2_digests(self) -> int:
        return sum(1 for i in range(3) if f"SECURE_BOOT_DIGEST{i}" in self.purposes)

    @property
    def sbv2_schemes(self) -> frozenset[str]:
        if self.chip in _SBV2_RSA_ONLY:
            return frozenset({"rsa"})
        if self.chip in _SBV2_ECDSA_ONLY:
            return frozenset({"ecdsa"})
        return frozenset({"rsa", "ecdsa"})

    def has(self, name: str) -> bool:
        return name in self.fields


def virtual_commands(chip: str, efuse_file: str | None = None) -> object:
    """espefuse's commands over its own virtual eFuse controller (a file per device, or in
    memory), with espefuse's output kept off the console."""
    import espefuse

    from station.security.quiet import quiet

    with quiet():
        esp = espefuse.get_esp(chip=chip, virt=True, virt_efuse_file=efuse_file)
        return espefuse.init_commands(esp=esp, do_not_confirm=True)


@functools.cache
def chip_caps(chip: str) -> ChipCaps | None:
    """The eFuse facts of ``chip`` (from a blank virtual chip), None if espefuse does not know
    it or its layout is one the recipes do not cover (see :data:`UNSUPPORTED`)."""
    from espefuse import SUPPORTED_CHIPS

    if chip not in SUPPORTED_CHIPS or chip in UNSUPPORTED or chip == "linux":
        return None
    efuses = virtual_commands(chip).efuses  # type: ignore[attr-defined]
    key_blocks = tuple(b.name for b in efuses.blocks if b.key_purpose_name)
    if not key_blocks or "SPI_BOOT_CRYPT_CNT" not in {f.name for f in efuses}:
        return None
    purpose_field = efuses[
        efuses.blocks[efuses.get_index_block_by_name(key_blocks[0])].key_purpose_name
    ]
    purposes = frozenset(p[0] for p in purpose_field.KEY_PURPOSES)
    return ChipCaps(
        chip=chip,
        key_blocks=key_blocks,
        purposes=purposes,
        fields=frozenset(n for f in efuses for n in f.all_names),
        crypt_cnt_max=(1 << efuses["SPI_BOOT_CRYPT_CNT"].bit_len) - 1,
    )


def supported_chips() -> tuple[str, ...]:
    """Chips espefuse knows whose eFuses the recipes cover."""
    from espefuse import SUPPORTED_CHIPS

    return tuple(c for c in SUPPORTED_CHIPS if c != "linux" and chip_caps(c) is not None)
