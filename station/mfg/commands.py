"""``station generate`` and ``station generate-key``: drop-ins for ESP-IDF's mfg_gen.py.

Same arguments, same output layout and file names (``OUTDIR/bin/PREFIX-ID.bin``,
``OUTDIR/csv/PREFIX-ID.csv``, ``OUTDIR/keys/keys-PREFIX-ID.bin``). Unlike mfg_gen, the whole lot
is validated before the first file is written, and an existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import multiprocessing
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from station.errors import Problem, ProblemList, StationError
from station.mfg.lot import MfgLot, Row, build_row_image, intermediate_csv, load_mfg, unit_id
from station.mfg.output import Writer, bin_name, make_folders, write_new

if TYPE_CHECKING:
    from station.nvs import XtsKeys

CLI = "command line"
_PARALLEL_MIN = 400  # below this, starting worker processes costs more than it saves
_BAD_PREFIX = re.compile(r'[/\\:*?"<>|\x00-\x1f]')


@dataclass(frozen=True)
class KeyPlan:
    """How a command gets its NVS encryption keys (None: no encryption)."""

    mode: str  # "none" | "input" | "keygen" | "hmac-keygen" | "hmac-input"
    input_keys: XtsKeys | None = None  # for "input" and "hmac-input"
    hmac_key: bytes | None = None  # for "hmac-input"
    hmac_keyfile: str | None = None  # --kp_hmac_keyfile


def _read(path: str, problems: ProblemList, option: str) -> bytes | None:
    """A key file named on the command line: a regular file of at most 1 MiB (key files are a
    few KiB; a FIFO or a device is refused instead of read)."""
    from station.files import InputFileError, read_input

    try:
        return read_input(path, 1 << 20, "a key file")
    except InputFileError as err:
        if err.missing:
            problems.add(path, 0, 0, option, "file not found")
        elif os.path.isdir(path):
            problems.add(path, 0, 0, option, "is a folder, not a file")
        else:
            problems.add(path, 0, 0, option, f"cannot read: {err}")
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
    paths: Mapping[str, str] = field(default_factory=dict)  # "bin", "csv", "keys", "hmac"


@dataclass(frozen=True)
class _Job:
    """Everything the production phase needs; picklable for worker processes."""

    lot: MfgLot
    size: int
    version: int
    plan: KeyPlan
    outdir: str
    devices: tuple[_Device, ...]


def _devices(
    lot: MfgLot,
    prefix: str,
    prefix_num: list[int] | None,
    problems: ProblemList,
    outdir: str,
    plan: KeyPlan,
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
        out.append(_Device(row, name, _outputs(outdir, name, plan)))
    return out


def _outputs(outdir: str, name: str, plan: KeyPlan) -> dict[str, str]:
    join = os.path.join
    # name is a valid file name (no separators; checked): join's result, without its cost
    paths = {
        "csv": f"{_folder(outdir, 'csv')}{os.sep}{name}.csv",
        "bin": f"{_folder(outdir, 'bin')}{os.sep}{name}.bin",
    }
    if plan.mode != "none" and plan.mode != "input":
        paths["keys"] = join(outdir, "keys", f"keys-{name}.bin")
    if plan.mode == "hmac-keygen":
        hmac_name = f"hmac-keys-{name}.bin"
        if plan.hmac_keyfile:
            hmac_name = bin_name(plan.hmac_keyfile)
        paths["hmac"] = join(outdir, "keys", hmac_name)
    return paths


@functools.lru_cache(maxsize=16)
def _folder(outdir: str, sub: str) -> str:
    return os.path.join(outdir, sub)


def _existing(folder: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()


def _check_outdir(outdir: Path, sub: list[str], problems: ProblemList) -> None:
    for folder in [outdir, *(outdir / s for s in sub)]:
        if folder.exists() and not folder.is_dir():
            problems.add(str(folder), 0, 0, "--outdir", "exists and is not a folder")


def generate(args: argparse.Namespace) -> int:
    """mfg_gen generate: one NVS image (and intermediate CSV, and keys) per row of the lot."""
    from station.nvs import (
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
    if args.jobs is not None and args.jobs < 1:
        problems.add(CLI, 0, 0, "--jobs", f"must be 1 or more, not {args.jobs}")
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
        devices = _devices(lot, prefix, args.prefix_num, problems, args.outdir, plan)
        _check_outdir(outdir, ["bin", "csv", "keys"], problems)
        shown = 0
        existing = {
            os.path.join(args.outdir, sub): _existing(os.path.join(args.outdir, sub))
            for sub in ("bin", "csv", "keys")
        }
        # usually all three are new or empty: then only files elsewhere (an HMAC key file
        # name with a folder) can exist already
        paths = (
            (p for dev in devices for p in dev.paths.values())
            if any(existing.values())
            else (dev.paths["hmac"] for dev in devices if "hmac" in dev.paths)
        )
        for path in paths:
            folder, name = os.path.split(path)
            known = existing.get(folder)
            if (name in known) if known is not None else os.path.exists(path):
                shown += 1
                if shown <= 20:
                    problems.add(
                        path,
                        0,
                        0,
                        "-",
                        "already exists; remove it or choose "
                        "another --outdir or prefix (nothing is overwritten)",
                    )
        if shown > 20:
            problems.add(str(outdir), 0, 0, "-", f"{shown - 20} more output files exist already")
    problems.raise_if_any()
    assert lot is not None and size is not None
    for warning in lot.warnings:
        print(warning, file=sys.stderr)

    job = _Job(lot, size, args.version, plan, args.outdir, tuple(devices))
    folders = ["bin", "csv"] + (["keys"] if plan.mode not in ("none", "input") else [])
    # the same folders for all; the files hold each device's values and keys: owner only
    make_folders(devices[0].paths.values() if devices else (), private=True)
    jobs = args.jobs or _auto_jobs(len(devices))
    if jobs > 1:
        _produce_parallel(job, jobs)
    else:
        _produce(job, range(len(devices)))
    print(
        f"{len(devices)} NVS images in {outdir / 'bin'}"
        + (f", keys in {outdir / 'keys'}" if "keys" in folders else "")
    )
    return 0


def _auto_jobs(devices: int) -> int:
    """Worker processes for a lot: one per core (at most 4), none for small lots."""
    if devices < _PARALLEL_MIN:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _produce(job: _Job, indexes: Iterable[int]) -> list[str]:
    """Builds and writes the files of these devices; on any failure removes them all again."""
    from station.nvs import generate_hmac_key, generate_keys, hmac_derive_keys, key_partition_image

    plan, lot = job.plan, job.lot
    writer = Writer()
    try:
        for i in indexes:
            dev = job.devices[i]
            paths = dev.paths
            keys = plan.input_keys
            hmac_key = None
            if plan.mode == "keygen":
                keys = generate_keys()
            elif plan.mode == "hmac-keygen":
                hmac_key = generate_hmac_key()
                keys = hmac_derive_keys(hmac_key)
            image = build_row_image(lot, dev.row, job.size, version=job.version, keys=keys)
            if hmac_key is not None:
                writer.submit(paths["hmac"], hmac_key, secret=True)
            if "keys" in paths and keys is not None:
                writer.submit(paths["keys"], key_partition_image(keys), secret=True)
            # atomic: a killed run never leaves a truncated image that could be flashed; measured
            # interleaved against plain O_EXCL writes the difference was within the noise
            writer.submit(
                paths["csv"], intermediate_csv(lot, dev.row).encode("utf-8"), private=True
            )
            writer.submit(paths["bin"], image, private=True)
    except BaseException:
        writer.rollback()
        raise
    return writer.written


_worker_job: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job


def _produce_chunk(indexes: range) -> tuple[int, tuple[Problem, ...]]:
    """A worker's share: files written, or a StationError's problems (they pickle, it does not)."""
    assert _worker_job is not None
    try:
        return len(_produce(_worker_job, indexes)), ()
    except StationError as err:
        return 0, err.problems


def _produce_parallel(job: _Job, jobs: int) -> None:
    """Builds the images in worker processes (the encoder is pure Python: one core each)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        method = "fork"  # fastest: the workers inherit the loaded lot
    else:  # forking a process with threads can deadlock; the job pickles instead
        method = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(method)
    n = len(job.devices)
    step = max(1, min(256, -(-n // (jobs * 4))))
    chunks = [range(a, min(n, a + step)) for a in range(0, n, step)]
    problems: list[Problem] = []
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(job,))
    try:
        futures = [pool.submit(_produce_chunk, chunk) for chunk in chunks]
        for future in futures:
            _done, found = future.result()
            if found:
                problems.extend(found)
                break
        if problems:
            raise StationError(problems)
    except BaseException as err:
        pool.shutdown(wait=True, cancel_futures=True)
        # none of these files existed before the run (checked), so every one there now is ours,
        # also those of a worker that died half-way
        for dev in job.devices:
            for path in dev.paths.values():
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        if isinstance(err, BrokenProcessPool):
            raise StationError.at(
                job.outdir,
                "a worker process stopped unexpectedly (out of memory?); no file was "
                "kept; try again with --jobs 1",
                exit_code=1,
            ) from None
        raise
    finally:
        pool.shutdown(wait=True)


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
    for key_path, hmac_path in _key_names(keys_dir, args.keyfile, hmac_key is not None):
        if plan.hmac_keyfile:
            hmac_path = Path(bin_name(plan.hmac_keyfile))
            hmac_path = hmac_path if hmac_path.is_absolute() else keys_dir / hmac_path
        make_folders(
            [str(key_path)] + ([str(hmac_path)] if hmac_key is not None else []), private=True
        )
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
