"""Recipes as data: the ordered eFuse steps one unit gets, decided before anything is burned.

A plan is the same for every unit of a lot except the per-device key values; key blocks are
assigned once, deterministically, so ``station security plan`` prints exactly what will be
written. Order (ESP-IDF's host-based security workflow): the NVS HMAC key and the flash
encryption key(s) first — they need read protection — then flash encryption's counter and
security eFuses, then Secure Boot v2 (which write-protects ``RD_DIS``: no key can be
read-protected after it), and the final lock last, only after the unit's verification passed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from station.security.chips import ChipCaps
from station.security.settings import SecuritySettings

# security eFuses of release mode, from the host-based workflow guide; each used only where the
# chip has it (espefuse's table says so)
FE_RELEASE = (
    "DIS_DOWNLOAD_ICACHE",
    "DIS_DOWNLOAD_DCACHE",
    "HARD_DIS_JTAG",
    "DIS_DIRECT_BOOT",
    "DIS_LEGACY_SPI_BOOT",
    "DIS_USB_JTAG",
    "DIS_PAD_JTAG",
    "DIS_BOOT_REMAP",
    "DIS_DOWNLOAD_MANUAL_ENCRYPT",
)
SB_RELEASE = (
    "DIS_BOOT_REMAP",
    "HARD_DIS_JTAG",
    "SOFT_DIS_JTAG",
    "DIS_DIRECT_BOOT",
    "DIS_LEGACY_SPI_BOOT",
    "DIS_USB_JTAG",
    "DIS_PAD_JTAG",
    "SECURE_BOOT_AGGRESSIVE_REVOKE",
)
# ESP32-S3 (SOC_EFUSE_BLOCK9_KEY_PURPOSE_QUIRK): BLOCK_KEY5 cannot hold an XTS-AES key; the
# station keeps XTS keys out of it on every chip
NO_XTS_BLOCK = "BLOCK_KEY5"


class Kind(enum.Enum):
    KEY = "key"  # a key or digest into a key block, with its purpose and protections
    EFUSE = "efuse"  # eFuse fields set to values
    WRITE_PROTECT = "write-protect"  # an eFuse's write-disable bit


class Phase(enum.Enum):
    """When a step runs. Both come after the unit's regions are written and verified: once
    secure boot is on, esptool refuses to write below 0x8000 (the bootloader), and once flash
    encryption's release eFuses are burned it refuses every write, without ``force``."""

    BURN = "burn"  # keys, enables, release eFuses, write protections
    LOCK = "lock"  # the final lock, last: after it there is no read-back at all


class KeySource(enum.Enum):
    LOT_HMAC = "lot HMAC key"
    UNIT_HMAC = "per-unit HMAC key"
    UNIT_XTS = "per-unit XTS-AES key"
    SB_DIGEST = "Secure Boot v2 public key digest"


@dataclass(frozen=True)
class Step:
    """One eFuse write of a recipe. ``id`` is stable across runs (the journal's key)."""

    id: str
    recipe: str
    kind: Kind
    target: str  # key block (KEY), eFuse names joined by ', ' (EFUSE), eFuse (WRITE_PROTECT)
    purpose: str | None = None  # KEY: the key purpose
    source: KeySource | None = None  # KEY: where the value comes from
    part: int = 0  # KEY: which 32-byte part of the key (XTS-AES-256 spans two blocks)
    digest: bytes | None = None  # KEY with SB_DIGEST: the exact bytes
    values: tuple[tuple[str, int], ...] = ()  # EFUSE: (name, value)
    read_protect: bool = False
    write_protect: bool = False
    phase: Phase = Phase.BURN
    irreversible: bool = True
    why: str = ""

    def describe(self) -> str:
        """One line for the plan: what is written where, and how it is protected."""
        if self.kind is Kind.KEY:
            assert self.source is not None
            what = self.source.value
            if self.digest is not None:
                what += f" {self.digest.hex()}"
            elif self.source is KeySource.UNIT_XTS and self.part:
                what += f" (bytes {32 * self.part}..{32 * self.part + 31})"
            prot = ", ".join(
                p
                for p, on in (
                    ("read-protected", self.read_protect),
                    ("write-protected", self.write_protect),
                )
                if on
            )
            return f"{self.target} <- {what}; KEY_PURPOSE = {self.purpose}" + (
                f"; {prot}" if prot else ""
            )
        if self.kind is Kind.EFUSE:
            return ", ".join(f"{n} = {v}" for n, v in self.values)
        return f"write-protect {self.target}"


@dataclass(frozen=True)
class Plan:
    """Every step of one unit, in order, for a chip."""

    chip: str
    mode: str
    steps: tuple[Step, ...]

    def phase(self, phase: Phase) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.phase is phase)

    @property
    def key_blocks(self) -> dict[str, Step]:
        return {s.target: s for s in self.steps if s.kind is Kind.KEY}

    def text(self) -> str:
        """The plan as an engineer reads it (``station security plan``)."""
        lines = [f"chip {self.chip}, {self.mode} mode, {len(self.steps)} steps per unit:"]
        for n, s in enumerate(self.steps, 1):
            mark = "IRREVERSIBLE" if s.irreversible else "reversible  "
            when = "after verify" if s.phase is Phase.LOCK else ""
            lines.append(
                f"  {n:2d}. [{mark}] {s.recipe:16s} {s.describe()}"
                + (f"   ({when})" if when else "")
            )
            if s.why:
                lines.append(f"      {s.why}")
        return "\n".join(lines)


def _field_max(caps: ChipCaps, name: str) -> int:
    # multi-bit disables (SOFT_DIS_JTAG is 3 bits on most chips) are burned with every bit set
    return _BIT_WIDTHS.get((caps.chip, name), 1)


_BIT_WIDTHS: dict[tuple[str, str], int] = {}  # (chip, eFuse) -> value with every bit set


def _widths(caps: ChipCaps, names: tuple[str, ...]) -> None:
    from station.security.chips import virtual_commands

    missing = [n for n in names if (caps.chip, n) not in _BIT_WIDTHS and caps.has(n)]
    if not missing:
        return
    efuses = virtual_commands(caps.chip).efuses  # type: ignore[attr-defined]
    for n in missing:
        _BIT_WIDTHS[(caps.chip, n)] = (1 << efuses[n].bit_len) - 1


def build_plan(settings: SecuritySettings, caps: ChipCaps) -> Plan:
    """The ordered steps of one unit (same for every unit of the lot)."""
    _widths(caps, FE_RELEASE + SB_RELEASE)
    steps: list[Step] = []
    used: set[str] = set()
    release = settings.mode == "release"
    burned: set[str] = set()
    protects: list[Step] = []

    def free_block(for_xts: bool = False) -> str:
        for b in caps.key_blocks:
            if b not in used and not (for_xts and b == NO_XTS_BLOCK):
                used.add(b)
                return b
        raise ValueError("not enough free key blocks for the recipes")  # checked: 6 suffice

    if settings.has("nvs_hmac"):
        assert settings.hmac_key_id is not None
        block = caps.key_blocks[settings.hmac_key_id]
        used.add(block)
        source = KeySource.LOT_HMAC if settings.hmac_key_source == "lot" else KeySource.UNIT_HMAC
        steps.append(
            Step(
                "nvs_hmac.key",
                "nvs_hmac",
                Kind.KEY,
                block,
                "HMAC_UP",
                source,
                read_protect=True,
                write_protect=True,
                why="the firmware derives its NVS keys from this key (HMAC peripheral)",
            )
        )
    if settings.has("flash_encryption"):
        parts = (
            ("XTS_AES_128_KEY",)
            if settings.xts_aes == 128
            else ("XTS_AES_256_KEY_1", "XTS_AES_256_KEY_2")
        )
        for i, purpose in enumerate(parts):
            steps.append(
                Step(
                    f"flash_encryption.key{i}",
                    "flash_encryption",
                    Kind.KEY,
                    free_block(True),
                    purpose,
                    KeySource.UNIT_XTS,
                    part=i,
                    read_protect=True,
                    write_protect=True,
                    why="escrowed on the host first; its SHA-256 is on record before the burn",
                )
            )
        cnt = caps.crypt_cnt_max if release else 1
        steps.append(
            Step(
                "flash_encryption.enable",
                "flash_encryption",
                Kind.EFUSE,
                "SPI_BOOT_CRYPT_CNT",
                values=(("SPI_BOOT_CRYPT_CNT", cnt),),
                irreversible=release,
                why="flash encryption on"
                + (
                    ""
                    if release
                    else " (development: can be turned off later by burning one more bit)"
                ),
            )
        )
        if release:
            names = tuple(n for n in FE_RELEASE if caps.has(n))
            burned.update(names)
            steps.append(
                Step(
                    "flash_encryption.release",
                    "flash_encryption",
                    Kind.EFUSE,
                    ", ".join(names),
                    values=tuple((n, _field_max(caps, n)) for n in names),
                    why="release mode: no plaintext download, cache or JTAG access",
                )
            )
            if caps.has("DIS_ICACHE"):
                protects.append(
                    Step(
                        "flash_encryption.wp_security",
                        "flash_encryption",
                        Kind.WRITE_PROTECT,
                        "DIS_ICACHE",
                        why="write-protects the security eFuses of its group",
                    )
                )
    if settings.has("secure_boot"):
        for i, key in enumerate(settings.secure_boot_keys):
            steps.append(
                Step(
                    f"secure_boot.digest{i}",
                    "secure_boot",
                    Kind.KEY,
                    free_block(),
                    f"SECURE_BOOT_DIGEST{i}",
                    KeySource.SB_DIGEST,
                    digest=key.digest,
                    read_protect=False,
                    write_protect=True,
                    why=f"from {key.path.name}",
                )
            )
        steps.append(
            Step(
                "secure_boot.enable",
                "secure_boot",
                Kind.EFUSE,
                "SECURE_BOOT_EN",
                values=(("SECURE_BOOT_EN", 1),),
                why="the ROM verifies the bootloader's signature from now on",
            )
        )
        unused = [i for i in range(caps.sbv2_digests) if i >= len(settings.secure_boot_keys)]
        if release and unused:
            steps.append(
                Step(
                    "secure_boot.revoke",
                    "secure_boot",
                    Kind.EFUSE,
                    ", ".join(f"SECURE_BOOT_KEY_REVOKE{i}" for i in unused),
                    values=tuple((f"SECURE_BOOT_KEY_REVOKE{i}", 1) for i in unused),
                    why="unused digest slots revoked: no key can be added later",
                )
            )
        if release:  # those flash encryption's release step burned already are not repeated
            names = tuple(n for n in SB_RELEASE if caps.has(n) and n not in burned)
            steps.append(
                Step(
                    "secure_boot.release",
                    "secure_boot",
                    Kind.EFUSE,
                    ", ".join(names),
                    values=tuple((n, _field_max(caps, n)) for n in names),
                    why="release mode: JTAG and legacy boot paths closed",
                )
            )
        protects.append(
            Step(
                "secure_boot.wp_rd_dis",
                "secure_boot",
                Kind.WRITE_PROTECT,
                "RD_DIS",
                why="keeps the digests readable for the ROM; no key can be read-protected after it",
            )
        )
    # write protections last: one write-disable bit covers a group of eFuses (on the ESP32-S2
    # DIS_ICACHE's also covers SOFT_DIS_JTAG, which secure boot's release step burns)
    steps.extend(protects)
    if settings.has("final_lock"):
        name = (
            "ENABLE_SECURITY_DOWNLOAD"
            if settings.final_lock == "security_download"
            else "DIS_DOWNLOAD_MODE"
        )
        steps.append(
            Step(
                "final_lock",
                "final_lock",
                Kind.EFUSE,
                name,
                values=((name, 1),),
                phase=Phase.LOCK,
                why="after it: no stub, no compression, no flash read-back"
                if name.startswith("E")
                else "after it: the serial download mode is gone for good",
            )
        )
    return Plan(caps.chip, settings.mode, tuple(steps))
