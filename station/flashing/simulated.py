"""Simulated devices: esp32-mock-bootloader processes, each with its own MAC.

Every instance of the mock reports the same MAC for a chip type, so each simulated device runs
in its own process started through this module (``python -m station.flashing.simulated``),
which replaces the mock's MAC before serving. Used by tests, ``station --demo`` and the
self-test; no Qt.
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType

READY_PREFIX = "STATION-SIM-READY "
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
        self._start(start_timeout)

    def _start(self, timeout: float) -> None:
        cmd = [
            sys.executable,
            "-m",
            "station.flashing.simulated",
            "--chip",
            self.chip,
            "--mac",
            self.mac,
            "--transport",
            self.transport,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        try:
            self.port = self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        # keep reading the mock's chatter so its pipe never fills and blocks it
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()

    def _wait_ready(self, timeout: float) -> str:
        """Wait for the launcher's ready line (printed once the mock listens)."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(
                        f"simulated device did not start within {timeout:.0f} s: "
                        + " | ".join(lines[-5:])
                    )
                if not sel.select(left):
                    continue
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(
                        "simulated device exited at start: " + " | ".join(lines[-5:])
                    )
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX) :].strip()
                lines.append(line.strip())

    def _drain_output(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        try:
            for _ in proc.stdout:
                pass
        except (OSError, ValueError):
            pass

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
        if proc.stdout is not None:
            proc.stdout.close()
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
) -> list[SimulatedDevice]:
    """Start ``n`` simulated devices (in parallel), each with its own MAC; all or none."""
    devices: list[SimulatedDevice | None] = [None] * n
    errors: list[BaseException] = []
    indexes = [
        (first_index + i) if first_index is not None else _next_index() for i in range(n)
    ]

    def start(i: int) -> None:
        try:
            devices[i] = SimulatedDevice(chip=chip, transport=transport, index=indexes[i])
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


# ---- the launcher, run in the child process ------------------------------------------------
def _serve(chip: str, mac: str, transport: str) -> None:
    from esp32_mock_bootloader import registers, server

    octets = tuple(int(x, 16) for x in mac.split(":"))
    if len(octets) != 6:
        raise SystemExit(f"bad --mac {mac!r}")
    registers.mac_bytes_for_chip = lambda _chip: octets  # type: ignore[assignment,return-value]
    registers.rom_profile.cache_clear()
    # no daemon registry files for our instances (the mock's own 'status' is not for us)
    server._make_on_detected = lambda _port: None  # type: ignore[attr-defined]

    if transport == "tcp":
        import socket

        # bind here so the ready line carries a port that already accepts connections
        real_socket = socket.socket

        class _Announcing(real_socket):  # type: ignore[misc,valid-type]
            def listen(self, *args: object) -> None:
                super().listen(*args)
                port = self.getsockname()[1]
                print(f"{READY_PREFIX}socket://127.0.0.1:{port}", flush=True)

        server.socket.socket = _Announcing  # type: ignore[attr-defined,misc]
        server.run_server(0, None, chip, "127.0.0.1", track_registry=False)
    else:
        transport_cls = server.PtyMasterTransport
        original = transport_cls.create

        def create(*args: object, **kwargs: object) -> object:
            t = original(*args, **kwargs)
            print(f"{READY_PREFIX}{t.client_path}", flush=True)
            return t

        transport_cls.create = create  # type: ignore[method-assign,assignment]
        server.run_pty_server(None, None, chip)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m station.flashing.simulated",
        description="one simulated ESP chip (esp32-mock-bootloader) with its own MAC",
    )
    parser.add_argument("--chip", default="esp32")
    parser.add_argument("--mac", required=True, help="aa:bb:cc:dd:ee:ff")
    parser.add_argument("--transport", choices=("tcp", "pty"), default="tcp")
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _serve(args.chip, args.mac, args.transport)
    except (KeyboardInterrupt, SystemExit):
        pass
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
