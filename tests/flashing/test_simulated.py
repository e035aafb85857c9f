"""Simulated chips never outlive the station that started them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from station.flashing import SimulatedDevice

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

PARENT = """
import sys
from station.flashing import start_simulated_devices
devices = start_simulated_devices(2)
print(" ".join(str(d.pid) for d in devices), flush=True)
sys.stdin.read()  # until the test kills this process
"""


def wait_exit(pid: int, timeout: float) -> bool:
    """True once ``pid`` has exited (a pidfd turns readable), False after ``timeout``."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds")
def test_simulated_chips_exit_when_the_station_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert parent.stdout is not None and parent.stdin is not None
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        assert not any(wait_exit(pid, 0) for pid in pids)  # running
        parent.send_signal(signal.SIGKILL)  # no clean-up of the station's own runs
        parent.wait(30)
        assert all(wait_exit(pid, 30) for pid in pids)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdin.close()
        parent.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM exit codes are POSIX")
def test_a_stopped_chip_exits_cleanly_instead_of_being_killed() -> None:
    """stop() terminates, and kills only after 5 s: a chip whose exit hangs (a thread blocked
    reading its stdin once held interpreter shutdown) costs every test 5 s and dies by SIGKILL."""
    dev = SimulatedDevice()
    dev.stop()
    assert dev.exit_code == 0
