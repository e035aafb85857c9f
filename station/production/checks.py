"""What the orchestrator checks on a connected device before and after writing it: the lot fits
its flash, its partition table agrees with the lot's, the data read back decodes with the
unit's keys, and which of the lot's regions it does not hold already.

Functions of a lot and a device session; imports flashing's light types, nvs and partitions.
A refusal is :class:`DeviceRefused` (the device is left untouched), a fault a ``FlashError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from station.flashing.types import FaultKind, FlashError, Session, WriteRegion
from station.nvs import decode_image
from station.partitions import compare_tables
from station.partitions.sizes import size_text
from station.production.events import DeviceRefused

if TYPE_CHECKING:
    from station.mfg import Row
    from station.production.lot import Lot


def check_fits(lot: Lot, mac: str, session: Session) -> None:
    """A device whose flash is too small for what the lot writes is left untouched."""
    size = session.info.flash_size
    if not size:
        return
    parts = [lot.factory, lot.key_partition]
    ends = [(p.end, p.name) for p in parts if p is not None]
    if lot.firmware is not None:
        ends += [(r.offset + len(r.data), r.name) for r in lot.firmware.regions]
    end, name = max(ends)
    if end > size:
        raise DeviceRefused(
            f"{mac}: {name} ends at 0x{end:x}, beyond the device's "
            f"{size_text(size)} flash — wrong device for this lot; it was left untouched"
        )


def check_table(lot: Lot, mac: str, session: Session) -> str | None:
    """A device whose partition table puts the factory partition elsewhere is refused: writing
    there would overwrite its firmware's data. A blank table is fine (a new board). Returns a
    warning for a table that differs in what the lot does not write (None: nothing to say)."""
    table = session.read_partition_table()
    if table is None:
        return None
    fw = lot.firmware
    if fw is not None and fw.writes_table:  # checked against the lot's when it was opened
        diffs = compare_tables(lot.table, table)
        if diffs:
            return (
                f"{mac}: partition table differs from the lot's "
                f"({'; '.join(diffs[:3])}); the lot's firmware replaces it"
            )
        return None
    f = lot.factory
    theirs = next((q for q in table.partitions if q.name == f.name), None)
    if theirs is None or (theirs.offset, theirs.size) != (f.offset, f.size):
        where = (
            "has no partition"
            if theirs is None
            else f"has it at 0x{theirs.offset:x} (0x{theirs.size:x} bytes)"
        )
        raise DeviceRefused(
            f"{mac}: its partition table {where} named {f.name!r}; the lot writes "
            f"0x{f.size:x} bytes at 0x{f.offset:x}. Check the lot's partition table "
            "against the firmware; the device was left untouched"
        )
    diffs = compare_tables(lot.table, table)
    if diffs:
        return f"{mac}: partition table differs from the lot's: {'; '.join(diffs[:3])}"
    return None


def check_decodes(lot: Lot, row: Row, image: bytes, port: str) -> None:
    """The factory data read back (equal to ``image``) must decode as NVS with the unit's keys —
    for an encrypted lot, proof that the device holds data its key opens."""
    decoded = decode_image(image, lot.keys_for(row))
    if decoded.errors:
        raise FlashError(
            f"the factory data read back does not decode with the lot's keys ({decoded.errors[0]})",
            phase="verifying",
            port=port,
        )


def differing(session: Session, regions: Sequence[WriteRegion]) -> list[WriteRegion]:
    """The regions the device does not hold already (all of them if one differs): decided on
    the fault's kind (a mismatch), never on its text; any other fault is raised."""
    if not regions:
        return []
    try:
        session.verify(regions)
    except FlashError as err:
        if err.kind is not FaultKind.MISMATCH:
            raise
        return list(regions)
    return []
