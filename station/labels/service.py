"""The label service: one printer thread, every print audited; used by the window and by
``station run --labels`` alike. Qt-free: PDF and system printers go through the renderer that a
front end registers (:func:`station.labels.output.use_renderer`); ZPL needs none.

A unit's label is printed when it passes (a station setting) and on Reprint. The service builds
the unit's fields and hands the label to :func:`output_label` on its own thread (a printer or a
TCP link may take seconds; neither the GUI thread nor a port worker waits for one). Each label
the printer took is written to the ledger's audit log (action ``label`` or ``label reprint``,
detail ``label SN1 -> zpl tcp://… (1 copy)``: unit, output and copies, never a row's values); a
label that could not be printed is audited as ``label failed``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from station.errors import Problem, StationError
from station.labels.output import output_label
from station.labels.template import LabelTemplate, check_template, label_fields, template_from_dict

PRINTABLE_STATES = ("done", "failed")  # a unit that was flashed (or tried): it has a label


@dataclass(frozen=True)
class LabelJob:
    """One label to print, queued to the printer thread."""

    lot: Any  # station.production.Lot (not imported: labels sit below production)
    row_index: int
    output: str
    reprint: bool
    operator: str
    port: str = ""


@dataclass(frozen=True)
class LabelOutcome:
    """What became of a :class:`LabelJob`."""

    unit_id: str
    row_index: int
    reprint: bool
    ok: bool
    text: str  # the audit line when printed, else why not


def lot_template(lot: Any) -> tuple[LabelTemplate | None, list[Problem]]:
    """The lot's label template and its problems with this lot's columns (no template: None).

    A template with problems is returned as None too: the station then prints nothing rather
    than a wrong label."""
    raw = getattr(lot.settings, "label", None)
    if not raw:
        return None, []
    file = str(lot.settings.path)
    try:
        template = template_from_dict(raw, file)
    except StationError as err:
        return None, list(err.problems)
    problems = check_template(template, lot.mfg.columns, lot.secret_columns)
    return (None if problems else template), problems


def unit_fields(lot: Any, template: LabelTemplate, record: Any, port: str = "") -> dict[str, str]:
    """The placeholders of one unit's label: its row (secrets masked unless the template shows
    them), the device facts the ledger recorded, and HomeKit facts when the lot has them."""
    row = lot.row(record.index)
    device: dict[str, str] = {
        "mac": record.mac or "",
        "chip": getattr(lot.settings, "chip", "") or "",
        "unit_id": record.unit_id or lot.unit_id(row),
        "port": port or record.port or "",
        "lot": lot.name,
    }
    homekit = getattr(lot, "homekit", None)
    if homekit is not None:
        from station.homekit import label_facts  # homekit is a sibling layer, loaded when used

        device.update(label_facts(homekit, row.values))
    if getattr(getattr(lot, "settings", None), "matter", None):
        device.update(lot.matter_label_facts(row))  # the unit's QR and manual pairing code
    return label_fields(template, row.values, device, lot.secret_columns)


def preview_fields(lot: Any, record: Any) -> dict[str, str]:
    """The values a unit's label shows (the label preview): its row, secrets masked, plus the
    device facts; with no usable template, the row's values and the device facts."""
    if getattr(lot.settings, "label", None):
        try:
            template = template_from_dict(lot.settings.label, str(lot.settings.path))
            return unit_fields(lot, template, record)
        except StationError:
            pass
    row = lot.mfg.rows[record.index]
    device = {
        "mac": record.mac or "",
        "chip": getattr(lot.settings, "chip", ""),
        "unit_id": record.unit_id or "",
    }
    try:
        template = template_from_dict(lot.settings.label)
        return dict(label_fields(template, row.values, device, lot.secret_columns))
    except (StationError, AttributeError, TypeError):
        fields = dict(lot.masked_values(row)) if hasattr(lot, "masked_values") else {}
        fields.update(device)
        return fields


class LabelService:
    """Prints labels on one worker thread, in order; each outcome goes to ``on_done`` (called on
    the printer thread)."""

    def __init__(self, on_done: Callable[[LabelOutcome], None] | None = None) -> None:
        self.on_done = on_done
        self._queue: queue.Queue[LabelJob | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._templates: dict[int, LabelTemplate] = {}  # id(lot) -> template (checked at open)

    def set_template(self, lot: Any, template: LabelTemplate | None) -> None:
        """The checked template of ``lot`` (None: the lot prints no labels)."""
        with self._lock:
            self._templates = {id(lot): template} if template is not None else {}

    def template(self, lot: Any) -> LabelTemplate | None:
        with self._lock:
            return self._templates.get(id(lot))

    def submit(self, job: LabelJob) -> None:
        """Queue a label; never blocks."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="labels", daemon=True)
                self._thread.start()
        self._queue.put(job)

    def stop(self, timeout: float = 10.0) -> None:
        """Print what is queued, then end the thread (the station closes or changes lot)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            outcome = self.print_now(job)
            if self.on_done is not None:
                self.on_done(outcome)

    def print_now(self, job: LabelJob) -> LabelOutcome:
        """Print one label on the calling thread; audits the result."""
        lot = job.lot
        action = "label reprint" if job.reprint else "label"
        unit = str(job.row_index + 1)
        try:
            record = lot.ledger.row(job.row_index)
            unit = record.unit_id or unit
            template = self.template(lot)
            if template is None:
                raise StationError.at("label", "this lot has no usable label template")
            fields = unit_fields(lot, template, record, job.port)
            printed = output_label(
                template,
                fields,
                job.output,
                on_printed=lambda r: lot.ledger.audit(action, r.describe(), job.operator),
            )
        except StationError as err:
            why = "; ".join(p.message for p in err.problems)
            _audit_failure(lot, f"label {unit} not printed: {why}", job.operator)
            return LabelOutcome(unit, job.row_index, job.reprint, False, why)
        except Exception as err:  # a closed ledger, an OS error from a device path
            why = f"{type(err).__name__}: {err}"
            _audit_failure(lot, f"label {unit} not printed: {why}", job.operator)
            return LabelOutcome(unit, job.row_index, job.reprint, False, why)
        return LabelOutcome(unit, job.row_index, job.reprint, True, printed.describe())


def _audit_failure(lot: Any, detail: str, operator: str) -> None:
    try:
        lot.ledger.audit("label failed", detail, operator)
    except Exception:  # noqa: S110 - the ledger is closing; the front end's log has it
        pass
