"""``station report LOT --html FILE``: the line's figures as one self-contained HTML page.

The page needs nothing but itself: charts are inline SVG drawn here, styles are inline, there is
no script at all, and a Content-Security-Policy of ``default-src 'none'`` tells the browser to
fetch nothing (so a hostile unit id or reason cannot load anything either). Every text that
comes from the ledger is escaped. The ledger holds no secret values, so neither does the page.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from station.errors import StationError
from station.ledger import Ledger, stats
from station.ledger.stats import Failure, LineStats, PhaseStats, YieldLine

CSP = "default-src 'none'; style-src 'unsafe-inline'"
MAX_FAILURES = 2000  # rows of the failure table (the newest); the count says how many there are
PASS, FAIL, INK, GRID, MUTED = "#16a34a", "#dc2626", "#1f2937", "#e5e7eb", "#6b7280"
BOX = "#2563eb"

STYLE = """
body { font: 14px/1.4 system-ui, 'DejaVu Sans', sans-serif; color: #1f2937; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #6b7280; margin-bottom: 16px; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; }
.tile { border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.tile b { display: block; font-size: 22px; } .tile span { color: #6b7280; }
.grid { display: flex; flex-wrap: wrap; gap: 24px; }
.grid > section { flex: 1 1 460px; }
table { border-collapse: collapse; margin-top: 6px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 3px 10px 3px 0; text-align: left;
         vertical-align: top; }
td { white-space: nowrap; } td:last-child { white-space: normal; }
td.n, th.n { text-align: right; } .fail { color: #dc2626; } .ok { color: #16a34a; }
.empty { color: #6b7280; font-style: italic; }
svg text { font: 12px system-ui, 'DejaVu Sans', sans-serif; fill: #1f2937; }
@media print { body { margin: 8mm; } section { break-inside: avoid; } }
"""


def e(text: object) -> str:
    """Text from the ledger, escaped for HTML text and attribute values alike."""
    return html.escape(str(text), quote=True)


def _iso(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%}"


def _nice_max(value: float) -> float:
    """A round upper end for an axis (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= value:
            return m * power
    return 10 * power  # pragma: no cover


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


# --- charts ------------------------------------------------------------------------------
def svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">'
        f"<title>{e(title)}</title>"
    )


def throughput_chart(s: LineStats, width: int = 900, height: int = 260) -> str:
    """Units per hour over the lot's life: one bar per bucket, passed and failed stacked."""
    tp = s.throughput
    if not tp.buckets:
        return '<p class="empty">No unit finished yet.</p>'
    left, right, top, bottom = 48, 12, 12, 40
    w, h = width - left - right, height - top - bottom
    per_hour = 3600.0 / tp.bucket_seconds
    peak = max((b.passed + b.failed) * per_hour for b in tp.buckets)
    ymax = _nice_max(peak)
    n = len(tp.buckets)
    bw = w / n
    out = [svg_open(width, height, "Units per hour")]
    for i in range(6):
        v = ymax * i / 5
        y = top + h - h * v / ymax
        out.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(v)}</text>'
        )
    every = max(1, math.ceil(n / 8))
    for i, b in enumerate(tp.buckets):
        x = left + i * bw
        ph = h * b.passed * per_hour / ymax
        fh = h * b.failed * per_hour / ymax
        label = (
            f"{_iso(b.start)}: {tp.units_per_hour(b):.0f} units/h ({b.passed} passed, "
            f"{b.failed} failed)"
        )
        out.append(
            f'<g class="bar"><title>{e(label)}</title>'
            f'<rect x="{x + 1:.1f}" y="{top + h - ph:.1f}" width="{max(bw - 2, 1):.1f}" '
            f'height="{ph:.1f}" fill="{PASS}"/>'
            f'<rect x="{x + 1:.1f}" y="{top + h - ph - fh:.1f}" width="{max(bw - 2, 1):.1f}" '
            f'height="{fh:.1f}" fill="{FAIL}"/></g>'
        )
        if i % every == 0:
            t = datetime.fromtimestamp(b.start, timezone.utc)
            text = t.strftime("%H:%M") if tp.bucket_seconds < 86400 else t.strftime("%m-%d")
            out.append(
                f'<text x="{x + bw / 2:.1f}" y="{top + h + 16}" text-anchor="middle">{text}</text>'
            )
    out.append(
        f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="{INK}"/>'
        f'<text x="{left}" y="{height - 4}" fill="{MUTED}">buckets of '
        f"{tp.bucket_seconds // 60} min (UTC); green passed, red failed, per hour</text></svg>"
    )
    return "".join(out)


def yield_chart(lines: Sequence[YieldLine], title: str, width: int = 440) -> str:
    """One horizontal bar per slot or station: its yield, with passed/failed counts."""
    if not lines:
        return '<p class="empty">No attempt finished yet.</p>'
    row, label_w, top = 24, 150, 6
    height = top + row * len(lines) + 22
    w = width - label_w - 110
    out = [svg_open(width, height, title)]
    for i, y in enumerate(lines):
        cy = top + i * row
        rate = y.rate or 0.0
        out.append(
            f'<g class="bar"><title>{e(y.name)}: {_pct(y.rate)} ({y.passed} passed, '
            f"{y.failed} failed)</title>"
            f'<text x="{label_w - 8}" y="{cy + 15}" text-anchor="end">{e(_short(y.name))}</text>'
            f'<rect x="{label_w}" y="{cy + 3}" width="{w}" height="{row - 8}" fill="{GRID}"/>'
            f'<rect x="{label_w}" y="{cy + 3}" width="{w * rate:.1f}" height="{row - 8}" '
            f'fill="{PASS if rate >= 0.95 else "#d97706" if rate >= 0.8 else FAIL}"/>'
            f'<text x="{label_w + w + 6}" y="{cy + 15}">{_pct(y.rate)} · {y.passed}/'
            f"{y.passed + y.failed}</text></g>"
        )
    out.append(
        f'<text x="{label_w}" y="{height - 4}" fill="{MUTED}">passed / finished attempts</text>'
        "</svg>"
    )
    return "".join(out)


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def reasons_chart(s: LineStats, width: int = 900) -> str:
    """Failures by reason, the ten most frequent, as horizontal bars."""
    if not s.reasons:
        return '<p class="empty">No failures.</p>'
    row, label_w, top = 24, 520, 6
    height = top + row * len(s.reasons) + 8
    w = width - label_w - 60
    peak = max(r.count for r in s.reasons)
    out = [svg_open(width, height, "Failures by reason")]
    for i, r in enumerate(s.reasons):
        cy = top + i * row
        out.append(
            f'<g class="bar"><title>{e(r.reason)} — e.g. {e(r.example)}</title>'
            f'<text x="{label_w - 8}" y="{cy + 15}" text-anchor="end">'
            f"{e(_short(r.reason, 80))}</text>"
            f'<rect x="{label_w}" y="{cy + 3}" width="{max(w * r.count / peak, 1):.1f}" '
            f'height="{row - 8}" fill="{FAIL}"/>'
            f'<text x="{label_w + w * r.count / peak + 6:.1f}" y="{cy + 15}">{r.count}</text>'
            "</g>"
        )
    out.append("</svg>")
    return "".join(out)


def phases_chart(phases: Sequence[PhaseStats], width: int = 900) -> str:
    """Time per phase as box plots: whiskers 5th–95th percentile, box quartiles, median line."""
    if not phases:
        return '<p class="empty">No unit passed yet.</p>'
    row, label_w, top, bottom = 34, 110, 8, 34
    height = top + row * len(phases) + bottom
    w = width - label_w - 30
    xmax = _nice_max(max(p.p95 for p in phases))

    def x(v: float) -> float:
        return label_w + w * min(v, xmax) / xmax

    out = [svg_open(width, height, "Time per phase")]
    for i in range(6):
        v = xmax * i / 5
        out.append(
            f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top}" y2="{top + row * len(phases)}" '
            f'stroke="{GRID}"/><text x="{x(v):.1f}" y="{top + row * len(phases) + 16}" '
            f'text-anchor="middle">{_num(v)} s</text>'
        )
    for i, p in enumerate(phases):
        cy = top + i * row + row / 2
        tip = (
            f"{p.phase}: median {p.p50:.2f} s, quartiles {p.p25:.2f}–{p.p75:.2f} s, "
            f"5–95 % {p.p5:.2f}–{p.p95:.2f} s, max {p.maximum:.2f} s ({p.count} units)"
        )
        out.append(
            f'<g class="box"><title>{e(tip)}</title>'
            f'<text x="{label_w - 8}" y="{cy + 4:.1f}" text-anchor="end">{e(p.phase)}</text>'
            f'<line x1="{x(p.p5):.1f}" x2="{x(p.p95):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
            f'stroke="{INK}"/>'
            f'<line x1="{x(p.p5):.1f}" x2="{x(p.p5):.1f}" y1="{cy - 6:.1f}" y2="{cy + 6:.1f}" '
            f'stroke="{INK}"/>'
            f'<line x1="{x(p.p95):.1f}" x2="{x(p.p95):.1f}" y1="{cy - 6:.1f}" '
            f'y2="{cy + 6:.1f}" stroke="{INK}"/>'
            f'<rect x="{x(p.p25):.1f}" y="{cy - 10:.1f}" '
            f'width="{max(x(p.p75) - x(p.p25), 1):.1f}" height="20" fill="#bfdbfe" '
            f'stroke="{BOX}"/>'
            f'<line x1="{x(p.p50):.1f}" x2="{x(p.p50):.1f}" y1="{cy - 10:.1f}" '
            f'y2="{cy + 10:.1f}" stroke="{BOX}" stroke-width="3"/></g>'
        )
    out.append(
        f'<text x="{label_w}" y="{height - 4}" fill="{MUTED}">box: quartiles, thick line: '
        "median, whiskers: 5th–95th percentile (passed units)</text></svg>"
    )
    return "".join(out)


# --- tables ------------------------------------------------------------------------------
def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    cls = [' class="n"' if i in numeric else "" for i in range(len(head))]
    out = ["<table><thead><tr>"]
    out += [f"<th{cls[i]}>{e(h)}</th>" for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for r in rows:  # cells arrive escaped (some carry markup of ours)
        out.append("<tr>" + "".join(f"<td{cls[i]}>{c}</td>" for i, c in enumerate(r)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def phases_table(phases: Sequence[PhaseStats]) -> str:
    if not phases:
        return ""
    return _table(
        ["phase", "units", "mean s", "median s", "p95 s", "max s"],
        [
            [
                e(p.phase),
                str(p.count),
                f"{p.mean:.2f}",
                f"{p.p50:.2f}",
                f"{p.p95:.2f}",
                f"{p.maximum:.2f}",
            ]
            for p in phases
        ],
        {1, 2, 3, 4, 5},
    )


def stations_table(s: LineStats) -> str:
    if not s.stations:
        return '<p class="empty">No station has worked on this lot yet.</p>'
    return _table(
        ["station", "host", "state", "last activity", "", "passed", "failed", "in progress"],
        [
            [
                e(st.station_id or "(unnamed)"),
                e(", ".join(st.hosts)),
                st.state(s.at),
                e(_iso(st.last_activity)),
                e(stats.ago(s.at, st.last_activity)),
                str(st.passed),
                f'<span class="fail">{st.failed}</span>' if st.failed else "0",
                str(st.in_progress),
            ]
            for st in s.stations
        ],
        {5, 6, 7},
    )


def failures_table(rows: Sequence[Failure], total: int) -> str:
    if not rows:
        return '<p class="empty">No failed attempts.</p>'
    note = (
        f'<p class="sub">the newest {len(rows)} of {total} failed attempts</p>'
        if total > len(rows)
        else ""
    )
    return note + _table(
        ["ended", "row", "unit", "station", "slot", "device", "result", "reason"],
        [
            [
                e(_iso(f.ended_at)),
                str(f.row),
                e(f.unit_id),
                e(f.station_id),
                e(f.slot),
                e(f.mac),
                e(f.result),
                e(f.reason),
            ]
            for f in rows
        ],
        {1},
    )


# --- the page ----------------------------------------------------------------------------
def render(s: LineStats, failed_rows: Sequence[Failure], failure_total: int) -> str:
    """The whole page for these figures."""
    st = s.states
    finished = s.passed + s.failed
    tiles = [
        (f"{st.get('done', 0)} / {s.total}", "rows done"),
        (str(st.get("pending", 0)), "pending"),
        (str(st.get("claimed", 0) + st.get("written", 0)), "in progress"),
        (str(st.get("failed", 0)), "rows failed"),
        (_pct(s.passed / finished if finished else None), "attempt yield"),
        (f"{s.units_per_hour:.0f}", "units/h, last hour of work"),
        (str(len(s.stations)), "stations"),
    ]
    other = (
        f'<p class="sub">and {s.other_failures} failures of other kinds</p>'
        if s.other_failures
        else ""
    )
    body = [
        f"<h1>Lot {e(s.lot)}</h1>",
        f'<div class="sub">shift report · {e(_iso(s.at))} · {s.passed} passed and '
        f"{s.failed} failed attempts</div>",
        '<div class="tiles">',
        *(f'<div class="tile"><b>{e(v)}</b><span>{e(k)}</span></div>' for v, k in tiles),
        "</div>",
        "<section><h2>Units per hour</h2>",
        throughput_chart(s),
        "</section>",
        '<div class="grid"><section><h2>Yield per slot</h2>',
        yield_chart(s.slots, "Yield per slot"),
        "</section><section><h2>Yield per station</h2>",
        yield_chart(s.stations_yield, "Yield per station"),
        "</section></div>",
        "<section><h2>Failures by reason (top ten)</h2>",
        reasons_chart(s),
        other,
        "</section>",
        "<section><h2>Time per phase</h2>",
        phases_chart(s.phases),
        phases_table(s.phases),
        "</section>",
        "<section><h2>Stations on the line</h2>",
        stations_table(s),
        "</section>",
        "<section><h2>Failures</h2>",
        failures_table(failed_rows, failure_total),
        "</section>",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Lot {e(s.lot)} — shift report</title><style>{STYLE}</style></head>"
        "<body>" + "\n".join(body) + "</body></html>\n"
    )


def write_report(ledger: Ledger, path: str | os.PathLike[str]) -> LineStats:
    """Read the lot's figures and write the page to ``path`` (whole or not at all)."""
    s = stats.line_stats(ledger)
    rows, total = stats.failures(ledger, MAX_FAILURES)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(render(s, rows, total), encoding="utf-8")
        tmp.replace(target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise StationError.at(
            str(target), f"cannot write the report: {err.strerror or err}", key="html"
        ) from None
    return s
