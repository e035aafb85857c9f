"""Settings of the C runtime under the station's Python: glibc's malloc arenas.

A station runs for a shift, and every device swap starts a port thread with its own SQLite
connection. glibc gives busy threads malloc arenas of their own (up to 8 per core), which
fragment: the station's RSS grew by 7-9 MB per 1,000 units while the Python heap stayed flat;
with two arenas, by 1.8 MB (docs/soak.md). :func:`limit_malloc_arenas` caps them in this
process (call it before threads are started: arenas made already stay), and
:data:`ARENA_ENV` carries the same cap to child processes (the device host).

Imports only the standard library; a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

ARENAS = 2
ARENA_ENV = {"MALLOC_ARENA_MAX": str(ARENAS)}
_M_ARENA_MAX = -8  # glibc's malloc.h


def is_glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas in this process; True when applied, False where there is
    nothing to cap (not glibc) or the C library refused. Never raises."""
    if not is_glibc():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arenas)))
    except (OSError, AttributeError):
        return False


def child_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the arena cap for a child process, unless the user set one already."""
    out = dict(env)
    for key, value in ARENA_ENV.items():
        out.setdefault(key, value)
    return out
