"""Label fixtures: a Qt application for the renderers (skipped without PySide6), a decoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

Decoded = list[tuple[str, str]]


@pytest.fixture
def qt(qapp: object) -> Iterator[object]:
    """The renderers need a Gui application; tests that draw take this fixture. It registers
    the Qt renderer for pdf: and printer: outputs, as the window and the command line do."""
    pytest.importorskip("PySide6")
    from station.gui.labels import use_qt_renderer
    from station.labels import use_renderer

    use_qt_renderer()
    yield qapp
    use_renderer(None)


def decode_lum(data: bytes, width: int, height: int, stride: int) -> Decoded:
    """Barcodes found in an 8-bit grey image, as (format, text), sorted."""
    import zxingcpp

    view = zxingcpp.ImageView(data, width, height, zxingcpp.ImageFormat.Lum, stride, 1)
    return sorted((r.format.name, r.text) for r in zxingcpp.read_barcodes(view))


@pytest.fixture
def decode_png(qt: object) -> Callable[[bytes], Decoded]:
    """Read every barcode in a PNG (through Qt, so no imaging library is needed)."""
    from PySide6.QtGui import QImage

    def decode(png: bytes) -> Decoded:
        image = QImage.fromData(png, "PNG")
        assert not image.isNull()
        return decode_image(image)

    return decode


def decode_image(image: object) -> Decoded:
    from PySide6.QtGui import QImage

    assert isinstance(image, QImage)
    grey = image.convertToFormat(QImage.Format.Format_Grayscale8)
    data = bytes(grey.constBits())[: grey.bytesPerLine() * grey.height()]
    return decode_lum(data, grey.width(), grey.height(), grey.bytesPerLine())
