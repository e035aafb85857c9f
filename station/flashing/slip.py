"""esptool's SLIP packet reader, in slices instead of byte by byte.

esptool's ``slip_reader`` looks at every byte it receives in Python and grows each packet with
``bytes +=`` (a copy per byte): a 4 KB packet of a stub read costs ~8 MB of copying, and the
reader was the largest part of the device host's CPU at 32 ports (a 24 KB read-back per unit).
This one finds the SLIP bytes (``C0``, ``DB``) with ``bytes.find`` and copies the runs between
them. It is a drop-in: the same packets, the same trace calls, the same errors with the same
words (``tests/flashing/test_slip.py`` feeds both the same streams). :func:`install` puts it
in place of esptool's.

May import: esptool."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD

_PANIC = re.compile(
    rb"(?:G?uru Meditation Error: (?:Core \d panic'ed \(([a-zA-Z ]*)\))?"
    rb"|F?atal exception \(\d+\): (?:([a-zA-Z ]*)?.*epc)?)",
    re.DOTALL,
)


def slip_reader(port: Any, trace_function: Callable[[str], None]) -> Iterator[bytes]:
    """Yield each SLIP packet read from ``port``; raise esptool's FatalError as esptool does
    (no data, a packet cut short, a bad packet head or escape, a panic message)."""
    import esptool.loader as loader  # its HexFormatter as it is now: the station's quiet one
    from esptool.loader import FatalError

    partial: bytearray | None = None
    in_escape = False
    successful_slip = False
    while True:
        waiting = port.inWaiting()
        data = port.read(1 if waiting == 0 else waiting)
        if data == b"":
            if partial is None:  # fail due to no data
                msg = (
                    "Serial data stream stopped: Possible serial noise or corruption."
                    if successful_slip
                    else "No serial data received."
                )
            else:  # fail during packet transfer (esptool meant to say how much came, and
                # drops that part of its message: a string on a line of its own)
                msg = f"Packet content transfer stopped (received {len(partial)} bytes)."
            trace_function(msg)
            raise FatalError(msg)
        trace_function(f"{f'Read {len(data)} bytes:':<21} {loader.HexFormatter(data)}")
        i, n = 0, len(data)
        next_end = next_esc = -1  # where the next C0 and DB are, from i (n: none left)
        while i < n:
            if partial is None:  # waiting for a packet's head
                if data[i] != END:
                    _invalid(port, data, trace_function)
                    raise FatalError(
                        f"Invalid head of packet (0x{data[i]:02X}): "
                        "Possible serial noise or corruption."
                    )
                partial = bytearray()
                i += 1
                continue
            if in_escape:  # the byte after DB
                in_escape = False
                if data[i] == ESC_END:
                    partial.append(END)
                elif data[i] == ESC_ESC:
                    partial.append(ESC)
                else:
                    _invalid(port, data, trace_function)
                    raise FatalError(f"Invalid SLIP escape (0xdb, 0x{data[i]:02X}).")
                i += 1
                continue
            if next_end < i:
                next_end = data.find(b"\xc0", i)
                next_end = n if next_end < 0 else next_end
            if next_esc < i:
                next_esc = data.find(b"\xdb", i)
                next_esc = n if next_esc < 0 else next_esc
            j = min(next_end, next_esc)
            partial += data[i:j]
            if j == n:
                break
            i = j + 1
            if j == next_esc:
                in_escape = True
                continue
            packet = bytes(partial)
            trace_function(f"Received full packet: {loader.HexFormatter(packet)}")
            yield packet
            partial = None
            successful_slip = True


def _hex(data: bytes) -> Any:
    """esptool's HexFormatter as it is now (the station replaces it with a quiet one)."""
    import esptool.loader as loader

    return loader.HexFormatter(data)


def _invalid(port: Any, data: bytes, trace_function: Callable[[str], None]) -> None:
    """esptool's steps on invalid data: trace it, drain the port, look for a panic message
    (raising esptool's error for it)."""
    from esptool.loader import FatalError

    trace_function(f"Read invalid data: {_hex(data)}")
    remaining = port.read(port.inWaiting())
    trace_function(f"Remaining data in serial buffer: {_hex(remaining)}")
    found = _PANIC.search(data + remaining)
    if found is not None:
        causes = [f"({g.decode('utf-8')})" for g in found.groups() if g is not None]
        cause = f" {causes[0]}" if causes else ""
        raise FatalError(f"Guru Meditation Error detected{cause}.")


def install() -> None:
    """Use this reader in esptool (its loaders build their reader from the module's name)."""
    import esptool.loader as loader

    if loader.slip_reader is not slip_reader:
        loader._station_esptool_slip_reader = loader.slip_reader  # the tests compare the two
        loader.slip_reader = slip_reader
