"""ZPL II for Zebra-type label printers, sent raw over TCP (port 9100) or to a file/device. No Qt.

The same layout as the Qt renderer, in the printer's dots: the QR code as ``^BQ``, the barcode as
``^BC`` with its module width from ``^BY``, text in the scalable font 0. Field data goes through
``^FH`` hex escapes, so a ``^`` or ``~`` in a serial number cannot end the field or the label.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from station.errors import StationError
from station.labels.layout import layout
from station.labels.template import LabelTemplate, fill

DEFAULT_PORT = 9100


def _field(text: str) -> str:
    # ^FH_ makes "_XX" a hex escape; escape the escape char and ZPL's command prefixes.
    out = []
    for ch in text:
        if ch in "_^~" or ord(ch) < 32:
            out.append("".join(f"_{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "^FH_^FD" + "".join(out) + "^FS"


def to_zpl(template: LabelTemplate, fields: Mapping[str, str]) -> str:
    """The label as one ZPL II label (``^XA`` ... ``^XZ``), UTF-8 text (``^CI28``)."""
    lay = layout(template, fill(template, fields))
    out = ["^XA", "^CI28", f"^PW{lay.width}", f"^LL{lay.height}", "^LH0,0"]
    if lay.qr is not None:
        q = lay.qr
        magnification = max(1, min(10, q.module))
        # ^BQ draws its own quiet zone-less symbol; ^FO is its top-left corner. The field data
        # starts with the error correction level M and automatic input mode ("MA,").
        out.append(f"^FO{q.x},{q.y}^BQN,2,{magnification}")
        out.append(_field("MA," + (lay.qr_text or "")))
    if lay.bars is not None:
        b = lay.bars
        # ^BY module width; ^BC normal orientation, height, no interpretation line, automatic
        # code set selection ("A") so digits are packed like ours.
        out.append(f"^BY{min(10, b.module)},3,{b.height}")
        out.append(f"^FO{b.x},{b.y}^BCN,{b.height},N,N,N,A")
        out.append(_field(lay.bar_text or ""))
    if lay.text is not None and lay.lines:
        t = lay.text
        longest = max(len(x) for x in lay.lines) or 1
        h = int(t.line_height * 0.78)
        if template.font_size:
            h = min(h, round(template.font_size * lay.dpi / 72))
        # font 0 characters are about 0.55 of their height wide
        h = max(10, min(h, int(t.width / (0.55 * longest))))
        for n, line in enumerate(lay.lines):
            y = t.y + n * t.line_height + (t.line_height - h) // 2
            out.append(f"^FO{t.x},{y}^A0N,{h},{h}^FB{t.width},1,0,L")
            out.append(_field(line))
    out.append("^PQ1")
    out.append("^XZ")
    return "\n".join(out) + "\n"


def parse_target(target: str) -> tuple[str, int] | None:
    """``(host, port)`` for ``tcp://host[:port]``, None for a file or device path."""
    if target.startswith("tcp://"):
        parts = urlsplit(target)
        if not parts.hostname:
            raise StationError.at(
                "label", f"{target!r} has no host; use tcp://HOST:9100", key="zpl_target"
            )
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise StationError.at(
                "label", f"{target!r} has a bad port number", key="zpl_target"
            ) from None
        return parts.hostname, port
    return None


def send_zpl(zpl: str, target: str, *, timeout: float = 5.0) -> None:
    """Send ZPL raw to ``tcp://host[:9100]`` or write it to a file/device path (``/dev/usb/lp0``).

    StationError (exit code 1, the printer is a device) if it cannot be delivered.
    """
    data = zpl.encode("utf-8")
    address = parse_target(target)
    try:
        if address is not None:
            with socket.create_connection(address, timeout=timeout) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
        else:
            # append: a printer device or a spool file collects labels one after another
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise StationError.at(
            "label",
            f"the label printer at {target} did not take the label: {reason}",
            key="zpl_target",
            exit_code=1,
        ) from None
