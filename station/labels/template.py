"""Label templates: what goes on a unit's label, filled from the row and the device. No Qt.

A template comes from the lot's ``label = {...}`` table. Text lines, the QR code and the Code 128
barcode use ``{name}`` placeholders: any column of the values CSV, and the device facts
``mac``, ``chip``, ``unit_id``, ``port``, ``lot``, ``date``, ``setup_code``, ``setup_id``,
``homekit_payload``, ``matter_qr``, ``matter_manual_code``. Secret columns print as a mask
unless the template lists them in ``show_secrets``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from station.errors import Problem, ProblemList, StationError
from station.labels import code128
from station.mfg.secrets import MASK

DEVICE_FACTS = (
    "mac",
    "chip",
    "unit_id",
    "port",
    "lot",
    "date",
    "setup_code",
    "setup_id",
    "homekit_payload",
    "matter_qr",  # a Matter lot's QR payload (MT:...) and manual pairing code
    "matter_manual_code",
)
_KEYS = ("width_mm", "height_mm", "dpi", "lines", "qr", "code128", "show_secrets", "font_size")


@dataclass(frozen=True)
class LabelTemplate:
    """Size, text lines and codes of one lot's label."""

    width_mm: float
    height_mm: float
    dpi: int = 300
    lines: tuple[str, ...] = ()
    qr: str | None = None
    code128: str | None = None
    show_secrets: frozenset[str] = frozenset()
    font_size: float = 0.0  # points; 0 = as large as fits
    file: str = field(default="lot.toml", compare=False)

    def placeholders(self) -> list[str]:
        """Every ``{name}`` the template uses, in order of first use."""
        seen: list[str] = []
        for text in (*self.lines, self.qr or "", self.code128 or ""):
            for name in _names(text):
                if name not in seen:
                    seen.append(name)
        return seen


@dataclass(frozen=True)
class LabelContent:
    """A template filled in for one unit: exactly what is printed."""

    lines: tuple[str, ...]
    qr: str | None
    code128: str | None


def _names(text: str) -> list[str]:
    return [name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None]


def _check_format(text: str) -> str | None:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        return f"bad placeholder in {text!r}: {e} (write {{{{ and }}}} for literal braces)"
    for _lit, name, spec, conv in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            return f"placeholder {{{name}}} must be a column name or a device fact"
        if spec or conv:
            return f"placeholder {{{name}}} takes no format spec or conversion"
    return None


def template_from_dict(d: Mapping[str, object], file: str = "lot.toml") -> LabelTemplate:
    """Parse the lot's ``label`` table; StationError listing every problem.

    Example: ``label = { width_mm = 50, height_mm = 25, lines = ["{serial_no}", "MAC {mac}"],
    qr = "{homekit_payload}", code128 = "{serial_no}", show_secrets = ["setup_code"] }``.
    """
    if not isinstance(d, Mapping):
        raise StationError.at(
            file, "must be a table, e.g. label = { width_mm = 50, ... }", key="label"
        )
    problems = ProblemList()

    def bad(key: str, message: str) -> None:
        problems.add(file, 0, 0, f"label.{key}", message)

    for key in d:
        if key not in _KEYS:
            bad(str(key), f"unknown key; known keys: {', '.join(_KEYS)}")
    size: dict[str, float] = {}
    for key, lo, hi in (("width_mm", 10, 300), ("height_mm", 5, 300)):
        value = d.get(key)
        if value is None:
            bad(key, f"missing; the label's {key[:-3]} in millimetres")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            bad(key, "must be a number of millimetres")
        elif not lo <= value <= hi:
            bad(key, f"{value} mm is outside {lo}..{hi} mm")
        else:
            size[key] = float(value)
    dpi = d.get("dpi", 300)
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 100 <= dpi <= 1200:
        bad("dpi", "must be a whole number 100..1200 (203 and 300 are usual label printers)")
        dpi = 300
    font_size = d.get("font_size", 0)
    if isinstance(font_size, bool) or not isinstance(font_size, int | float) or font_size < 0:
        bad("font_size", "must be a size in points, or 0 for as large as fits")
        font_size = 0
    raw_lines = d.get("lines", [])
    lines: list[str] = []
    if not isinstance(raw_lines, list | tuple) or not all(isinstance(x, str) for x in raw_lines):
        bad("lines", 'must be a list of strings, e.g. ["{serial_no}", "MAC {mac}"]')
    else:
        lines = list(raw_lines)
        for text in lines:
            error = _check_format(text)
            if error:
                bad("lines", error)
    codes: dict[str, str | None] = {}
    for key in ("qr", "code128"):
        value = d.get(key)
        if value is None or value == "":
            codes[key] = None
        elif not isinstance(value, str):
            bad(key, 'must be a string with placeholders, e.g. "{serial_no}"')
        else:
            error = _check_format(value)
            if error:
                bad(key, error)
            codes[key] = value
    if not lines and not codes.get("qr") and not codes.get("code128"):
        bad("lines", "the label is empty: give lines, qr or code128")
    raw_secrets = d.get("show_secrets", [])
    show: frozenset[str] = frozenset()
    if not isinstance(raw_secrets, list | tuple) or not all(
        isinstance(x, str) for x in raw_secrets
    ):
        bad("show_secrets", 'must be a list of column names, e.g. ["setup_code"]')
    else:
        show = frozenset(raw_secrets)
    problems.raise_if_any()
    return LabelTemplate(
        width_mm=size["width_mm"],
        height_mm=size["height_mm"],
        dpi=int(dpi),
        lines=tuple(lines),
        qr=codes.get("qr"),
        code128=codes.get("code128"),
        show_secrets=show,
        font_size=float(font_size),
        file=file,
    )


def template_to_dict(template: LabelTemplate) -> dict[str, object]:
    """The template as a ``label`` table (for the GUI's lot editor); round-trips."""
    d: dict[str, object] = {
        "width_mm": template.width_mm,
        "height_mm": template.height_mm,
        "dpi": template.dpi,
        "lines": list(template.lines),
    }
    if template.qr:
        d["qr"] = template.qr
    if template.code128:
        d["code128"] = template.code128
    if template.show_secrets:
        d["show_secrets"] = sorted(template.show_secrets)
    if template.font_size:
        d["font_size"] = template.font_size
    return d


def check_template(
    template: LabelTemplate, columns: Iterable[str], secret_columns: Iterable[str] = ()
) -> list[Problem]:
    """Problems of this template with this lot: unknown placeholders, secrets in barcodes."""
    known = set(columns) | set(DEVICE_FACTS)
    secret = set(secret_columns) - set(template.show_secrets)
    out: list[Problem] = []
    for key, texts in (
        ("lines", template.lines),
        ("qr", (template.qr or "",)),
        ("code128", (template.code128 or "",)),
    ):
        for text in texts:
            for name in _names(text):
                if name not in known:
                    out.append(
                        Problem(
                            template.file,
                            0,
                            0,
                            f"label.{key}",
                            f"{{{name}}} is neither a column of the values CSV nor "
                            f"a device fact ({', '.join(DEVICE_FACTS)})",
                        )
                    )
                elif name in secret and key != "lines":
                    out.append(
                        Problem(
                            template.file,
                            0,
                            0,
                            f"label.{key}",
                            f"{{{name}}} is a secret column; list it in "
                            "label.show_secrets to print it",
                        )
                    )
    for name in template.show_secrets:
        if name not in known:
            out.append(
                Problem(
                    template.file,
                    0,
                    0,
                    "label.show_secrets",
                    f"{name!r} is not a column of the values CSV",
                )
            )
    return out


def label_fields(
    template: LabelTemplate,
    row_values: Mapping[str, str],
    device: Mapping[str, str],
    secret_columns: Iterable[str],
) -> dict[str, str]:
    """Everything a placeholder may name for one unit; secrets masked unless ``show_secrets``.

    Device facts override row columns of the same name. A secret is masked whichever side it
    comes from, so a template must name ``setup_code`` in ``show_secrets`` to print the code.
    """
    fields = {str(k): "" if v is None else str(v) for k, v in row_values.items()}
    fields.update({str(k): "" if v is None else str(v) for k, v in device.items()})
    for name in set(secret_columns) - set(template.show_secrets):
        if fields.get(name):
            fields[name] = MASK
    return fields


def fill(template: LabelTemplate, fields: Mapping[str, str]) -> LabelContent:
    """The printed text of each line and code; StationError if a placeholder has no value or a
    masked secret would go into a barcode."""
    problems = ProblemList()

    def sub(key: str, text: str | None) -> str | None:
        if text is None:
            return None
        missing = [n for n in _names(text) if n not in fields]
        if missing:
            problems.add(
                template.file,
                0,
                0,
                f"label.{key}",
                f"no value for {', '.join('{' + n + '}' for n in missing)}",
            )
            return ""
        out = text.format_map(fields)
        if key != "lines" and MASK in out:
            problems.add(
                template.file,
                0,
                0,
                f"label.{key}",
                "a secret would be printed as a mask; list it in label.show_secrets",
            )
        return out

    lines = tuple(sub("lines", t) or "" for t in template.lines)
    qr = sub("qr", template.qr)
    bars = sub("code128", template.code128)
    if bars is not None and not problems:
        error = code128.unsupported(bars)
        if error:
            problems.add(template.file, 0, 0, "label.code128", error)
    if qr is not None and not qr and not problems:
        problems.add(template.file, 0, 0, "label.qr", "the QR code text is empty for this unit")
    problems.raise_if_any()
    return LabelContent(lines, qr, bars)
