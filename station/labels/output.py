"""Where a label goes, as one setting: a system printer, a PDF file, or a ZPL printer.

The station keeps the label output as a single string (``printer:``, ``printer:NAME``,
``pdf:PATH``, ``zpl:tcp://HOST:9100``, ``zpl:/dev/usb/lp0``) and calls :func:`output_label` for
every print; the returned :class:`PrintRecord` (also given to ``on_printed``) is what the ledger's
audit log records. ZPL needs no Qt; PDF and system printers go through the renderer a front end
registers with :func:`use_renderer` (the Qt one, :mod:`station.gui.label_render`), so this
package never imports the GUI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from station.errors import StationError
from station.labels.template import LabelTemplate
from station.labels.zpl import parse_target, send_zpl, to_zpl

KINDS = ("printer", "pdf", "zpl")


@dataclass(frozen=True)
class PrintRecord:
    """One label that left the station, for the ledger's audit log."""

    unit_id: str
    kind: str  # "printer" | "pdf" | "zpl"
    target: str
    copies: int
    at: float  # time.time()

    def describe(self) -> str:
        """One line for the audit log: ``label SN1 -> zpl tcp://10.0.0.7:9100 (1 copy)``."""
        copies = "1 copy" if self.copies == 1 else f"{self.copies} copies"
        return f"label {self.unit_id or '?'} -> {self.kind} {self.target or 'default'} ({copies})"


OnPrinted = Callable[[PrintRecord], None]


class Renderer(Protocol):
    """What PDF and printer outputs need (:mod:`station.gui.label_render` is one)."""

    def render_pdf(self, template: LabelTemplate, fields: Mapping[str, str], path: str) -> None: ...

    def print_label(
        self,
        template: LabelTemplate,
        fields: Mapping[str, str],
        printer: str | None,
        *,
        copies: int = 1,
        on_printed: OnPrinted | None = None,
    ) -> PrintRecord: ...


_factory: Callable[[], Renderer] | None = None
_renderer: Renderer | None = None


def use_renderer(factory: Callable[[], Renderer] | None) -> None:
    """Register how to get the renderer for ``pdf:`` and ``printer:`` outputs; it is called
    once, when :func:`renderer` is first asked (so a headless run that prints ZPL never loads
    Qt)."""
    global _factory, _renderer
    _factory, _renderer = factory, None


def renderer(kind: str = "pdf") -> Renderer:
    """The registered renderer; StationError saying what to install if there is none.

    A front end asks for it once on its main thread before printing from a worker (Qt wants
    its application object made there)."""
    global _renderer
    if _renderer is None:
        if _factory is None:
            raise StationError.at(
                "label output",
                f"{kind}: labels need the window's renderer (Qt); install it with "
                "pip install 'station[gui]', or print ZPL (zpl:tcp://HOST:9100)",
            )
        _renderer = _factory()
    return _renderer


def parse_output(text: str, file: str = "settings", key: str = "label_output") -> tuple[str, str]:
    """``(kind, target)`` from an output setting; StationError if it is not one."""
    kind, sep, target = text.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS:
        raise StationError.at(
            file,
            f"{text!r} is not a label output; use printer:, printer:NAME, pdf:PATH, "
            "zpl:tcp://HOST:9100 or zpl:/dev/usb/lp0",
            key=key,
        )
    target = target.strip()
    if kind in ("pdf", "zpl") and not target:
        raise StationError.at(file, f"{kind}: needs a target after the colon", key=key)
    if kind == "zpl":
        parse_target(target)  # checks tcp:// targets
    return kind, target


def output_label(
    template: LabelTemplate,
    fields: Mapping[str, str],
    output: str,
    *,
    copies: int = 1,
    on_printed: OnPrinted | None = None,
) -> PrintRecord:
    """Print one unit's label to ``output`` (see :func:`parse_output`); the record is returned
    and passed to ``on_printed`` only once the label was handed over.

    For ``pdf:PATH`` a ``{unit_id}`` in PATH is replaced, so each unit gets its own file.
    """
    kind, target = parse_output(output)
    copies = max(1, copies)
    unit = fields.get("unit_id", "")
    if kind == "zpl":
        zpl = to_zpl(template, fields).replace("^PQ1\n", f"^PQ{copies}\n")
        send_zpl(zpl, target)
    elif kind == "pdf":
        drawer = renderer(kind)
        target = target.replace(
            "{unit_id}", "".join(c if c.isalnum() or c in "-_." else "_" for c in unit)
        )
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        drawer.render_pdf(template, fields, target)
    else:
        return renderer(kind).print_label(
            template, fields, target or None, copies=copies, on_printed=on_printed
        )
    record = PrintRecord(unit, kind, target, copies, time.time())
    if on_printed is not None:
        on_printed(record)
    return record
