"""Unit labels: templates, QR / Code 128, rendering (PNG, PDF, printer) and ZPL.

This package needs no Qt: templates, layout, Code 128 and ZPL. The Qt renderers (``render_png``,
``render_pdf``, ``print_label``, ``render_image``) live in :mod:`station.gui.label_render`, the one
layer that imports PySide6, and are loaded from there when first used.
"""

from __future__ import annotations

from typing import Any

from station.labels.output import PrintRecord, output_label, parse_output
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

_QT_NAMES = (
    "print_label",
    "printer_names",
    "render_image",
    "render_pdf",
    "render_png",
)


def __getattr__(name: str) -> Any:
    if name in _QT_NAMES:
        from station.gui import label_render as render

        return getattr(render, name)
    raise AttributeError(name)


__all__ = [
    "DEVICE_FACTS",
    "MASK",
    "LabelContent",
    "LabelTemplate",
    "PrintRecord",
    "check_template",
    "fill",
    "label_fields",
    "output_label",
    "parse_output",
    "print_label",
    "printer_names",
    "render_image",
    "render_pdf",
    "render_png",
    "send_zpl",
    "template_from_dict",
    "template_to_dict",
    "to_zpl",
]
