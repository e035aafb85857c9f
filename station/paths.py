"""Where the station's resources (sample lot, style sheet, icons, sounds) are.

Three layouts: the frozen bundle (PyInstaller unpacks ``resources/`` next to the program), a source
checkout (``resources/`` beside ``station/``), and a normal install, where ``resources/`` was
installed inside the package as ``station._resources`` (see setup.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The resources folder of this installation."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    checkout = _PACKAGE.parent / "resources"
    if (checkout / "sample_lot").is_dir():
        return checkout
    return _PACKAGE / "_resources"


def sample_lot_dir() -> Path:
    """The sample lot the demo and the self-test open (copy it before use: it is read-only)."""
    return resources_dir() / "sample_lot"
