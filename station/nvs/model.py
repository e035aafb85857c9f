"""Records and constants of the NVS format, shared by the encoder and the decoder."""

from __future__ import annotations

from dataclasses import dataclass

PAGE_SIZE = 4096
ENTRY_SIZE = 32
ENTRIES_PER_PAGE = 126
FIRST_ENTRY_OFFSET = 64
MAX_KEY_LEN = 15
MAX_NAMESPACES = 254  # index 0 holds the namespace table, 255 means "any namespace"
MIN_SIZE = 0x1000  # one read-only page: nvs_flash loads it (no free page is needed read-only)
READ_WRITE_MIN_SIZE = 0x3000  # below this the partition is read-only: no reserved page

# page states (first word of the page header)
STATE_EMPTY = 0xFFFFFFFF
STATE_ACTIVE = 0xFFFFFFFE
STATE_FULL = 0xFFFFFFFC
STATE_FREEING = 0xFFFFFFF8
STATE_CORRUPT = 0xFFFFFFF0
PAGE_STATES = {
    STATE_EMPTY: "empty",
    STATE_ACTIVE: "active",
    STATE_FULL: "full",
    STATE_FREEING: "freeing",
    STATE_CORRUPT: "corrupt",
    0: "invalid",
}

# version byte in the page header
VERSION_BYTE = {1: 0xFF, 2: 0xFE}

# item types
U8, I8, U16, I16, U32, I32, U64, I64 = 0x01, 0x11, 0x02, 0x12, 0x04, 0x14, 0x08, 0x18
SZ, BLOB, BLOB_DATA, BLOB_IDX = 0x21, 0x41, 0x42, 0x48
CHUNK_ANY = 0xFF

# encoding -> (item type, struct format, minimum, maximum)
PRIMITIVES: dict[str, tuple[int, str, int, int]] = {
    "u8": (U8, "<B", 0, 0xFF),
    "i8": (I8, "<b", -0x80, 0x7F),
    "u16": (U16, "<H", 0, 0xFFFF),
    "i16": (I16, "<h", -0x8000, 0x7FFF),
    "u32": (U32, "<I", 0, 0xFFFF_FFFF),
    "i32": (I32, "<i", -0x8000_0000, 0x7FFF_FFFF),
    "u64": (U64, "<Q", 0, 0xFFFF_FFFF_FFFF_FFFF),
    "i64": (I64, "<q", -0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF),
}
TYPE_NAMES: dict[int, str] = {code: name for name, (code, _f, _lo, _hi) in PRIMITIVES.items()}
TYPE_NAMES.update({SZ: "string", BLOB: "blob", BLOB_DATA: "blob_data", BLOB_IDX: "blob_index"})

# largest string (with its NUL) or version-1 blob: one page of data entries, minus the header
MAX_VARLEN = {1: 1984, 2: 4000}

ENCODINGS = (*PRIMITIVES, "string", "hex2bin", "base64", "binary")
TYPES = ("data", "file", "namespace")

# columns of the key,type,encoding,value CSV, for error locations
COL_KEY, COL_TYPE, COL_ENCODING, COL_VALUE = 1, 2, 3, 4


@dataclass(frozen=True)
class NvsEntry:
    """One line of nvs_partition_gen's ``key,type,encoding,value`` CSV.

    ``encoding`` is one of :data:`ENCODINGS` or ``blob_fill(N;0xPP)`` / ``blob_sz_fill(N;0xPP)``
    (case does not matter), and ``""`` for a namespace. For type ``file`` the value is a path,
    relative to the ``base_dir`` given to the encoder (default: the current folder).
    """

    key: str
    type: str
    encoding: str
    value: str
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class XtsKeys:
    """NVS encryption keys: the AES-XTS data key and tweak key, 32 bytes each."""

    data_key: bytes
    tweak_key: bytes

    def __post_init__(self) -> None:
        if len(self.data_key) != 32 or len(self.tweak_key) != 32:
            raise ValueError("NVS keys are two keys of 32 bytes each")

    def __repr__(self) -> str:  # never print key material into logs
        return "XtsKeys(<secret>)"

    @property
    def raw(self) -> bytes:
        """The 64 bytes as stored in the key partition: data key, then tweak key."""
        return self.data_key + self.tweak_key
