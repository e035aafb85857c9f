"""Launcher for one simulated device: ``python -m station.flashing.mockserve --mac M``.

Replaces esp32-mock-bootloader's MAC (every instance of the mock reports the same one), then
runs the mock's server and prints one ready line with the endpoint pyserial opens.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

READY_PREFIX = "STATION-SIM-READY "
# How long a stub read waits for the station's ack of a packet, as esptool waits for a reply
ACK_WAIT = 3.0


def _pair_efuses(chip: str, efuse_file: str) -> None:
    """Answer the eFuse controller's registers from espefuse's virtual eFuse controller, kept
    in ``efuse_file``: espefuse (or the station) burning over this connection burns that file,
    and ``espefuse --virt --path-efuse-file F`` reads the result. Registers the mock answers
    itself (MAC, crystal) keep the mock's values."""
    import struct

    from esp32_mock_bootloader import protocol, registers, server
    from espefuse import SUPPORTED_CHIPS

    emulator = SUPPORTED_CHIPS[chip].efuse_lib.EmulateEfuseController(efuse_file)
    base = int(emulator.REGS.DR_REG_EFUSE_BASE)
    end = base + int(emulator.REGS.EFUSE_MEM_SIZE)
    own = registers.rom_profile(chip)  # the mock's MAC/crystal words win
    for addr, value in own.items():  # and the eFuse file carries the same MAC
        if base <= addr < end - 3 and emulator.read_reg(addr) == 0:
            emulator.write_reg(addr, value)
    read_reg, write_reg = server.handle_read_reg, server.handle_write_reg

    def efuse_addr(data: bytes) -> int | None:
        if len(data) < 4:
            return None
        addr = int(struct.unpack("<I", data[:4])[0])
        return addr if base <= addr < end - 3 and addr not in own else None

    def handle_read_reg(data: bytes, session: object) -> bytes:
        addr = efuse_addr(data)
        if addr is None:
            return read_reg(data, session)
        value = emulator.read_reg(addr)
        return server.make_response(
            protocol.CMD_READ_REG,
            value=value,
            stub=session.stub_active,  # type: ignore[attr-defined]
        )

    def handle_write_reg(data: bytes, session: object) -> bytes:
        addr = efuse_addr(data)
        if addr is None or len(data) < 16:
            return write_reg(data, session)
        _addr, value, mask, _delay = struct.unpack_from("<IIII", data, 0)
        old = emulator.read_reg(addr)
        emulator.write_reg(addr, (old & ~mask) | (value & mask))
        return server.make_response(protocol.CMD_WRITE_REG, stub=session.stub_active)  # type: ignore[attr-defined]

    server.handle_read_reg = handle_read_reg  # type: ignore[assignment]
    server.handle_write_reg = handle_write_reg  # type: ignore[assignment]
    if chip == "esp32s2":
        _s2_security_info(server, protocol)


def _s2_security_info(server: Any, protocol: Any) -> None:
    """The ESP32-S2 ROM answers GET_SECURITY_INFO with 12 bytes (no chip id; esptool then
    detects the chip by its magic register): the mock refuses the command for magic-detected
    chips, and espefuse needs it (to see secure download mode) before it reads an S2's eFuses."""
    import struct

    original = server.handle_get_security_info

    def handle_get_security_info(session: Any) -> bytes:
        if server._active_chip(session) != "esp32s2":
            return original(session)  # type: ignore[no-any-return]
        payload = struct.pack("<IBBBBBBBB", 0, *([0] * 8)) + b"\x00\x00"
        header = struct.pack("<BBHI", 0x01, protocol.CMD_GET_SECURITY_INFO, len(payload), 0)
        return server.slip_encode(header + payload)  # type: ignore[no-any-return]

    server.handle_get_security_info = handle_get_security_info


def _patient_stub_reads(server: Any) -> None:
    """Make the stub's READ_FLASH wait for the station's acks, as the real stub does.

    The mock waits for each ack only as long as its receive timeout (50 ms), then drops the
    read without sending the digest: under load (32 chips sharing a core) the station then
    waited 3 s for a digest that never came and read again through the ROM loader."""

    def receive(conn: Any, stop_event: threading.Event, buf: bytearray) -> bytes | None:
        deadline = time.monotonic() + ACK_WAIT
        while not stop_event.is_set():
            payload = server._consume_slip_frame(buf)
            if payload is not None:
                return payload  # type: ignore[no-any-return]
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                if time.monotonic() < deadline:
                    continue
                return None
            except OSError:
                return None
            if not chunk:
                return None
            buf.extend(chunk)
        return None

    server._recv_slip_payload = receive


def _serve(chip: str, mac: str, transport: str, efuse_file: str | None = None) -> None:
    from esp32_mock_bootloader import registers, server

    _patient_stub_reads(server)

    octets = tuple(int(x, 16) for x in mac.split(":"))
    if len(octets) != 6:
        raise SystemExit(f"bad --mac {mac!r}")
    registers.mac_bytes_for_chip = lambda _chip: octets  # type: ignore[assignment,return-value]
    registers.rom_profile.cache_clear()
    if efuse_file:
        _pair_efuses(chip, efuse_file)
    # no daemon registry files for our instances (the mock's own 'status' is not for us)
    server._make_on_detected = lambda _port: None  # type: ignore[attr-defined]

    if transport == "tcp":
        import socket

        # A TCP session ends when the station hangs up. The mock also ends any session 3 s
        # after FLASH_END, which esptool sends after every stub write (reboot=False: the
        # stub keeps running), so a read-back that came later (32 ports on a busy core)
        # lost its connection.
        server._FLASH_END_IDLE_SEC = float("inf")  # type: ignore[attr-defined]

        # bind here so the ready line carries a port that already accepts connections
        real_socket = socket.socket

        class _Announcing(real_socket):  # type: ignore[misc,valid-type]
            def listen(self, *args: object) -> None:
                super().listen(*args)
                port = self.getsockname()[1]
                print(f"{READY_PREFIX}socket://127.0.0.1:{port}", flush=True)

            def accept(self) -> tuple[socket.socket, Any]:
                # like a UART, send each reply at once: with Nagle, a stub read's closing
                # MD5 waited for the station's delayed ACK (~40 ms per read)
                conn, addr = super().accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return conn, addr

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
    parser.add_argument(
        "--efuse-file",
        metavar="F",
        help="pair the chip with espefuse's virtual eFuses kept in F (one file per device)",
    )
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.exit_with_parent:
        threading.Thread(target=_exit_at_end_of_input, name="parent watch", daemon=True).start()
    try:
        _serve(args.chip, args.mac, args.transport, args.efuse_file)
    except (KeyboardInterrupt, SystemExit):
        pass
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
