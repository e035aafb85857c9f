"""Resources are found from a checkout, a frozen bundle and a plain (non-editable) install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from station import paths


def test_checkout_has_the_sample_lot() -> None:
    assert (paths.sample_lot_dir() / "lot.toml").is_file()


def test_frozen_bundle_uses_its_own_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.resources_dir() == tmp_path / "resources"


def test_installed_package_falls_back_to_its_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(paths, "_PACKAGE", tmp_path / "site-packages" / "station")
    assert paths.resources_dir() == tmp_path / "site-packages" / "station" / "_resources"


@pytest.mark.slow
def test_wheel_carries_resources_but_not_screenshots(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("station-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "station/_resources/sample_lot/lot.toml" in names
    assert "station/_resources/gui/station.qss" in names
    assert not [n for n in names if "screenshots" in n or n.endswith(".station.db")]
