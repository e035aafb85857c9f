"""NVS encoder throughput: station.nvs vs esp-idf-nvs-partition-gen 0.3.0, in the same run.

Run by hand: python tests/bench/bench_nvs.py [N]. Prints images per second for each and the
ratio; nothing is asserted. Ways of building the same typical factory image (6 keys, a 1 KiB
certificate as base64): our encode_image in memory; our RowEncoder (the fast path for a lot
validated as a whole) in memory; the official Python API in memory; the official generate() from
a CSV file to an image file (what mfg_gen does per device).
"""

from __future__ import annotations

import base64
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from esp_idf_nvs_partition_gen import nvs_partition_gen as official

from station.nvs import NvsEntry, encode_image, generate_keys, key_partition_image
from station.nvs.encoder import RowEncoder

SIZE = 0x6000


def entries(i: int) -> list[NvsEntry]:
    return [
        NvsEntry("storage", "namespace", "", ""),
        NvsEntry("serial_no", "data", "string", f"SN-{i:08d}"),
        NvsEntry("mac", "data", "hex2bin", f"a0b1c2{i:06x}"),
        NvsEntry("boot", "data", "u32", str(i)),
        NvsEntry("cert", "data", "base64", base64.b64encode(bytes([i % 256]) * 1024).decode()),
        NvsEntry("pin", "data", "string", f"{i % 10000:04d}"),
    ]


def rate(label: str, n: int, build) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i in range(n):
        build(i)
    per_s = n / (time.perf_counter() - start)
    print(f"  {label:<44} {per_s:10.0f} images/s")
    return per_s


def official_api(i: int, key: bytes | None) -> bytes:
    out = io.BytesIO()
    nvs = official.nvs_open(
        out, SIZE - 4096, official.Page.VERSION2, is_encrypt=key is not None, key=key
    )
    for e in entries(i):
        official.write_entry(nvs, e.key, e.type, e.encoding, e.value)
    official.nvs_close(nvs)
    return out.getvalue()


def official_files(i: int, folder: Path, keyfile: Path | None) -> None:
    csv_path = folder / f"{i}.csv"
    csv_path.write_text(
        "key,type,encoding,value\n"
        + "".join(f"{e.key},{e.type},{e.encoding},{e.value}\n" for e in entries(i))
    )
    args = SimpleNamespace(
        input=[str(csv_path)],
        output=f"{i}.bin",
        size=hex(SIZE),
        version=2,
        outdir=str(folder),
        keygen=False,
        inputkey=str(keyfile) if keyfile else None,
        keyfile=None,
        key_protect_hmac=False,
        kp_hmac_keygen=False,
        kp_hmac_keyfile=None,
        kp_hmac_inputkey=None,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        (official.encrypt if keyfile else official.generate)(args)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    keys = generate_keys()
    row_encoder = RowEncoder.create([(e.key, e.encoding) for e in entries(0)])
    assert row_encoder is not None
    for encrypted in (False, True):
        use = keys if encrypted else None
        print(f"{n} images of {SIZE:#x} bytes, {'encrypted' if encrypted else 'plain'}:")
        ours = rate(
            "station.nvs.encode_image (memory)",
            n,
            lambda i, use=use: encode_image(entries(i), SIZE, keys=use),
        )
        fast = rate(
            "station RowEncoder, validated lot (memory)",
            n,
            lambda i, use=use: row_encoder.encode(
                [e.value for e in entries(i) if e.type != "namespace"], SIZE, use
            ),
        )
        api = rate(
            "official nvs_open/write_entry (memory)",
            n,
            lambda i, use=use: official_api(i, use.raw if use else None),
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            keyfile = None
            if encrypted:
                keyfile = folder / "keys.bin"
                keyfile.write_bytes(key_partition_image(keys))
            files = rate(
                "official generate (CSV file -> image file)",
                n,
                lambda i, folder=folder, keyfile=keyfile: official_files(i, folder, keyfile),
            )
        print(
            f"  ratio: {ours / api:.1f}x the official API, {ours / files:.1f}x its generate();"
            f" RowEncoder {fast / api:.1f}x the official API"
        )


if __name__ == "__main__":
    main()
