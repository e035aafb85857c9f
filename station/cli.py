"""The command line: a thin front end over the library.

This is the only place that turns :class:`~station.errors.StationError` into exit codes
(2 for bad input, 1 for a failed device). Each command's work lives in its layer; handlers are
imported lazily so that headless commands never load Qt.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from station import __version__
from station.errors import StationError
from station.native import limit_malloc_arenas

if TYPE_CHECKING:
    from station.labels import Renderer

Handler = Callable[[argparse.Namespace], int]

# command name -> "module:function"; the function takes the parsed arguments, returns an exit code
HANDLERS: dict[str, str] = {
    "gui": "station.gui.app:run",
    "generate": "station.mfg.commands:generate",
    "generate-key": "station.mfg.commands:generate_key",
    "nvs": "station.nvs.commands:nvs",
    "inspect": "station.production.inspect_command:inspect",
    "partitions": "station.partitions.commands:show",
    "flash": "station.flashing.commands:flash",
    "ports": "station.flashing.commands:ports",
    "run": "station.production.commands:run",
    "report": "station.production.commands:report",
    "ledger": "station.production.ledger_commands:ledger",
    "self-test": "station.selftest:run",
    "engineer-pin": "station.production.engineer:set_pin_command",
    "security": "station.production.security_commands:main",
    "matter": "station.matter.commands:matter",
}


# Modules only the "gui" extra installs (the window, labels, the demo's simulated devices).
GUI_EXTRA_MODULES = frozenset({"PySide6", "shiboken6", "segno", "esp32_mock_bootloader"})
GUI_EXTRA_HINT = "pip install 'station[gui]'"


def missing_gui_extra(err: ImportError) -> str | None:
    """The module of the "gui" extra whose absence ``err`` reports, else None."""
    root = (err.name or "").split(".")[0]
    return root if root in GUI_EXTRA_MODULES else None


def _int_auto(text: str) -> int:
    """An integer in decimal or 0x hex, as ESP-IDF tools accept."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _hmac_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key_protect_hmac",
        action="store_true",
        help="protect the NVS keys with the HMAC scheme (eFuse HMAC key)",
    )
    p.add_argument("--kp_hmac_keygen", action="store_true", help="generate a new HMAC key")
    p.add_argument("--kp_hmac_inputkey", metavar="F", help="a 32-byte HMAC key file to use")
    p.add_argument("--kp_hmac_keyfile", metavar="F", help="file name for a generated HMAC key")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="station",
        description="Factory flashing station for Espressif chips. Without a command: the window.",
    )
    parser.add_argument("--version", action="version", version=f"station {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the window with simulated devices and a sample lot (no hardware)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        dest="self_test",
        help="headless check that this installation works; one line per check",
    )
    parser.add_argument(
        "--self-test-port",
        metavar="P",
        dest="self_test_port",
        help="with --self-test: also flash the (simulated) device on this port",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", help="the station window")
    p.add_argument("lot", nargs="?", help="a lot file (lot.toml) to open")
    p.add_argument("--demo", action="store_true", help="simulated devices and a sample lot")
    p.add_argument("--db", help="ledger database URL (default: beside the lot)")
    p.add_argument(
        "--watch",
        action="store_true",
        help="watch the line read-only: the dashboard and the rows, no ports (a supervisor PC)",
    )

    p = sub.add_parser("generate", help="mfg_gen drop-in: one NVS image per row of a lot")
    p.add_argument("conf", help="mfg_gen config CSV (key,type,encoding[,REPEAT])")
    p.add_argument("values", help="master values CSV, one row per device")
    p.add_argument("prefix", help="file name prefix of the images")
    p.add_argument("size", help="partition size in bytes (multiple of 4096, e.g. 0x6000)")
    p.add_argument("--outdir", default=".", help="output folder (default: current folder)")
    p.add_argument("--fileid", help="the values column that names each file (default: row index)")
    p.add_argument(
        "--prefix_num",
        nargs=2,
        type=int,
        metavar=("START", "LEN"),
        help="number the files from START with LEN digits",
    )
    p.add_argument("--version", type=int, choices=(1, 2), default=2, help="NVS format version")
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="worker processes (default: one per core for big lots)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--keygen", action="store_true", help="encrypt with a new key per device")
    g.add_argument("--inputkey", metavar="F", help="encrypt with this key partition file")
    _hmac_options(p)

    p = sub.add_parser("generate-key", help="an NVS encryption key partition image")
    p.add_argument("--keyfile", metavar="F", help="file name of the key partition image")
    p.add_argument("--outdir", default=".", help="output folder (default: current folder)")
    _hmac_options(p)

    p = sub.add_parser("nvs", help="nvs_partition_gen drop-in: a key,type,encoding,value CSV")
    p.add_argument("csv", help="key,type,encoding,value CSV")
    p.add_argument("out", help="image file to write")
    p.add_argument("size", help="partition size in bytes (multiple of 4096)")
    p.add_argument("--version", type=int, choices=(1, 2), default=2, help="NVS format version")
    p.add_argument("--inputkey", metavar="F", help="encrypt with this key partition file")
    p.add_argument("--keygen", action="store_true", help="encrypt with a newly generated key")
    p.add_argument(
        "--keyfile",
        metavar="F",
        help="with --keygen: name of the key file in OUTDIR/keys/ (never overwritten)",
    )
    p.add_argument("--outdir", default=".", help="where --keygen writes keys/ (default: .)")
    _hmac_options(p)

    p = sub.add_parser("inspect", help="decode an NVS image")
    p.add_argument("image", help="NVS partition image")
    p.add_argument("--key", metavar="F", help="key partition file, for an encrypted image")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("partitions", help="read a partition table (CSV, binary or build folder)")
    p.add_argument("table", help="partitions.csv, partition-table.bin or an ESP-IDF build folder")
    p.add_argument("--partition", help="name of the factory-data partition (default: guessed)")
    p.add_argument("--flash-size", dest="flash_size", help="flash size (e.g. 4MB) for checks")
    p.add_argument(
        "--offset",
        type=_int_auto,
        metavar="ADDR",
        help="where the table lives in flash (default 0x8000, or the build's)",
    )
    p.add_argument("--chip", help="chip (esp32, esp32c3, …): places the bootloader in the map")
    p.add_argument("--app", metavar="FILE", help="check that this app image fits its app partition")
    p.add_argument(
        "--bootloader",
        metavar="FILE",
        help="check that this bootloader image ends before the partition table",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("flash", help="write and verify the same files on every port at once")
    p.add_argument(
        "--port",
        action="append",
        required=True,
        metavar="P",
        help="serial port (COM7, /dev/ttyUSB0, socket://host:port); repeat for more",
    )
    p.add_argument("--chip", default="auto", help="expected chip (auto, esp32, esp32c3, …)")
    p.add_argument("--baud", type=int, default=460800, help="baud rate while writing")
    p.add_argument(
        "--no-stub",
        action="store_true",
        dest="no_stub",
        help="talk to the ROM loader only (slower, for odd devices)",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        dest="no_verify",
        help="skip reading back (the MD5 check still runs)",
    )
    p.add_argument(
        "--firmware",
        metavar="BUILD",
        help="ESP-IDF build folder or its flasher_args.json: also write its "
        "bootloader, partition table and app, in the same connection",
    )
    p.add_argument("pairs", nargs="*", metavar="ADDR FILE", help="address and file, repeated")

    p = sub.add_parser("ports", help="list serial ports with USB location and slot names")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--slots",
        metavar="F",
        help='JSON file mapping USB locations to slot names {"1-4.2": "slot 3"}',
    )
    p.add_argument("--all", action="store_true", help="also list ports that are not USB")

    p = sub.add_parser("run", help="headless production run of a lot with the ledger")
    p.add_argument("lot", help="lot file (lot.toml)")
    p.add_argument("--port", action="append", required=True, metavar="P", help="serial port")
    p.add_argument("--count", type=int, help="stop after N verified units")
    p.add_argument("--baud", type=int, default=460800, help="baud rate while writing")
    p.add_argument("--operator", default="", help="operator name for the ledger")
    p.add_argument("--db", help="ledger database URL (default: beside the lot)")
    p.add_argument(
        "--lease",
        type=float,
        metavar="S",
        help="seconds this station's claims stay its own without a renewal; once run out, any "
        "station of the line recovers them (default: the lot file's lease, else 30; renewed "
        "every third of it)",
    )
    p.add_argument(
        "--no-stub",
        action="store_true",
        dest="no_stub",
        help="talk to the ROM loader only (slower; needed by simulated devices)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        metavar="N",
        help="retry a failed unit at once on the same device N times (default 1)",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between looks for the next device on a port (default 1)",
    )
    p.add_argument(
        "--slots",
        metavar="F",
        help="slot map (JSON: USB location -> slot name) to name the ports by",
    )
    p.add_argument(
        "--labels",
        metavar="OUTPUT",
        help="print each passed unit's label: pdf:PATH ({unit_id} in PATH), zpl:tcp://HOST:9100, "
        "zpl:/dev/usb/lp0, printer:[NAME] (pdf: and printer: need station[gui])",
    )

    sub.add_parser(
        "engineer-pin",
        help="set this machine's engineer PIN (as administrator: it is kept machine-wide)",
    )

    from station.matter.options import add_parser as add_matter_parser

    add_matter_parser(sub)

    p = sub.add_parser("report", help="what the ledger knows about a lot")
    p.add_argument("lot", help="lot file (lot.toml)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--csv", metavar="F", help="write the rows to a CSV file")
    g.add_argument("--html", metavar="F", help="write a shift report page (charts, failures)")
    p.add_argument("--db", help="ledger database URL (default: beside the lot)")

    p = sub.add_parser("ledger", help="check the ledger against the lot's journal, rebuild it")
    acts = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    q = acts.add_parser("check", help="list every difference between the ledger and the journal")
    q.add_argument("lot", help="lot file (lot.toml)")
    q = acts.add_parser("rebuild", help="recreate the ledger from the lot's journal")
    q.add_argument("lot", help="lot file (lot.toml)")
    q.add_argument("--operator", default="", help="who rebuilds it (audited)")
    q = acts.add_parser("release", help="release a row or a stopped station's claim (audited)")
    q.add_argument("lot", help="lot file (lot.toml)")
    q.add_argument("row", help="row number, unit id or scan value")
    q.add_argument("--reason", required=True, help="why (audited)")
    q.add_argument("--operator", default="", help="supervisor's name (default: login name)")
    q.add_argument(
        "--station-gone",
        action="store_true",
        dest="station_gone",
        help="the claim's station (another host) is switched off or gone",
    )
    for q in acts.choices.values():
        q.add_argument("--db", help="ledger database URL (default: beside the lot)")
    _security_parser(sub)
    return parser


def _security_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("security", help="eFuse recipes of a lot: the plan, the key escrow")
    actions = p.add_subparsers(dest="security_command", metavar="ACTION", required=True)
    q = actions.add_parser("plan", help="the eFuse writes per unit, without touching anything")
    q.add_argument("lot", help="lot file (lot.toml) with a [security] table")
    q.add_argument("--chip", help="plan for this chip instead of the lot's (esp32c3, …)")
    q = actions.add_parser(
        "enable", help="an engineer enables the lot's eFuse recipe on its ledger (asks the PIN)"
    )
    q.add_argument("lot", help="lot file (lot.toml) with a [security] table")
    q.add_argument("--db", help="ledger database URL (default: beside the lot)")
    q.add_argument("--operator", default="engineer", help="the engineer's name for the audit log")
    q = actions.add_parser("export", help="hand the per-device keys over, with a manifest")
    q.add_argument("lot", help="lot file (lot.toml) with a [security] table")
    q.add_argument(
        "--out", required=True, metavar="PATH", help="a new folder, or an archive NAME.tar.gz"
    )


def _handler(command: str) -> Handler:
    module_name, func = HANDLERS[command].split(":")
    return getattr(importlib.import_module(module_name), func)  # type: ignore[no-any-return]


def _qt_label_renderer() -> Renderer:
    """The window's label renderer for pdf: and printer: outputs of the command line (Qt draws
    them; without a display it draws offscreen)."""
    try:
        importlib.import_module("PySide6.QtGui")
    except ImportError:
        raise StationError.at(
            "--labels",
            "pdf: and printer: labels need Qt; install it with pip install 'station[gui]', "
            "or print ZPL (zpl:tcp://HOST:9100)",
        ) from None
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    render = importlib.import_module("station.gui.label_render")
    render.ensure_application()
    return render  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    # before any thread starts (a port's, Qt's): arenas made already stay (station.native)
    limit_malloc_arenas()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "labels", None):  # the labels layer never imports the GUI: give it Qt
        from station.labels import use_renderer

        use_renderer(_qt_label_renderer)
    if args.self_test:
        command = "self-test"
    elif args.command is None:
        command = "gui"
        args.lot = None
    else:
        command = args.command
    try:
        return _handler(command)(args)
    except StationError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return err.exit_code
    except ImportError as err:
        module = missing_gui_extra(err)
        if module is None:
            raise
        what = "the window" if command == "gui" else f"'station {command}'"
        print(
            f"station: {what} needs {module}, which this installation lacks "
            f"(installed without the GUI extra). Install it with: {GUI_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("station: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
