"""``station flash`` and ``station ports``: thin front ends over the flashing engine."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
from pathlib import Path
from typing import Any

from station.errors import ProblemList, StationError
from station.files import MAX_FLASH_FILE, InputFileError, read_input

CMDLINE = "command line"


def _parse_pairs(pairs: list[str], problems: ProblemList) -> list[tuple[int, Path]]:
    """ADDR FILE pairs: every address a number, every file readable and non-empty."""
    out: list[tuple[int, Path]] = []
    if len(pairs) % 2:
        problems.add(
            CMDLINE,
            0,
            len(pairs),
            "FILE",
            f"the address {pairs[-1]!r} has no file after it (give ADDR FILE pairs)",
        )
        pairs = pairs[:-1]
    for i in range(0, len(pairs), 2):
        addr_text, file_text = pairs[i], pairs[i + 1]
        try:
            addr = int(addr_text, 0)
            if addr < 0:
                raise ValueError
        except ValueError:
            problems.add(
                CMDLINE, 0, i + 1, "ADDR", f"not a flash address: {addr_text!r} (e.g. 0x9000)"
            )
            addr = -1
        path = Path(file_text)
        if not path.exists():
            problems.add(file_text, 0, 0, "FILE", "no such file")
        elif not path.is_file():
            problems.add(file_text, 0, 0, "FILE", "not a regular file (a folder, FIFO or device)")
        elif path.stat().st_size == 0:
            problems.add(file_text, 0, 0, "FILE", "the file is empty")
        elif path.stat().st_size > MAX_FLASH_FILE:
            problems.add(file_text, 0, 0, "FILE", "larger than any flash (128 MB)")
        if addr >= 0:
            out.append((addr, path))
    ordered = sorted(((a, p, p.stat().st_size) for a, p in out if p.is_file()), key=lambda t: t[0])
    for (a1, p1, s1), (a2, p2, _) in itertools.pairwise(ordered):
        if a1 + s1 > a2:
            problems.add(str(p2), 0, 0, "ADDR", f"0x{a2:x} overlaps {p1} (0x{a1:x}..0x{a1 + s1:x})")
    return out


def _load_firmware(
    path: str, chip: str, pairs: list[tuple[int, Path]], problems: ProblemList
) -> tuple[tuple[Any, ...], str]:
    """The build's regions and the chip to expect (the build's, unless --chip says otherwise:
    then a problem). Problems: the build's own, and pairs overlapping the build's files."""
    from esptool.targets import CHIP_DEFS

    from station.flashing.firmware import load_firmware

    try:
        build, regions = load_firmware(path)
    except StationError as err:
        problems.extend(err.problems)
        return (), chip
    build_chip = build.chip.lower().replace("-", "")
    if chip == "auto":
        chip = build_chip
    elif chip != build_chip and chip in CHIP_DEFS:
        problems.add(
            CMDLINE,
            0,
            0,
            "--chip",
            f"{chip} does not match the build, which is for {build_chip} ({build.path})",
        )
    for addr, file in pairs:
        if not file.is_file():
            continue
        end = addr + file.stat().st_size
        for r in regions:
            if addr < r.offset + len(r.data) and r.offset < end:
                problems.add(
                    str(file),
                    0,
                    0,
                    "ADDR",
                    f"0x{addr:x}..0x{end:x} overlaps the build's {r.name} "
                    f"(0x{r.offset:x}..0x{r.offset + len(r.data):x})",
                )
    return regions, chip


def flash(args: argparse.Namespace) -> int:
    """Write the same files to every port at once; one summary line per port."""
    from esptool.targets import CHIP_DEFS

    from station.flashing.jobs import FlashJob, JobResult, run_job
    from station.flashing.live import MIN_INTERVAL, LiveStatus, live_capable
    from station.flashing.types import WriteRegion

    problems = ProblemList()
    pairs = _parse_pairs(list(args.pairs), problems)
    chip = str(args.chip).lower().replace("-", "")
    if chip != "auto" and chip not in CHIP_DEFS:
        problems.add(
            CMDLINE,
            0,
            0,
            "--chip",
            f"unknown chip {args.chip!r}; one of: auto, {', '.join(sorted(CHIP_DEFS))}",
        )
    firmware: tuple[WriteRegion, ...] = ()
    if getattr(args, "firmware", None):
        firmware, chip = _load_firmware(args.firmware, chip, pairs, problems)
    elif not pairs and not problems:
        problems.add(
            CMDLINE, 0, 0, "ADDR FILE", "nothing to write: give ADDR FILE pairs or --firmware"
        )
    if args.baud <= 0:
        problems.add(CMDLINE, 0, 0, "--baud", f"not a baud rate: {args.baud}")
    seen: set[str] = set()
    for port in args.port:
        if port in seen:
            problems.add(CMDLINE, 0, 0, "--port", f"{port} is given twice")
        seen.add(port)
    problems.raise_if_any()
    try:
        files = [(a, read_input(p, MAX_FLASH_FILE, "a flash image"), p.name) for a, p in pairs]
    except InputFileError as err:  # replaced since it was checked
        raise StationError.at(CMDLINE, str(err), key="FILE") from None
    regions = firmware + tuple(WriteRegion(a, data, name) for a, data, name in files)
    jobs = [
        FlashJob(
            port=port,
            regions=regions,
            chip=chip,
            baud=args.baud,
            verify=not args.no_verify,
            no_stub=args.no_stub,
        )
        for port in args.port
    ]
    cancel = threading.Event()
    live = LiveStatus(args.port, sys.stdout) if live_capable(sys.stdout) else None
    results: list[JobResult | None] = [None] * len(jobs)

    def work(i: int) -> None:
        r = run_job(jobs[i], live.update if live is not None else None, cancel)
        results[i] = r
        if live is not None:
            live.finish(r.port, r.ok)

    threads = [
        threading.Thread(target=work, args=(i,), name=f"flash {j.port}", daemon=True)
        for i, j in enumerate(jobs)
    ]
    total = sum(len(r.data) for r in regions)
    print(
        f"flashing {len(regions)} file(s), {total} bytes, on {len(jobs)} port(s)…", file=sys.stderr
    )
    if firmware:
        from station.flashing.firmware import describe_regions

        print(f"firmware: {describe_regions(firmware)} (verified by MD5)", file=sys.stderr)
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(MIN_INTERVAL)
                if live is not None:
                    live.render()
    except KeyboardInterrupt:
        cancel.set()
        for t in threads:
            t.join()
        if live is not None:
            live.clear()
        raise
    if live is not None:
        live.clear()
    done = [
        r if r is not None else JobResult(j.port, False, "internal error: no result")
        for r, j in zip(results, jobs, strict=True)
    ]
    width = max(len(p) for p in args.port)
    for r in done:
        seconds = sum(r.durations.values())
        if r.ok:
            print(f"{r.port:<{width}}  ok      {r.chip} {r.mac}  {r.reason} in {seconds:.1f} s")
        else:
            who = f"{r.chip} {r.mac}  " if r.mac else ""
            print(f"{r.port:<{width}}  FAILED  {who}{r.phase}: {r.reason}")
    failed = sum(1 for r in done if not r.ok)
    if failed:
        print(f"{failed} of {len(done)} port(s) failed", file=sys.stderr)
        return 1
    return 0


def ports(args: argparse.Namespace) -> int:
    """List serial ports with USB location, VID:PID, serial number and slot name."""
    from station.flashing.ports import SlotMap, list_ports

    slots = SlotMap.load(args.slots) if getattr(args, "slots", None) else SlotMap()
    found = list_ports(slots, usb_only=not getattr(args, "all", False))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "device": p.device,
                        "slot": p.slot,
                        "location": p.location,
                        "vid": p.vid,
                        "pid": p.pid,
                        "serial_number": p.serial_number,
                        "description": p.description,
                    }
                    for p in found
                ],
                indent=2,
            )
        )
        return 0
    if not found:
        print("no USB serial ports found (plug in a device, or use --all)", file=sys.stderr)
        return 0
    rows = [("SLOT", "PORT", "USB ID", "SERIAL", "LOCATION", "DESCRIPTION")] + [
        (p.slot, p.device, p.usb_id, p.serial_number or "", p.location or "", p.description)
        for p in found
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0
