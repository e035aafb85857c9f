"""Run Espressif's esp-idf-nvs-partition-gen 0.3.0 in-process, for byte-for-byte comparisons."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path
from types import SimpleNamespace

from esp_idf_nvs_partition_gen import nvs_partition_gen as official


def write_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """A key,type,encoding,value CSV as the official tool reads it."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["key", "type", "encoding", "value"])
        w.writerows(rows)
    return path


def official_image(
    csv_path: Path,
    size: int,
    version: int = 2,
    *,
    inputkey: Path | None = None,
    outdir: Path | None = None,
) -> bytes:
    """The official tool's image for this CSV (run in ``outdir``, where file paths resolve)."""
    outdir = outdir or csv_path.parent
    out = outdir / "official-out.bin"
    args = SimpleNamespace(
        input=[str(csv_path)],
        output=str(out),
        size=hex(size),
        version=version,
        outdir=str(outdir),
        keygen=False,
        inputkey=str(inputkey) if inputkey else None,
        keyfile=None,
        key_protect_hmac=False,
        kp_hmac_keygen=False,
        kp_hmac_keyfile=None,
        kp_hmac_inputkey=None,
    )
    cwd = os.getcwd()
    sink = io.StringIO()
    try:
        os.chdir(outdir)
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            if inputkey:
                official.encrypt(args)
            else:
                official.generate(args)
    finally:
        os.chdir(cwd)
    data = out.read_bytes()
    out.unlink()
    return data
