"""Where things go on a label, in printer dots; shared by the Qt renderer and ZPL. No Qt.

The QR code takes a square on the left, text lines fill the rest of the top, and the Code 128
barcode spans the bottom. Codes are laid out on whole dots per module so that every printer
(and every barcode reader) sees crisp, even modules; if a code cannot get at least one dot per
module at the template's size and resolution, that is an error the operator can fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import segno

from station.errors import StationError
from station.labels import code128
from station.labels.template import LabelContent, LabelTemplate

MARGIN_MM = 1.5
GAP_MM = 1.0
QR_QUIET = 2  # modules; the label margin adds to it
MIN_BAR_MM = 4.0


def mm_to_dots(mm: float, dpi: int) -> int:
    """Millimetres to whole printer dots at ``dpi``."""
    return round(mm * dpi / 25.4)


@dataclass(frozen=True)
class QrBox:
    """The QR code: top-left of the first module, dots per module, the module matrix."""

    x: int
    y: int
    module: int
    matrix: tuple[tuple[bool, ...], ...]

    @property
    def size(self) -> int:
        return self.module * len(self.matrix)


@dataclass(frozen=True)
class BarBox:
    """The Code 128 barcode: left of the first module, dots per module, height, modules."""

    x: int
    y: int
    module: int
    height: int
    modules: tuple[bool, ...]


@dataclass(frozen=True)
class TextBox:
    """The text area and one baseline slot per line."""

    x: int
    y: int
    width: int
    height: int
    line_height: int


@dataclass(frozen=True)
class Layout:
    """A filled label placed on its page, in dots at ``dpi``."""

    width: int
    height: int
    dpi: int
    lines: tuple[str, ...]
    text: TextBox | None
    qr: QrBox | None
    bars: BarBox | None
    qr_text: str | None = None
    bar_text: str | None = None


def layout(template: LabelTemplate, content: LabelContent) -> Layout:
    """Place ``content`` on the template's label; StationError if a code does not fit."""
    dpi = template.dpi
    width = mm_to_dots(template.width_mm, dpi)
    height = mm_to_dots(template.height_mm, dpi)
    margin = mm_to_dots(MARGIN_MM, dpi)
    gap = mm_to_dots(GAP_MM, dpi)
    top, bottom, left = margin, height - margin, margin

    bars = None
    if content.code128:
        row = code128.modules(content.code128)
        total = len(row) + 2 * code128.QUIET_ZONE
        module = (width - 2 * margin) // total
        if module < 1:
            need = total * 25.4 / dpi + 2 * MARGIN_MM
            raise StationError.at(
                template.file,
                f"the Code 128 barcode of {content.code128!r} needs a label at least "
                f"{need:.0f} mm wide at {dpi} dpi; make it wider or the text shorter",
                key="label.code128",
            )
        has_other = bool(content.lines or content.qr)
        bar_h = max(mm_to_dots(MIN_BAR_MM, dpi), (height - 2 * margin) * 3 // 10)
        if not has_other:
            bar_h = height - 2 * margin
        x = (width - len(row) * module) // 2
        bars = BarBox(x, bottom - bar_h, module, bar_h, tuple(row))
        bottom = bottom - bar_h - gap

    qr = None
    if content.qr:
        code = segno.make(content.qr, error="m", micro=False)
        matrix = tuple(tuple(bool(v) for v in r) for r in code.matrix)
        n = len(matrix) + 2 * QR_QUIET
        side = min(bottom - top, width - 2 * margin)
        module = side // n
        if module < 1:
            raise StationError.at(
                template.file,
                f"the QR code ({len(matrix)} modules) does not fit in the "
                f"{(bottom - top) * 25.4 / dpi:.1f} mm left for it; make the label taller, "
                "drop the barcode or shorten the QR text",
                key="label.qr",
            )
        pad = (side - module * len(matrix)) // 2
        qr = QrBox(left + pad, top + pad, module, matrix)
        left = left + side + gap

    text = None
    if content.lines:
        w, h = width - margin - left, bottom - top
        if w < mm_to_dots(5, dpi) or h < mm_to_dots(2, dpi):
            raise StationError.at(
                template.file,
                "no room left for the text lines; make the label larger or drop a code",
                key="label.lines",
            )
        text = TextBox(left, top, w, h, h // len(content.lines))
    return Layout(width, height, dpi, content.lines, text, qr, bars, content.qr, content.code128)
