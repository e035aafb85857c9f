"""`station run` killed with SIGKILL at many moments, restarted: nothing lost, nothing doubled.

Each board sits in a test jig (a fixed port in front of a simulated chip). The kills are
triggered by what happens, never by time: the run's header line, a PASS line, or the jig
seeing the traffic of a given phase (reading the factory region, writing, verifying).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from station.cli import main
from station.flashing import SimulatedDevice, open_device, start_simulated_devices
from station.ledger import Ledger
from station.production import open_lot, read_lot_file
from tests.production.conftest import make_small_lot
from tests.production.jig import Jig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# bytes sent towards the board on one connection, by phase (measured on the simulated chip with
# the 0x3000 partition: checking starts near 1150 B, where the blank factory region is known by
# one MD5 command; writing near 1.2 kB, verifying near 14 kB, the unit ends near 17.5 kB).
# An early kill leaves the first NVS page half written (the board must be rewritten); a late one
# leaves only erased pages unwritten, which equal the image's empty pages (the board verifiably
# holds its row and is completed without a write).
PHASE_BYTES = {"reading": 1160, "writing": 3000, "writing-late": 8500, "verifying": 15500}
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


def station_run(
    lot: Path,
    jigs: list[Jig],
    moment: str | None,
    swap: Callable[[str], None],
    *,
    kill_after: int | None = None,
) -> int:
    """One `station run`; killed at ``moment``, or once the jigs forwarded ``kill_after`` bytes
    (both ways, all connections, this run only); neither: runs to its end. Returns its exit
    code (-SIGKILL when killed; with ``kill_after`` the lot may complete before that)."""
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

    if kill_after is not None:
        base = sum(j.total for j in jigs)
        for jig in jigs:
            jig.on_bytes = lambda _j: (
                kill() if sum(j.total for j in jigs) - base >= kill_after else None
            )
    elif moment in PHASE_BYTES:
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
    elif kill_after is not None and killed.is_set():
        assert code in (-signal.SIGKILL, 0)  # 0: the lot completed just before the kill
    return code


def start_jigs(boards: list[SimulatedDevice]) -> tuple[list[Jig], Callable[[str], None]]:
    """Two jigs, each with its half of the boards queued (the first one inserted), and the
    operator's swap: a PASS on a port takes that board out and puts the next one in."""
    jigs = [Jig(), Jig()]
    queues = {
        jigs[0].port: deque(boards[:BOARDS_PER_JIG]),
        jigs[1].port: deque(boards[BOARDS_PER_JIG:]),
    }
    by_port = {j.port: j for j in jigs}
    for j in jigs:
        j.insert(queues[j.port].popleft().port)

    def swap(port: str) -> None:
        if queues[port]:
            by_port[port].insert(queues[port].popleft().port)

    return jigs, swap


def run_to_completion(lot_path: Path, jigs: list[Jig], swap: Callable[[str], None]) -> None:
    runs = 0
    while station_run(lot_path, jigs, None, swap) != 0:  # to the end, no more kills
        runs += 1
        assert runs < 3, "the lot did not complete"


def check_lot(lot_path: Path, boards: list[SimulatedDevice], *, mid_unit: bool) -> None:
    """Every row done exactly once, on its own board, which holds exactly its row's image.

    ``mid_unit``: the kills are known to have landed inside units (interrupted attempts, and
    boards checked again by a retry)."""
    name = read_lot_file(lot_path).name
    with Ledger(lot_path.parent / f"{name}.station.db") as led:
        led.attach(name)
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
        assert all(len(v) == 1 for v in rows_of_mac.values()), dict(rows_of_mac)
        assert all(len(v) == 1 for v in macs_of_row.values()), dict(macs_of_row)  # row: 1 board
        assert set(macs_of_row) == {r.index for r in rows}
        if mid_unit:
            results = {a.result for a in led.attempts()}
            assert "interrupted" in results  # the kills did land mid-unit
            # boards interrupted while writing were checked again: rewritten or found complete
            kinds = {(a.kind, a.result) for a in led.attempts()}
            assert ("retry", "done") in kinds
        assert led.active_attempts() == []
    # the journal, appended through every kill, agrees with the ledger and rebuilds it
    assert main(["ledger", "check", str(lot_path)]) == 0
    rebuilt = lot_path.parent / "rebuilt.db"
    assert main(["ledger", "rebuild", str(lot_path), "--db", str(rebuilt)]) == 0
    with Ledger(rebuilt) as led:
        led.attach(name)
        assert [(r.state, r.mac) for r in led.rows(0, 100)] == [(r.state, r.mac) for r in rows]
    with open_lot(lot_path, db_url=str(rebuilt)) as lot:
        for r in lot.ledger.rows(0, 100):
            board = next(b for b in boards if b.mac == r.mac)
            with open_device(board.port, no_stub=True) as s:
                assert s.read(lot.factory.offset, lot.factory.size) == lot.image_for(
                    lot.row(r.index)
                ), f"board {r.mac} does not hold row {r.index}"


def test_sigkill_at_any_moment_loses_and_doubles_nothing(
    tmp_path: Path, boards: list[SimulatedDevice]
) -> None:
    lot_path = make_small_lot(tmp_path / "lot", 2 * BOARDS_PER_JIG, name="CRASH")
    jigs, swap = start_jigs(boards)
    try:
        for moment in MOMENTS:
            station_run(lot_path, jigs, moment, swap)
        run_to_completion(lot_path, jigs, swap)
    finally:
        for j in jigs:
            j.close()
    check_lot(lot_path, boards, mid_unit=True)


# Random kills: each run is killed once the two jigs have forwarded a random number of bytes
# (both ways). A unit on the 0x3000 partition is about UNIT_BYTES (connect and sync, reading the
# factory region, writing, verifying), so the draws cover every phase of the first two units on
# each jig (with the swaps between them). The seed is printed; STATION_CRASH_SEED=<n> replays the
# kill points (the moments they land in still depend on how the two jigs interleave).
UNIT_BYTES = 40_000
RANDOM_KILLS = 6


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, boards: list[SimulatedDevice]
) -> None:
    env_seed = os.environ.get("STATION_CRASH_SEED")
    seed = int(env_seed) if env_seed else random.SystemRandom().randrange(2**32)
    print(f"STATION_CRASH_SEED={seed}")
    rng = random.Random(seed)
    lot_path = make_small_lot(tmp_path / "lot", 2 * BOARDS_PER_JIG, name="RANDOM")
    jigs, swap = start_jigs(boards)
    killed = []
    try:
        for _ in range(RANDOM_KILLS):
            after = rng.randrange(1, 3 * UNIT_BYTES)
            code = station_run(lot_path, jigs, None, swap, kill_after=after)
            print(f"kill after {after} bytes: exit {code}")
            if code == -signal.SIGKILL:
                killed.append(after)
        run_to_completion(lot_path, jigs, swap)
        print(f"{sum(j.total for j in jigs)} bytes through the jigs in all, kills: {killed}")
    finally:
        for j in jigs:
            j.close()
    assert killed, f"no run was killed (seed {seed})"
    check_lot(lot_path, boards, mid_unit=False)
