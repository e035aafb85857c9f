"""``station security plan|enable|export LOT``: the eFuse steps per unit, an engineer's go-ahead,
and the key escrow.

The security layer (station.security) read against a lot: it lives here, with the other
commands that open lots."""

from __future__ import annotations

import argparse
from pathlib import Path

from station.errors import ProblemList, StationError
from station.security.lotcheck import LotSecurity, check_lot
from station.security.settings import parse_security

JOURNAL_SUFFIX = ".security.jsonl"  # beside the lot, until the ledger keeps the records
SHOW_UNITS = 20  # the plan lists this many units by name


def journal_path(lot_file: Path, name: str) -> Path:
    return lot_file.parent / f"{name}{JOURNAL_SUFFIX}"


def load(lot: str, chip: str | None = None) -> tuple[LotSecurity, object, list[str]]:
    """The lot's security checked against its own files: (checks, lot settings, unit ids).
    StationError with every problem of the lot file and the security table."""
    from station.production.lot import read_lot_file

    problems = ProblemList()
    settings = None
    try:
        settings = read_lot_file(lot)
    except StationError as err:
        problems.extend(err.problems)
    firmware = None
    partitions: tuple[object, ...] = ()
    bootloader = None
    source = ""
    units: list[str] = []
    if settings is not None:
        from station.partitions import load_table

        try:
            table = load_table(settings.partition_table)
            partitions = tuple(table.partitions)
            bootloader = table.bootloader_offset
        except StationError as err:
            problems.extend(err.problems)
        if settings.firmware is not None:
            from station.flashing.firmware import load_firmware

            try:
                args, firmware = load_firmware(settings.firmware)
                source = str(args.path)
                bootloader = (
                    args.bootloader_offset if args.bootloader_offset is not None else (bootloader)
                )
            except StationError as err:
                problems.extend(err.problems)
        units = _units(settings, problems)
    checked = check_lot(
        lot,
        encryption=settings.encryption if settings is not None else {},
        firmware=firmware,
        firmware_source=source,
        partitions=partitions,
        bootloader=bootloader,
        chip=chip,
    )
    problems.extend(checked.problems)
    problems.raise_if_any()
    return checked, settings, units


def _units(settings: object, problems: ProblemList) -> list[str]:
    from station.mfg import load_mfg, unit_id

    try:
        mfg = load_mfg(
            settings.config,  # type: ignore[attr-defined]
            settings.values,  # type: ignore[attr-defined]
            fileid=settings.fileid,  # type: ignore[attr-defined]
            version=settings.nvs_version,  # type: ignore[attr-defined]
            base_dir=settings.values.parent,  # type: ignore[attr-defined]
        )
    except StationError as err:
        problems.extend(err.problems)
        return []
    return [unit_id(mfg, r) for r in mfg.rows]


def plan(args: argparse.Namespace) -> int:
    """Print the eFuse writes of every unit, touching nothing."""
    from station.security.chips import chip_caps
    from station.security.escrow import key_path
    from station.security.recipes import build_plan

    checked, _lot, units = load(args.lot, args.chip)
    if checked.warning:
        print(f"warning: {checked.warning}")
    s = checked.settings
    if s is None:
        print(f"{args.lot}: no [security] table: the station burns no eFuses for this lot")
        return 0
    caps = chip_caps(s.chip)
    assert caps is not None
    the_plan = build_plan(s, caps)
    print(f"lot {args.lot}: recipes {', '.join(s.recipes)}")
    print(the_plan.text())
    irreversible = sum(1 for st in the_plan.steps if st.irreversible)
    print(f"{irreversible} of {len(the_plan.steps)} steps cannot be undone.")
    folder = s.key_folder
    per_unit = [
        n
        for n, on in (
            ("xts", s.has("flash_encryption")),
            ("hmac", s.has("nvs_hmac") and s.hmac_key_source == "per-unit"),
        )
        if on
    ]
    print(f"units: {len(units)}")
    shown = units if len(units) <= SHOW_UNITS else units[:SHOW_UNITS]
    for u in shown:
        files = []
        for name in per_unit:
            try:
                p = key_path(folder, u, name)
            except StationError as err:
                files.append(str(err))
                continue
            state = "escrowed" if p.exists() else "made at its first burn"
            files.append(f"{p.relative_to(s.lot_file.parent)} ({state})")
        print(f"  {u}: same steps" + (f"; keys {', '.join(files)}" if files else ""))
    if len(shown) < len(units):
        print(f"  … and {len(units) - len(shown)} more units, the same steps")
    return 0


def enable(args: argparse.Namespace) -> int:
    """An engineer enables the lot's exact eFuse recipe on its ledger (audited), as engineer
    mode does in the window: until then ``station run`` refuses the lot. Asks the engineer
    PIN of this machine and the lot's name, as a confirmation of what cannot be undone."""
    import getpass
    import sys

    from station.production import engineer, security_step
    from station.production.lot import open_lot

    lot = open_lot(args.lot, db_url=args.db)
    with lot:
        if lot.security is None:
            print(f"{args.lot}: no [security] table: the station burns no eFuses for this lot")
            return 0
        if security_step.enabled(lot):
            print(f"lot {lot.name}: its eFuse recipe is enabled already")
            return 0
        store = engineer.PinStore()
        if not store.has_pin:
            raise StationError.at(
                str(store.path),
                "no engineer PIN on this machine: set one with station engineer-pin",
            )
        print(f"lot {lot.name}: {security_step.recipe_text(lot)}")
        if not store.check(getpass.getpass("Engineer PIN: ")):
            print("wrong PIN: nothing enabled", file=sys.stderr)
            return 2
        typed = input(f"Burning eFuses cannot be undone. Type the lot's name ({lot.name}): ")
        if typed.strip() != lot.name:
            print("not confirmed: nothing enabled", file=sys.stderr)
            return 2
        security_step.enable(lot, args.operator)
    print(f"lot {lot.name}: eFuse burning enabled (audited, by {args.operator})")
    return 0


def export(args: argparse.Namespace) -> int:
    """Hand the escrow over: every per-device key and a manifest, to a folder or archive."""
    from station.security.escrow import KeyEscrow
    from station.security.journal import JsonlJournal

    # only the table: a lot whose firmware changed since must still hand its keys over
    s, problems = parse_security(args.lot)
    if problems:
        raise StationError(problems)
    if s is None:
        raise StationError.at(
            args.lot, "the lot has no [security] table: no keys to export", key="security"
        )
    name = _lot_name(s.lot_file)
    journal = JsonlJournal(journal_path(s.lot_file, name))  # before the ledger kept them
    recorded, devices = journal.keys(), journal.devices()
    ledger_keys, ledger_devices = _ledger_records(args, name, s.lot_file.parent)
    recorded.update(ledger_keys)
    devices.update(ledger_devices)
    escrow = KeyEscrow(s.key_folder, journal)
    entries = escrow.entries()
    dest = escrow.export(args.out, devices=devices, recorded=recorded)
    print(f"exported {len(entries)} key file(s) and manifest.json to {dest}")
    return 0


def _ledger_records(
    args: argparse.Namespace, name: str, folder: Path
) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """The key hashes and devices the lot's ledger recorded (read only; none without one)."""
    from station.ledger.readonly import ReadOnlyLedger
    from station.ledger.security_steps import LedgerJournal

    url = str(getattr(args, "db", None) or folder / f"{name}.station.db")
    if "://" not in url and not Path(url).is_file():
        return {}, {}
    ledger = ReadOnlyLedger(url)
    try:
        ledger.attach(name)
        journal = LedgerJournal(ledger, create=False)
        return journal.keys(), journal.devices()
    finally:
        ledger.close()


def _lot_name(lot_file: Path) -> str:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    name = tomllib.loads(lot_file.read_text(encoding="utf-8")).get("name")
    return name if isinstance(name, str) and name else lot_file.stem


def main(args: argparse.Namespace) -> int:
    return {"plan": plan, "enable": enable, "export": export}[args.security_command](args)
