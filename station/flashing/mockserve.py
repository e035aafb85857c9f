"""Launcher for one simulated device: ``python -m station.flashing.mockserve --mac M``.

Replaces esp32-mock-bootloader's MAC (every instance of the mock reports the same one), then
runs the mock's server and prints one ready line with the endpoint pyserial opens.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence

READY_PREFIX = "STATION-SIM-READY "


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


def _exit_at_end_of_input() -> None:
    """The station holds this process's stdin open: end-of-file means the station is gone,
    even killed (no clean-up of its own ran), and a simulated chip must not outlive it."""
    # os.read on the descriptor, not sys.stdin: a thread blocked inside a buffered read holds
    # its lock, and closing sys.stdin at a normal exit would wait for it (5 s per chip stopped)
    try:
        while os.read(0, 1 << 12):
            pass
    except OSError:
        pass
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m station.flashing.mockserve",
        description="one simulated ESP chip (esp32-mock-bootloader) with its own MAC",
    )
    parser.add_argument("--chip", default="esp32")
    parser.add_argument("--mac", required=True, help="aa:bb:cc:dd:ee:ff")
    parser.add_argument("--transport", choices=("tcp", "pty"), default="tcp")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="exit when standard input reaches end-of-file (the parent holds it open)",
    )
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.exit_with_parent:
        threading.Thread(target=_exit_at_end_of_input, name="parent watch", daemon=True).start()
    try:
        _serve(args.chip, args.mac, args.transport)
    except (KeyboardInterrupt, SystemExit):
        pass
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
