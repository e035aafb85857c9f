"""Random lots through both flows: `station generate` and mfg_gen's intermediate CSV + the
official generator must give the same files, or both refuse a lot that does not fit."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from station.cli import main
from station.nvs import generate_keys, key_partition_image
from tests.mfg.conftest import files_under
from tests.mfg.reference import official_generate

INT_RANGES = {
    "u8": (0, 255),
    "i8": (-128, 127),
    "u16": (0, 65535),
    "i16": (-32768, 32767),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1),
    "i64": (-(2**63), 2**63 - 1),
}
ENCODINGS = [*INT_RANGES, "string", "hex2bin", "base64", "binary"]
NAME = st.text("abcdefghijklmnopqrstuvwxyz_.", min_size=1, max_size=15).map(lambda s: "k" + s[:14])
TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n\x85\u2028\u2029"),
    max_size=60,
)


def value(encoding: str) -> st.SearchStrategy[str]:
    if encoding in INT_RANGES:
        return st.integers(*INT_RANGES[encoding]).map(str)
    # mostly small blobs, sometimes big ones that need several pages or do not fit
    blobs = st.one_of(st.binary(max_size=300), st.binary(min_size=1500, max_size=5000))
    if encoding == "hex2bin":
        return blobs.map(lambda b: b.hex())
    if encoding == "base64":
        return blobs.map(lambda b: base64.b64encode(b).decode())
    if encoding == "binary":  # the official tool counts characters: ASCII only
        return st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
    return TEXT


FILE_ENCODINGS = ["binary", "string", "hex2bin", "base64"]


def file_content(encoding: str) -> st.SearchStrategy[bytes]:
    """What a type-file value's file holds, for each encoding (as a user would write it)."""
    data = st.binary(max_size=1500)
    if encoding == "binary":
        return data
    if encoding == "hex2bin":
        return st.tuples(data, st.sampled_from(["", "\n", "\r\n"])).map(
            lambda t: (t[0].hex() + t[1]).encode()
        )
    if encoding == "base64":
        return data.map(lambda b: base64.b64encode(b) + b"\n")
    return TEXT.map(str.encode)


@st.composite
def lots(draw: st.DrawFn) -> dict[str, object]:
    n_keys = draw(st.integers(1, 8))
    names = draw(st.lists(NAME, min_size=n_keys + 3, max_size=n_keys + 3, unique=True))
    keys, namespaces = names[:n_keys], names[n_keys:]
    is_file = [draw(st.integers(0, 4)) == 0 for _ in keys]
    encodings = [draw(st.sampled_from(FILE_ENCODINGS if f else ENCODINGS)) for f in is_file]
    repeat = [draw(st.booleans()) for _ in keys]
    breaks = sorted(draw(st.sets(st.integers(1, max(1, n_keys - 1)), max_size=2)))
    config, ns = [], 0
    for i, key in enumerate(keys):
        if i == 0 or i in breaks:
            config.append(f"{namespaces[ns]},namespace,")
            ns += 1
        kind = "file" if is_file[i] else "data"
        config.append(f"{key},{kind},{encodings[i]}" + (",REPEAT" if repeat[i] else ""))
    # metadata columns anywhere; the config keys keep their order (mfg_gen requires it)
    header: list[str] = list(keys)
    n_rows = draw(st.integers(1, 4))
    for j in range(draw(st.integers(0, 2))):
        header.insert(draw(st.integers(0, len(header))), f"meta{j}")
    rows = []
    files: dict[str, bytes] = {}
    for r in range(n_rows):
        cells = {}
        for key, enc, rep, f in zip(keys, encodings, repeat, is_file, strict=True):
            if rep and r > 0:
                cells[key] = draw(st.sampled_from(["", rows[0][key]]))
            elif f:  # a file per device, or one shared by all
                name = draw(st.sampled_from([f"files/{key}-{r}.dat", f"files/{key}.dat"]))
                if name not in files:
                    files[name] = draw(file_content(enc))
                cells[key] = name
            else:
                cells[key] = draw(value(enc))
        for h in header:
            if h.startswith("meta"):
                cells[h] = f"m{r}-{h}"
        rows.append(cells)
    # mfg_gen finds values by membership in (key, value) pairs: a value equal to a key name
    # would shift its columns, a quirk that says nothing about the encoders
    assume(not any(v in header for row in rows for v in row.values()))
    assume(all(any(row[h].strip() for h in header) for row in rows))  # no blank-looking lines
    return {
        "files": files,
        "encrypt": draw(st.integers(0, 3)) == 0,
        "config": "\n".join(config) + "\n",
        "header": header,
        "rows": rows,
        "size": draw(st.sampled_from(["0x3000", "0x4000", "0x6000"])),
        "version": draw(st.sampled_from([1, 2])),
        "fileid": "meta0" if "meta0" in header and draw(st.booleans()) else None,
    }


def _csv(header: list[str], rows: list[dict[str, str]]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row[h] for h in header])
    return out.getvalue()


@pytest.mark.slow
@settings(
    max_examples=int(os.environ.get("MFG_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(lot=lots())
def test_random_lots_match_the_official_flow(lot: dict[str, object]) -> None:
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            _compare(Path(tmp), lot)
        finally:
            os.chdir(old)


def _compare(d: Path, lot: dict[str, object]) -> None:
    for name, content in lot["files"].items():  # type: ignore[attr-defined]
        (d / name).parent.mkdir(exist_ok=True)
        (d / name).write_bytes(content)
    keyfile = None
    if lot["encrypt"]:
        keyfile = d / "nvs_keys.bin"
        keyfile.write_bytes(key_partition_image(generate_keys()))
    (d / "c.csv").write_text(str(lot["config"]), encoding="utf-8")
    (d / "v.csv").write_text(_csv(lot["header"], lot["rows"]), encoding="utf-8")  # type: ignore[arg-type]
    size, version, fileid = str(lot["size"]), int(lot["version"]), lot["fileid"]  # type: ignore[call-overload]
    args = ["generate", "c.csv", "v.csv", "p", size, "--outdir", "ours", "--version", str(version)]
    if fileid:
        args += ["--fileid", str(fileid)]
    if keyfile:
        args += ["--inputkey", str(keyfile)]
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    event("both refused" if code else "compared byte for byte")
    if code != 0:  # too big for the partition, or a blob over version 1's limit
        assert all(
            "does not fit" in line or "version 1 allows at most" in line
            for line in err.getvalue().splitlines()
        ), err.getvalue()
        with pytest.raises((Exception, SystemExit)):
            official_generate(
                Path("c.csv"),
                Path("v.csv"),
                "p",
                size,
                d / "theirs",
                fileid=fileid,  # type: ignore[arg-type]
                version=version,
                inputkey=keyfile,
            )
        return
    official_generate(
        Path("c.csv"),
        Path("v.csv"),
        "p",
        size,
        d / "theirs",
        fileid=fileid,
        version=version,
        inputkey=keyfile,  # type: ignore[arg-type]
    )
    ours, theirs = files_under(d / "ours"), files_under(d / "theirs")
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        assert ours[name] == theirs[name], name
