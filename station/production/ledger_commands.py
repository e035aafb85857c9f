"""``station ledger check|rebuild|release LOT``: the ledger against the lot's journal."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path

from station.errors import StationError
from station.production import ledgerlink
from station.production.lot import Lot, open_lot, read_lot_file


def ledger(args: argparse.Namespace) -> int:
    return {"check": check, "rebuild": rebuild, "release": release}[args.ledger_command](args)


def _key_file_of(lot: Lot) -> Callable[[int], Path]:
    return lambda i: lot.key_file(lot.row(i))


def check(args: argparse.Namespace) -> int:
    """List every difference between the ledger and the lot's journal; exit 1 if any."""
    settings = read_lot_file(args.lot)
    with ledgerlink.temp_folder() as tmp:
        db = ledgerlink.read_only_copy(str(args.db or settings.default_db), tmp)
        lot = open_lot(args.lot, db_url=db, mode="report")
        try:
            assert lot.link is not None
            found = ledgerlink.differences(lot.ledger, lot.link, _key_file_of(lot))
            rows, seq = lot.ledger.count(), lot.ledger.journal_seq()
        finally:
            lot.close()
    for line in found:
        print(line)
    if found:
        print(
            f"{len(found)} difference(s) between the ledger and the journal; to recreate the "
            f"ledger from the journal: station ledger rebuild {args.lot}",
            file=sys.stderr,
        )
        return 1
    print(f"the ledger and the journal agree ({rows} rows, {seq} changes)")
    return 0


def rebuild(args: argparse.Namespace) -> int:
    """Recreate the ledger from the lot's journal (and its unit key files); the ledger it
    replaces is moved aside, never deleted."""
    lot = open_lot(args.lot, db_url=args.db, mode="rebuild", notify=_note)
    try:
        assert lot.link is not None
        lines, notes = ledgerlink.rebuild(
            lot.ledger, lot.link, _key_file_of(lot), args.operator or getpass.getuser()
        )
        lot.backup()
        c = lot.ledger.state_counts()
        if lot.link.set_aside is not None:
            print(f"the previous ledger file was moved to {lot.link.set_aside}")
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(
            f"ledger {lot.ledger.path} rebuilt from {lines} journal lines: {c['done']} done, "
            f"{c['failed']} failed, {c['pending']} pending; the lot is bound to it"
        )
    finally:
        lot.close()
    return 0


def release(args: argparse.Namespace) -> int:
    """Release a row (a number, a unit id or a scan value): done, failed, or claimed by a run
    that is not alive; audited with the operator's name and the reason."""
    lot = open_lot(args.lot, db_url=args.db, notify=_note)
    try:
        led = lot.ledger
        text = args.row.strip()
        if text.isdigit() and 1 <= int(text) <= led.count():
            index = int(text) - 1
        else:
            found = led.find_scan(text)
            if found is None:
                raise StationError.at(
                    str(lot.settings.values), f"no row or unit {text!r} in this lot", key="row"
                )
            index = found.index
        before = led.row(index)
        led.release(
            index,
            args.reason,
            args.operator or getpass.getuser(),
            station_gone=args.station_gone,
        )
        print(
            f"row {index + 1} ({before.unit_id}) released (was {before.state}"
            f"{' on ' + before.mac if before.mac else ''}): {args.reason}"
        )
    finally:
        lot.close()
    return 0


def _note(text: str) -> None:
    print(f"waiting: {text}", file=sys.stderr, flush=True)
