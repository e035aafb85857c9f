"""ZPL: what it says, and that it reaches a printer over raw TCP or a device/file path. No Qt."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.errors import StationError
from station.labels import (
    PrintRecord,
    label_fields,
    output_label,
    parse_output,
    send_zpl,
    template_from_dict,
    to_zpl,
)
from station.labels.layout import layout
from station.labels.template import fill
from station.labels.zpl import parse_target

TEMPLATE = template_from_dict(
    {
        "width_mm": 50,
        "height_mm": 25,
        "dpi": 203,
        "lines": ["SN {serial_no}", "MAC {mac}", "Code {setup_code}"],
        "qr": "{homekit_payload}",
        "code128": "{serial_no}",
        "show_secrets": ["setup_code"],
    }
)
FIELDS = label_fields(
    TEMPLATE,
    {"serial_no": "SN-0001", "setup_code": "518-08-582"},
    {"mac": "24:0A:C4:12:34:56", "homekit_payload": "X-HM://007JNU5AE7OSX"},
    ["setup_code"],
)


def _unescape(data: str) -> str:
    raw = re.sub(r"_([0-9A-F]{2})", lambda m: f"%{m.group(1)}", data)
    from urllib.parse import unquote

    return unquote(raw)


def _fields(zpl: str) -> list[str]:
    return [_unescape(m) for m in re.findall(r"\^FH_\^FD(.*?)\^FS", zpl)]


def test_zpl_structure_and_geometry() -> None:
    zpl = to_zpl(TEMPLATE, FIELDS)
    lay = layout(TEMPLATE, fill(TEMPLATE, FIELDS))
    assert zpl.startswith("^XA\n^CI28\n") and zpl.endswith("^PQ1\n^XZ\n")
    assert f"^PW{lay.width}" in zpl and f"^LL{lay.height}" in zpl
    assert (lay.width, lay.height) == (400, 200)  # 50 x 25 mm at 8 dots/mm
    assert lay.qr is not None and lay.bars is not None
    assert f"^FO{lay.qr.x},{lay.qr.y}^BQN,2,{lay.qr.module}" in zpl
    assert f"^BY{lay.bars.module},3,{lay.bars.height}" in zpl
    assert f"^FO{lay.bars.x},{lay.bars.y}^BCN,{lay.bars.height},N,N,N,A" in zpl
    assert _fields(zpl) == [
        "MA,X-HM://007JNU5AE7OSX",
        "SN-0001",
        "SN SN-0001",
        "MAC 24:0A:C4:12:34:56",
        "Code 518-08-582",
    ]


def test_zpl_escapes_command_characters() -> None:
    t = template_from_dict({"width_mm": 60, "height_mm": 20, "lines": ["{a}"], "code128": "{a}"})
    zpl = to_zpl(t, {"a": "x^XZ~JR_y"})
    assert "^XZ~" not in zpl and "~JR" not in zpl
    assert zpl.count("^XZ") == 1
    assert _fields(zpl) == ["x^XZ~JR_y", "x^XZ~JR_y"]


def test_zpl_utf8_text() -> None:
    t = template_from_dict({"width_mm": 60, "height_mm": 20, "lines": ["{a}"]})
    zpl = to_zpl(t, {"a": "Gerät Nº5"})
    assert _fields(zpl) == ["Gerät Nº5"]


class _Printer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.done = threading.Event()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer.received.append(self.rfile.read())  # until the sender closes
                outer.done.set()

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def printer() -> Iterator[_Printer]:
    server = _Printer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_send_over_tcp(printer: _Printer) -> None:
    zpl = to_zpl(TEMPLATE, FIELDS)
    port = printer.server_address[1]
    send_zpl(zpl, f"tcp://127.0.0.1:{port}")
    assert printer.done.wait(5)
    assert printer.received == [zpl.encode("utf-8")]


def test_output_label_to_zpl_printer_records_the_print(printer: _Printer) -> None:
    port = printer.server_address[1]
    printed: list[PrintRecord] = []
    fields = {**FIELDS, "unit_id": "SN-0001"}
    record = output_label(
        TEMPLATE, fields, f"zpl:tcp://127.0.0.1:{port}", copies=2, on_printed=printed.append
    )
    assert printer.done.wait(5)
    sent = printer.received[0].decode()
    assert sent == to_zpl(TEMPLATE, fields).replace("^PQ1\n", "^PQ2\n")
    assert printed == [record]
    assert (record.unit_id, record.kind, record.copies) == ("SN-0001", "zpl", 2)
    assert record.describe() == f"label SN-0001 -> zpl tcp://127.0.0.1:{port} (2 copies)"


def test_output_label_failure_records_nothing() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    printed: list[PrintRecord] = []
    with pytest.raises(StationError):
        output_label(TEMPLATE, FIELDS, f"zpl:tcp://127.0.0.1:{port}", on_printed=printed.append)
    assert printed == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lpt1", "not a label output"),
        ("fax:123", "not a label output"),
        ("pdf:", "needs a target"),
        ("zpl:tcp://:9100", "has no host"),
    ],
)
def test_bad_outputs(text: str, message: str) -> None:
    with pytest.raises(StationError, match=message):
        parse_output(text)


def test_outputs() -> None:
    assert parse_output("printer:") == ("printer", "")
    assert parse_output("Printer: Zebra ZD421") == ("printer", "Zebra ZD421")
    assert parse_output("zpl:/dev/usb/lp0") == ("zpl", "/dev/usb/lp0")
    assert parse_output("pdf:labels/{unit_id}.pdf") == ("pdf", "labels/{unit_id}.pdf")


def test_refused_connection_is_a_device_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StationError) as e:
        send_zpl("^XA^XZ", f"tcp://127.0.0.1:{port}", timeout=2)
    assert e.value.exit_code == 1
    assert f"the label printer at tcp://127.0.0.1:{port} did not take the label" in str(e.value)


def test_send_to_file_appends(tmp_path: Path) -> None:
    target = tmp_path / "lp0"
    send_zpl("^XA^XZ\n", str(target))
    send_zpl("^XA^FDé^XZ\n", str(target))
    assert target.read_bytes() == "^XA^XZ\n^XA^FDé^XZ\n".encode()
    with pytest.raises(StationError, match="did not take the label"):
        send_zpl("^XA^XZ", str(tmp_path / "missing-dir" / "lp0"))


def test_targets() -> None:
    assert parse_target("tcp://zebra.local") == ("zebra.local", 9100)
    assert parse_target("tcp://10.0.0.7:6101") == ("10.0.0.7", 6101)
    assert parse_target("/dev/usb/lp0") is None
    with pytest.raises(StationError, match="has no host"):
        parse_target("tcp://:9100")
    with pytest.raises(StationError, match="bad port"):
        parse_target("tcp://host:99999")
