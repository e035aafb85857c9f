"""Partition-table records and the numbers ESP-IDF's gen_esp32part uses.

Type and subtype numbers, alignments and sizes follow ESP-IDF's ``gen_esp32part.py`` (v1.5) and
``esp_partition.h``; the station must agree with them byte for byte, or it writes at the wrong
offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

APP_TYPE = 0x00
DATA_TYPE = 0x01
BOOTLOADER_TYPE = 0x02
PARTITION_TABLE_TYPE = 0x03

TYPES: dict[str, int] = {
    "app": APP_TYPE,
    "data": DATA_TYPE,
    "bootloader": BOOTLOADER_TYPE,
    "partition_table": PARTITION_TABLE_TYPE,
}

SUBTYPES: dict[int, dict[str, int]] = {
    APP_TYPE: {
        "factory": 0x00,
        **{f"ota_{slot}": 0x10 + slot for slot in range(16)},
        "test": 0x20,
        **{f"tee_{slot}": 0x30 + slot for slot in range(2)},
    },
    DATA_TYPE: {
        "ota": 0x00,
        "phy": 0x01,
        "nvs": 0x02,
        "coredump": 0x03,
        "nvs_keys": 0x04,
        "efuse": 0x05,
        "undefined": 0x06,
        "esphttpd": 0x80,
        "fat": 0x81,
        "spiffs": 0x82,
        "littlefs": 0x83,
        "tee_ota": 0x90,
    },
    BOOTLOADER_TYPE: {"primary": 0x00, "ota": 0x01, "recovery": 0x02},
    PARTITION_TABLE_TYPE: {"primary": 0x00, "ota": 0x01},
}

SUBTYPE_NVS = SUBTYPES[DATA_TYPE]["nvs"]
SUBTYPE_NVS_KEYS = SUBTYPES[DATA_TYPE]["nvs_keys"]
SUBTYPE_OTADATA = SUBTYPES[DATA_TYPE]["ota"]
SUBTYPE_COREDUMP = SUBTYPES[DATA_TYPE]["coredump"]
SUBTYPE_TEE_OTADATA = SUBTYPES[DATA_TYPE]["tee_ota"]
SUBTYPE_UNDEFINED = SUBTYPES[DATA_TYPE]["undefined"]
SUBTYPE_PRIMARY = 0x00  # bootloader/primary and partition_table/primary

FLAGS: dict[str, int] = {"encrypted": 0, "readonly": 1}  # flag name -> bit in the flags word

APP_OFFSET_ALIGN = 0x10000  # app partitions start on a 64 KiB boundary
DATA_OFFSET_ALIGN = 0x1000  # everything else on a flash sector
APP_SIZE_ALIGN = 0x1000  # without secure boot v1, app sizes are whole sectors
TABLE_SIZE = 0x1000  # the table occupies one whole sector
MAX_TABLE_LENGTH = 0xC00  # entries + MD5 entry; the last 1 KiB is kept for a signature
ENTRY_SIZE = 32
MAX_ENTRIES = MAX_TABLE_LENGTH // ENTRY_SIZE - 2  # 96 slots minus the MD5 entry minus one
MAX_NAME_BYTES = 16
NVS_RW_MIN_SIZE = 0x3000  # a writable NVS needs at least three sectors
OTADATA_SIZE = 0x2000
DEFAULT_TABLE_OFFSET = 0x8000
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"

# esptool's BOOTLOADER_FLASH_OFFSET per chip (where the second-stage bootloader lives)
BOOTLOADER_OFFSETS: dict[str, int] = {
    "esp32": 0x1000,
    "esp32s2": 0x1000,
    "esp32s3": 0x0,
    "esp32c2": 0x0,
    "esp32c3": 0x0,
    "esp32c6": 0x0,
    "esp32c61": 0x0,
    "esp32h2": 0x0,
    "esp32c5": 0x2000,
    "esp32p4": 0x2000,
}


def type_name(ptype: int) -> str:
    """``app``/``data``/… for a known type number, else its hex value (custom types)."""
    for name, value in TYPES.items():
        if value == ptype:
            return name
    return f"0x{ptype:02x}"


def subtype_name(ptype: int, subtype: int) -> str:
    """``factory``/``nvs``/``ota_3``/… for a known subtype of ``ptype``, else its hex value."""
    for name, value in SUBTYPES.get(ptype, {}).items():
        if value == subtype:
            return name
    return f"0x{subtype:02x}"


@dataclass(frozen=True)
class Partition:
    """One partition-table entry; ``line`` is the CSV line (or the entry number in a binary)."""

    name: str
    type: int
    subtype: int
    offset: int
    size: int
    encrypted: bool = False
    readonly: bool = False
    line: int = field(default=0, compare=False)  # where it was written, not what it is
    file: str = field(default="", compare=False)
    # CSV columns of name, type, subtype, offset, size, flags (empty for a binary table)
    columns: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def column(self, what: str) -> int:
        """The 1-based CSV column of field ``what`` ("name", "offset", …), or 0 if unknown."""
        index = ("name", "type", "subtype", "offset", "size", "flags").index(what)
        return self.columns[index] if len(self.columns) > index else 0

    @property
    def type_name(self) -> str:
        return type_name(self.type)

    @property
    def subtype_name(self) -> str:
        return subtype_name(self.type, self.subtype)

    @property
    def end(self) -> int:
        """The first byte after the partition."""
        return self.offset + self.size

    @property
    def flags(self) -> tuple[str, ...]:
        """Flag names as written in the CSV's Flags column."""
        return tuple(
            name for name, on in (("encrypted", self.encrypted), ("readonly", self.readonly)) if on
        )

    @property
    def is_nvs(self) -> bool:
        return self.type == DATA_TYPE and self.subtype == SUBTYPE_NVS

    @property
    def is_primary_bootloader(self) -> bool:
        return self.type == BOOTLOADER_TYPE and self.subtype == SUBTYPE_PRIMARY

    @property
    def is_primary_table(self) -> bool:
        return self.type == PARTITION_TABLE_TYPE and self.subtype == SUBTYPE_PRIMARY


@dataclass(frozen=True)
class FlasherArgs:
    """What an ESP-IDF build's ``flasher_args.json`` says to write, and with which settings."""

    path: Path
    files: tuple[tuple[int, Path], ...]  # (offset, absolute path), by offset
    chip: str
    flash_mode: str
    flash_freq: str
    flash_size: str  # as ESP-IDF writes it: "4MB", "detect", "keep"
    bootloader_offset: int | None = None
    table_offset: int | None = None
    app_offset: int | None = None


@dataclass(frozen=True)
class PartitionTable:
    """A parsed table: its entries in table order, where it came from, and where it lives."""

    partitions: tuple[Partition, ...]
    source: str
    table_offset: int = DEFAULT_TABLE_OFFSET
    format: str = "csv"  # "csv" or "binary"
    bootloader_offset: int | None = None  # known from flasher_args.json or the caller
    flasher_args: FlasherArgs | None = None  # set when loaded from a build folder

    def find(self, name: str) -> Partition | None:
        """The partition with this name, or None."""
        return next((p for p in self.partitions if p.name == name), None)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.partitions)

    def __len__(self) -> int:
        return len(self.partitions)


@dataclass(frozen=True)
class MapRegion:
    """One stretch of flash in :func:`flash_map`; ``written`` marks what the station writes."""

    kind: str  # "reserved" | "bootloader" | "table" | "app" | "data" | "gap"
    name: str
    offset: int
    size: int
    written: bool = False
    partition: Partition | None = None

    @property
    def end(self) -> int:
        return self.offset + self.size
