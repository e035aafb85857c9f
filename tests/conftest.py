"""Shared fixtures. Qt-specific fixtures live in tests/gui/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Qt must never try to open a real screen in tests (no display on CI machines).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _own_engineer_pin_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes this machine's engineer PIN (/etc/station, ProgramData)."""
    monkeypatch.setenv("STATION_PIN_FILE", str(tmp_path / "machine-engineer-pin"))
