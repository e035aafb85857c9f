"""What a front end reads about the session's lot besides rows, failed units and counters: row
counts, single records, row 1's NVS image usage. Called on the session's worker thread.

May import: station.errors, station.nvs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from station.errors import StationError

if TYPE_CHECKING:
    from station.production.session import StationSession


@dataclass(frozen=True)
class LotImage:
    """Row 1's NVS image in the factory partition: bytes used, or why it cannot be built."""

    lot: Any
    used: int
    error: str = ""


class LotReads:
    def __init__(self, session: StationSession) -> None:
        self.session = session

    def count(self, state: str | None = None, search: str = "") -> int:
        lot = self.session.lot
        return lot.ledger.count(state, search) if lot is not None else 0

    def records(self, indexes: Sequence[int]) -> dict[int, Any]:
        """The ledger records of these rows (a repaint of the rows that changed)."""
        lot = self.session.lot
        return {i: lot.ledger.row(i) for i in indexes} if lot is not None else {}

    def row(self, row_index: int) -> Any | None:
        lot = self.session.lot
        return lot.ledger.row(row_index) if lot is not None else None

    def image_usage(self) -> LotImage:
        """How much of the factory partition row 1's NVS image fills (builds the image)."""
        from station.nvs.usage import nvs_bytes_used
        from station.production.session import first_message

        lot = self.session.lot
        if lot is None:
            return LotImage(None, 0, "no lot is open")
        try:
            image = lot.image_for(lot.row(0))
        except StationError as err:
            return LotImage(lot, 0, first_message(err))
        except Exception as err:  # a broken row must not kill the worker silently
            return LotImage(lot, 0, f"cannot build its image ({err})")
        return LotImage(lot, nvs_bytes_used(image))
