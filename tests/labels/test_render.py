"""Rendered labels (PNG, PDF, Qt's PDF printer) read back: barcodes decoded, text extracted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from station.errors import StationError
from station.gui.label_render import print_label, render_image, render_pdf, render_png
from station.homekit import setup_payload
from station.labels import (
    LabelTemplate,
    PrintRecord,
    label_fields,
    output_label,
    template_from_dict,
)
from tests.labels.conftest import Decoded, decode_image

PAYLOAD = setup_payload("518-08-582", "7OSX", 7, ip=True, wac=True)
HOMEKIT = {
    "width_mm": 50,
    "height_mm": 25,
    "lines": ["SN {serial_no}", "MAC {mac}", "{chip}", "Code {setup_code}"],
    "qr": "{homekit_payload}",
    "code128": "{serial_no}",
    "show_secrets": ["setup_code"],
}


def _fields(template: LabelTemplate, serial: str = "SN-000123") -> dict[str, str]:
    row = {"serial_no": serial, "setup_code": "518-08-582", "wifi_pass": "hunter2"}
    device = {
        "mac": "24:0A:C4:12:34:56",
        "chip": "ESP32-C3",
        "unit_id": serial,
        "homekit_payload": PAYLOAD,
    }
    return label_fields(template, row, device, ["setup_code", "wifi_pass"])


def _pdf(path: Path) -> tuple[Decoded, str, tuple[float, float]]:
    from PySide6.QtCore import QSize
    from PySide6.QtPdf import QPdfDocument

    doc = QPdfDocument()
    assert doc.load(str(path)) == QPdfDocument.Error.None_
    assert doc.pageCount() == 1
    size = doc.pagePointSize(0)
    image = doc.render(0, QSize(round(size.width() * 300 / 72), round(size.height() * 300 / 72)))
    text = doc.getAllText(0).text().replace("\r\n", "\n")
    doc.close()
    return decode_image(image), text, (size.width() * 25.4 / 72, size.height() * 25.4 / 72)


def test_homekit_label_png_reads_back(decode_png: Callable[[bytes], Decoded]) -> None:
    t = template_from_dict(HOMEKIT)
    png = render_png(t, _fields(t))
    assert png.startswith(b"\x89PNG")
    assert decode_png(png) == [("Code128", "SN-000123"), ("QRCode", "X-HM://007JNU5AE7OSX")]


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (
            {
                "width_mm": 40,
                "height_mm": 20,
                "dpi": 203,
                "lines": ["{serial_no}"],
                "code128": "{serial_no}",
            },
            [("Code128", "SN-000123")],
        ),
        ({**HOMEKIT, "dpi": 203}, [("Code128", "SN-000123"), ("QRCode", PAYLOAD)]),
        ({**HOMEKIT, "dpi": 600}, [("Code128", "SN-000123"), ("QRCode", PAYLOAD)]),
        ({"width_mm": 25, "height_mm": 25, "qr": "{homekit_payload}"}, [("QRCode", PAYLOAD)]),
        ({"width_mm": 60, "height_mm": 12, "code128": "{mac}"}, [("Code128", "24:0A:C4:12:34:56")]),
        (
            {
                "width_mm": 30,
                "height_mm": 15,
                "dpi": 600,
                "lines": ["{chip}", "{mac}"],
                "qr": "{serial_no}",
            },
            [("QRCode", "SN-000123")],
        ),
    ],
)
def test_layouts_read_back(
    d: dict[str, object], expected: Decoded, decode_png: Callable[[bytes], Decoded]
) -> None:
    t = template_from_dict(d)
    image = render_image(t, _fields(t))
    assert (image.width(), image.height()) == (
        round(t.width_mm * t.dpi / 25.4),
        round(t.height_mm * t.dpi / 25.4),
    )
    assert decode_image(image) == expected


def test_secret_appears_only_when_asked(qt: object, tmp_path: Path) -> None:
    shown = template_from_dict(
        {
            "width_mm": 50,
            "height_mm": 15,
            "lines": ["{wifi_pass}", "{setup_code}"],
            "show_secrets": ["setup_code"],
        }
    )
    render_pdf(shown, _fields(shown), tmp_path / "shown.pdf")
    _codes, text, _size = _pdf(tmp_path / "shown.pdf")
    assert text.split() == ["••••••", "518-08-582"]
    assert "hunter2" not in text


def test_pdf_has_label_size_codes_and_text(qt: object, tmp_path: Path) -> None:
    t = template_from_dict(HOMEKIT)
    path = tmp_path / "out" / "label.pdf"
    path.parent.mkdir()
    render_pdf(t, _fields(t), path)
    codes, text, (w, h) = _pdf(path)
    assert codes == [("Code128", "SN-000123"), ("QRCode", PAYLOAD)]
    assert text == "SN SN-000123\nMAC 24:0A:C4:12:34:56\nESP32-C3\nCode 518-08-582"
    assert w == pytest.approx(50, abs=0.4) and h == pytest.approx(25, abs=0.4)
    assert [p.name for p in path.parent.iterdir()] == ["label.pdf"]  # no temp file left


def test_print_to_pdf_printer_calls_audit_hook(qt: object, tmp_path: Path) -> None:
    t = template_from_dict(HOMEKIT)
    printed: list[PrintRecord] = []
    record = print_label(
        t, _fields(t), output_file=tmp_path / "printed.pdf", on_printed=printed.append
    )
    assert printed == [record]
    assert (record.unit_id, record.kind, record.copies) == ("SN-000123", "pdf", 1)
    assert record.target == str(tmp_path / "printed.pdf")
    codes, text, (w, h) = _pdf(tmp_path / "printed.pdf")
    assert codes == [("Code128", "SN-000123"), ("QRCode", PAYLOAD)]
    assert text.startswith("SN SN-000123\n")
    assert w == pytest.approx(50, abs=0.4) and h == pytest.approx(25, abs=0.4)


def test_unknown_printer_is_a_device_error(qt: object) -> None:
    t = template_from_dict(HOMEKIT)
    printed: list[PrintRecord] = []
    with pytest.raises(StationError) as e:
        print_label(t, _fields(t), "Zebra-ZD421-nowhere", on_printed=printed.append)
    assert e.value.exit_code == 1
    assert "printer 'Zebra-ZD421-nowhere' is not installed" in str(e.value)
    assert printed == []


def test_barcode_too_long_for_label(qt: object, tmp_path: Path) -> None:
    t = template_from_dict({"width_mm": 20, "height_mm": 10, "code128": "{serial_no}"})
    with pytest.raises(StationError, match=r"needs a label at least \d+ mm wide at 300 dpi"):
        render_png(t, _fields(t, "SN-0001234567890-ABCDEFGHIJ"))
    with pytest.raises(StationError, match="needs a label"):
        render_pdf(t, _fields(t, "SN-0001234567890-ABCDEFGHIJ"), tmp_path / "x.pdf")
    assert not list(tmp_path.iterdir())


def test_qr_too_dense_for_label(qt: object) -> None:
    t = template_from_dict({"width_mm": 10, "height_mm": 6, "dpi": 100, "qr": "{serial_no}"})
    with pytest.raises(StationError, match=r"QR code .* does not fit"):
        render_png(t, _fields(t, "X" * 200))


def test_output_label_pdf_per_unit(qt: object, tmp_path: Path) -> None:
    t = template_from_dict(HOMEKIT)
    printed: list[PrintRecord] = []
    fields = {**_fields(t, "SN/7"), "unit_id": "SN/7"}
    record = output_label(
        t, fields, f"pdf:{tmp_path}/labels/{{unit_id}}.pdf", on_printed=printed.append
    )
    assert printed == [record] and record.kind == "pdf"
    assert record.target == f"{tmp_path}/labels/SN_7.pdf"
    codes, _text, _size = _pdf(tmp_path / "labels" / "SN_7.pdf")
    assert codes == [("Code128", "SN/7"), ("QRCode", PAYLOAD)]


def test_pdf_and_printer_outputs_need_a_registered_renderer(tmp_path: Path) -> None:
    """The labels layer never imports the GUI: without a renderer (a headless install, or no
    front end registered one) pdf: and printer: say what to install; nothing is written."""
    from station.labels import use_renderer

    use_renderer(None)
    t = template_from_dict(HOMEKIT)
    for output in (f"pdf:{tmp_path}/x.pdf", "printer:"):
        with pytest.raises(StationError, match=r"station\[gui\]") as err:
            output_label(t, _fields(t), output)
        assert "zpl:tcp://" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_output_label_unknown_printer(qt: object) -> None:
    t = template_from_dict(HOMEKIT)
    with pytest.raises(StationError, match="is not installed"):
        output_label(t, _fields(t), "printer:nowhere")


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    serial=st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=16
    ),
    text=st.text(min_size=0, max_size=40),
)
def test_any_serial_reads_back(qt: object, serial: str, text: str) -> None:
    t = template_from_dict(
        {
            "width_mm": 60,
            "height_mm": 30,
            "lines": ["{note}", "{serial_no}"],
            "qr": "{serial_no}",
            "code128": "{serial_no}",
        }
    )
    image = render_image(t, {"serial_no": serial, "note": text})
    assert decode_image(image) == [("Code128", serial), ("QRCode", serial)]


def test_many_labels_do_not_exhaust_none(qt: object) -> None:
    """PySide6 6.12.0 on Python < 3.12 leaks a reference to None per void call; rendering a
    production run's worth of labels must not abort the interpreter."""
    import sys

    from station.gui import _pyside_none

    t = template_from_dict(HOMEKIT)
    fields = _fields(t)
    before = sys.getrefcount(None)
    render_image(t, fields)
    per_label = max(0, before - sys.getrefcount(None))
    if _pyside_none.leaks_none():
        assert per_label > 0
        assert sys.getrefcount(None) > per_label * 1_000_000  # a million labels of headroom
    for _ in range(60):  # without protection, enough to abort on an affected interpreter
        render_image(t, fields)
