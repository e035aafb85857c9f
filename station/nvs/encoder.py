"""NVS image encoder: byte-identical to esp-idf-nvs-partition-gen 0.3.0 for correct input.

Two passes. :class:`_Prep` turns entries into items (namespace index, type, key, payload
bytes) and collects every problem with its location. :func:`_plan` places the items on pages
with the official tool's rules (a string or version-1 blob moves to a new page when it would
leave its page with no free entry; a version-2 blob fills the page's tail and continues as
chunks) and gives a :class:`_Template`: the pages with everything but the values in place.
Placement depends only on the items' keys and lengths, so templates are cached and an image is
a copy of one with the values and CRCs written in, plus one AES pass per page when encrypted.
:class:`RowEncoder` skips the checks for many devices of one already validated structure.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from station.errors import Problem, ProblemList, StationError
from station.files import MAX_BLOB, MAX_VALUE_FILE, InputFileError, read_input
from station.nvs.crypto import encrypt_entries
from station.nvs.model import (
    BLOB,
    BLOB_DATA,
    BLOB_IDX,
    COL_ENCODING,
    COL_KEY,
    COL_TYPE,
    COL_VALUE,
    ENCODINGS,
    ENTRIES_PER_PAGE,
    ENTRY_SIZE,
    FIRST_ENTRY_OFFSET,
    MAX_KEY_LEN,
    MAX_NAMESPACES,
    MAX_VARLEN,
    MIN_SIZE,
    PAGE_SIZE,
    PRIMITIVES,
    READ_WRITE_MIN_SIZE,
    STATE_ACTIVE,
    STATE_FULL,
    SZ,
    TYPES,
    U8,
    VERSION_BYTE,
    NvsEntry,
    XtsKeys,
)

_PRIM, _STR, _BLOB = 0, 1, 2  # item kinds
_FILL_RE = re.compile(r"(blob_fill|blob_sz_fill)\((\d+);0x([0-9a-f]{2})\)")
_HEX_RE = re.compile(r"[0-9a-fA-F]*")
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WS_RE = re.compile(r"\s+")
_HEX_INT_RE = re.compile(r"[+-]?0[xX][0-9a-fA-F]+")
_ENCODING_SET = frozenset(ENCODINGS)

# Wi-Fi side entries the official tool adds (see its module-level write_entry)
_AP_KEYS = ("ap.ssid", "ap.passwd", "ap.authmode")
_STA_KEYS = ("sta.ssid", "sta.pswd")
_STA_EXTRAS = (("sta.apinfo", b"\xff" * 140), ("sta.pmk", b"\0" * 32), ("sta.apsw", b"\0\0"))

# an item: (kind, namespace index, item type, 16-byte key field, payload)
# payload: the 8-byte data field for primitives, the data bytes for strings and blobs
Item = tuple[int, int, int, bytes, bytes]


def parse_size(text: str, file: str = "", line: int = 0, key: str = "size") -> int:
    """A partition size like ``0x6000`` or ``24576``: a multiple of 4096, at least 0x1000."""
    t = str(text).strip()
    try:
        size = int(t, 16) if t[:2].lower() == "0x" else int(t, 10)
    except ValueError:
        raise StationError.at(
            file or "size", f"not a size: {text!r} (write e.g. 0x6000 or 24576)", line=line, key=key
        ) from None
    problems = _size_problems(size, file or "size", line, key)
    if problems:
        raise StationError(problems)
    return size


def _size_problems(size: int, file: str, line: int, key: str) -> list[Problem]:
    if size % PAGE_SIZE:
        return [
            Problem(
                file,
                line,
                0,
                key,
                f"size {size:#x} is not a multiple of 4096 (0x1000); NVS is made of 4 KiB pages",
            )
        ]
    if size < MIN_SIZE:
        return [
            Problem(
                file,
                line,
                0,
                key,
                f"size {size:#x} is too small: an NVS partition needs at least 0x1000 bytes"
                " (one page; 0x3000 unless it is flagged readonly)",
            )
        ]
    return []


def data_pages(size: int) -> int:
    """Pages available for data: all but the reserved last page (read-only partitions: all)."""
    pages = size // PAGE_SIZE
    return pages if size < READ_WRITE_MIN_SIZE else pages - 1


@lru_cache(maxsize=4096)
def _key_len(key: str) -> int:
    """Length of a key in UTF-8 bytes; -1 if it holds a NUL."""
    return -1 if "\0" in key else len(key.encode("utf-8"))


@lru_cache(maxsize=4096)
def _key_field(key: str) -> bytes:
    return key.encode("utf-8").ljust(16, b"\0")


@lru_cache(maxsize=1024)
def _page_header(index: int, version: int, full: bool) -> bytes:
    body = struct.pack("<IB", index, VERSION_BYTE[version]) + b"\xff" * 19
    state = STATE_FULL if full else STATE_ACTIVE
    return struct.pack("<I", state) + body + struct.pack("<I", zlib.crc32(body, 0xFFFFFFFF))


@lru_cache(maxsize=ENTRIES_PER_PAGE + 1)
def _bitmap(used: int) -> bytes:
    """Two bits per entry, 0b10 = written, for the first ``used`` entries."""
    whole, part = divmod(used, 4)
    partial = b""
    if part:
        partial = bytes([0xFF & ~sum(1 << (2 * i) for i in range(part))])
    return (b"\xaa" * whole + partial).ljust(32, b"\xff")


_U32 = struct.Struct("<I").pack
_SIZE_CRC = struct.Struct("<HHI").pack  # data field of strings, blobs and chunks: size, FFFF, CRC
_crc32 = zlib.crc32


def _entry(ns: int, typ: int, span: int, chunk: int, key: bytes, data8: bytes) -> bytes:
    """One 32-byte item header with its CRC (over all bytes but the CRC field itself)."""
    head = bytes((ns, typ, span, chunk))
    tail = key + data8
    return head + _U32(_crc32(tail, _crc32(head, 0xFFFFFFFF))) + tail


def _parse_int(text: str) -> int | None:
    t = text.strip()
    try:
        return int(t, 10)
    except ValueError:
        pass
    if _HEX_INT_RE.fullmatch(t):
        return int(t, 16)
    return None


class _Prep:
    """Turns entries into items, collecting problems; state is one image's namespaces."""

    def __init__(self, version: int, base_dir: Path | None, problems: ProblemList) -> None:
        self.version = version
        self.base_dir = base_dir
        self.problems = problems
        self.items: list[Item] = []
        self.namespaces: dict[str, int] = {}
        self.ns = 0
        self.seen: dict[tuple[int, str], int] = {}
        self.ap: dict[str, str] = {}
        self.sta_extras_done = False

    def error(self, e: NvsEntry, column: int, message: str) -> None:
        self.problems.add(e.file, e.line, column, e.key or "-", message)

    def run(self, entries: Iterable[NvsEntry]) -> None:
        first = True
        for e in entries:
            typ = e.type.strip().lower()
            if typ not in TYPES:
                self.error(e, COL_TYPE, f"unknown type {e.type!r} (use data, file or namespace)")
                first = False
                continue
            if first and typ != "namespace":
                self.error(e, COL_TYPE, "the first entry must be a namespace (key,namespace,,)")
            first = False
            if typ == "namespace":
                self.namespace(e)
            else:
                self.data(e, typ == "file")

    def check_key(self, e: NvsEntry, what: str) -> bool:
        n = _key_len(e.key)
        if 0 < n <= MAX_KEY_LEN:
            return True
        if n == 0:
            self.error(e, COL_KEY, f"empty {what}")
            return False
        if n < 0:
            self.error(e, COL_KEY, f"{what} contains a NUL character")
            return False
        self.error(e, COL_KEY, f"{what} is {n} bytes long, at most {MAX_KEY_LEN} are allowed")
        return False

    def namespace(self, e: NvsEntry) -> None:
        if not self.check_key(e, "namespace name"):
            self.ns = -1  # entries below it are checked but not placed
            return
        idx = self.namespaces.get(e.key)
        if idx is None:
            if len(self.namespaces) >= MAX_NAMESPACES:
                self.error(e, COL_KEY, f"more than {MAX_NAMESPACES} namespaces")
                self.ns = -1
                return
            idx = len(self.namespaces) + 1
            self.namespaces[e.key] = idx
            data8 = bytes((idx,)) + b"\xff" * 7
            self.items.append((_PRIM, 0, U8, _key_field(e.key), data8))
        self.ns = idx

    def claim(self, e: NvsEntry, key: str) -> bool:
        """Register a key in the current namespace; False (reported) if it is already there."""
        if self.ns <= 0:
            return True
        where = (self.ns, key)
        if where in self.seen:
            self.error(
                e,
                COL_KEY,
                f"key {key!r} is already set in this namespace (line {self.seen[where]})"
                + ("; it is added automatically for Wi-Fi keys" if key != e.key else ""),
            )
            return False
        self.seen[where] = e.line
        return True

    def add(self, e: NvsEntry, key: str, kind: int, typ: int, payload: bytes) -> None:
        self.items.append((kind, self.ns, typ, _key_field(key), payload))

    def read_file(self, e: NvsEntry) -> bytes | None:
        path = Path(e.value)
        if not path.is_absolute():
            path = (self.base_dir or Path.cwd()) / path
        try:
            return read_input(path, MAX_VALUE_FILE, "an NVS value")
        except InputFileError as err:
            self.error(e, COL_VALUE, str(err))
        return None

    def data(self, e: NvsEntry, is_file: bool) -> None:
        key_ok = self.check_key(e, "key")
        enc = e.encoding.strip().lower()
        fill = None
        if enc in _ENCODING_SET:
            pass
        elif enc.startswith(("blob_fill", "blob_sz_fill")):
            fill = _FILL_RE.fullmatch(enc)
            if fill is None:
                self.error(
                    e,
                    COL_ENCODING,
                    f"bad encoding {e.encoding!r}"
                    " (write blob_fill(N;0xPP) or blob_sz_fill(N;0xPP))",
                )
                return
            if int(fill.group(2)) > MAX_BLOB:
                self.error(
                    e,
                    COL_ENCODING,
                    f"{fill.group(1)} length has {len(fill.group(2))} digits: NVS holds at most "
                    f"{MAX_BLOB} bytes in one blob",
                )
                return
        else:
            self.error(
                e,
                COL_ENCODING,
                f"unknown encoding {e.encoding!r} (use {', '.join(ENCODINGS)},"
                " blob_fill(N;0xPP) or blob_sz_fill(N;0xPP))",
            )
            return
        raw: bytes | None = None
        if is_file:
            raw = self.read_file(e)
            if raw is None:
                return
        key = e.key
        if key_ok:
            key_ok = self.claim(e, key)
        if key in _AP_KEYS:
            self.wifi_ap(e, e.value if raw is None else raw.decode("utf-8", "replace"))
        converted = self.convert(e, enc, fill, raw)
        if converted is None or not key_ok:
            return
        kind, typ, payload = converted
        self.add(e, key, kind, typ, payload)
        if key in _STA_KEYS and not self.sta_extras_done:
            self.sta_extras_done = True
            for xkey, xdata in _STA_EXTRAS:
                self.blob(e, xkey, xdata)

    def wifi_ap(self, e: NvsEntry, value: str) -> None:
        """Record an AP setting; once SSID, password and auth mode are known, add ap.pmk_info."""
        if e.key != "ap.authmode" or value != "0":
            self.ap[e.key] = value
        if all(self.ap.get(k) for k in _AP_KEYS):
            # WPA's PSK; cryptography's PBKDF2, as hashlib's needs Python's own OpenSSL
            kdf = PBKDF2HMAC(hashes.SHA1(), 32, self.ap["ap.ssid"].encode(), 4096)  # noqa: S303
            pmk = kdf.derive(self.ap["ap.passwd"].encode())
            self.blob(e, "ap.pmk_info", b"\0" * 100 + pmk)

    def blob(self, e: NvsEntry, key: str, data: bytes) -> None:
        if self.claim(e, key):
            self.add(e, key, _BLOB, BLOB, data)

    def convert(
        self, e: NvsEntry, enc: str, fill: re.Match[str] | None, raw: bytes | None
    ) -> tuple[int, int, bytes] | None:
        """(kind, item type, payload) of an entry's value, or None after reporting why not."""
        prim = PRIMITIVES.get(enc)
        if prim is not None:
            code, fmt, lo, hi = prim
            text = e.value if raw is None else raw.decode("latin-1")
            value = _parse_int(text)
            if value is None:  # the value itself is never shown: it may be a secret
                self.error(e, COL_VALUE, f"not an integer, {len(text)} characters")
                return None
            if not lo <= value <= hi:
                side = "too large" if value > hi else "too small"
                self.error(e, COL_VALUE, f"{side} for {enc} ({lo}..{hi})")
                return None
            return _PRIM, code, struct.pack(fmt, value).ljust(8, b"\xff")
        if enc == "string":
            if raw is not None:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    self.error(e, COL_VALUE, f"file is not UTF-8 text (byte {err.start + 1})")
                    return None
                sz = raw + b"\0"
            else:
                sz = e.value.encode("utf-8") + b"\0"
            limit = MAX_VARLEN[self.version]
            if len(sz) > limit:
                self.error(
                    e,
                    COL_VALUE,
                    f"string is {len(sz) - 1} bytes long, at most {limit - 1} are allowed"
                    f" ({limit} with the terminating NUL) in NVS version {self.version}",
                )
                return None
            return _STR, SZ, sz
        data: bytes | None
        if fill is not None:
            data = self.fill(e, fill, raw)
        elif enc == "hex2bin":
            data = self.hex2bin(e, raw)
        elif enc == "base64":
            data = self.base64(e, raw)
        else:  # binary
            data = raw if raw is not None else e.value.encode("utf-8")
        if data is None:
            return None
        if self.version == 1 and len(data) > MAX_VARLEN[1]:
            self.error(
                e,
                COL_VALUE,
                f"blob is {len(data)} bytes long; NVS version 1 allows at most {MAX_VARLEN[1]}"
                " (version 2 splits large blobs over pages)",
            )
            return None
        return _BLOB, BLOB, data

    def hex2bin(self, e: NvsEntry, raw: bytes | None) -> bytes | None:
        text = (e.value if raw is None else raw.decode("latin-1")).strip()
        bad = _HEX_RE.match(text)
        end = bad.end() if bad else 0
        if end != len(text):
            self.error(
                e,
                COL_VALUE,
                f"not hexadecimal: character {end + 1} (hex2bin takes 0-9 a-f)",
            )
            return None
        if len(text) % 2:
            self.error(e, COL_VALUE, f"odd number of hex digits ({len(text)}); each byte needs two")
            return None
        return binascii.a2b_hex(text)

    def base64(self, e: NvsEntry, raw: bytes | None) -> bytes | None:
        text = e.value if raw is None else raw.decode("latin-1")
        if not _B64_RE.fullmatch(text):  # only then look for line breaks and spaces to drop
            text = _WS_RE.sub("", text)
        if not _B64_RE.fullmatch(text) or len(text) % 4:
            self.error(
                e, COL_VALUE, "not valid base64 (A-Z a-z 0-9 + /, '=' padding to a multiple of 4)"
            )
            return None
        return base64.b64decode(text)

    def fill(self, e: NvsEntry, m: re.Match[str], raw: bytes | None) -> bytes | None:
        length, pad = int(m.group(2)), bytes((int(m.group(3), 16),))
        value = raw if raw is not None else e.value.encode("utf-8")
        if len(value) > length:
            self.error(
                e,
                COL_VALUE,
                f"value is {len(value)} bytes long, longer than the {length} of {m[0]}",
            )
            return None
        data = value + pad * (length - len(value))
        if m.group(1) == "blob_sz_fill":
            data = struct.pack("<I", len(value)) + data
        return data


class _TooManyChunks(Exception):
    """A version-2 blob would need more than 255 chunks (a chunk index is one byte)."""


# one fill operation: (entry offset in the image, CRC32 state after the entry's first 4 bytes,
# its key and nothing else, payload start, payload end); start < 0 marks a primitive whose
# payload is the entry's 8-byte data field itself
_Op = tuple[int, int, int, int]
# what decides the layout of an item: (kind, namespace index, item type, key field, length);
# length is 0 for primitives (their data field does not move anything)
_Shape = tuple[int, int, int, bytes, int]


class _Template:
    """The pages of one layout: headers, bitmaps and fixed entries in place, 0xFF elsewhere.

    Items with the same kinds, keys and payload lengths land on the same pages in the same
    entries, so an image is this template with each item's value bytes, data field and CRCs
    written in (:meth:`fill`). Built once per layout and reused for every image that has it.
    """

    __slots__ = ("image", "pages", "steps", "tail", "used")

    def __init__(self, image: bytes, ops: tuple[tuple[_Op, ...], ...], used: tuple[int, ...]):
        self.image = image
        self.pages = len(used)
        self.used = used  # bytes of written entries per page (what encryption covers)
        # per entry with a value, in image order: (fixed bytes before its CRC, its key field,
        # item, CRC state, payload start, end, whole payload?); start -1 for primitives
        entries = sorted(
            (off, item, state, start, end, len(item_ops) == 1)
            for item, item_ops in enumerate(ops)
            for off, state, start, end in item_ops
        )
        steps = []
        pos = 0
        for off, item, state, start, end, whole in entries:
            lead = image[pos : off + 4]
            key = image[off + 8 : off + 24]
            steps.append((lead, key, item, state, start, end, whole))
            pos = off + ENTRY_SIZE + (end - start if start >= 0 else 0)
        self.steps = tuple(steps)
        self.tail = image[pos:]

    def fill(self, payloads: Sequence[bytes], keys: XtsKeys | None, size: int) -> bytes:
        """The image of ``size`` bytes with these payloads (one per item, in order)."""
        crc32, size_crc, u32 = _crc32, _SIZE_CRC, _U32
        parts: list[bytes] = []
        add = parts.append
        for lead, key, item, state, start, end, whole in self.steps:
            add(lead)
            if start < 0:
                data8 = payloads[item]
                add(u32(crc32(data8, state)))
                add(key)
                add(data8)
            else:
                chunk = payloads[item] if whole else payloads[item][start:end]
                data8 = size_crc(end - start, 0xFFFF, crc32(chunk, 0xFFFFFFFF))
                add(u32(crc32(data8, state)))
                add(key)
                add(data8)
                add(chunk)
        add(self.tail)
        if size > len(self.image):
            add(_erased(size - len(self.image)))
        image = b"".join(parts)
        if keys is None:
            return image
        buf = bytearray(image)
        for index, used in enumerate(self.used):
            first = index * PAGE_SIZE + FIRST_ENTRY_OFFSET
            buf[first : first + used] = encrypt_entries(
                bytes(buf[first : first + used]), keys, index
            )
        return bytes(buf)


@lru_cache(maxsize=64)
def _erased(n: int) -> bytes:
    return b"\xff" * n


def _plan(shapes: Sequence[_Shape], version: int) -> _Template:
    """Place items on pages as the official tool does (raises _TooManyChunks).

    A string or version-1 blob moves to a new page when it would leave its page with no free
    entry; a version-2 blob fills the page's tail with a chunk and continues on the next page.
    """
    pages: list[tuple[list[tuple[int, bytes]], int]] = []  # (entry number, fixed bytes), used
    cur: list[tuple[int, bytes]] = []
    item_ops: list[tuple[tuple[int, bytes, int, int], ...]] = []  # (offset, fixed, start, end)
    n = 0  # entries used on the current page

    def new_page() -> None:
        nonlocal cur, n
        pages.append((cur, n))
        cur, n = [], 0

    for kind, ns, typ, key, size in shapes:
        mine: list[tuple[int, int, bytes, int, int]] = []
        if kind == _PRIM:
            if n >= ENTRIES_PER_PAGE:
                new_page()
            head = bytes((ns, typ, 1, 0xFF))
            mine.append((len(pages), n, head + key, -1, -1))
            cur.append((n, head + b"\xff" * 4 + key))
            n += 1
        elif kind == _STR or version == 1:
            span = (size + 31) // 32 + 1
            # the official tool keeps one entry free ('>=' below); a string that needs the whole
            # page (3969..4000 bytes, where the official tool crashes) starts a fresh page
            if n and n + span >= ENTRIES_PER_PAGE:
                new_page()
            head = bytes((ns, typ, span, 0xFF))
            mine.append((len(pages), n, head + key, 0, size))
            cur.append((n, head + b"\xff" * 4 + key))
            n += span
        else:  # version-2 blob: chunks of what fits, then the index
            if n >= ENTRIES_PER_PAGE:
                new_page()
            offset = 0
            chunks = 0
            while True:
                tailroom = (ENTRIES_PER_PAGE - n - 1) * ENTRY_SIZE
                csize = min(tailroom, size - offset)
                span = (csize + 31) // 32 + 1
                head = bytes((ns, BLOB_DATA, span, min(chunks, 0xFE)))
                mine.append((len(pages), n, head + key, offset, offset + csize))
                cur.append((n, head + b"\xff" * 4 + key))
                offset += csize
                n += span
                chunks += 1
                remaining = size - offset
                if remaining or tailroom - csize < ENTRY_SIZE:
                    new_page()
                if not remaining:
                    if chunks > 255:
                        raise _TooManyChunks(key)
                    data8 = struct.pack("<IBB", size, chunks, 0) + b"\xff\xff"
                    cur.append((n, _entry(ns, BLOB_IDX, 1, 0xFF, key, data8)))
                    n += 1
                    break
        item_ops.append(
            tuple(
                (p * PAGE_SIZE + FIRST_ENTRY_OFFSET + e * ENTRY_SIZE, fixed, start, end)
                for p, e, fixed, start, end in mine
            )
        )
    if cur or not pages:
        pages.append((cur, n))
    used = []
    image = bytearray(b"\xff" * (len(pages) * PAGE_SIZE))
    last = len(pages) - 1
    for index, (entries, count) in enumerate(pages):
        base = index * PAGE_SIZE
        for e, fixed in entries:
            at = base + FIRST_ENTRY_OFFSET + e * ENTRY_SIZE
            image[at : at + len(fixed)] = fixed
        image[base : base + 32] = _page_header(index, version, index != last)
        image[base + 32 : base + 64] = _bitmap(count)
        used.append(count * ENTRY_SIZE)
    # the CRC state after an entry's first 4 bytes and its key (the data field comes last)
    final = tuple(
        tuple(
            (off, _crc32(fixed[4:], _crc32(fixed[:4], 0xFFFFFFFF)), start, end)
            for off, fixed, start, end in item
        )
        for item in item_ops
    )
    return _Template(bytes(image), final, tuple(used))


_TEMPLATES: dict[tuple[int, tuple[_Shape, ...]], _Template] = {}
_TEMPLATE_CACHE_BYTES = 32 * 1024 * 1024
_template_bytes = 0


def _template(version: int, shapes: tuple[_Shape, ...]) -> _Template:
    """The (cached) template of a layout; raises _TooManyChunks."""
    global _template_bytes
    cache_key = (version, shapes)
    found = _TEMPLATES.get(cache_key)
    if found is None:
        found = _plan(shapes, version)
        if _template_bytes + len(found.image) > _TEMPLATE_CACHE_BYTES:
            _TEMPLATES.clear()  # rare: many layouts of big partitions; start again
            _template_bytes = 0
        _TEMPLATES[cache_key] = found
        _template_bytes += len(found.image)
    return found


def _shapes(items: Sequence[Item]) -> tuple[_Shape, ...]:
    return tuple(
        (kind, ns, typ, key, 0 if kind == _PRIM else len(payload))
        for kind, ns, typ, key, payload in items
    )


def _fit_problem(pages: int, size: int, where: str) -> Problem | None:
    available = data_pages(size)
    if pages <= available:
        return None
    over = pages - available
    need = (pages + (0 if size < READ_WRITE_MIN_SIZE else 1)) * PAGE_SIZE
    reserved = "" if size < READ_WRITE_MIN_SIZE else " (the last page is reserved)"
    return Problem(
        where,
        0,
        0,
        "size",
        f"the data does not fit: it needs {pages} pages, a {size:#x} partition has"
        f" {available} for data{reserved}; {over} page(s) ({over * PAGE_SIZE} bytes) over,"
        f" use a size of at least {need:#x}",
    )


def _build(
    entries: Iterable[NvsEntry], size: int, version: int, base_dir: str | os.PathLike[str] | None
) -> tuple[_Template | None, list[bytes], list[Problem]]:
    """The template and payloads of these entries, or the problems."""
    problems = ProblemList()
    entries = list(entries)
    where = entries[0].file if entries else ""
    if version not in (1, 2):
        problems.add(where, 0, 0, "version", f"NVS version must be 1 or 2, not {version!r}")
        return None, [], problems.items
    problems.extend(_size_problems(size, where or "size", 0, "size"))
    prep = _Prep(version, Path(base_dir) if base_dir is not None else None, problems)
    prep.run(entries)
    if problems:
        return None, [], problems.items
    try:
        template = _template(version, _shapes(prep.items))
    except _TooManyChunks as err:
        name = err.args[0].rstrip(b"\0").decode("utf-8", "replace")
        problems.add(where, 0, 0, name, "blob too large: it would need more than 255 chunks")
        return None, [], problems.items
    fit = _fit_problem(template.pages, size, where)
    if fit is not None:
        problems.extend([fit])
    return template, [item[4] for item in prep.items], problems.items


class _Reject(ValueError):
    """A value the fast path does not take; the checked path will say what is wrong."""


Converter = Callable[[str], bytes]


def _converter(encoding: str, version: int) -> tuple[int, int, Converter] | None:
    """(kind, item type, value text -> payload) for an encoding, as :class:`_Prep` converts."""
    enc = encoding.strip().lower()
    prim = PRIMITIVES.get(enc)
    if prim is not None:
        code, fmt, lo, hi = prim
        pack = struct.Struct(fmt).pack
        pad = b"\xff" * (8 - struct.calcsize(fmt))

        def integer(value: str) -> bytes:
            number = _parse_int(value)
            if number is None or not lo <= number <= hi:
                raise _Reject
            return pack(number) + pad

        return _PRIM, code, integer
    if enc == "string":
        limit = MAX_VARLEN[version]

        def string(value: str) -> bytes:
            data = value.encode("utf-8") + b"\0"
            if len(data) > limit:
                raise _Reject
            return data

        return _STR, SZ, string
    blob: Converter
    if enc == "hex2bin":

        def blob(value: str) -> bytes:
            return binascii.a2b_hex(value.strip())

    elif enc == "base64":

        def blob(value: str) -> bytes:
            if not _B64_RE.fullmatch(value):
                value = _WS_RE.sub("", value)
            if len(value) % 4 or not _B64_RE.fullmatch(value):
                raise _Reject
            return base64.b64decode(value)

    elif enc == "binary":

        def blob(value: str) -> bytes:
            return value.encode("utf-8")

    else:
        fill = _FILL_RE.fullmatch(enc)
        if fill is None:
            return None
        length, pad = int(fill.group(2)), bytes((int(fill.group(3), 16),))
        sized = fill.group(1) == "blob_sz_fill"

        def blob(value: str) -> bytes:
            data = value.encode("utf-8")
            if len(data) > length:
                raise _Reject
            filled = data + pad * (length - len(data))
            return struct.pack("<I", len(data)) + filled if sized else filled

    if version == 1:
        unlimited = blob

        def blob(value: str) -> bytes:
            data = unlimited(value)
            if len(data) > MAX_VARLEN[1]:
                raise _Reject
            return data

    return _BLOB, BLOB, blob


class RowEncoder:
    """Encodes many devices of one entry structure, whose values were validated as a whole.

    ``lines`` is the structure: ``(key, encoding)`` per entry in order, encoding ``""`` for a
    namespace, type data (type-file values are given as the data entry they stand for).
    :meth:`encode` takes one device's values of the data lines and converts them without
    locating problems, reusing the page layout of earlier devices with the same value lengths.
    It returns None for anything it does not take (a bad value, data that does not fit): the
    caller then encodes that device with :func:`encode_image`, which reports the problem.
    Use :meth:`create`, which returns None for structures the fast path does not handle.
    """

    def __init__(
        self,
        version: int,
        items: list[tuple[int, int, int, bytes]],
        fixed: list[bytes],
        slots: tuple[int, ...],
        converters: tuple[Converter, ...],
    ) -> None:
        self._version = version
        self._items = items  # (kind, namespace index, item type, key field) per item
        self._fixed = fixed  # payloads: namespaces' data fields, b"" where a value goes
        self._slots = slots  # item index of each data line
        self._converters = converters
        self._templates: dict[tuple[int, ...], _Template | None] = {}
        self._last: list[tuple[str, bytes] | None] = [None] * len(slots)
        self._numbered = tuple(zip(range(len(slots)), slots, converters, strict=True))

    @classmethod
    def create(cls, lines: Iterable[tuple[str, str]], version: int = 2) -> RowEncoder | None:
        """An encoder for this structure, or None if it needs the checked path.

        None for Wi-Fi keys (the side entries they add depend on values), invalid or repeated
        keys, a first line that is not a namespace, unknown encodings and versions.
        """
        if version not in (1, 2):
            return None
        namespaces: dict[str, int] = {}
        items: list[tuple[int, int, int, bytes]] = []
        fixed: list[bytes] = []
        slots: list[int] = []
        converters: list[Converter] = []
        seen: set[tuple[int, str]] = set()
        ns = 0
        for key, encoding in lines:
            if not 0 < _key_len(key) <= MAX_KEY_LEN:
                return None
            if encoding == "":
                idx = namespaces.get(key)
                if idx is None:
                    if len(namespaces) >= MAX_NAMESPACES:
                        return None
                    idx = namespaces[key] = len(namespaces) + 1
                    items.append((_PRIM, 0, U8, _key_field(key)))
                    fixed.append(bytes((idx,)) + b"\xff" * 7)
                ns = idx
                continue
            if not ns or key in _AP_KEYS or key in _STA_KEYS or (ns, key) in seen:
                return None
            seen.add((ns, key))
            conv = _converter(encoding, version)
            if conv is None:
                return None
            kind, typ, converter = conv
            slots.append(len(items))
            items.append((kind, ns, typ, _key_field(key)))
            fixed.append(b"")
            converters.append(converter)
        return cls(version, items, fixed, tuple(slots), tuple(converters))

    def encode(self, values: Sequence[str], size: int, keys: XtsKeys | None = None) -> bytes | None:
        """The image of one device (values of the data lines, in order), or None (see above)."""
        if size % PAGE_SIZE or size < MIN_SIZE or len(values) != len(self._slots):
            return None
        payloads = self._fixed[:]
        last = self._last  # per line: the last (value, payload); REPEAT values convert once
        try:
            for (line, slot, convert), value in zip(self._numbered, values, strict=True):
                known = last[line]
                if known is not None and known[0] == value:
                    payloads[slot] = known[1]
                else:
                    payload = payloads[slot] = convert(value)
                    last[line] = (value, payload)
        except ValueError:  # _Reject, binascii.Error, UnicodeEncodeError
            return None
        shape = tuple(map(len, payloads))
        template = self._templates.get(shape, _MISSING)
        if template is _MISSING:
            shapes = tuple(
                (kind, ns, typ, key, 0 if kind == _PRIM else n)
                for (kind, ns, typ, key), n in zip(self._items, shape, strict=True)
            )
            try:
                template = _template(self._version, shapes)
            except _TooManyChunks:
                template = None
            if len(self._templates) >= 1024:
                self._templates.clear()
            self._templates[shape] = template
        if template is None or template.pages > data_pages(size):
            return None
        return template.fill(payloads, keys, size)  # type: ignore[union-attr]


_MISSING: Any = object()


def check_entries(
    entries: Iterable[NvsEntry],
    size: int,
    version: int = 2,
    base_dir: str | os.PathLike[str] | None = None,
) -> list[Problem]:
    """Every problem of these entries for a partition of ``size`` bytes, each with its location."""
    return _build(entries, size, version, base_dir)[2]


def encode_image(
    entries: Iterable[NvsEntry],
    size: int,
    *,
    version: int = 2,
    keys: XtsKeys | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> bytes:
    """The NVS partition image of ``size`` bytes; StationError with all problems, if any."""
    template, payloads, problems = _build(entries, size, version, base_dir)
    if problems or template is None:
        raise StationError(problems)
    return template.fill(payloads, keys, size)
