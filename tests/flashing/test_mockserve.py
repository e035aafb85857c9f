"""The simulated chip's stub read waits for the station's acks as the real stub does."""

from __future__ import annotations

import threading
import types

from esp32_mock_bootloader import protocol

from station.flashing import mockserve

ACK = bytes([protocol.SLIP_END]) + (0x1000).to_bytes(4, "little") + bytes([protocol.SLIP_END])


class _SlowStation:
    """A connection whose ack arrives after the mock's receive timeout ran out ``late`` times."""

    def __init__(self, late: int) -> None:
        self.late = late

    def recv(self, size: int) -> bytes:
        if self.late:
            self.late -= 1
            raise TimeoutError()
        return ACK


def _patched_server() -> types.SimpleNamespace:
    from esp32_mock_bootloader import server

    fake = types.SimpleNamespace(_consume_slip_frame=server._consume_slip_frame)
    mockserve._patient_stub_reads(fake)
    return fake


def test_an_ack_later_than_the_mocks_receive_timeout_still_arrives() -> None:
    server = _patched_server()
    got = server._recv_slip_payload(_SlowStation(late=5), threading.Event(), bytearray())
    assert got == (0x1000).to_bytes(4, "little")


def test_a_station_that_never_acks_ends_the_read_after_the_wait(monkeypatch) -> None:
    monkeypatch.setattr(mockserve, "ACK_WAIT", 0.0)
    server = _patched_server()
    assert server._recv_slip_payload(_SlowStation(late=1), threading.Event(), bytearray()) is None


def test_a_closed_connection_ends_the_read() -> None:
    server = _patched_server()

    class Closed:
        def recv(self, size: int) -> bytes:
            return b""

    assert server._recv_slip_payload(Closed(), threading.Event(), bytearray()) is None
