"""`station inspect --json` against ESP-IDF's nvs_tool, entry by entry, and nvs_check's report.

nvs_tool is not on PyPI: its four files are copied unchanged into tests/peers/nvs_partition_tool
and run as a program (``nvs_tool.py -f json -d all IMAGE``; ``-d none -i`` for nvs_check). The
images: the station's and Espressif's generator's, the setups of nvs_tool's own
``test_nvs_gen_check.py`` (built with Espressif's generator as upstream does), and damaged ones.

Agreement means: every entry the station shows is one nvs_tool shows (page, entry, namespace,
key, type, span, value; for a version-2 blob its index and each data chunk); every written entry
nvs_tool shows that the station leaves out is named in a station problem (an older copy, a page
the firmware treats as corrupt, a damaged entry); and every kind of damage nvs_check reports,
the station reports too. The station may report more (illegal bitmap states, truncation, pages
the firmware ignores).
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from esp_idf_nvs_partition_gen import nvs_partition_gen as gen

from station import cli
from station.nvs import NvsEntry, encode_image

PEERS = Path(__file__).parents[1] / "peers"
NVS_TOOL = PEERS / "nvs_partition_tool" / "nvs_tool.py"
TESTDATA = PEERS / "mass_mfg" / "testdata"  # the same files as nvs_partition_generator/testdata

# nvs_tool's type names for the station's
PEER_TYPE = {
    "u8": "uint8_t",
    "i8": "int8_t",
    "u16": "uint16_t",
    "i16": "int16_t",
    "u32": "uint32_t",
    "i32": "int32_t",
    "u64": "uint64_t",
    "i64": "int64_t",
    "string": "string",
    "blob": "blob",
}

Entry = tuple[int, int, str, str, str, int, Any]  # page, entry, namespace, key, type, span, value


def run_nvs_tool(image: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", COLUMNS="400")
    return subprocess.run(
        [sys.executable, str(NVS_TOOL), *args, str(image)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


class Peer:
    """What nvs_tool's JSON dump shows: namespaces (index -> (name, page, entry)), written
    entries, and the places it reads as the data of an item whose header is damaged (wrong CRC,
    or a span past the page)."""

    def __init__(self) -> None:
        self.namespaces: dict[int, tuple[str, int, int]] = {}
        self.entries: list[Entry] = []
        self.under_damaged: set[tuple[int, int]] = set()


def peer_view(image: Path) -> Peer:
    result = run_nvs_tool(image, "-f", "json", "-d", "all")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    peer = Peer()
    raw: list[tuple[int, dict[str, Any]]] = []
    for page_no, page in enumerate(doc["pages"]):
        for e in page["entries"]:
            crc, span = e["metadata"]["crc"], e["metadata"]["span"]
            if crc["original"] != crc["computed"] or e["index"] + span > 126:
                peer.under_damaged.update((page_no, c["index"]) for c in e["children"])
            if e["state"] != "Written":
                continue
            if e["metadata"]["namespace"] == 0 and e["metadata"]["type"] == "uint8_t":
                peer.namespaces.setdefault(e["data"]["value"], (e["key"], page_no, e["index"]))
            else:
                raw.append((page_no, e))
    for page_no, e in raw:
        md, typ = e["metadata"], e["metadata"]["type"]
        data = b"".join(base64.b64decode(c["raw"]) for c in e["children"])
        value: Any
        if typ in ("string", "blob", "blob_data"):
            value = data[: e["data"]["size"]]
            if typ == "string":
                value = value[:-1] if value.endswith(b"\0") else value
                value = value.decode("utf-8", "replace")
        elif typ == "blob_index":
            value = (e["data"]["size"], e["data"]["chunk_count"], e["data"]["chunk_start"])
        else:
            value = e["data"]["value"]
        if typ == "blob_data":
            typ = f"blob_data {md['chunk_index']}"
        ns = peer.namespaces.get(md["namespace"], (f"#{md['namespace']}", -1, -1))[0]
        peer.entries.append((page_no, e["index"], ns, e["key"], typ, md["span"], value))
    return peer


def station_view(image: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = cli.main(["inspect", str(image), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == (1 if doc["errors"] else 0)
    return doc


def station_entries(doc: dict[str, Any]) -> list[Entry]:
    out: list[Entry] = []
    for i in doc["items"]:
        value = i["value"]
        if i["type"] == "blob":
            value = bytes.fromhex(value)
        if i["blob_index"] is not None:
            index = tuple(i["blob_index"][k] for k in ("size", "chunk_count", "chunk_start"))
            out.append((i["page"], i["entry"], i["namespace"], i["key"], "blob_index", 1, index))
            at = 0
            for p in i["parts"]:
                part = value[at : at + p["size"]]
                at += p["size"]
                kind = f"blob_data {p['chunk']}"
                out.append((p["page"], p["entry"], i["namespace"], i["key"], kind, p["span"], part))
        else:
            kind = PEER_TYPE[i["type"]]
            out.append((i["page"], i["entry"], i["namespace"], i["key"], kind, i["span"], value))
    return out


# kinds of damage: (what nvs_check prints, what the station says)
DAMAGE = {
    "duplicate": (r"Found duplicate entries", r"written twice|stored with \d+ types|defined twice"),
    "entry crc": (r"has wrong CRC32", r"CRC mismatch"),
    "page crc": (r"Original CRC32:", r"page \d+: header CRC mismatch"),
    "undefined namespace": (r"Undefined namespace index", r"unknown namespace"),
    "missing chunk": (r"is missing a chunk|is missing \d+ B of data", r"blob chunk \d+ is missing"),
    "orphan chunk": (r"chunk has no blob index", r"has no index"),
    "empty page with data": (r"reported as Empty but", r"marked uninitialised but holds data"),
    "out of bounds": (r"is out of bounds", r"runs past the page"),
}


def peer_damage(image: Path) -> set[str]:
    result = run_nvs_tool(image, "-d", "none", "-i")
    text = result.stdout + result.stderr
    return {kind for kind, (theirs, _ours) in DAMAGE.items() if re.search(theirs, text)}


def station_damage(errors: list[str]) -> set[str]:
    text = "\n".join(errors)
    return {kind for kind, (_theirs, ours) in DAMAGE.items() if re.search(ours, text)}


def assert_agree(
    image: Path, capsys: pytest.CaptureFixture[str], *, damaged: bool = False
) -> dict[str, Any]:
    """Station and nvs_tool agree on ``image`` (see the module's docstring). ``damaged``: random
    damage, where nvs_tool may complain about an entry the station already rejected for its CRC
    (it reads a damaged chunk header as a chunk without index, for instance)."""
    doc = station_view(image, capsys)
    peer = peer_view(image)
    corrupt_pages = {p["index"] for p in doc["pages"] if p["state"] == "corrupt"}

    def named(page: int, entry: int) -> bool:
        """The station names this entry in a problem (an older copy, damage, ...)."""
        return any(re.search(rf"page {page} entry {entry}\b", err) for err in doc["errors"])

    def ignored(page: int, entry: int) -> bool:
        return page in corrupt_pages or named(page, entry)

    # the namespace table: every index the station knows, nvs_tool knows with the same name;
    # an index whose definition the firmware ignores (a corrupt page) is '#N' to the station
    known = {int(k): v for k, v in doc["namespaces"].items()}
    assert all(peer.namespaces[k][0] == v for k, v in known.items())
    unknown = {f"#{k}": name for k, (name, pg, en) in peer.namespaces.items() if ignored(pg, en)}
    ours = [(e[0], e[1], unknown.get(e[2], e[2]), *e[3:]) for e in station_entries(doc)]
    theirs = peer.entries
    # every entry the station shows, nvs_tool shows the same (the station also reads past an
    # item whose header is damaged, where nvs_tool takes the damaged span at its word)
    missing = [e for e in ours if e not in theirs and (e[0], e[1]) not in peer.under_damaged]
    assert missing == [], f"station entries nvs_tool does not have: {missing}"
    # every written entry nvs_tool shows and the station does not is explained by a problem
    unexplained = [e for e in theirs if e not in ours and not ignored(e[0], e[1])]
    assert unexplained == [], f"nvs_tool entries the station drops silently: {unexplained}"
    # every kind of damage nvs_check reports, the station reports
    theirs_damage, ours_damage = peer_damage(image), station_damage(doc["errors"])
    if damaged and "entry crc" in ours_damage:
        ours_damage |= {"orphan chunk", "missing chunk", "undefined namespace", "out of bounds"}
    assert theirs_damage <= ours_damage, doc["errors"]
    return doc


# --- images from both generators --------------------------------------------------------------

ROWS = [
    NvsEntry("storage", "namespace", "", ""),
    NvsEntry("u8", "data", "u8", "255"),
    NvsEntry("i8", "data", "i8", "-128"),
    NvsEntry("u16", "data", "u16", "65535"),
    NvsEntry("i16", "data", "i16", "-32768"),
    NvsEntry("u32", "data", "u32", "4294967295"),
    NvsEntry("i32", "data", "i32", "-2147483648"),
    NvsEntry("u64", "data", "u64", "18446744073709551615"),
    NvsEntry("i64", "data", "i64", "-9223372036854775808"),
    NvsEntry("short", "data", "string", "héllo ✓"),
    NvsEntry("long", "data", "string", "x" * 3000),
    NvsEntry("blob", "data", "hex2bin", (bytes(range(256)) * 30).hex()),
    NvsEntry("other", "namespace", "", ""),
    NvsEntry("u8", "data", "u8", "7"),
    NvsEntry("b64", "data", "base64", base64.b64encode(b"abc").decode()),
]


@pytest.mark.parametrize("version", [1, 2])
def test_station_images(tmp_path: Path, capsys: pytest.CaptureFixture[str], version: int) -> None:
    rows = ROWS if version == 2 else [r for r in ROWS if r.key not in ("blob", "long")]
    image = tmp_path / "station.bin"
    image.write_bytes(encode_image(rows, 0x8000, version=version))
    doc = assert_agree(image, capsys)
    assert doc["errors"] == []
    assert len(doc["items"]) == len(rows) - 2


@pytest.mark.parametrize("seed", range(6))
def test_random_station_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    rnd = random.Random(seed)
    rows = [NvsEntry("ns0", "namespace", "", "")]
    for n in range(rnd.randint(5, 80)):
        kind = rnd.choice(["u8", "i32", "u64", "string", "hex2bin", "namespace"])
        if kind == "namespace":
            rows.append(NvsEntry(f"ns{n}", "namespace", "", ""))
        elif kind == "string":
            rows.append(NvsEntry(f"k{n}", "data", "string", "s" * rnd.randint(0, 2500)))
        elif kind == "hex2bin":
            rows.append(
                NvsEntry(f"k{n}", "data", "hex2bin", os.urandom(rnd.randint(1, 6000)).hex())
            )
        else:
            rows.append(NvsEntry(f"k{n}", "data", kind, str(rnd.randint(0, 127))))
    image = tmp_path / "random.bin"
    image.write_bytes(encode_image(rows, 0x20000))
    assert assert_agree(image, capsys)["errors"] == []


# --- the setups of nvs_tool's test_nvs_gen_check.py, built as upstream builds them -------------
# (espressif/esp-idf components/nvs_flash/nvs_partition_tool/test_nvs_gen_check.py, Apache-2.0)

LOREM = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * 33
PRIM = ["i8", "u8", "i16", "u16", "i32", "u32"]
SINGLE = str(TESTDATA / "sample_singlepage_blob.bin")
MULTI = str(TESTDATA / "sample_multipage_blob.bin")
BLOB = str(TESTDATA / "sample_blob.bin")


def _prims() -> list[tuple[str, ...]]:
    return [(f"test_{i}", "data", PRIM[i % len(PRIM)], str(i)) for i in range(20)]


SETUPS: dict[str, tuple[int, list[tuple[str, ...]]]] = {
    "ok_primitive": (
        0x4000,
        [
            ("storage", "namespace", "", ""),
            ("int32_test", "data", "i32", "42"),
            ("uint32_test", "data", "u32", "42"),
            ("int8_test", "data", "i8", "100"),
        ],
    ),
    "ok_variable_len": (
        0x5000,
        [
            ("storage", "namespace", "", ""),
            ("short_string_key", "data", "string", "Hello world!"),
            ("blob_key", "file", "binary", BLOB),
            ("lorem_string_key", "data", "string", LOREM * 2),
            ("uniq_string_key", "data", "string", "I am unique!"),
            ("multi_blob_key", "file", "binary", MULTI),
        ],
    ),
    "ok_mixed": (
        0x6000,
        [
            ("storage", "namespace", "", ""),
            *_prims(),
            ("blob_key", "file", "binary", SINGLE),
            ("etc", "namespace", "", ""),
            *_prims(),
            ("lorem_string_key", "data", "string", LOREM * 2),
            ("abcd", "namespace", "", ""),
            *_prims(),
            ("uniq_string_key", "data", "string", "I am unique!"),
            ("blob_key", "file", "binary", MULTI),
        ],
    ),
    "bad_mixed_same_key_different_page": (
        0x6000,
        [
            ("storage", "namespace", "", ""),
            *_prims(),
            ("blob_key", "file", "binary", SINGLE),
            ("etc", "namespace", "", ""),
            *_prims(),
            ("lorem_string_key", "data", "string", LOREM * 2),
            ("uniq_string_key", "data", "string", "I am unique!"),
            ("blob_key", "file", "binary", MULTI),
            *[(f"test_{i}", "data", PRIM[i], str(i)) for i in range(6)],
            ("lorem_string_key", "data", "string", "abc"),
            ("!unsafe_namespace", "storage"),
            ("storage2", "namespace", "", ""),
            ("lorem_string_key", "data", "string", "abc"),
            ("lorem_string", "data", "string", "abc"),
            ("lorem_string", "data", "string", "def"),
            ("lorem_string", "data", "string", "123"),
            ("storage", "namespace", "", ""),
        ],
    ),
    "bad_same_key_primitive": (
        0x4000,
        [
            ("storage", "namespace", "", ""),
            ("unique_key", "data", "i16", "1234"),
            ("same_key", "data", "i32", "42"),
            ("same_key", "data", "u32", "24"),
            ("same_key", "data", "i8", "-5"),
            ("another_same_key", "data", "u16", "321"),
            ("another_same_key", "data", "u16", "456"),
        ],
    ),
    "bad_same_key_variable_len": (
        0x4000,
        [
            ("storage", "namespace", "", ""),
            ("same_string_key", "data", "string", "Hello"),
            ("same_string_key", "data", "string", "world!"),
            ("unique_string_key", "data", "string", "I am unique!"),
        ],
    ),
    "bad_same_key_blob_index": (
        0x6000,
        [
            ("storage", "namespace", "", ""),
            ("blob_key", "file", "binary", MULTI),
            ("blob_key_2", "file", "binary", MULTI),
            ("blob_key", "file", "binary", MULTI),
        ],
    ),
    "read_only": (
        0x1000,
        [
            ("storage", "namespace", "", ""),
            ("int32_test", "data", "i32", "42"),
            ("uint32_test", "data", "u32", "42"),
            ("int8_test", "data", "i8", "100"),
            ("short_string_key", "data", "string", "Hello world!"),
        ],
    ),
    "minimal_json": (
        0x4000,
        [
            ("storage", "namespace", "", ""),
            ("int32_test", "data", "i32", "-42"),
            ("uint32_test", "data", "u32", "96"),
            ("int8_test", "data", "i8", "100"),
            ("blob_key", "file", "binary", MULTI),
            ("short_str_key", "data", "string", "Another string data"),
            ("long_str_key", "data", "string", LOREM),
        ],
    ),
    "ok_non_ascii_string": (
        0x4000,
        [("storage", "namespace", "", ""), ("string_key", "data", "string", "ÄÄÄÄ")],
    ),
}


def build_setup(size: int, rows: list[tuple[str, ...]]) -> bytes:
    """An image made by Espressif's generator through its API, as the upstream fixture does."""
    out = io.BytesIO()
    size_fixed, read_only = gen.check_size(str(size))
    nvs = gen.nvs_open(
        result_obj=out,
        input_size=size_fixed,
        version=gen.Page.VERSION2,
        is_encrypt=False,
        key=None,
        read_only=read_only,
    )
    for row in rows:
        if row[0] == "!unsafe_namespace":
            nvs.write_namespace_unsafe(row[1])  # upstream's way to write a namespace twice
        else:
            gen.write_entry(nvs, *row)
    gen.nvs_close(nvs)
    return out.getvalue()


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_nvs_gen_check_setups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str
) -> None:
    size, rows = SETUPS[setup]
    image = tmp_path / f"{setup}.bin"
    image.write_bytes(build_setup(size, rows))
    doc = assert_agree(image, capsys)
    if setup.startswith("ok_") or setup in ("read_only", "minimal_json"):
        assert doc["errors"] == []
    else:
        assert "duplicate" in station_damage(doc["errors"])


def test_setup_same_key_primitive_shows_three_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "same_key.bin"
    image.write_bytes(build_setup(*SETUPS["bad_same_key_primitive"]))
    doc = assert_agree(image, capsys)
    assert [(i["key"], i["type"], i["value"]) for i in doc["items"]] == [
        ("unique_key", "i16", 1234),
        ("same_key", "i32", 42),
        ("same_key", "u32", 24),
        ("same_key", "i8", -5),
        ("another_same_key", "u16", 456),
    ]


def test_setup_namespace_written_twice_opens_the_first_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "mixed.bin"
    image.write_bytes(build_setup(*SETUPS["bad_mixed_same_key_different_page"]))
    doc = assert_agree(image, capsys)
    assert doc["namespaces"] == {"1": "storage", "2": "etc", "3": "storage", "4": "storage2"}
    assert not any(i["namespace"].startswith("#") for i in doc["items"])
    assert any("namespace 'storage' is defined twice" in e for e in doc["errors"])


# --- damaged images -----------------------------------------------------------------------------


def _base() -> bytearray:
    return bytearray(
        encode_image(
            [
                NvsEntry("storage", "namespace", "", ""),
                NvsEntry("a", "data", "u32", "7"),
                NvsEntry("s", "data", "string", "hello world"),
                NvsEntry("b", "data", "hex2bin", (bytes(range(256)) * 20).hex()),  # 2 chunks
                NvsEntry("z", "data", "u8", "1"),
            ],
            0x5000,
        )
    )


def _entry_at(page: int, entry: int) -> int:
    return page * 4096 + 64 + entry * 32


def _mark(data: bytearray, page: int, entry: int, state: int) -> None:
    at = page * 4096 + 32 + entry // 4
    shift = (entry % 4) * 2
    data[at] = (data[at] & ~(3 << shift)) | (state << shift)


def _fix_header_crc(data: bytearray, page: int) -> None:
    base = page * 4096
    struct.pack_into(
        "<I", data, base + 28, zlib.crc32(bytes(data[base + 4 : base + 28]), 0xFFFFFFFF)
    )


def _item_value(d: bytearray) -> None:
    d[_entry_at(0, 1) + 24] ^= 0xFF  # a's value: item CRC


def _string_data(d: bytearray) -> None:
    d[_entry_at(0, 3)] ^= 0x01  # a byte of "hello world": data CRC


def _page_version(d: bytearray) -> None:
    d[8] = 0x00  # covered by the header CRC


def _state_zero(d: bytearray) -> None:
    struct.pack_into("<I", d, 4096, 0)  # page 1's state word (not covered by the CRC)


def _chunk_erased(d: bytearray) -> None:
    _mark(d, 0, 4, 0)  # the first chunk's header marked erased: a missing chunk


def _index_erased(d: bytearray) -> None:
    # the blob index is the last item written before "z": find it and erase it
    for entry in range(126):
        at = _entry_at(0, entry) if entry < 126 else 0
        if d[at + 1] == 0x48:
            _mark(d, 0, entry, 0)
            return
    for entry in range(126):
        if d[_entry_at(1, entry) + 1] == 0x48:
            _mark(d, 1, entry, 0)
            return
    raise AssertionError("no blob index")


def _namespace_erased(d: bytearray) -> None:
    _mark(d, 0, 0, 0)  # "storage" gone: its keys have an undefined namespace


def _empty_page_with_data(d: bytearray) -> None:
    d[4 * 4096 + 100] = 0x00


def _span_too_long(d: bytearray) -> None:
    at = _entry_at(0, 3 - 1)  # the string's header
    d[at + 2] = 200  # span past the page, with its item CRC made right again
    head = bytes(d[at : at + 4] + d[at + 8 : at + 32])
    struct.pack_into("<I", d, at + 4, zlib.crc32(head, 0xFFFFFFFF))


def _seq_swapped_duplicate(d: bytearray) -> None:
    # a copy of page 0 as the newest page: every key written twice
    d[3 * 4096 : 4 * 4096] = d[0:4096]
    struct.pack_into("<I", d, 3 * 4096 + 4, 9)
    _fix_header_crc(d, 3)


DAMAGED: dict[str, Callable[[bytearray], None]] = {
    "item value": _item_value,
    "string data": _string_data,
    "page header": _page_version,
    "state word 0": _state_zero,
    "chunk erased": _chunk_erased,
    "index erased": _index_erased,
    "namespace erased": _namespace_erased,
    "empty page with data": _empty_page_with_data,
    "span too long": _span_too_long,
    "page copied": _seq_swapped_duplicate,
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_damaged_images(tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    data = _base()
    DAMAGED[damage](data)
    image = tmp_path / "damaged.bin"
    image.write_bytes(bytes(data))
    # nvs_tool takes a span past the page at its word and skips the rest of the page, so it
    # then misses the blob's first chunk; the station reads on and finds it
    doc = assert_agree(image, capsys, damaged=damage == "span too long")
    assert doc["errors"], "the damage went unreported"


@pytest.mark.parametrize("seed", range(8))
def test_randomly_damaged_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    rnd = random.Random(seed)
    data = _base()
    for _ in range(rnd.randint(1, 12)):
        data[rnd.randrange(0, 2 * 4096)] = rnd.randrange(256)
    image = tmp_path / "random-damage.bin"
    image.write_bytes(bytes(data))
    assert_agree(image, capsys, damaged=True)
