"""`station run` killed with SIGKILL at many moments, restarted: nothing lost, nothing doubled.

Each board sits in a test jig (a fixed port in front of a simulated chip). The kills are
triggered by what happens, never by time: the run's header line, a PASS line, or the jig
seeing the traffic of a given phase (reading the factory region, writing, verifying).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from station.flashing import SimulatedDevice, open_device, start_simulated_devices
from station.ledger import Ledger
from station.production import open_lot
from tests.production.conftest import make_small_lot
from tests.production.jig import Jig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# bytes sent towards the board on one connection, by phase (measured on the simulated chip with
# the 0x3000 partition: checking starts near 1.2 kB, writing near 4.7 kB, verifying near 17.5 kB).
# An early kill leaves the first NVS page half written (the board must be rewritten); a late one
# leaves only erased pages unwritten, which equal the image's empty pages (the board verifiably
# holds its row and is completed without a write).
PHASE_BYTES = {"reading": 2500, "writing": 6500, "writing-late": 12000, "verifying": 19000}
MOMENTS = ["start", "writing", "pass", "reading", "verifying", "writing-late", "writing"]
BOARDS_PER_JIG = 5


@pytest.fixture
def boards() -> Iterator[list[SimulatedDevice]]:
    devs: list[SimulatedDevice] = []
    try:
        for _ in range(2):  # a batch per jig: starting many at once is slow on a busy machine
            devs += start_simulated_devices(BOARDS_PER_JIG)
        yield devs
    finally:
        for d in devs:
            d.stop()


def station_run(lot: Path, jigs: list[Jig], moment: str | None, swap: Callable[[str], None]) -> int:
    """One `station run`; killed at ``moment`` (None: runs to its end). Returns its exit code."""
    cmd = [sys.executable, "-m", "station", "run", str(lot), "--no-stub", "--poll", "0.05"]
    for j in jigs:
        cmd += ["--port", j.port]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    killed = threading.Event()

    def kill() -> None:
        if not killed.is_set():
            killed.set()
            proc.send_signal(signal.SIGKILL)

    if moment in PHASE_BYTES:
        threshold = PHASE_BYTES[moment]
        for jig in jigs:  # whichever board gets there first
            jig.on_bytes = lambda j: kill() if j.up >= threshold else None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if moment == "start":
                kill()
            if line.startswith("PASS "):
                port = line.split()[1]
                swap(port)
                if moment == "pass":
                    kill()
    finally:
        for jig in jigs:
            jig.on_bytes = None
        proc.stdout.close()
        code = proc.wait(60)
    if moment is not None:
        assert killed.is_set() and code == -signal.SIGKILL
    return code


def test_sigkill_at_any_moment_loses_and_doubles_nothing(
    tmp_path: Path, boards: list[SimulatedDevice]
) -> None:
    lot_path = make_small_lot(tmp_path / "lot", 2 * BOARDS_PER_JIG, name="CRASH")
    jigs = [Jig(), Jig()]
    queues = {
        jigs[0].port: deque(boards[:BOARDS_PER_JIG]),
        jigs[1].port: deque(boards[BOARDS_PER_JIG:]),
    }
    by_port = {j.port: j for j in jigs}
    for j in jigs:
        j.insert(queues[j.port].popleft().port)

    def swap(port: str) -> None:  # the operator takes the passed board out, puts the next in
        if queues[port]:
            by_port[port].insert(queues[port].popleft().port)

    try:
        for moment in MOMENTS:
            station_run(lot_path, jigs, moment, swap)
        runs = 0
        while station_run(lot_path, jigs, None, swap) != 0:  # to the end, no more kills
            runs += 1
            assert runs < 3, "the lot did not complete"
    finally:
        for j in jigs:
            j.close()

    db = lot_path.parent / "CRASH.station.db"
    with Ledger(db) as led:
        led.attach("CRASH")
        rows = led.rows(0, 100)
        assert [r.state for r in rows] == ["done"] * len(rows)
        macs = [r.mac for r in rows]
        assert len(set(macs)) == len(rows) == len(boards)  # no MAC with two rows
        assert set(macs) == {b.mac for b in boards}
        rows_of_mac: dict[str, set[int]] = defaultdict(set)
        macs_of_row: dict[int, set[str]] = defaultdict(set)
        for a in led.attempts():
            if a.image_sha256 is not None:  # from here on, bytes may have reached the board
                rows_of_mac[a.mac].add(a.row_index)
            if a.result == "done":
                macs_of_row[a.row_index].add(a.mac)
        # a board was only ever written with one row (a claim killed before writing may have
        # sent its row back to pending, and the board then got another one: that is fine)
        assert all(len(v) == 1 for v in rows_of_mac.values())
        assert all(len(v) == 1 for v in macs_of_row.values())  # a row done on one board only
        results = {a.result for a in led.attempts()}
        assert "interrupted" in results  # the kills did land mid-unit
        # boards interrupted while writing were checked again: rewritten or found complete
        kinds = {(a.kind, a.result) for a in led.attempts()}
        assert ("retry", "done") in kinds
        assert led.active_attempts() == []
    with open_lot(lot_path) as lot:
        for r in lot.ledger.rows(0, 100):
            board = next(b for b in boards if b.mac == r.mac)
            with open_device(board.port, no_stub=True) as s:
                assert s.read(lot.factory.offset, lot.factory.size) == lot.image_for(
                    lot.row(r.index)
                )
