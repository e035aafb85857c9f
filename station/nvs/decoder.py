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
    span: int = 1  # entries taken by its header and data (a version-2 blob's index: 1)
    ns_index: int = 0  # the namespace's index, as stored in the entry
    # version-2 blobs: (chunk index, page, entry, span, bytes) of each data chunk, in order
    parts: tuple[tuple[int, int, int, int, int], ...] = ()
    # version-2 blobs: what the index entry says: (size, chunk count, first chunk)
    blob_index: tuple[int, int, int] | None = None


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
        """``{namespace: {key: value}}``, every namespace present even when empty.

        A namespace defined twice (two indexes) holds what the firmware reads: the keys under
        the index it opens (the first definition), not the ones under the other index.
        """
        opened: dict[str, int] = {}
        for index, name in self.namespaces.items():
            opened.setdefault(name, index)
        out: dict[str, dict[str, Value]] = {name: {} for name in self.namespaces.values()}
        for item in self.items:
            if opened.get(item.namespace, item.ns_index) == item.ns_index:
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
                    "span": i.span,
                    "ns_index": i.ns_index,
                    "chunks": i.chunks,
                    "parts": [
                        {"chunk": c, "page": pg, "entry": en, "span": sp, "size": sz}
                        for c, pg, en, sp, sz in i.parts
                    ],
                    "blob_index": None
                    if i.blob_index is None
                    else dict(
                        zip(("size", "chunk_count", "chunk_start"), i.blob_index, strict=True)
                    ),
                }
                for i in self.items
            ],
            "errors": list(self.errors),
        }


def _entry_states(bitmap: bytes) -> list[int]:
    return [(bitmap[i >> 2] >> ((i & 3) * 2)) & 3 for i in range(ENTRIES_PER_PAGE)]


def _key(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass(frozen=True)
class _Rec:
    """One written item header as found on a page (before duplicates are resolved)."""

    page: int
    entry: int
    ns: int
    typ: int
    key: str
    value: Any
    span: int
    chunk: int = 0
    extra: Any = None  # version-2 blob index: (chunk count, first chunk)

    @property
    def ident(self) -> tuple[int, str, int, Any]:
        """What makes two records copies of one value: the firmware finds an item by namespace,
        type and key (so one key with two types is two values), a namespace by name and index."""
        return (self.ns, self.key, self.typ, self.value if self.ns == 0 else None)


def _duplicate(rec: _Rec, older: _Rec, seq_of: dict[int, int]) -> str:
    what = f"namespace {rec.key!r}" if rec.ns == 0 else f"key {rec.key!r}"
    return (
        f"page {rec.page} entry {rec.entry}: {what} is written twice (also at page {older.page} "
        f"entry {older.entry}, seq {seq_of[older.page]}); this newer copy "
        f"(seq {seq_of[rec.page]}) counts"
    )


_LIVE_STATES = ("active", "full", "freeing")


def decode_image(data: bytes, keys: XtsKeys | None = None) -> NvsImage:
    """Read an NVS image back as the firmware does; with ``keys``, an encrypted one.

    Pages the firmware treats as corrupt (a state word that is not empty/active/full/freeing,
    such as 0; a header CRC mismatch; an "empty" page holding data) are reported and their
    entries left out, as the firmware ignores them.
    """
    errors: list[str] = []
    if len(data) % PAGE_SIZE:
        errors.append(
            f"image is {len(data)} bytes, not a whole number of 4096-byte pages;"
            " the tail is ignored"
        )
    pages: list[PageInfo] = []
    records: list[_Rec] = []
    chunk_records: list[_Rec] = []
    crc_failures = 0
    for index in range(len(data) // PAGE_SIZE):
        page = data[index * PAGE_SIZE : (index + 1) * PAGE_SIZE]
        (state_word, seq) = struct.unpack_from("<II", page, 0)
        if state_word == STATE_EMPTY:
            if page.count(0xFF) != PAGE_SIZE:
                errors.append(
                    f"page {index}: marked uninitialised but holds data; the firmware treats "
                    "it as corrupt and ignores it"
                )
                pages.append(PageInfo(index, "corrupt"))
            else:
                pages.append(PageInfo(index, "empty"))
            continue
        state = PAGE_STATES.get(state_word, f"unknown {state_word:#010x}")
        header_ok = struct.unpack_from("<I", page, 28)[0] == zlib.crc32(page[4:28], 0xFFFFFFFF)
        version = {0xFF: 1, 0xFE: 2}.get(page[8])
        states = _entry_states(page[32:64])
        body = page[FIRST_ENTRY_OFFSET:]
        if keys is not None:
            body = decrypt_entries(body, keys, index)
        used = states.count(_ENTRY_WRITTEN)
        erased = states.count(_ENTRY_ERASED)
        if state not in _LIVE_STATES or not header_ok:
            why = (
                f"state word {state_word:#010x} is not a page state (empty, active, full or "
                "freeing)"
                if state not in _LIVE_STATES and state != "corrupt"
                else "marked corrupt"
                if state == "corrupt"
                else "header CRC mismatch"
            )
            ignored = f"; its {used} written entries are ignored" if used else ""
            errors.append(
                f"page {index}: {why}; the firmware treats the page as corrupt, ignores it and "
                f"erases it when it needs the space{ignored}"
            )
            pages.append(PageInfo(index, "corrupt", seq, version, header_ok, used, erased))
            continue
        pages.append(PageInfo(index, state, seq, version, header_ok, used, erased))
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
                records.append(_Rec(index, i, ns, typ, key, value, span, chunk))
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
                    chunk_records.append(_Rec(index, i, ns, typ, key, raw, span, chunk))
                elif typ == SZ:
                    text = raw[:-1] if raw.endswith(b"\0") else raw
                    try:
                        value = text.decode("utf-8")
                    except UnicodeDecodeError:
                        errors.append(f"{where}: string is not UTF-8 (kept as bytes)")
                        value = text
                    records.append(_Rec(index, i, ns, typ, key, value, span, chunk))
                else:
                    records.append(_Rec(index, i, ns, typ, key, raw, span, chunk))
            elif typ == BLOB_IDX:
                size, count, start = struct.unpack_from("<IBB", e, 24)
                records.append(_Rec(index, i, ns, typ, key, size, span, chunk, (count, start)))
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
    records.sort(key=lambda r: (order[r.page], r.entry))
    chunk_records.sort(key=lambda c: (order[c.page], c.entry))
    newest: dict[tuple[int, str, int, Any], _Rec] = {}
    for rec in records:
        if rec.ident in newest:
            errors.append(_duplicate(rec, newest[rec.ident], seq_of))
        newest[rec.ident] = rec
    records = [r for r in records if newest[r.ident] is r]
    chunks: dict[tuple[int, str, int], _Rec] = {}
    for c in chunk_records:
        ck = (c.ns, c.key, c.chunk)
        if ck in chunks:
            older = chunks[ck]
            errors.append(
                f"page {c.page} entry {c.entry}: key {c.key!r}: blob chunk {c.chunk} is written "
                f"twice (also at page {older.page} entry {older.entry}, seq "
                f"{seq_of[older.page]}); this newer copy (seq {seq_of[c.page]}) counts"
            )
        chunks[ck] = c

    # the firmware reads the namespace table in page order and opens a name at the first index
    # it finds for it; the keys under a second index of the same name cannot be read by name
    namespaces: dict[int, str] = {}
    defined: dict[str, _Rec] = {}
    for r in records:
        if r.ns == 0 and r.typ == U8:
            namespaces.setdefault(r.value, r.key)
            first = defined.setdefault(r.key, r)
            if first is not r:
                under = sorted({x.key for x in records if x.ns == r.value})
                shadowed = (
                    f"; its keys under index {r.value} ({', '.join(under)}) cannot be read"
                    if under
                    else ""
                )
                errors.append(
                    f"page {r.page} entry {r.entry}: namespace {r.key!r} is defined twice, with "
                    f"index {first.value} (page {first.page} entry {first.entry}) and index "
                    f"{r.value}; the firmware opens index {first.value}{shadowed}"
                )
    types_of: dict[tuple[int, str], list[_Rec]] = {}
    for r in records:
        if r.ns != 0:
            types_of.setdefault((r.ns, r.key), []).append(r)
    for (_ns, key), same in types_of.items():
        names = [_type_name(r.typ) for r in same]
        if len(same) > 1 and len(set(names)) > 1:
            errors.append(
                f"page {same[-1].page} entry {same[-1].entry}: key {key!r} is stored with "
                f"{len(same)} types ({', '.join(names)}): {len(same)} values, each read by its "
                "own type (a firmware write of the key replaces them all)"
            )
    items: list[NvsItem] = []
    used_chunks: set[tuple[int, str, int]] = set()
    for r in records:
        if r.ns == 0 and r.typ == U8:
            continue
        name = namespaces.get(r.ns)
        if name is None:
            errors.append(f"page {r.page} entry {r.entry}: key {r.key!r}: unknown namespace {r.ns}")
            name = f"#{r.ns}"
        if r.typ == BLOB_IDX:
            count, start = r.extra
            found_parts: list[_Rec] = []
            for number in range(start, start + count):
                found = chunks.get((r.ns, r.key, number))
                if found is None:
                    errors.append(
                        f"page {r.page} entry {r.entry}: key {r.key!r}: blob chunk {number} is "
                        "missing"
                    )
                    break
                found_parts.append(found)
                used_chunks.add((r.ns, r.key, number))
            blob = b"".join(part.value for part in found_parts)
            if len(found_parts) == count and len(blob) != r.value:
                errors.append(
                    f"page {r.page} entry {r.entry}: key {r.key!r}: blob is {len(blob)} bytes,"
                    f" its index says {r.value}"
                )
            parts = tuple((p.chunk, p.page, p.entry, p.span, len(p.value)) for p in found_parts)
            items.append(
                NvsItem(
                    name,
                    r.key,
                    "blob",
                    blob,
                    r.page,
                    r.entry,
                    count,
                    r.span,
                    r.ns,
                    parts,
                    (r.value, count, start),
                )
            )
        else:
            items.append(
                NvsItem(name, r.key, TYPE_NAMES[r.typ], r.value, r.page, r.entry, 0, r.span, r.ns)
            )
    for ck, c in chunks.items():
        if ck not in used_chunks:
            errors.append(
                f"page {c.page} entry {c.entry}: key {ck[1]!r}: blob chunk {ck[2]} has no index"
            )
    if keys is None and crc_failures and crc_failures >= len(records):
        errors.append("most entries fail their CRC: is the image encrypted? (give the key file)")
    return NvsImage(len(data), pages, namespaces, items, errors, keys is not None)


def _type_name(typ: int) -> str:
    return "blob" if typ == BLOB_IDX else TYPE_NAMES[typ]
