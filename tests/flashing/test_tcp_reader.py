"""The buffered reader on socket:// links: pyserial's read contract, one recv per reply."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import serial

from station.flashing.device import _Guard


@pytest.fixture
def link() -> Iterator[tuple[serial.SerialBase, socket.socket]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = serial.serial_for_url(f"socket://127.0.0.1:{srv.getsockname()[1]}", timeout=2)
    peer, _ = srv.accept()
    _Guard(port)
    try:
        yield port, peer
    finally:
        port.close()
        peer.close()
        srv.close()


def test_one_recv_serves_the_following_reads(link) -> None:
    port, peer = link
    peer.sendall(b"\xc0abcdef\xc0")
    assert port.read(1) == b"\xc0"
    # the rest arrived with the first recv(): all of it is waiting (pyserial says 1 at most)
    assert port.inWaiting() == 7
    assert port.read(7) == b"abcdef\xc0"
    assert port.inWaiting() == 0


def test_read_waits_for_all_bytes_asked_for(link) -> None:
    port, peer = link
    peer.sendall(b"abc")
    assert port.read(1) == b"a"
    peer.sendall(b"def")
    assert port.read(5) == b"bcdef"  # gathered over two recv() calls, as pyserial would


def test_reset_input_buffer_drops_what_was_buffered(link) -> None:
    port, peer = link
    peer.sendall(b"stale reply")
    assert port.read(1) == b"s"
    port.reset_input_buffer()
    peer.sendall(b"new")
    assert port.read(3) == b"new"


def test_a_closed_peer_is_a_serial_error(link) -> None:
    port, peer = link
    peer.close()
    with pytest.raises(serial.SerialException, match="socket disconnected"):
        port.read(1)
