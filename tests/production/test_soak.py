"""A short soak (tests/bench/soak.py) in CI: 300 units on 8 simulated devices swapped one by one,
faults mixed in; nothing the station holds may grow with the number of units."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from soak_check import leaks, load, unaccounted

# units in the long run (a loaded machine may ask for fewer: STATION_SOAK_UNITS=100)
UNITS = int(os.environ.get("STATION_SOAK_UNITS", "300"))

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counts descriptors and children from /proc"
)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_soak_headless_holds_nothing_per_unit(tmp_path: Path) -> None:
    soak = load()
    short = soak.run_headless(tmp_path / "short", soak.Options(rows=16, every=8, quiet=True))
    long = soak.run_headless(
        tmp_path / "long", soak.Options(rows=UNITS, every=max(UNITS // 6, 8), quiet=True)
    )
    assert unaccounted(short) == []
    assert unaccounted(long) == []
    assert len(long["faults"]) == 4, long["faults"]
    assert leaks(short, long) == []
