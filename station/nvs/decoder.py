"""NVS image decoder: page states, namespaces, keys, values; problems are reported, not raised.

Used by ``station inspect`` and by the flashing engine to see what a device really holds.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Union

from station.nvs.crypto import decrypt_entries
from station.nvs.model import (
    BLOB,
    BLOB_DATA,
    BLOB_IDX,
    ENTRIES_PER_PAGE,
    ENTRY_SIZE,
    FIRST_ENTRY_OFFSET,
    PAGE_SIZE,
    PAGE_STATES,
    PRIMITIVES,
    STATE_EMPTY,
    SZ,
    TYPE_NAMES,
    U8,
    XtsKeys,
)

Value = Union[int, str, bytes]  # noqa: UP007 - a runtime alias that must work on Python 3.10

_ENTRY_EMPTY, _ENTRY_WRITTEN, _ENTRY_ERASED = 3, 2, 0
_UNPACK = {code: fmt for code, fmt, _lo, _hi in PRIMITIVES.values()}


@dataclass(frozen=True)
class PageInfo:
    """One 4 KiB page: its state word, sequence number, format version and entry usage."""

    index: int
    state: str  # empty, active, full, freeing, corrupt, invalid, or "unknown 0x…"
    seq: int | None = None
    version: int | None = None  # 1 or 2 (None: empty page or unknown version byte)
    header_ok: bool = True
    used: int = 0  # entries marked written
    erased: int = 0  # entries marked erased


@dataclass(frozen=True)
class NvsItem:
    """One key with its value; a version-2 blob is reassembled from its chunks."""

    namespace: str
    key: str
    type: str  # u8 i8 u16 i16 u32 i32 u64 i64 string blob
    value: Value
    page: int  # where its header (for version-2 blobs: its index entry) is
    entry: int
    chunks: int = 0  # version-2 blobs: number of data chunks; 0 otherwise


@dataclass(frozen=True)
class NvsImage:
    """What an image holds. ``errors`` lists CRC mismatches and other damage, one line each."""

    size: int
    pages: list[PageInfo]
    namespaces: dict[int, str]
    items: list[NvsItem]
    errors: list[str] = field(default_factory=list)
    encrypted: bool = False

    def as_dict(self) -> dict[str, dict[str, Value]]:
        """``{namespace: {key: value}}``, every namespace present even when empty."""
        out: dict[str, dict[str, Value]] = {name: {} for name in self.namespaces.values()}
        for item in self.items:
            out.setdefault(item.namespace, {})[item.key] = item.value
        return out

    def to_json(self) -> dict[str, Any]:
        """Every field as JSON-ready data; bytes as lower-case hex."""
        return {
            "size": self.size,
            "encrypted": self.encrypted,
            "pages": [vars(p).copy() for p in self.pages],
            "namespaces": {str(k): v for k, v in sorted(self.namespaces.items())},
            "items": [
                {
                    "namespace": i.namespace,
                    "key": i.key,
                    "type": i.type,
                    "value": i.value.hex() if isinstance(i.value, bytes) else i.value,
                    "page": i.page,
                    "entry": i.entry,
                    "chunks": i.chunks,
                }
                for i in self.items
            ],
            "errors": list(self.errors),
        }


def _entry_states(bitmap: bytes) -> list[int]:
    return [(bitmap[i >> 2] >> ((i & 3) * 2)) & 3 for i in range(ENTRIES_PER_PAGE)]


def _key(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _duplicate(
    rec: tuple[int, int, int, int, str, Any, int, Any],
    older: tuple[int, int],
    seq_of: dict[int, int],
) -> str:
    page_no, entry_no, ns, _typ, key = rec[:5]
    what = f"namespace {key!r}" if ns == 0 else f"key {key!r}"
    return (
        f"page {page_no} entry {entry_no}: {what} is written twice (also at page {older[0]} "
        f"entry {older[1]}, seq {seq_of[older[0]]}); this newer copy (seq {seq_of[page_no]}) "
        "counts"
    )


def decode_image(data: bytes, keys: XtsKeys | None = None) -> NvsImage:
    """Read an NVS partition image back; with ``keys``, an encrypted one."""
    errors: list[str] = []
    if len(data) % PAGE_SIZE:
        errors.append(
            f"image is {len(data)} bytes, not a whole number of 4096-byte pages;"
            " the tail is ignored"
        )
    pages: list[PageInfo] = []
    # raw records in scan order: (page, entry, ns, type, key, value, chunk, extra)
    records: list[tuple[int, int, int, int, str, Any, int, Any]] = []
    chunk_records: list[tuple[tuple[int, str, int], bytes, int, int]] = []
    crc_failures = 0
    for index in range(len(data) // PAGE_SIZE):
        page = data[index * PAGE_SIZE : (index + 1) * PAGE_SIZE]
        (state_word, seq) = struct.unpack_from("<II", page, 0)
        if state_word == STATE_EMPTY:
            if page.count(0xFF) != PAGE_SIZE:
                errors.append(f"page {index}: marked uninitialised but holds data")
            pages.append(PageInfo(index, "empty"))
            continue
        state = PAGE_STATES.get(state_word, f"unknown {state_word:#010x}")
        header_ok = struct.unpack_from("<I", page, 28)[0] == zlib.crc32(page[4:28], 0xFFFFFFFF)
        if not header_ok:
            errors.append(f"page {index}: header CRC mismatch")
        version = {0xFF: 1, 0xFE: 2}.get(page[8])
        states = _entry_states(page[32:64])
        body = page[FIRST_ENTRY_OFFSET:]
        if keys is not None:
            body = decrypt_entries(body, keys, index)
        used = states.count(_ENTRY_WRITTEN)
        pages.append(
            PageInfo(index, state, seq, version, header_ok, used, states.count(_ENTRY_ERASED))
        )
        i = 0
        while i < ENTRIES_PER_PAGE:
            st = states[i]
            if st != _ENTRY_WRITTEN:
                if st == 1:
                    errors.append(f"page {index} entry {i}: illegal bitmap state")
                i += 1
                continue
            e = body[i * ENTRY_SIZE : (i + 1) * ENTRY_SIZE]
            where = f"page {index} entry {i}"
            if struct.unpack_from("<I", e, 4)[0] != zlib.crc32(e[0:4] + e[8:32], 0xFFFFFFFF):
                errors.append(f"{where}: item header CRC mismatch")
                crc_failures += 1
                i += 1
                continue
            ns, typ, span, chunk = e[0], e[1], e[2], e[3]
            key = _key(e[8:24])
            if span < 1 or i + span > ENTRIES_PER_PAGE:
                errors.append(f"{where}: key {key!r}: span {span} runs past the page")
                i += 1
                continue
            where = f"{where}: key {key!r}"
            if typ in _UNPACK:
                (value,) = struct.unpack_from(_UNPACK[typ], e, 24)
                records.append((index, i, ns, typ, key, value, chunk, None))
            elif typ in (SZ, BLOB, BLOB_DATA):
                size, _reserved, crc = struct.unpack_from("<HHI", e, 24)
                raw = body[(i + 1) * ENTRY_SIZE : (i + span) * ENTRY_SIZE]
                if size > len(raw):
                    errors.append(f"{where}: size {size} is larger than its {span - 1} entries")
                    i += span
                    continue
                raw = raw[:size]
                if zlib.crc32(raw, 0xFFFFFFFF) != crc:
                    errors.append(f"{where}: data CRC mismatch")
                    crc_failures += 1
                if typ == BLOB_DATA:
                    chunk_records.append(((ns, key, chunk), raw, index, i))
                elif typ == SZ:
                    text = raw[:-1] if raw.endswith(b"\0") else raw
                    try:
                        value = text.decode("utf-8")
                    except UnicodeDecodeError:
                        errors.append(f"{where}: string is not UTF-8 (kept as bytes)")
                        value = text
                    records.append((index, i, ns, typ, key, value, chunk, None))
                else:
                    records.append((index, i, ns, typ, key, raw, chunk, None))
            elif typ == BLOB_IDX:
                size, count, start = struct.unpack_from("<IBB", e, 24)
                records.append((index, i, ns, typ, key, size, chunk, (count, start)))
            else:
                errors.append(f"{where}: unknown item type {typ:#04x}")
            i += span

    # NVS writes a new copy of an item before it erases the old one, and pages are used in the
    # order of their sequence numbers, not their place in flash: read them in that order, and
    # when a key is written twice (power lost between the two steps, as ESP-IDF's nvs_check
    # reports), the newer copy counts
    seq_of = {p.index: p.seq or 0 for p in pages}
    order = {
        p.index: n for n, p in enumerate(sorted(pages, key=lambda p: (seq_of[p.index], p.index)))
    }
    records.sort(key=lambda r: (order[r[0]], r[1]))
    chunk_records.sort(key=lambda c: (order[c[2]], c[3]))
    newest: dict[tuple[int, str], tuple[int, int]] = {}
    kept: list[tuple[int, int, int, int, str, Any, int, Any]] = []
    for rec in records:
        ident = (rec[2], rec[4])
        if ident in newest:
            errors.append(_duplicate(rec, newest[ident], seq_of))
            kept = [k for k in kept if (k[2], k[4]) != ident]
        newest[ident] = (rec[0], rec[1])
        kept.append(rec)
    records = kept
    chunks: dict[tuple[int, str, int], tuple[bytes, int, int]] = {}
    for ck, raw, page_no, entry_no in chunk_records:
        if ck in chunks:
            older = chunks[ck]
            errors.append(
                f"page {page_no} entry {entry_no}: key {ck[1]!r}: blob chunk {ck[2]} is written "
                f"twice (also at page {older[1]} entry {older[2]}, seq {seq_of[older[1]]}); this "
                f"newer copy (seq {seq_of[page_no]}) counts"
            )
        chunks[ck] = (raw, page_no, entry_no)

    namespaces = {r[5]: r[4] for r in records if r[2] == 0 and r[3] == U8}
    items: list[NvsItem] = []
    used_chunks: set[tuple[int, str, int]] = set()
    for page_no, entry_no, ns, typ, key, value, _chunk, extra in records:
        if ns == 0 and typ == U8:
            continue
        name = namespaces.get(ns)
        if name is None:
            errors.append(f"page {page_no} entry {entry_no}: key {key!r}: unknown namespace {ns}")
            name = f"#{ns}"
        if typ == BLOB_IDX:
            count, start = extra
            parts = []
            for c in range(start, start + count):
                found = chunks.get((ns, key, c))
                if found is None:
                    errors.append(
                        f"page {page_no} entry {entry_no}: key {key!r}: blob chunk {c} is missing"
                    )
                    break
                parts.append(found[0])
                used_chunks.add((ns, key, c))
            blob = b"".join(parts)
            if len(parts) == count and len(blob) != value:
                errors.append(
                    f"page {page_no} entry {entry_no}: key {key!r}: blob is {len(blob)} bytes,"
                    f" its index says {value}"
                )
            items.append(NvsItem(name, key, "blob", blob, page_no, entry_no, count))
        else:
            items.append(NvsItem(name, key, TYPE_NAMES[typ], value, page_no, entry_no))
    for ck, (_raw, page_no, entry_no) in chunks.items():
        if ck not in used_chunks:
            errors.append(
                f"page {page_no} entry {entry_no}: key {ck[1]!r}: blob chunk {ck[2]} has no index"
            )
    if keys is None and crc_failures and crc_failures >= len(records):
        errors.append("most entries fail their CRC: is the image encrypted? (give the key file)")
    return NvsImage(len(data), pages, namespaces, items, errors, keys is not None)
