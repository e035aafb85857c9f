"""The official flow, for comparison: mfg_gen.py's intermediate CSVs + Espressif's generator.

ESP-IDF's ``tools/mass_mfg/mfg_gen.py`` is not on PyPI. This module rebuilds its intermediate
CSVs the way its source does (blank lines dropped, REPEAT values copied from the first row by
walking the header, the file id found by membership in (key, value) pairs, values matched to the
config keys in order, ``csv.writer`` with CRLF), then hands each CSV to
esp-idf-nvs-partition-gen 0.3.0's own ``generate``/``encrypt``, in process, as mfg_gen does.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from types import SimpleNamespace

from esp_idf_nvs_partition_gen import nvs_partition_gen
from esp_pylib.logger import log


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The official tool prints a few lines per image; silence them (tests and benchmark)."""
    log.set_verbosity("SILENT")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        log.set_verbosity("NORMAL")


def _rows(path: Path) -> list[list[str]]:
    # mfg_gen copies each file without its blank lines (text mode), then reads it with csv
    with open(path) as f:
        lines = [line for line in f if not line.isspace()]
    return list(csv.reader(lines, delimiter=","))


def intermediate_csvs(conf: Path, values: Path, fileid: str | None = None) -> list[tuple[str, str]]:
    """(file id, intermediate CSV text) per device, as mfg_gen.py builds them."""
    config = _rows(conf)
    keys_repeat = [row[0] for row in config if "REPEAT" in row]
    to_write = []
    for row in config:
        row = list(row)
        if "REPEAT" in row:
            row.remove("REPEAT")
        to_write.append(row)
    table = _rows(values)
    keys, data = table[0], table[1:]
    if keys_repeat and data:
        first = data[0]
        for row in data[1:]:  # set_repeat_value
            key_val_new = list(zip_longest(keys, row))
            key_val_pair = list(zip_longest(keys, first))
            key_repeated = keys_repeat[:]
            index = 0
            while key_val_new and key_repeated:
                if key_val_new[0][0] == key_repeated[0]:
                    row[index] = key_val_pair[0][1]
                    del key_repeated[0]
                del key_val_new[0]
                del key_val_pair[0]
                index += 1
    file_identifier: object = fileid if fileid else 1
    fileid_value = "0"
    out = []
    for row in data:
        key_value_data = list(zip_longest(keys, row))
        found = False
        for pair in key_value_data:  # get_fileid_val
            if file_identifier and not found and file_identifier in pair:
                fileid_value = pair[1]
                found = True
        if not found:
            fileid_value = str(int(fileid_value) + 1)
        pairs = key_value_data[:]
        text = io.StringIO(newline="")
        writer = csv.writer(text, delimiter=",")
        writer.writerow(["key", "type", "encoding", "value"])
        for entry in to_write:  # add_data_to_file
            line = entry[:]
            if "namespace" in entry:
                line.append("")
                writer.writerow(line)
            else:
                key = entry[0]
                while key not in pairs[0]:
                    del pairs[0]
                line.append(pairs[0][1])
                del pairs[0]
                writer.writerow(line)
        out.append((fileid_value, text.getvalue()))
    return out


def official_generate(
    conf: Path,
    values: Path,
    prefix: str,
    size: str,
    outdir: Path,
    *,
    fileid: str | None = None,
    version: int = 2,
    inputkeys: dict[str, Path] | None = None,
    inputkey: Path | None = None,
) -> list[str]:
    """The official flow into ``outdir`` (csv/ and bin/); returns the file ids.

    ``inputkeys`` maps a file id to the key partition file to encrypt that device with (the
    official ``encrypt`` with ``--inputkey``), ``inputkey`` is one for all; else images are plain.
    """
    if inputkey is not None:
        inputkeys = {fid: inputkey for fid, _text in intermediate_csvs(conf, values, fileid)}
    (outdir / "csv").mkdir(parents=True, exist_ok=True)
    (outdir / "bin").mkdir(parents=True, exist_ok=True)
    ids = []
    with quiet():
        for fid, text in intermediate_csvs(conf, values, fileid):
            csv_path = outdir / "csv" / f"{prefix}-{fid}.csv"
            with open(csv_path, "w", newline="") as f:
                f.write(text)
            args = SimpleNamespace(
                input=str(csv_path),
                output=os.path.join("bin", f"{prefix}-{fid}.bin"),
                size=size,
                version=version,
                outdir=str(outdir),
                keygen=False,
                keyfile=None,
                inputkey=str(inputkeys[fid]) if inputkeys else None,
                key_protect_hmac=False,
                kp_hmac_keygen=False,
                kp_hmac_keyfile=None,
                kp_hmac_inputkey=None,
            )
            if inputkeys:
                nvs_partition_gen.encrypt(args)
            else:
                nvs_partition_gen.generate(args)
            ids.append(fid)
    return ids


def official_generate_key(outdir: Path, keyfile: str, *, hmac_inputkey: Path | None = None) -> Path:
    """The official generate-key (random keys, or derived from an HMAC key file)."""
    args = SimpleNamespace(
        keyfile=keyfile,
        outdir=str(outdir),
        key_protect_hmac=hmac_inputkey is not None,
        kp_hmac_keygen=False,
        kp_hmac_keyfile=None,
        kp_hmac_inputkey=str(hmac_inputkey) if hmac_inputkey else None,
    )
    with quiet():
        nvs_partition_gen.generate_key(args)
    return outdir / "keys" / keyfile
