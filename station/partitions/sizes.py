"""Sizes in words, the one place they are formatted: :func:`size_text` for messages and the
``station partitions`` listing ("24 KB", "4 MB"), :func:`human_size` for the window's partition
views ("24 KiB", "1.5 MiB"). Imports nothing."""

from __future__ import annotations


def size_text(n: int) -> str:
    """An exact size: whole MB, else whole KB, else bytes (0x6000 -> "24 KB")."""
    if n and n % 0x100000 == 0:
        return f"{n // 0x100000} MB"
    if n and n % 0x400 == 0:
        return f"{n // 0x400} KB"
    return f"{n} bytes"


def human_size(size: int) -> str:
    """4096 -> "4 KiB", 1048576 -> "1 MiB" (what an engineer reads in a partition table)."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % (scale // 4) == 0:
            value = size / scale
            return f"{value:g} {unit}"
    return f"{size} B"
