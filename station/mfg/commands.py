"""``station generate`` and ``station generate-key``: drop-ins for ESP-IDF's mfg_gen.py.

Same arguments, same output layout and file names (``OUTDIR/bin/PREFIX-ID.bin``,
``OUTDIR/csv/PREFIX-ID.csv``, ``OUTDIR/keys/keys-PREFIX-ID.bin``). Unlike mfg_gen, the whole lot
is validated before the first file is written, and an existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from station.errors import ProblemList, StationError
from station.mfg.lot import MfgLot, Row, build_row_image, intermediate_csv, load_mfg, unit_id
from station.mfg.output import bin_name, write_new

if TYPE_CHECKING:
    from station.nvs import XtsKeys

CLI = "command line"
_BAD_PREFIX = re.compile(r'[/\\:*?"<>|\x00-\x1f]')


@dataclass(frozen=True)
class KeyPlan:
    """How a command gets its NVS encryption keys (None: no encryption)."""

    mode: str  # "none" | "input" | "keygen" | "hmac-keygen" | "hmac-input"
    input_keys: XtsKeys | None = None  # for "input" and "hmac-input"
    hmac_key: bytes | None = None  # for "hmac-input"
    hmac_keyfile: str | None = None  # --kp_hmac_keyfile


def _read(path: str, problems: ProblemList, option: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        problems.add(path, 0, 0, option, "file not found")
    except IsADirectoryError:
        problems.add(path, 0, 0, option, "is a folder, not a file")
    except OSError as err:
        problems.add(path, 0, 0, option, f"cannot read: {err.strerror}")
    return None


def _hmac_plan(args: argparse.Namespace, problems: ProblemList, *, need_keygen: bool) -> KeyPlan:
    """The HMAC options, checked: --key_protect_hmac with --kp_hmac_keygen or --kp_hmac_inputkey."""
    from station.nvs import hmac_derive_keys
    from station.nvs.crypto import read_hmac_key

    if not args.key_protect_hmac:
        for option in ("kp_hmac_keygen", "kp_hmac_inputkey", "kp_hmac_keyfile"):
            if getattr(args, option):
                problems.add(CLI, 0, 0, f"--{option}", "only with --key_protect_hmac")
        return KeyPlan("none")
    if need_keygen and not args.keygen:
        problems.add(
            CLI,
            0,
            0,
            "--key_protect_hmac",
            "needs --keygen: the HMAC scheme derives each device's NVS keys "
            "(with --inputkey the keys are given)",
        )
    if args.kp_hmac_keygen == bool(args.kp_hmac_inputkey):
        problems.add(
            CLI,
            0,
            0,
            "--key_protect_hmac",
            "needs exactly one of --kp_hmac_keygen (a new HMAC key) and "
            "--kp_hmac_inputkey F (a 32-byte HMAC key file)",
        )
        return KeyPlan("none")
    if args.kp_hmac_keygen:
        return KeyPlan("hmac-keygen", hmac_keyfile=args.kp_hmac_keyfile)
    if args.kp_hmac_keyfile:
        problems.add(
            CLI, 0, 0, "--kp_hmac_keyfile", "names a new HMAC key file: only with --kp_hmac_keygen"
        )
    data = _read(args.kp_hmac_inputkey, problems, "--kp_hmac_inputkey")
    if data is None:
        return KeyPlan("none")
    try:
        key = read_hmac_key(data, args.kp_hmac_inputkey)
    except StationError as err:
        problems.extend(err.problems)
        return KeyPlan("none")
    return KeyPlan("hmac-input", input_keys=hmac_derive_keys(key), hmac_key=key)


def _key_plan(args: argparse.Namespace, problems: ProblemList) -> KeyPlan:
    from station.nvs import parse_key_partition

    hmac_plan = _hmac_plan(args, problems, need_keygen=True)
    if args.inputkey:
        data = _read(args.inputkey, problems, "--inputkey")
        if data is None:
            return KeyPlan("none")
        try:
            return KeyPlan("input", input_keys=parse_key_partition(data, args.inputkey))
        except StationError as err:
            problems.extend(err.problems)
            return KeyPlan("none")
    if args.keygen:
        return hmac_plan if hmac_plan.mode != "none" else KeyPlan("keygen")
    return KeyPlan("none")


@dataclass(frozen=True)
class _Device:
    row: Row
    name: str  # PREFIX-ID (with --prefix_num: PREFIX-NNN-ID)


def _devices(
    lot: MfgLot, prefix: str, prefix_num: list[int] | None, problems: ProblemList
) -> list[_Device]:
    out = []
    start, width = prefix_num if prefix_num else (0, 0)
    if prefix_num:
        last = start + len(lot.rows) - 1
        if start < 0 or width < 1:
            problems.add(CLI, 0, 0, "--prefix_num", "START must be 0 or more and LEN 1 or more")
            return []
        if len(str(last)) > width:
            problems.add(
                CLI,
                0,
                0,
                "--prefix_num",
                f"{len(lot.rows)} devices from {start} reach {last}, which has more "
                f"than {width} digits",
            )
            return []
    for row in lot.rows:
        uid = unit_id(lot, row)
        name = (
            f"{prefix}-{uid}" if not prefix_num else f"{prefix}-{start + row.index:0{width}d}-{uid}"
        )
        out.append(_Device(row, name))
    return out


def _outputs(outdir: Path, dev: _Device, plan: KeyPlan) -> dict[str, Path]:
    paths = {
        "csv": outdir / "csv" / f"{dev.name}.csv",
        "bin": outdir / "bin" / f"{dev.name}.bin",
    }
    if plan.mode != "none" and plan.mode != "input":
        paths["keys"] = outdir / "keys" / f"keys-{dev.name}.bin"
    if plan.mode == "hmac-keygen":
        hmac_name = (
            bin_name(plan.hmac_keyfile) if plan.hmac_keyfile else f"hmac-keys-{dev.name}.bin"
        )
        paths["hmac"] = outdir / "keys" / hmac_name
    return paths


def _check_outdir(outdir: Path, sub: list[str], problems: ProblemList) -> None:
    for folder in [outdir, *(outdir / s for s in sub)]:
        if folder.exists() and not folder.is_dir():
            problems.add(str(folder), 0, 0, "--outdir", "exists and is not a folder")


def generate(args: argparse.Namespace) -> int:
    """mfg_gen generate: one NVS image (and intermediate CSV, and keys) per row of the lot."""
    from station.nvs import (
        generate_hmac_key,
        generate_keys,
        hmac_derive_keys,
        key_partition_image,
        parse_size,
    )

    problems = ProblemList()
    size: int | None = None
    try:
        size = parse_size(args.size, CLI, 0, "size")
    except StationError as err:
        problems.extend(err.problems)
    prefix = args.prefix
    if not prefix or _BAD_PREFIX.search(prefix):
        problems.add(
            CLI,
            0,
            0,
            "prefix",
            f'{prefix!r} cannot start a file name (no / \\ : * ? " < > | or control characters)',
        )
    plan = _key_plan(args, problems)
    lot: MfgLot | None = None
    try:
        lot = load_mfg(args.conf, args.values, size=size, version=args.version, fileid=args.fileid)
    except StationError as err:
        problems.extend(err.problems)
    outdir = Path(args.outdir)
    devices: list[_Device] = []
    if lot is not None:
        if plan.hmac_keyfile and len(lot.rows) > 1:
            problems.add(
                CLI,
                0,
                0,
                "--kp_hmac_keyfile",
                f"one file name for the HMAC keys of {len(lot.rows)} devices: each "
                "device gets its own key; leave the option out to get "
                "keys/hmac-keys-PREFIX-ID.bin per device",
            )
        devices = _devices(lot, prefix, args.prefix_num, problems)
        _check_outdir(outdir, ["bin", "csv", "keys"], problems)
        shown = 0
        for dev in devices:
            for path in _outputs(outdir, dev, plan).values():
                if path.exists():
                    shown += 1
                    if shown <= 20:
                        problems.add(
                            str(path),
                            0,
                            0,
                            "-",
                            "already exists; remove it or "
                            "choose another --outdir or prefix (nothing is overwritten)",
                        )
        if shown > 20:
            problems.add(str(outdir), 0, 0, "-", f"{shown - 20} more output files exist already")
    problems.raise_if_any()
    assert lot is not None and size is not None

    folders = ["bin", "csv"] + (["keys"] if plan.mode not in ("none", "input") else [])
    for folder in folders:
        (outdir / folder).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for dev in devices:
            paths = _outputs(outdir, dev, plan)
            keys = plan.input_keys
            hmac_key = None
            if plan.mode == "keygen":
                keys = generate_keys()
            elif plan.mode == "hmac-keygen":
                hmac_key = generate_hmac_key()
                keys = hmac_derive_keys(hmac_key)
            image = build_row_image(lot, dev.row, size, version=args.version, keys=keys)
            if hmac_key is not None:
                _write(paths["hmac"], hmac_key, written, secret=True)
            if "keys" in paths and keys is not None:
                _write(paths["keys"], key_partition_image(keys), written, secret=True)
            _write(paths["csv"], intermediate_csv(lot, dev.row).encode("utf-8"), written)
            _write(paths["bin"], image, written)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    print(
        f"{len(devices)} NVS images in {outdir / 'bin'}"
        + (f", keys in {outdir / 'keys'}" if "keys" in folders else "")
    )
    return 0


def _write(path: Path, data: bytes, written: list[Path], *, secret: bool = False) -> None:
    write_new(path, data, secret=secret)
    written.append(path)


def _key_names(keys_dir: Path, keyfile: str | None, hmac: bool) -> Iterator[tuple[Path, Path]]:
    """Candidate (key file, HMAC key file) paths: the given name once, else timestamped ones."""
    if keyfile:
        path = Path(bin_name(keyfile))
        path = path if path.is_absolute() else keys_dir / path
        yield path, path.with_name("hmac-" + path.name)
        return
    stamp = datetime.datetime.now().strftime("%m-%d_%H-%M")
    n = 1
    while True:
        name = f"keys-{stamp}.bin" if n == 1 else f"keys-{stamp}-{n}.bin"
        yield keys_dir / name, keys_dir / f"hmac-{name}"
        n += 1


def generate_key(args: argparse.Namespace) -> int:
    """mfg_gen / nvs_partition_gen generate-key: an NVS key partition image in OUTDIR/keys/.

    Without --keyfile the name is ``keys-MM-DD_HH-MM.bin`` like the official tool's, with
    ``-2``, ``-3``… added when a key file of the same minute exists (never overwritten).
    """
    from station.nvs import generate_hmac_key, generate_keys, hmac_derive_keys, key_partition_image

    problems = ProblemList()
    plan = _hmac_plan(args, problems, need_keygen=False)
    keys_dir = Path(args.outdir) / "keys"
    _check_outdir(Path(args.outdir), ["keys"], problems)
    problems.raise_if_any()

    hmac_key: bytes | None = None
    if plan.mode == "hmac-keygen":
        hmac_key = generate_hmac_key()
        keys = hmac_derive_keys(hmac_key)
    elif plan.mode == "hmac-input" and plan.input_keys is not None:
        keys = plan.input_keys
    else:
        keys = generate_keys()
    keys_dir.mkdir(parents=True, exist_ok=True)
    for key_path, hmac_path in _key_names(keys_dir, args.keyfile, hmac_key is not None):
        if plan.hmac_keyfile:
            hmac_path = Path(bin_name(plan.hmac_keyfile))
            hmac_path = hmac_path if hmac_path.is_absolute() else keys_dir / hmac_path
        taken = key_path.exists() or (hmac_key is not None and hmac_path.exists())
        if taken and not args.keyfile:
            continue
        written: list[Path] = []
        try:
            if hmac_key is not None:
                _write(hmac_path, hmac_key, written, secret=True)
            _write(key_path, key_partition_image(keys), written, secret=True)
        except StationError:
            for path in written:
                path.unlink(missing_ok=True)
            if args.keyfile or plan.hmac_keyfile:
                raise
            continue  # another process took this minute's name just now: take the next one
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        if hmac_key is not None:
            print(f"Created HMAC key: {hmac_path}")
        print(f"Created encryption keys: {key_path}")
        return 0
    raise AssertionError("unreachable")  # pragma: no cover
