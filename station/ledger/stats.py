"""The figures of a lot for the dashboard and the shift report, read from the ledger's tables.

Read-only and Qt-free. Everything is either aggregated by SQL that SQLite and PostgreSQL both
run the same way (GROUP BY, integer division of a millisecond timestamp) or computed in Python
over a bounded query (phase timings, failure reasons), so a lot of 100 000 units costs the same
few queries as a lot of ten.

Definitions used throughout:

- an attempt *passed* when its result is ``done``; it *failed* when its result is ``failed`` or
  ``interrupted`` (the station stopped during it); ``cancelled`` attempts (an operator stopped
  them) and attempts still running count for neither;
- yield = passed / (passed + failed), per slot and per station, over the lot's whole life;
- units per hour are counted per time bucket of the lot's life from the attempts' end times.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from station.flashing.types import PHASES
from station.ledger.ledger import Ledger

FAILED_RESULTS = ("failed", "interrupted")
# the phases the orchestrator times are ordered as a unit goes through them (PHASES)
BUCKETS = (60, 300, 900, 1800, 3600, 7200, 4 * 3600, 8 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 48  # the lot's life is cut into at most this many buckets
PHASE_SAMPLE = 5000  # phase timings are taken from this many most recent passed attempts
TOP_REASONS = 10
HISTOGRAM_BINS = 12
QUIET = 600.0  # a running station that did nothing for this long is shown as quiet

_FINISHED = "result IN ('done', 'failed', 'interrupted')"
_FINISHED_SET = frozenset(("done", "failed", "interrupted"))
# S608 below: statements are built from module constants only, never from user input
# one scan of the lot's attempts gives yields, stations and the lot's span at once
_GROUPS = (
    "SELECT station_id, slot, port, result, COUNT(*), MIN(ended_at), MAX(ended_at),"
    " MAX(started_at) FROM attempts WHERE lot_id = ? GROUP BY station_id, slot, port, result"
)
# integer division of integer milliseconds: the same bucket on SQLite and PostgreSQL (a CAST of
# a float to an integer truncates on one and rounds on the other; of ms, that is 1 ms at most)
_BUCKETS = (
    "SELECT CAST(ended_at * 1000 AS BIGINT) / ? AS b, result, COUNT(*) FROM attempts"  # noqa: S608
    f" WHERE lot_id = ? AND ended_at IS NOT NULL AND {_FINISHED} GROUP BY b, result ORDER BY b"
)
_REASONS = (
    "SELECT reason, COUNT(*) FROM attempts WHERE lot_id = ?"
    " AND result IN ('failed', 'interrupted') GROUP BY reason"
)
# "+lot_id" keeps SQLite off the lot_id indexes here: walking the table back from the newest
# id stops after LIMIT rows (4 ms for 5000 of 100 000), where the index sorted them all (500 ms)
_TIMINGS = (
    "SELECT timings FROM attempts WHERE +lot_id = ? AND result = 'done' ORDER BY id DESC LIMIT ?"
)
_STATION_RUNS = (
    "SELECT station_id, host, MAX(started_at), MAX(ended_at),"
    " SUM(CASE WHEN ended_at IS NULL THEN 1 ELSE 0 END)"
    " FROM runs WHERE lot_id = ? GROUP BY station_id, host"
)
_FAILURES = (
    "SELECT a.id, a.row_idx, r.unit_id, a.station_id, a.slot, a.port, a.mac, a.result,"
    " a.reason, a.ended_at FROM attempts a JOIN rows r ON r.lot_id = a.lot_id"
    " AND r.idx = a.row_idx WHERE a.lot_id = ? AND a.result IN ('failed', 'interrupted')"
    " ORDER BY a.id DESC LIMIT ?"
)
_FAILURE_COUNT = (
    "SELECT COUNT(*) FROM attempts WHERE lot_id = ? AND result IN ('failed', 'interrupted')"
)


@dataclass(frozen=True)
class Bucket:
    """Attempts that ended in one time bucket [start, start + seconds)."""

    start: float
    passed: int
    failed: int


@dataclass(frozen=True)
class Throughput:
    """The lot's life in buckets of equal length; empty before the first attempt ends."""

    bucket_seconds: int
    buckets: tuple[Bucket, ...]

    def units_per_hour(self, bucket: Bucket) -> float:
        return bucket.passed * 3600.0 / self.bucket_seconds


@dataclass(frozen=True)
class YieldLine:
    """Passed and failed attempts of one slot or one station."""

    name: str
    passed: int
    failed: int
    station_id: str = ""

    @property
    def rate(self) -> float | None:
        n = self.passed + self.failed
        return self.passed / n if n else None


@dataclass(frozen=True)
class ReasonCount:
    """One kind of failure: the reason with its varying parts (MACs, ports, numbers) replaced."""

    reason: str
    count: int
    example: str  # the most frequent original wording


@dataclass(frozen=True)
class PhaseStats:
    """How long one phase took over the passed attempts (seconds)."""

    phase: str
    count: int
    mean: float
    minimum: float
    p5: float
    p25: float
    p50: float
    p75: float
    p95: float
    maximum: float
    bins: tuple[tuple[float, float, int], ...]  # (from, to, count); the last one takes the rest


@dataclass(frozen=True)
class StationActivity:
    """One station (PC) of the line: what it did and when it last did anything."""

    station_id: str
    hosts: tuple[str, ...]
    running: bool  # a run of it is open (a station killed outright also leaves one open)
    last_activity: float | None
    passed: int
    failed: int
    in_progress: int

    def state(self, now: float) -> str:
        """``running``; ``quiet`` when its run is open but it did nothing for QUIET seconds (it
        may have died: a killed station cannot end its run); or ``stopped``."""
        if not self.running:
            return "stopped"
        if self.last_activity is None or now - self.last_activity > QUIET:
            return "quiet"
        return "running"


@dataclass(frozen=True)
class Failure:
    """One failed attempt, for the table of failures."""

    attempt_id: int
    row: int  # 1-based
    unit_id: str
    station_id: str
    slot: str
    mac: str
    result: str
    reason: str
    ended_at: float | None


@dataclass(frozen=True)
class LineStats:
    """Every figure of the dashboard and the report, read at ``at``."""

    lot: str
    at: float
    states: dict[str, int]
    throughput: Throughput
    slots: tuple[YieldLine, ...]
    stations_yield: tuple[YieldLine, ...]
    reasons: tuple[ReasonCount, ...]
    other_failures: int  # failures beyond the top reasons
    phases: tuple[PhaseStats, ...]
    stations: tuple[StationActivity, ...]
    units_per_hour: float = 0.0  # over the last hour of work, as the station's status bar

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def passed(self) -> int:
        return sum(s.passed for s in self.slots)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.slots)


# --- reasons -----------------------------------------------------------------------------
_NORMALISE = [
    (re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b", re.I), "<MAC>"),
    (re.compile(r"\b(?:socket|rfc2217|loop|spy|hwgrep)://\S+", re.I), "<port>"),
    (re.compile(r"(?<![\w/])/dev/[\w./-]+"), "<port>"),
    (re.compile(r"\bCOM\d+\b", re.I), "<port>"),
    (re.compile(r"\brun [0-9a-f]{6,}\b", re.I), "run <id>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<hash>"),
    (re.compile(r"\d+(?:\.\d+)?"), "N"),
]


def normalise_reason(reason: str) -> str:
    """The reason with what differs between occurrences of one failure replaced, so that the
    same failure on two devices, ports or rows groups together."""
    text = " ".join(reason.split())
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text.strip(" .;:") or "(no reason given)"


def group_reasons(
    counted: list[tuple[str, int]], top: int = TOP_REASONS
) -> tuple[tuple[ReasonCount, ...], int]:
    """Reasons grouped by their normalised text, most frequent first; and the count of the rest."""
    totals: Counter[str] = Counter()
    examples: dict[str, tuple[int, str]] = {}
    for reason, n in counted:
        key = normalise_reason(reason or "")
        totals[key] += n
        if key not in examples or n > examples[key][0]:
            examples[key] = (n, reason or "")
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    head = tuple(ReasonCount(k, n, examples[k][1]) for k, n in ranked[:top])
    return head, sum(n for _k, n in ranked[top:])


# --- distributions -----------------------------------------------------------------------
def quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated between neighbours (numpy's default)."""
    if not ordered:
        return 0.0
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _nice_step(span: float, bins: int) -> float:
    """A round bin width (1, 2 or 5 times a power of ten) so that ``bins`` of them cover span."""
    if span <= 0:
        return 0.1
    raw = span / bins
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power  # pragma: no cover - the loop always returns


def phase_stats(phase: str, values: list[float], bins: int = HISTOGRAM_BINS) -> PhaseStats:
    """Percentiles and a histogram of one phase's durations; the histogram covers up to the
    95th percentile in round steps, its last bin takes everything above."""
    v = sorted(values)
    p95 = quantile(v, 0.95)
    step = _nice_step(p95, bins - 1)
    edges = [i * step for i in range(bins)]
    counts = [0] * bins
    for x in v:
        counts[min(int(x // step), bins - 1)] += 1
    hist = tuple(
        (edges[i], edges[i] + step if i < bins - 1 else math.inf, counts[i]) for i in range(bins)
    )
    return PhaseStats(
        phase=phase,
        count=len(v),
        mean=sum(v) / len(v) if v else 0.0,
        minimum=v[0] if v else 0.0,
        p5=quantile(v, 0.05),
        p25=quantile(v, 0.25),
        p50=quantile(v, 0.5),
        p75=quantile(v, 0.75),
        p95=p95,
        maximum=v[-1] if v else 0.0,
        bins=hist,
    )


def _phase_order(name: str) -> tuple[int, str]:
    return (PHASES.index(name) if name in PHASES else len(PHASES), name)


# --- the figures -------------------------------------------------------------------------
def _q(ledger: Ledger, statement: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
    # the ledger's own read path: this thread's connection, the dialect's placeholders
    return ledger._q(statement, args)


Groups = list[tuple[Any, ...]]  # rows of _GROUPS


def groups(ledger: Ledger) -> Groups:
    """The lot's attempts counted per station, slot, port and result (one scan)."""
    return _q(ledger, _GROUPS, (ledger._lot,))


def throughput(ledger: Ledger, grouped: Groups | None = None) -> Throughput:
    """Passed and failed attempts per time bucket over the lot's life."""
    finished = [
        g for g in (groups(ledger) if grouped is None else grouped) if g[3] in _FINISHED_SET
    ]
    ends = [float(g[i]) for g in finished for i in (5, 6) if g[i] is not None]
    if not ends:
        return Throughput(BUCKETS[0], ())
    span = max(ends) - min(ends)
    size = next((b for b in BUCKETS if span / b < MAX_BUCKETS), BUCKETS[-1])
    per: dict[int, list[int]] = {}
    for b, result, count in _q(ledger, _BUCKETS, (size * 1000, ledger._lot)):
        slot = per.setdefault(int(b), [0, 0])
        slot[0 if result == "done" else 1] += int(count)
    lo, hi = min(per), max(per)
    return Throughput(
        size,
        tuple(
            Bucket(float(k * size), *per.get(k, [0, 0]))  # empty buckets stay on the chart
            for k in range(lo, hi + 1)
        ),
    )


def yields(
    ledger: Ledger, grouped: Groups | None = None
) -> tuple[tuple[YieldLine, ...], tuple[YieldLine, ...]]:
    """Yield per slot (named ``station / slot`` when the line has several stations) and per
    station, in name order."""
    per_slot: dict[tuple[str, str], list[int]] = {}
    per_station: dict[str, list[int]] = {}
    for station_id, slot, port, result, count, *_ in groups(ledger) if grouped is None else grouped:
        if result not in _FINISHED_SET:
            continue
        i = 0 if result == "done" else 1
        per_slot.setdefault((station_id, slot or port), [0, 0])[i] += int(count)
        per_station.setdefault(station_id, [0, 0])[i] += int(count)
    several = len(per_station) > 1
    slots = tuple(
        YieldLine(f"{st} / {slot}" if several else slot, p, f, st)
        for (st, slot), (p, f) in sorted(per_slot.items(), key=lambda kv: _natural(kv[0]))
    )
    stations = tuple(
        YieldLine(st or "(unnamed)", p, f, st) for st, (p, f) in sorted(per_station.items())
    )
    return slots, stations


def _natural(key: tuple[str, ...]) -> list[object]:
    """Sort key that puts "slot 2" before "slot 10"."""
    out: list[object] = []
    for part in key:
        out += [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", part)]
    return out


def reasons(ledger: Ledger, top: int = TOP_REASONS) -> tuple[tuple[ReasonCount, ...], int]:
    """The most frequent kinds of failure, and how many failures are of other kinds."""
    rows = _q(ledger, _REASONS, (ledger._lot,))
    return group_reasons([(str(r), int(n)) for r, n in rows], top)


def phases(ledger: Ledger, sample: int = PHASE_SAMPLE) -> tuple[PhaseStats, ...]:
    """Time per phase over the ``sample`` most recent passed attempts."""
    values: dict[str, list[float]] = {}
    for (text,) in _q(ledger, _TIMINGS, (ledger._lot, sample)):
        try:
            timings = json.loads(text)
        except (TypeError, ValueError):
            continue
        if not isinstance(timings, dict):
            continue
        for name, seconds in timings.items():
            if isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0:
                values.setdefault(str(name), []).append(float(seconds))
    return tuple(phase_stats(name, values[name]) for name in sorted(values, key=_phase_order))


def stations(ledger: Ledger, grouped: Groups | None = None) -> tuple[StationActivity, ...]:
    """Each station that ran or tried units of this lot, with its last activity."""
    lot = ledger._lot
    found: dict[str, dict[str, Any]] = {}

    def entry(st: str) -> dict[str, Any]:
        return found.setdefault(
            st, {"hosts": set(), "open": 0, "last": None, "p": 0, "f": 0, "busy": 0}
        )

    def later(a: float | None, b: float | None) -> float | None:
        return b if a is None else a if b is None else max(a, b)

    for st, host, started, ended, open_runs in _q(ledger, _STATION_RUNS, (lot,)):
        e = entry(st)
        e["hosts"].add(host)
        e["open"] += int(open_runs or 0)
        e["last"] = later(later(e["last"], started), ended)
    for st, _slot, _port, result, count, _first, ended, started in (
        groups(ledger) if grouped is None else grouped
    ):
        e = entry(st)
        e["last"] = later(later(e["last"], started), ended)
        key = {"done": "p", "failed": "f", "interrupted": "f", None: "busy"}.get(result)
        if key is not None:
            e[key] += int(count)
    return tuple(
        StationActivity(
            station_id=st,
            hosts=tuple(sorted(e["hosts"])),
            running=e["open"] > 0,
            last_activity=None if e["last"] is None else float(e["last"]),
            passed=e["p"],
            failed=e["f"],
            in_progress=e["busy"],
        )
        for st, e in sorted(found.items())
    )


def failures(ledger: Ledger, limit: int = 1000) -> tuple[list[Failure], int]:
    """The most recent failed attempts (newest first, at most ``limit``) and how many there are."""
    lot = ledger._lot
    total = int(_q(ledger, _FAILURE_COUNT, (lot,))[0][0])
    out = [
        Failure(
            attempt_id=int(t[0]),
            row=int(t[1]) + 1,
            unit_id=str(t[2]),
            station_id=str(t[3]),
            slot=str(t[4] or t[5]),
            mac=str(t[6]),
            result=str(t[7]),
            reason=str(t[8]),
            ended_at=None if t[9] is None else float(t[9]),
        )
        for t in _q(ledger, _FAILURES, (lot, limit))
    ]
    return out, total


def line_stats(ledger: Ledger, *, now: float | None = None) -> LineStats:
    """Every figure of the lot at once (a handful of queries; run it off the GUI thread)."""
    at = time.time() if now is None else now
    grouped = groups(ledger)
    slots, by_station = yields(ledger, grouped)
    top, other = reasons(ledger)
    return LineStats(
        lot=ledger.lot_name,
        at=at,
        states=ledger.state_counts(),
        throughput=throughput(ledger, grouped),
        slots=slots,
        stations_yield=by_station,
        reasons=top,
        other_failures=other,
        phases=phases(ledger),
        stations=stations(ledger, grouped),
        units_per_hour=ledger.counters(now=at).units_per_hour,
    )


def ago(now: float, t: float | None) -> str:
    """How long ago ``t`` was, in the words a supervisor reads at a glance."""
    if t is None:
        return "never"
    s = max(0.0, now - t)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.0f} days ago"
