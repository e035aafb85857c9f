"""The station's SLIP reader against esptool's own, fed the same streams."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import esptool.loader as loader
import pytest

from station.flashing import slip

ESPTOOL = getattr(loader, "_station_esptool_slip_reader", loader.slip_reader)
PANIC = b"Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled."


class ChunkPort:
    """A serial port that hands out ``chunks`` one read at a time (None: a read times out)."""

    def __init__(self, chunks: list[bytes | None]) -> None:
        self.chunks: deque[bytes | None] = deque(chunks)

    def inWaiting(self) -> int:
        return len(self.chunks[0] or b"") if self.chunks else 0

    def read(self, size: int = 1) -> bytes:
        if size == 0 or not self.chunks:
            return b""
        chunk = self.chunks[0]
        if chunk is None or size >= len(chunk):
            self.chunks.popleft()
            return chunk or b""
        self.chunks[0] = chunk[size:]
        return chunk[:size]


Reader = Callable[[Any, Callable[[str], None]], Iterator[bytes]]


def run(reader: Reader, chunks: list[bytes | None]) -> tuple[list[bytes], str, list[str]]:
    """The packets a reader yields from ``chunks``, the error it ends with, its trace."""
    trace: list[str] = []
    packets: list[bytes] = []
    gen = reader(ChunkPort(chunks), trace.append)
    try:
        for packet in gen:
            packets.append(packet)
    except loader.FatalError as err:
        return packets, str(err), trace
    return packets, "", trace


def encode(packet: bytes) -> bytes:
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def chop(stream: bytes, rng: random.Random) -> list[bytes | None]:
    chunks: list[bytes | None] = []
    i = 0
    while i < len(stream):
        n = rng.choice([1, 2, 3, rng.randint(1, 64), rng.randint(1, 5000)])
        chunks.append(stream[i : i + n])
        i += n
    return chunks


def same(chunks: list[bytes | None]) -> tuple[list[bytes], str]:
    """Both readers on ``chunks``: the same packets, error and trace; returns them."""
    theirs = run(ESPTOOL, chunks)
    ours = run(slip.slip_reader, chunks)
    packets, error, trace = theirs
    if error == "Packet content transfer stopped ":
        # esptool's message was meant to say how much had come; it drops that part
        assert ours[1].startswith(error + "(received ") and ours[1].endswith(" bytes).")
        assert (ours[0], ours[2][:-1]) == (packets, trace[:-1])
    else:
        assert ours == theirs
    return packets, error


def test_packets_with_every_escape_split_at_every_byte() -> None:
    packets = [b"", b"\xc0", b"\xdb", b"\xdb\xdc\xc0\xdd", bytes(range(256)), b"\x01\x02"]
    stream = b"".join(encode(p) for p in packets)
    for cut in range(1, len(stream)):
        got, error = same([stream[:cut], stream[cut:]])
        assert got == packets
        assert error == "Serial data stream stopped: Possible serial noise or corruption."
    got, _ = same([bytes([b]) for b in stream])  # a byte per read
    assert got == packets


def test_a_4k_stub_read_packet_in_one_read() -> None:
    data = bytes(random.Random(1).randrange(256) for _ in range(4096))
    got, _ = same([encode(data)])
    assert got == [data]


@pytest.mark.parametrize(
    "stream",
    [
        b"",  # nothing at all
        b"\xab" + encode(b"ok"),  # a bad packet head
        encode(b"ok") + b"\x55",  # garbage after a packet
        encode(b"ok")[:-1] + b"\xdb\xfe" + b"\xc0",  # a bad escape
        encode(b"ok")[:3],  # a packet cut short
        b"\x01" + PANIC,  # the chip panicked
        b"\x01Fatal exception (28): LoadProhibited epc1=0x400d",
    ],
)
def test_errors_as_esptool_words_them(stream: bytes) -> None:
    _, error = same([stream[:2], stream[2:], None])
    assert error


def test_random_streams_read_the_same() -> None:
    rng = random.Random(20261204)
    specials = [0xC0, 0xDB, 0xDC, 0xDD]
    for _ in range(400):
        packets = [
            bytes(rng.choice([*specials, rng.randrange(256)]) for _ in range(rng.randint(0, 300)))
            for _ in range(rng.randint(0, 6))
        ]
        stream = b"".join(encode(p) for p in packets)
        fault = rng.randrange(5)
        if fault == 1 and stream:  # garbage between or inside packets
            at = rng.randrange(len(stream))
            stream = stream[:at] + bytes([rng.randrange(256)]) + stream[at:]
        elif fault == 2:  # a panic message after the packets
            stream += b"\x00" + PANIC
        elif fault == 3 and stream:  # the link dropped mid-stream
            stream = stream[: rng.randrange(len(stream))]
        chunks = chop(stream, rng)
        if rng.random() < 0.3 and chunks:
            chunks.insert(rng.randrange(len(chunks)), None)  # a read that timed out
        same(chunks)


def test_install_puts_it_in_esptool() -> None:
    slip.install()
    assert loader.slip_reader is slip.slip_reader
