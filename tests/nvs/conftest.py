"""Fixtures for the NVS tests: run the official generator and ours on the same CSV."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from station.nvs import XtsKeys, encode_image, key_partition_image, read_nvs_csv
from tests.nvs.official import official_image, write_csv

Row = tuple[str, str, str, str]


def build_both(
    folder: Path, rows: Sequence[Row], size: int, version: int = 2, keys: XtsKeys | None = None
) -> tuple[bytes, bytes]:
    """(official image, ours) for the same rows, written as one CSV in ``folder``."""
    csv_path = write_csv(folder / "input.csv", list(rows))
    keyfile = None
    if keys is not None:
        keyfile = folder / "keys.bin"
        keyfile.write_bytes(key_partition_image(keys))
    theirs = official_image(csv_path, size, version, inputkey=keyfile, outdir=folder)
    ours = encode_image(read_nvs_csv(csv_path), size, version=version, keys=keys, base_dir=folder)
    return theirs, ours


def assert_same(theirs: bytes, ours: bytes, size: int) -> None:
    """Byte-identical; for read-only sizes (< 0x3000) the official image is only the used pages,
    ours is padded with erased flash to the partition size (see docs/compatibility.md)."""
    assert len(ours) == size
    if size >= 0x3000:
        assert len(theirs) == size
    assert ours[: len(theirs)] == theirs
    assert ours[len(theirs) :] == b"\xff" * (size - len(theirs))


@pytest.fixture
def compare(tmp_path: Path) -> Callable[..., bytes]:
    """compare(rows, size=0x6000, version=2, keys=None) -> our image, after checking it."""

    def run(
        rows: Sequence[Row], size: int = 0x6000, version: int = 2, keys: XtsKeys | None = None
    ) -> bytes:
        theirs, ours = build_both(tmp_path, rows, size, version, keys)
        assert_same(theirs, ours, size)
        return ours

    return run
