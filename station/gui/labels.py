"""Label printing for the station window: a Qt signal over the Qt-free label service.

The service (:mod:`station.labels.service`) prints on its own thread and audits every print;
this adapter delivers each outcome to the GUI thread as :attr:`LabelPrinter.done` and registers
the Qt renderer for ``pdf:`` and ``printer:`` outputs.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from station.gui import label_render
from station.labels import (
    PRINTABLE_STATES,
    LabelJob,
    LabelOutcome,
    LabelService,
    lot_template,
    unit_fields,
    use_renderer,
)

__all__ = [
    "PRINTABLE_STATES",
    "LabelJob",
    "LabelOutcome",
    "LabelPrinter",
    "lot_template",
    "unit_fields",
]


def use_qt_renderer() -> None:
    """PDF files and system printers are drawn by Qt (station.gui.label_render)."""
    use_renderer(lambda: label_render)


class LabelPrinter(QObject):
    """Prints labels on one worker thread, in order; results come back as :attr:`done`."""

    done = Signal(object)  # LabelOutcome

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        use_qt_renderer()
        self.service = LabelService(on_done=self.done.emit)

    def set_template(self, lot: Any, template: Any | None) -> None:
        self.service.set_template(lot, template)

    def template(self, lot: Any) -> Any | None:
        return self.service.template(lot)

    def submit(self, job: LabelJob) -> None:
        self.service.submit(job)

    def stop(self, timeout: float = 10.0) -> None:
        self.service.stop(timeout)

    def print_now(self, job: LabelJob) -> LabelOutcome:
        return self.service.print_now(job)
