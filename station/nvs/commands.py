"""``station nvs`` and ``station inspect``: thin front ends over :mod:`station.nvs`."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from station.errors import Problem, StationError
from station.files import MAX_FLASH_FILE, MAX_SMALL_FILE, InputFileError, read_input
from station.nvs.crypto import (
    generate_hmac_key,
    generate_keys,
    hmac_derive_keys,
    key_partition_image,
    parse_key_partition,
    read_hmac_key,
)
from station.nvs.csvfile import read_nvs_csv
from station.nvs.decoder import NvsImage, decode_image
from station.nvs.encoder import check_entries, encode_image, parse_size
from station.nvs.model import NvsEntry, XtsKeys

ARGS = "command line"


def _read(path: str, what: str, limit: int = MAX_SMALL_FILE) -> bytes:
    """A regular file's bytes (a FIFO or device is refused before it is opened)."""
    try:
        return read_input(path, limit, f"a {what}")
    except InputFileError as err:
        raise StationError.at(path, f"{what} not found" if err.missing else str(err)) from None


def _write_new(path: Path, data: bytes) -> None:
    """Write a key file that must not exist yet (never overwritten): readable by its owner
    only (0600), in a folder made for its owner only (0700), flushed to disk."""
    if not path.parent.is_dir():
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _unique(folder: Path, stem: str) -> Path:
    """``folder/stem.bin``, or ``stem-2.bin``, ``stem-3.bin``… if that name is taken."""
    path = folder / f"{stem}.bin"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.bin"
        n += 1
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step, so a failure never leaves half an image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _keys_from_args(
    args: argparse.Namespace, problems: list[Problem]
) -> tuple[XtsKeys | None, bytes | None]:
    """(keys, new HMAC key to save) from --inputkey / --keygen / the HMAC options."""
    hmac_opts = args.key_protect_hmac or args.kp_hmac_keygen or args.kp_hmac_inputkey
    if args.inputkey and (args.keygen or hmac_opts):
        problems.append(
            Problem(ARGS, 0, 0, "--inputkey", "give --inputkey or --keygen/HMAC options, not both")
        )
        return None, None
    if args.inputkey:
        try:
            return parse_key_partition(_read(args.inputkey, "key file"), args.inputkey), None
        except StationError as err:
            problems.extend(err.problems)
            return None, None
    if not (args.keygen or hmac_opts):
        return None, None
    if not (args.key_protect_hmac or not hmac_opts):
        problems.append(Problem(ARGS, 0, 0, "--kp_hmac_*", "HMAC options need --key_protect_hmac"))
        return None, None
    if args.key_protect_hmac:
        if args.kp_hmac_keygen and args.kp_hmac_inputkey:
            problems.append(
                Problem(
                    ARGS, 0, 0, "--kp_hmac_keygen", "give --kp_hmac_keygen or --kp_hmac_inputkey"
                )
            )
            return None, None
        if args.kp_hmac_inputkey:
            try:
                hkey = read_hmac_key(
                    _read(args.kp_hmac_inputkey, "HMAC key file"), args.kp_hmac_inputkey
                )
            except StationError as err:
                problems.extend(err.problems)
                return None, None
            return hmac_derive_keys(hkey), None
        if not args.kp_hmac_keygen:
            problems.append(
                Problem(
                    ARGS,
                    0,
                    0,
                    "--key_protect_hmac",
                    "needs --kp_hmac_keygen or --kp_hmac_inputkey F",
                )
            )
            return None, None
        hkey = generate_hmac_key()
        return hmac_derive_keys(hkey), hkey
    return generate_keys(), None


def nvs(args: argparse.Namespace) -> int:
    """Build one NVS image from a key,type,encoding,value CSV (nvs_partition_gen generate)."""
    problems: list[Problem] = []
    size: int | None = None
    entries: list[NvsEntry] | None = None
    try:
        size = parse_size(args.size, ARGS, 0, "size")
    except StationError as err:
        problems.extend(err.problems)
    try:
        entries = read_nvs_csv(args.csv)
    except StationError as err:
        problems.extend(err.problems)
    keys, new_hmac_key = _keys_from_args(args, problems)
    keyfile = getattr(args, "keyfile", None)
    outdir = Path(args.outdir)
    key_path = hmac_path = None
    if keys is not None and not args.inputkey:
        stamp = datetime.datetime.now().strftime("%m-%d_%H-%M")
        if keyfile:
            key_path = outdir / "keys" / keyfile
            if key_path.exists():
                problems.append(
                    Problem(
                        ARGS,
                        0,
                        0,
                        "--keyfile",
                        f"{key_path} exists; key files are never overwritten (choose another name)",
                    )
                )
        else:
            key_path = _unique(outdir / "keys", f"keys-{stamp}")
        if new_hmac_key is not None:
            if args.kp_hmac_keyfile:
                hmac_path = outdir / "keys" / args.kp_hmac_keyfile
                if hmac_path.exists():
                    problems.append(
                        Problem(
                            ARGS,
                            0,
                            0,
                            "--kp_hmac_keyfile",
                            f"{hmac_path} exists; key files"
                            " are never overwritten (choose another name)",
                        )
                    )
            else:
                hmac_path = _unique(outdir / "keys", f"hmac-{key_path.stem}")
    if entries is not None and size is not None:
        problems.extend(check_entries(entries, size, args.version))
    if problems:
        raise StationError(problems)
    assert entries is not None and size is not None
    image = encode_image(entries, size, version=args.version, keys=keys)
    out = Path(args.out)
    try:
        if key_path is not None and keys is not None:
            _write_new(key_path, key_partition_image(keys))
            print(f"Created encryption keys: {key_path}")
        if hmac_path is not None and new_hmac_key is not None:
            _write_new(hmac_path, new_hmac_key)
            print(f"Created HMAC key: {hmac_path}")
        _write_atomic(out, image)
    except FileExistsError as err:
        raise StationError.at(
            str(err.filename), "exists; key files are never overwritten", key="key file"
        ) from None
    except OSError as err:
        raise StationError.at(
            str(err.filename or out), f"cannot write: {err.strerror or err}", exit_code=2
        ) from None
    used = sum(1 for i in range(0, len(image), 4096) if image[i : i + 4] != b"\xff" * 4)
    print(
        f"Created NVS binary: {out} ({size:#x} bytes, version {args.version},"
        f" {used} page(s) used{', encrypted' if keys else ''})"
    )
    return 0


def _show_value(value: object, limit: int = 64) -> str:
    if isinstance(value, bytes):
        shown = value[:limit].hex()
        return f"{shown}{'…' if len(value) > limit else ''} ({len(value)} bytes)"
    if isinstance(value, str):
        if len(value) > 2 * limit:
            return json.dumps(value[: 2 * limit], ensure_ascii=False) + f"… ({len(value)} chars)"
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def format_listing(name: str, image: NvsImage) -> str:
    """The human-readable ``station inspect`` listing."""
    lines = [
        f"{name}: {image.size} bytes, {len(image.pages)} pages"
        + (", decrypted" if image.encrypted else "")
    ]
    for p in image.pages:
        if p.state == "empty":
            lines.append(f"  page {p.index}: empty")
            continue
        if p.state == "corrupt":
            lines.append(f"  page {p.index}: corrupt, ignored by the firmware (see the problems)")
            continue
        flags = "" if p.header_ok else ", HEADER CRC BAD"
        lines.append(
            f"  page {p.index}: {p.state}, seq {p.seq}, version {p.version or '?'},"
            f" {p.used}/126 entries used, {p.erased} erased{flags}"
        )
    by_ns: dict[str, list[str]] = {ns: [] for ns in image.namespaces.values()}
    for item in image.items:
        extra = f" [{item.chunks} chunk{'s' if item.chunks != 1 else ''}]" if item.chunks else ""
        by_ns.setdefault(item.namespace, []).append(
            f"    {item.key:<15} {item.type:<6} {_show_value(item.value)}{extra}"
        )
    for ns, rows in by_ns.items():
        lines.append(f"namespace {ns}:")
        lines.extend(rows or ["    (no keys)"])
    if image.errors:
        lines.append(f"{len(image.errors)} problem(s):")
        lines.extend(f"  {e}" for e in image.errors)
    return "\n".join(lines)


MAX_IMAGE_SIZE = MAX_FLASH_FILE  # the largest flash ESP-IDF supports


def _read_image(path: str) -> bytes:
    """An NVS image from a regular file of 1 byte to 128 MB; StationError (exit 2) otherwise.

    A FIFO or a device would block or never end, a folder cannot be read: all refused before
    they are opened.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise StationError.at(path, "image not found") from None
    except OSError as err:
        raise StationError.at(path, f"cannot read the image: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise StationError.at(path, "is a folder, not an NVS image file")
    if not stat.S_ISREG(st.st_mode):
        raise StationError.at(
            path,
            "not a regular file (a pipe, socket or device): save the partition to a file "
            "first (esptool read_flash OFFSET SIZE file.bin)",
        )
    if st.st_size == 0:
        raise StationError.at(path, "the image is empty (0 bytes): not an NVS partition image")
    if st.st_size > MAX_IMAGE_SIZE:
        raise StationError.at(
            path,
            f"the image is {st.st_size} bytes, more than any flash holds (128 MB): "
            "not an NVS partition image",
        )
    return _read(path, "image", MAX_IMAGE_SIZE)


def inspect(
    args: argparse.Namespace,
    hide: Callable[[NvsImage], NvsImage] = lambda image: image,
    describe: Callable[[NvsImage], list[str]] = lambda image: [],
) -> int:
    """Decode an NVS image and print it; exit 1 if the image has errors (CRC, damage).

    ``hide`` masks values a listing must never show and ``describe`` adds lines in words; the
    layers above (Matter factory data) give them: see station.production.inspect_command."""
    data = _read_image(args.image)
    keys = parse_key_partition(_read(args.key, "key file"), args.key) if args.key else None
    image = hide(decode_image(data, keys))
    if args.json:
        json.dump(image.to_json(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(format_listing(args.image, image))
        for line in describe(image):
            print(line)
    return 1 if image.errors else 0
