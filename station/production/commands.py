"""``station run`` (headless production) and ``station report`` (what the ledger knows)."""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from station.errors import StationError
from station.labels import LabelOutcome, lot_template, parse_output, renderer
from station.ledger import Ledger
from station.production.events import LedgerStatus
from station.production.lot import Lot, open_lot, read_lot_file
from station.production.orchestrator import Decision, LogEvent, PortUpdate
from station.production.session import SessionConfig, StationSession


def _iso(t: float | None) -> str:
    if not t:
        return ""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


class _RunPrinter:
    """Turns session events into one line per unit (stdout) and problems (stderr)."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err
        self.lock = threading.Lock()
        self.session: StationSession | None = None
        self.waiting: dict[str, str] = {}  # per port, what it last said it waits for
        self.labels_failed = 0

    def label_done(self, outcome: LabelOutcome) -> None:
        """A label printed (stdout) or not (stderr), from the label service's thread."""
        with self.lock:
            if outcome.ok:
                self.out.write(f"{outcome.text}\n")
                self.out.flush()
            else:
                self.labels_failed += 1
                self.err.write(f"error: label {outcome.unit_id} not printed: {outcome.text}\n")
                self.err.flush()

    def __call__(self, event: object) -> None:
        if isinstance(event, LabelOutcome):
            self.label_done(event)
            return
        with self.lock:
            if isinstance(event, PortUpdate):
                # a port looks for a device every --poll seconds (connecting, then waiting
                # again): say what it waits for once, until that changes or a unit ends
                if event.state == "waiting" and event.message:
                    if self.waiting.get(event.port) != event.message:
                        self.waiting[event.port] = event.message
                        self.err.write(f"waiting: {event.port}: {event.message}\n")
                        self.err.flush()
                elif event.state in ("passed", "failed"):
                    self.waiting.pop(event.port, None)
            if (
                isinstance(event, PortUpdate)
                and event.state in ("passed", "failed")
                and event.row_index is not None
            ):
                word = "PASS" if event.state == "passed" else "FAIL"
                self.out.write(
                    f"{word} {event.slot} unit={event.unit_id} "
                    f"row={event.row_index + 1} mac={event.mac or '?'} "
                    f"{event.elapsed:.1f}s {event.message}\n"
                )
                self.out.flush()
            elif isinstance(event, LogEvent) and event.level in ("warning", "error"):
                self.err.write(
                    f"{event.level}: {event.port + ': ' if event.port else ''}{event.text}\n"
                )
                self.err.flush()
            elif isinstance(event, LedgerStatus) and not event.offline:
                self.err.write("ledger back online\n")  # (its going away is an error line)
                self.err.flush()
            elif isinstance(event, Decision):
                self.err.write(
                    f"attention: {event.question} — not overwritten (headless run; "
                    "use the window or erase the region)\n"
                )
                self.err.flush()
        if isinstance(event, Decision) and self.session is not None:
            self.session.decide(event, None)  # headless: never overwritten


def _slot_names(slots_file: str | None, ports: list[str]) -> dict[str, str]:
    """Slot names of the given ports from a slot map (USB location -> name); else none."""
    if not slots_file:
        return {}
    from station import flashing

    slot_map = flashing.SlotMap.load(slots_file)
    listed = {info.device: info.slot for info in flashing.list_ports(slot_map)}
    return {port: listed[port] for port in ports if listed.get(port)}


def _check_labels(lot: Lot, output: str) -> None:
    """``--labels OUTPUT``: the output and the lot's label template are checked before any
    device is touched (the session then prints a label for each passed unit)."""
    kind, _target = parse_output(output, "--labels", "labels")
    if kind != "zpl":
        renderer(kind)  # made here, on the main thread, where Qt wants its application
    template, problems = lot_template(lot)
    if problems:
        raise StationError(problems)
    if template is None:
        raise StationError.at(
            str(lot.settings.path), "the lot has no [label] table; --labels needs one", key="label"
        )


def _check_security_enabled(lot: Lot) -> None:
    """A lot that burns eFuses runs only once an engineer enabled its exact recipe on this
    ledger (``station security enable``, or engineer mode in the window): a lot file copied
    onto a station, or a recipe changed since, burns nothing."""
    if getattr(lot, "security", None) is None:
        return
    from station.production import security_step

    if not security_step.enabled(lot):
        lot.close()
        from station.production.lotfile import Locator

        path = lot.settings.path
        line, column = Locator(path.read_text(encoding="utf-8")).find("recipes", "security")
        raise StationError.at(
            str(path),
            "this lot burns eFuses (irreversible) and its recipe is not enabled on this ledger: "
            "an engineer enables it once, with 'station security enable LOT' or in the window's "
            "engineer mode; nothing was touched",
            line=line,
            column=column,
            key="security",
        )


def _note(text: str) -> None:
    print(f"waiting: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Headless production: flash device after device on the given ports, one line per unit."""
    if args.count is not None and args.count < 1:
        raise StationError.at("--count", "must be 1 or more", key="count")
    lease = getattr(args, "lease", None)
    if lease is not None and not 1.0 <= lease <= 3600.0:
        raise StationError.at("--lease", "must be 1 to 3600 seconds", key="lease")
    lot = open_lot(args.lot, db_url=args.db, notify=_note)
    _check_security_enabled(lot)
    if lease is not None:  # else the lot file's ``lease`` (30 s when it has none)
        lot.ledger.lease = lease
    for warning in lot.mfg.warnings:  # allowed, but look like mistakes (never show a value)
        print(warning, file=sys.stderr)
    printer = _RunPrinter(sys.stdout, sys.stderr)
    labels = getattr(args, "labels", None) or ""
    if labels:
        try:
            _check_labels(lot, labels)
        except BaseException:
            lot.close()
            raise
    session = StationSession(
        SessionConfig(
            baud=args.baud,
            operator=args.operator,
            continuous=True,
            no_stub=args.no_stub,
            max_units=args.count,
            auto_retry=args.retries,
            poll_interval=args.poll,
            label_output=labels,
            print_on_pass=bool(labels),
        )
    )
    session.subscribe(printer)
    printer.session = session
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    old = signal.signal(signal.SIGTERM, on_term)
    interrupted = False
    try:
        session.set_lot(lot)
        orch = session.orchestrator
        assert orch is not None
        try:
            print(
                f"lot {lot.name}: {lot.ledger.count('pending')} pending of "
                f"{lot.ledger.count()} rows; ports: {', '.join(args.port)}",
                flush=True,
            )
            for line in _what_each_unit_gets(lot):
                print(line, flush=True)
            slots = _slot_names(args.slots, args.port)
            for port in args.port:
                orch.add_port(port, slot=slots.get(port))
            try:
                while not stop.is_set() and not orch.wait_idle(0.5):
                    pass
            except KeyboardInterrupt:
                interrupted = True
        finally:
            orch.close()
            session.labels.stop()  # the labels of every passed unit are printed before the end
        c = lot.ledger.counters()
        print(
            f"run: {orch.units_done} done, {orch.units_failed} failed; lot: {c.done} done, "
            f"{c.failed} failed, {c.remaining} remaining",
            flush=True,
        )
        if interrupted or stop.is_set():
            return 130
        if printer.labels_failed:
            return 1  # a passed unit without its label needs a reprint: not a clean run
        if args.count is not None:
            return 0 if orch.units_done >= args.count else 1
        return 0 if c.remaining == 0 and c.failed == 0 else 1
    finally:
        signal.signal(signal.SIGTERM, old)
        session.shutdown()
        lot.close()


def _what_each_unit_gets(lot: Lot) -> list[str]:
    """Lines naming the firmware and the NVS encryption a run writes, when the lot has them."""
    out = []
    if lot.firmware is not None:
        fw = lot.firmware
        out.append(f"firmware: {fw.describe()} from {fw.path} (sha256 {fw.sha256[:16]}…)")
    if lot.key_partition is not None:
        whose = "each unit's own, kept in keys/" if lot.per_device_keys else "the lot key"
        out.append(
            f"NVS encryption: key partition {lot.key_partition.name}@"
            f"0x{lot.key_partition.offset:x} ({whose})"
        )
    elif lot.keys is not None:
        out.append("NVS encryption: HMAC scheme (keys derived from the eFuse key; nothing extra)")
    sec = getattr(lot, "security", None)
    if sec is not None:  # station/production/security_step.py burns it
        out.append(
            f"security: {', '.join(sec.recipes)} ({sec.mode} mode, {sec.chip}): eFuses burned "
            "after each unit's verification, irreversibly ('station security plan' lists them)"
        )
    return out


# --- report ---------------------------------------------------------------------------------
@dataclass
class _Source:
    """What a report reads: the ledger, and the lot's values when the lot could be opened."""

    ledger: Ledger
    name: str
    columns: tuple[str, ...] = ()
    values: Callable[[int], Mapping[str, str]] | None = None
    where: str = ""  # the ledger reported on (reports read a private copy of it)


def _report_rows(src: _Source) -> Iterator[dict[str, Any]]:
    """Rows with state, device and attempts; values of the lot with secret columns masked."""
    led = src.ledger
    page = 2000
    for offset in range(0, led.count(), page):
        for r in led.rows(offset, page):
            values = src.values(r.index) if src.values is not None else {}
            yield {
                "row": r.index + 1,
                "line": r.line,
                "unit_id": r.unit_id,
                "state": r.state,
                "mac": r.mac or "",
                "port": r.port or "",
                "attempts": r.attempts,
                "reason": r.reason,
                "updated_at": _iso(r.updated_at),
                **{f"value.{c}": values.get(c, "") for c in src.columns},
            }


def summary(ledger: Ledger, name: str) -> dict[str, Any]:
    """Totals, yield and units per hour of a lot."""
    c = ledger.counters()
    counts = ledger.state_counts()
    attempts = ledger.attempts()
    tried = {a.row_index for a in attempts}
    first_try: dict[int, str | None] = {}
    for a in attempts:
        first_try.setdefault(a.row_index, a.result)
    first_pass = len([v for v in first_try.values() if v == "done"])
    finished = c.done + c.failed
    return {
        "lot": name,
        "rows": c.total,
        "states": counts,
        "done": c.done,
        "failed": c.failed,
        "remaining": c.remaining,
        "attempts": len(attempts),
        "yield": round(c.done / finished, 4) if finished else None,
        "first_pass_yield": round(first_pass / len(tried), 4) if tried else None,
        "units_per_hour": round(c.units_per_hour, 1),
        "devices": len({a.mac for a in attempts}),
        "ledger": str(ledger.path),
    }


def _open_for_report(args: argparse.Namespace, copy_folder: Path) -> tuple[_Source, Lot | None]:
    """The lot with its values, read from a private copy of its ledger (a report never
    creates nor writes a ledger); if the lot cannot be opened (e.g. its CSV changed after
    production started), the ledger alone, with a note on stderr."""
    from station.ledger.lotfiles import Marker, marker_path
    from station.production import ledgerlink

    settings = read_lot_file(args.lot)
    where = str(args.db or settings.default_db)
    db = ledgerlink.read_only_copy(where, copy_folder)
    if ledgerlink.is_postgresql(where):
        where = ledgerlink.display_url(where)
    try:
        lot = open_lot(args.lot, db_url=db, mode="report")
    except StationError as err:
        for problem in err.problems:
            print(f"note: {problem}", file=sys.stderr)
        print(
            "note: reporting from the ledger alone (the lot's values are not shown)",
            file=sys.stderr,
        )
        ledger = Ledger(db, create=False)
        try:
            marker = Marker.load(marker_path(settings.folder, settings.name))
            ledger.attach(settings.name, marker.key if marker else None)
        except StationError:
            ledger.close()
            raise
        return _Source(ledger, settings.name, where=where), None
    return _Source(
        lot.ledger,
        lot.name,
        lot.mfg.columns,
        lambda i: lot.masked_values(lot.row(i)),
        where,
    ), lot


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> object:
    """A report cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a
    leading ' (OWASP, CSV injection); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def report(args: argparse.Namespace) -> int:
    """What the ledger knows: rows (state, MAC, port, attempts), totals, yield, UPH."""
    from station.production.ledgerlink import temp_folder

    with temp_folder() as copy_folder:
        return _report(args, copy_folder)


def _report(args: argparse.Namespace, copy_folder: Path) -> int:
    src, lot = _open_for_report(args, copy_folder)
    try:
        totals = summary(src.ledger, src.name)
        totals["ledger"] = src.where or totals["ledger"]
        if getattr(args, "html", None):  # the shift report page: station.production.report_html
            from station.production.report_html import write_report

            write_report(src.ledger, args.html)
            print(f"lot {src.name}: report written to {args.html}")
            return 0
        if args.json:
            json.dump(
                {
                    "summary": totals,
                    "rows": list(_report_rows(src)),
                    "attempts": [
                        {
                            **a.__dict__,
                            "row": a.row_index + 1,
                            "timings": dict(a.timings),
                            "started_at": _iso(a.started_at),
                            "ended_at": _iso(a.ended_at),
                        }
                        for a in src.ledger.attempts()
                    ],
                    "audit": [a.__dict__ | {"at": _iso(a.at)} for a in src.ledger.audit_log()],
                },
                sys.stdout,
                indent=1,
            )
            sys.stdout.write("\n")
            return 0
        if args.csv:
            path = Path(args.csv)
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("w", newline="", encoding="utf-8") as f:
                writer: Any = None
                for rec in _report_rows(src):
                    if writer is None:
                        writer = csv.writer(f)
                        writer.writerow([_csv_cell(k) for k in rec])
                    writer.writerow([_csv_cell(v) for v in rec.values()])
            tmp.replace(path)
        out = sys.stdout
        y = totals["yield"]
        out.write(
            f"lot {totals['lot']}: {totals['rows']} rows — {totals['done']} done, "
            f"{totals['failed']} failed, {totals['remaining']} remaining; "
            f"yield {'-' if y is None else f'{y:.1%}'}; "
            f"{totals['units_per_hour']:.0f} units/hour; {totals['attempts']} attempts on "
            f"{totals['devices']} devices\n"
        )
        if args.csv:
            out.write(f"rows written to {args.csv}\n")
            return 0
        out.write(
            f"{'row':>6}  {'unit':<20} {'state':<8} {'mac':<17}  {'port':<24} "
            f"{'tries':>5}  reason\n"
        )
        for rec in _report_rows(src):
            out.write(
                f"{rec['row']:>6}  {rec['unit_id']:<20} {rec['state']:<8} "
                f"{rec['mac']:<17}  {rec['port']:<24} {rec['attempts']:>5}  "
                f"{rec['reason']}\n"
            )
        return 0
    finally:
        if lot is not None:
            lot.close()
        else:
            src.ledger.close()
