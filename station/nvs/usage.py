"""How much of an NVS image is in use (the lot panel's "row 1 fills N bytes" note).

Imports nothing but the standard library; station.production and the GUI read it."""

from __future__ import annotations

PAGE_SIZE = 4096
HEADER_AND_BITMAP = 64  # a page's 32-byte header and its 32-byte entry state bitmap
ENTRY_SIZE = 32


def nvs_bytes_used(image: bytes) -> int:
    """Bytes of NVS entries in use: non-erased 32-byte entries after each page's 64-byte header
    and bitmap (erased flash reads 0xFF), plus those headers of pages in use."""
    erased = b"\xff" * ENTRY_SIZE
    used = 0
    for page in range(0, len(image), PAGE_SIZE):
        entries = (
            image[o : o + ENTRY_SIZE]
            for o in range(page + HEADER_AND_BITMAP, page + PAGE_SIZE, ENTRY_SIZE)
        )
        n = sum(1 for e in entries if e != erased)
        if n:
            used += HEADER_AND_BITMAP + ENTRY_SIZE * n
    return used
