"""The orchestrator: ledger + image generation + flashing for N ports.

Used alike by the window and by ``station run``. No Qt here: events are plain frozen
dataclasses delivered to a callback.
"""

from station.production.lot import Lot, LotSettings, open_lot, read_lot_file, write_lot_file
from station.production.orchestrator import (
    CountersUpdate,
    Decision,
    LogEvent,
    Orchestrator,
    PortRemoved,
    PortUpdate,
    RowUpdate,
)

__all__ = [
    "CountersUpdate",
    "Decision",
    "LogEvent",
    "Lot",
    "LotSettings",
    "Orchestrator",
    "PortRemoved",
    "PortUpdate",
    "RowUpdate",
    "open_lot",
    "read_lot_file",
    "write_lot_file",
]
