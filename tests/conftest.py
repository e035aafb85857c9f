"""Shared fixtures. Qt-specific fixtures live in tests/gui/conftest.py."""

from __future__ import annotations

import os

# Qt must never try to open a real screen in tests (no display on CI machines).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
