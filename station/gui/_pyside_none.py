"""Containment for a PySide6 6.12.0 bug on CPython < 3.12: void methods drop a reference to None.

Every call of a Qt method that returns nothing (``QPainter.fillRect``, ``QLabel.setText``, ...)
returns ``None`` without taking a reference, so each call lowers None's reference count by one.
CPython 3.12+ ignores that (None is immortal); on 3.10/3.11 the count reaches zero after a few
thousand calls and the interpreter aborts ("none_dealloc: deallocating None"). A station that
renders a label per unit would die within a few hundred labels. PySide6 6.11.3 does not have the
bug; the real fix is to avoid 6.12.0 on Python < 3.12. Until then, :func:`protect` gives None a
reference count so large that the leak can never bring it to zero.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40  # ~10^12 leaked references: far more void calls than a process makes


def leaks_none() -> bool:
    """True if Qt's void methods lower None's reference count in this interpreter."""
    if sys.version_info >= (3, 12):
        return False
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("probe")
    return before - sys.getrefcount(None) >= 64


def protect() -> bool:
    """Raise None's reference count by a large margin if the leak is present; True if done."""
    if not leaks_none():
        return False
    if sys.getrefcount(None) > _HEADROOM // 2:
        return True  # already done (by us or by the GUI)
    before = sys.getrefcount(None)
    # ob_refcnt is the first field of every object in a release build of CPython
    cell = ctypes.c_ssize_t.from_address(id(None))
    cell.value += _HEADROOM
    if sys.getrefcount(None) < before + _HEADROOM // 2:  # not the layout we expected: undo
        cell.value -= _HEADROOM
        return False
    return True
