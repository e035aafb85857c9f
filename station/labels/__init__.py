"""Unit labels: templates, QR / Code 128, rendering (PNG, PDF, printer) and ZPL.

This package needs no Qt: templates, layout, Code 128, ZPL and the label service (one printer
thread, every print audited). The Qt renderers (``render_png``, ``render_pdf``, ``print_label``,
``render_image``) live in :mod:`station.gui.label_render`, the one layer that imports PySide6; a
front end registers them with :func:`use_renderer` for ``pdf:`` and ``printer:`` outputs.
"""

from __future__ import annotations

from station.labels.output import (
    PrintRecord,
    Renderer,
    output_label,
    parse_output,
    renderer,
    use_renderer,
)
from station.labels.service import (
    PRINTABLE_STATES,
    LabelJob,
    LabelOutcome,
    LabelService,
    lot_template,
    unit_fields,
)
from station.labels.template import (
    DEVICE_FACTS,
    MASK,
    LabelContent,
    LabelTemplate,
    check_template,
    fill,
    label_fields,
    template_from_dict,
    template_to_dict,
)
from station.labels.zpl import send_zpl, to_zpl

__all__ = [
    "DEVICE_FACTS",
    "MASK",
    "PRINTABLE_STATES",
    "LabelContent",
    "LabelJob",
    "LabelOutcome",
    "LabelService",
    "LabelTemplate",
    "PrintRecord",
    "Renderer",
    "check_template",
    "fill",
    "label_fields",
    "lot_template",
    "output_label",
    "parse_output",
    "renderer",
    "send_zpl",
    "template_from_dict",
    "template_to_dict",
    "to_zpl",
    "unit_fields",
    "use_renderer",
]
