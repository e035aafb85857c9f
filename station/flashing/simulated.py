"""Simulated devices: esp32-mock-bootloader processes, each with its own MAC.

Every instance of the mock reports the same MAC for a chip type, so each simulated device runs
in its own process started through :mod:`station.flashing.mockserve`,
which replaces the mock's MAC before serving. Used by tests, ``station --demo`` and the
self-test; no Qt.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from types import TracebackType

READY_PREFIX = "STATION-SIM-READY "  # printed by station.flashing.mockserve once serving
MAC_PREFIX = (0x24, 0x0A, 0xC4)
_counter_lock = threading.Lock()
_counter = 0


def mac_for_index(index: int) -> str:
    """A distinct, stable MAC for simulated device number ``index`` (per process id too)."""
    tail = ((os.getpid() & 0xFF) << 16) | (index & 0xFFFF)
    octets = (*MAC_PREFIX, (tail >> 16) & 0xFF, (tail >> 8) & 0xFF, tail & 0xFF)
    return ":".join(f"{b:02x}" for b in octets)


def _next_index() -> int:
    global _counter
    with _counter_lock:
        _counter += 1
        return _counter


class SimulatedDevice:
    """One simulated chip in its own process. ``port`` is what pyserial opens
    ("socket://127.0.0.1:N" or a PTY path). A context manager; :meth:`stop` is idempotent."""

    def __init__(
        self,
        *,
        chip: str = "esp32",
        transport: str = "tcp",
        mac: str | None = None,
        index: int | None = None,
        start_timeout: float = 20.0,
        nice: int = 0,
        efuse_file: str | None = None,
    ) -> None:
        if transport not in ("tcp", "pty"):
            raise ValueError(f"transport must be 'tcp' or 'pty', not {transport!r}")
        if transport == "pty" and sys.platform == "win32":
            raise ValueError("PTY simulated devices need Linux or macOS")
        self.chip = chip
        self.transport = transport
        self.mac = mac or mac_for_index(index if index is not None else _next_index())
        self.port = ""
        self._proc: subprocess.Popen[str] | None = None
        self._drain: threading.Thread | None = None
        self._ready = threading.Event()
        self._endpoint = ""
        self._lines: list[str] = []
        # > 0: a lower CPU priority. A simulated chip stands in for hardware with its own CPU;
        # at the station's priority it competes with the window for the station's cores.
        self.nice = nice
        self.exit_code: int | None = None  # once stopped: 0 when it exited cleanly on SIGTERM
        # espefuse's virtual eFuses for this chip (station.security burns them over the port)
        self.efuse_file = efuse_file
        self._start(start_timeout)

    def _start(self, timeout: float) -> None:
        cmd = [
            sys.executable,
            "-m",
            "station.flashing.mockserve",
            "--chip",
            self.chip,
            "--mac",
            self.mac,
            "--transport",
            self.transport,
            "--exit-with-parent",
        ]
        if self.efuse_file:
            cmd += ["--efuse-file", self.efuse_file]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,  # held open: the chip exits when the station is gone
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            creationflags=getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0) if self.nice else 0,
        )
        if self.nice > 0 and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, self._proc.pid, self.nice)
            except OSError:
                pass  # the chip runs anyway, at the station's priority
        self._drain = threading.Thread(target=self._read_output, daemon=True)
        self._drain.start()
        try:
            self.port = self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> str:
        """Wait for the launcher's ready line (printed once the mock listens)."""
        if not self._ready.wait(timeout):
            raise RuntimeError(
                f"simulated device did not start within {timeout:.0f} s: "
                + " | ".join(self._lines[-5:])
            )
        if not self._endpoint:
            raise RuntimeError("simulated device exited at start: " + " | ".join(self._lines[-5:]))
        return self._endpoint

    def _read_output(self) -> None:
        """Reads the child's output: the ready line, then everything (so its pipe never
        fills)."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        try:
            for line in proc.stdout:
                if not self._endpoint and line.startswith(READY_PREFIX):
                    self._endpoint = line[len(READY_PREFIX) :].strip()
                    self._ready.set()
                elif len(self._lines) < 50:
                    self._lines.append(line.strip())
        except (OSError, ValueError):
            pass
        finally:
            self._ready.set()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process (terminate, then kill) and wait for it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self.exit_code = proc.returncode
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        if self._drain is not None:
            self._drain.join(timeout)
        self._proc = None

    def __enter__(self) -> SimulatedDevice:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SimulatedDevice({self.chip}, {self.mac}, {self.port or 'stopped'})"


def start_simulated_devices(
    n: int,
    *,
    chip: str = "esp32",
    transport: str = "tcp",
    first_index: int | None = None,
    nice: int = 0,
) -> list[SimulatedDevice]:
    """Start ``n`` simulated devices (in parallel), each with its own MAC; all or none
    (``nice``: see :class:`SimulatedDevice`)."""
    devices: list[SimulatedDevice | None] = [None] * n
    errors: list[BaseException] = []
    indexes = [(first_index + i) if first_index is not None else _next_index() for i in range(n)]

    def start(i: int) -> None:
        try:
            devices[i] = SimulatedDevice(
                chip=chip, transport=transport, index=indexes[i], nice=nice
            )
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [d for d in devices if d is not None]
    if errors or len(started) != n:
        for d in started:
            d.stop()
        raise errors[0] if errors else RuntimeError("simulated devices did not start")
    return started
