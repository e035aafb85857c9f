"""A short soak of the station window (tests/bench/soak.py, offscreen): devices swapped one by
one through a lot, faults mixed in; descriptors, threads, children and QObjects stay flat."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from soak_check import leaks, load, unaccounted

# units in the long run (a loaded machine may ask for fewer: STATION_SOAK_UNITS=100)
UNITS = int(os.environ.get("STATION_SOAK_UNITS", "200"))

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counts descriptors and children from /proc"
)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_soak_window_holds_nothing_per_unit(qapp: object, tmp_path: Path) -> None:
    soak = load()
    short = soak.run_window(tmp_path / "short", soak.Options(rows=16, every=8, quiet=True))
    long = soak.run_window(
        tmp_path / "long", soak.Options(rows=UNITS, every=max(UNITS // 6, 8), quiet=True)
    )
    assert unaccounted(short) == []
    assert unaccounted(long) == []
    assert len(long["faults"]) == 4, long["faults"]
    assert leaks(short, long) == []
    # a card is rebuilt for every device plugged in: the old ones must be gone
    a, b = short["samples"][-1], long["samples"][-1]
    assert b["qobjects"] <= a["qobjects"] + 20, (a["qobjects"], b["qobjects"])
    # and the bridge keeps a view for the ports on the station only (a late event of a port
    # taken off must not bring its view back)
    assert b["port_views"] == b["cards"], (b["port_views"], b["cards"])
