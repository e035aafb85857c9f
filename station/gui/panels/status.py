"""The status bar (counters, rate, lot, mode) and the 4 Hz repaint: the cards from the bridge's
folded state, the rows and counters from what the session's worker read.

May import: PySide6."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtWidgets import QLabel


def build_status(window: Any) -> None:
    sb = window.statusBar()
    window.status_counts = QLabel("no lot")
    window.status_rate = QLabel("")
    window.status_lot = QLabel("")
    window.status_mode = QLabel("")
    for w in (window.status_counts, window.status_rate, window.status_lot, window.status_mode):
        w.setContentsMargins(8, 0, 8, 0)
        sb.addPermanentWidget(w)


class Repaint:
    """What the window's timer does four times a second (never per progress event)."""

    def __init__(self, window: Any) -> None:
        self.window = window
        self.counters: Any | None = None  # the last counters shown (None: ask the session)
        self._counting = False
        self._filtered_dirty = False
        self._filtered_at = 0.0

    def tick(self) -> None:
        w = self.window
        session = w.session
        snap = w.bridge.take()
        w.cards_scroll.show_views(snap.ports, time.monotonic())
        if snap.rows and session.lot is not None:
            w.link.later(session.reads.records, list(snap.rows), then=self.rows_read)
        if self._filtered_dirty and time.monotonic() - self._filtered_at >= 1.0:
            # a filter is on: membership may have changed; recount at most once a second
            self._filtered_dirty = False
            self._filtered_at = time.monotonic()
            w.row_model.refresh()
        if snap.counters is not None:
            self.show_counters(snap.counters)
        elif session.lot is not None and self.counters is None and not self._counting:
            self._counting = True  # asked; the answer comes with a later tick
            w.link.later(session.counters, then=self.show_counters)

    def rows_read(self, records: dict[int, Any]) -> None:
        """Rows that changed, as the session's worker read them: repaint those on screen."""
        w = self.window
        if not records or w.session.lot is None:
            return
        if not w.row_model.update_rows(list(records), records.__getitem__):
            self._filtered_dirty = True
        failed = w.failed_page.indexes
        if any(r is not None and (r.state == "failed" or i in failed) for i, r in records.items()):
            w.link.later(w.session.failed, then=self.show_failed)

    def show_counters(self, counters: Any) -> None:
        self._counting = False
        if counters is None:
            return
        self.counters = counters
        w = self.window
        w.status_counts.setText(
            f"Done {counters.done}   Failed {counters.failed}   Remaining {counters.remaining}"
        )
        w.status_rate.setText(f"{counters.units_per_hour:.0f} units/h")

    def refresh_failed(self) -> None:
        """The failed list now (waits for the session's worker)."""
        self.show_failed(self.window.link.call(self.window.session.failed))

    def show_failed(self, failed: list[Any]) -> None:
        w = self.window
        w.failed_page.set_rows(failed)
        w.tabs.setTabText(w.failed_tab, f"&Failed ({len(failed)})" if failed else "&Failed")
