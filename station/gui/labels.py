"""Label printing for the station window: the Qt renderer for ``pdf:`` and ``printer:``.

The station session's label service (:mod:`station.labels.service`) prints on its own thread
and audits every print; its outcomes reach the window as session events. This module registers
the renderer the service draws PDF files and system printers with.

May import: PySide6, station.labels, station.gui.label_render.
"""

from __future__ import annotations

from station.gui import label_render
from station.labels import (
    PRINTABLE_STATES,
    LabelJob,
    LabelOutcome,
    lot_template,
    unit_fields,
    use_renderer,
)

__all__ = [
    "PRINTABLE_STATES",
    "LabelJob",
    "LabelOutcome",
    "lot_template",
    "unit_fields",
]


def use_qt_renderer() -> None:
    """PDF files and system printers are drawn by Qt (station.gui.label_render)."""
    use_renderer(lambda: label_render)
