"""Production: an open lot (``lot``, ``lotfile``, ``ledgerlink``) and the orchestrator that
runs it on N ports (``orchestrator``, a facade over ``ports``, ``assignments``, ``planner`` and
``checks``; its events in ``events``), plus the ``station run``/``report``/``ledger``/``security``
commands.

Used alike by the window and by ``station run``. No Qt here: events are plain frozen
dataclasses delivered to a callback. May import every layer below it (ledger, flashing, mfg,
labels, matter, security, nvs, partitions, errors); never station.gui or station.cli.
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
