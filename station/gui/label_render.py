"""Draw labels with Qt: PNG (preview), PDF, and printing through QtPrintSupport.

Works offscreen (no display needed). Everything is painted in printer dots at the template's
resolution, so the preview, the PDF and the printed label are the same picture. Bars and QR
modules are painted without antialiasing so their edges stay on whole dots.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QCoreApplication,
    QIODevice,
    QMarginsF,
    QRect,
    QSizeF,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QImage,
    QPageSize,
    QPainter,
    QPdfWriter,
)
from PySide6.QtPrintSupport import QPrinter, QPrinterInfo

from station.errors import StationError
from station.gui import _pyside_none
from station.labels.layout import Layout, layout
from station.labels.output import OnPrinted, PrintRecord
from station.labels.template import LabelTemplate, fill

FONT_FAMILY = "DejaVu Sans"

# PySide6 6.12.0 on Python < 3.12 drops a reference to None per void call (see _pyside_none);
# each label makes hundreds of such calls, so without this the station aborts after a few labels.
_pyside_none.protect()


_APP: list[QGuiApplication] = []  # the application we made, if the caller had none


def ensure_application() -> None:
    """Make the Gui application the renderers need, unless there is one: call it on the main
    thread before rendering from a worker (the command line does)."""
    _ensure_app()


def _ensure_app() -> None:
    # QFont and text painting need a Gui application object; the GUI already has one.
    if QCoreApplication.instance() is None:
        _APP.append(QGuiApplication([]))


def _layout(template: LabelTemplate, fields: Mapping[str, str]) -> Layout:
    return layout(template, fill(template, fields))


def _fit_font(lay: Layout, template: LabelTemplate) -> QFont:
    box = lay.text
    assert box is not None
    font = QFont(FONT_FAMILY)
    size = max(1, int(box.line_height * 0.78))
    if template.font_size:
        size = min(size, max(1, round(template.font_size * lay.dpi / 72)))
    font.setPixelSize(size)
    widest = max(QFontMetrics(font).horizontalAdvance(t) for t in lay.lines) or 1
    if widest > box.width:
        font.setPixelSize(max(1, int(size * box.width / widest)))
    return font


def paint(painter: QPainter, template: LabelTemplate, lay: Layout) -> None:
    """Paint a laid-out label with ``painter`` (whose device is in dots at ``lay.dpi``)."""
    painter.fillRect(QRect(0, 0, lay.width, lay.height), QColor("white"))
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    black = QColor("black")
    if lay.qr is not None:
        q = lay.qr
        for r, row in enumerate(q.matrix):
            c = 0
            while c < len(row):  # one rectangle per run of dark modules
                if not row[c]:
                    c += 1
                    continue
                start = c
                while c < len(row) and row[c]:
                    c += 1
                painter.fillRect(
                    QRect(
                        q.x + start * q.module, q.y + r * q.module, (c - start) * q.module, q.module
                    ),
                    black,
                )
    if lay.bars is not None:
        b = lay.bars
        i = 0
        while i < len(b.modules):
            if not b.modules[i]:
                i += 1
                continue
            start = i
            while i < len(b.modules) and b.modules[i]:
                i += 1
            painter.fillRect(
                QRect(b.x + start * b.module, b.y, (i - start) * b.module, b.height), black
            )
    if lay.text is not None and lay.lines:
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        font = _fit_font(lay, template)
        painter.setFont(font)
        painter.setPen(black)
        t = lay.text
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        for n, line in enumerate(lay.lines):
            rect = QRect(t.x, t.y + n * t.line_height, t.width, t.line_height)
            painter.drawText(rect, int(flags), line)


def render_image(template: LabelTemplate, fields: Mapping[str, str]) -> QImage:
    """The label as a white QImage at the template's resolution (for the GUI preview)."""
    _ensure_app()
    lay = _layout(template, fields)
    image = QImage(lay.width, lay.height, QImage.Format.Format_RGB32)
    dots_per_metre = round(lay.dpi / 0.0254)
    image.setDotsPerMeterX(dots_per_metre)
    image.setDotsPerMeterY(dots_per_metre)
    painter = QPainter(image)
    try:
        paint(painter, template, lay)
    finally:
        painter.end()
    return image


def render_png(template: LabelTemplate, fields: Mapping[str, str]) -> bytes:
    """The label as PNG bytes; StationError if the template cannot be filled or does not fit."""
    image = render_image(template, fields)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    # PySide6 takes the format as str at run time; its stubs say bytes
    if not image.save(buffer, "PNG"):  # type: ignore[call-overload]
        raise RuntimeError("Qt could not encode the label as PNG")
    buffer.close()
    return bytes(data.data())


def _paint_scaled(
    painter: QPainter, device: QPdfWriter | QPrinter, template: LabelTemplate, lay: Layout
) -> None:
    # A printer may not take the resolution we asked for; draw in our dots, scaled to its dots.
    sx, sy = device.logicalDpiX() / template.dpi, device.logicalDpiY() / template.dpi
    if (sx, sy) != (1.0, 1.0):
        painter.scale(sx, sy)
    paint(painter, template, lay)


def _setup_page(device: QPdfWriter | QPrinter, template: LabelTemplate) -> None:
    device.setResolution(template.dpi)
    size = QPageSize(
        QSizeF(template.width_mm, template.height_mm),
        QPageSize.Unit.Millimeter,
        "label",
        QPageSize.SizeMatchPolicy.ExactMatch,
    )
    device.setPageSize(size)
    device.setPageMargins(QMarginsF(0, 0, 0, 0))


def render_pdf(
    template: LabelTemplate, fields: Mapping[str, str], path: str | os.PathLike[str]
) -> None:
    """Write the label as a one-page PDF of the label's size (vector bars, text as text).

    The file appears only when complete (written beside it, then renamed).
    """
    _ensure_app()
    lay = _layout(template, fields)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".label-", suffix=".pdf", dir=target.parent or ".")
    os.close(fd)
    try:
        writer = QPdfWriter(tmp)
        writer.setCreator("station")
        _setup_page(writer, template)
        painter = QPainter(writer)
        try:
            _paint_scaled(painter, writer, template, lay)
        finally:
            painter.end()
        del writer
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def printer_names() -> list[str]:
    """Names of the system's printers (for the GUI's settings)."""
    return list(QPrinterInfo.availablePrinterNames())


def print_label(
    template: LabelTemplate,
    fields: Mapping[str, str],
    printer: str | None = None,
    *,
    copies: int = 1,
    output_file: str | os.PathLike[str] | None = None,
    on_printed: OnPrinted | None = None,
) -> PrintRecord:
    """Print the label on a system printer (``printer`` name, None for the default).

    With ``output_file`` Qt's PDF printer writes the page to that file instead (tests, and
    stations that archive labels). ``on_printed`` receives the record once the job was handed
    to the printer; StationError (exit code 1) if there is no such printer.
    """
    _ensure_app()
    lay = _layout(template, fields)
    qprinter = QPrinter(QPrinter.PrinterMode.HighResolution)
    if output_file is not None:
        qprinter.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
        qprinter.setOutputFileName(os.fspath(output_file))
        kind, target = "pdf", os.fspath(output_file)
    else:
        names = printer_names()
        name = printer if printer is not None else QPrinterInfo.defaultPrinterName()
        if not name or name not in names:
            known = ", ".join(names) or "none"
            what = f"printer {name!r} is not installed" if name else "there is no default printer"
            raise StationError.at(
                "label", f"{what}; printers here: {known}", key="printer", exit_code=1
            )
        qprinter.setPrinterName(name)
        kind, target = "printer", name
    qprinter.setFullPage(True)
    qprinter.setCopyCount(max(1, copies))
    qprinter.setDocName(f"label {fields.get('unit_id', '')}".strip())
    _setup_page(qprinter, template)
    painter = QPainter()
    if not painter.begin(qprinter):
        raise StationError.at(
            "label", f"could not start a print job on {target}", key="printer", exit_code=1
        )
    try:
        _paint_scaled(painter, qprinter, template, lay)
    finally:
        painter.end()
    record = PrintRecord(fields.get("unit_id", ""), kind, target, max(1, copies), time.time())
    if on_printed is not None:
        on_printed(record)
    return record
