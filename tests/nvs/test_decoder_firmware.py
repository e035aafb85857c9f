"""The decoder reads an image as the firmware (ESP-IDF nvs_flash) does, where nvs_tool did not.

Each test is one disagreement found by comparing `station inspect` with ESP-IDF's nvs_tool and
the nvs_flash sources (issue 13): nvs_storage.cpp (namespaces, items found by type and key),
nvs_page.cpp (page states).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from station import cli
from station.nvs import NvsEntry, decode_image, encode_image

NS = NvsEntry("storage", "namespace", "", "")


def _entry(ns: int, typ: int, key: str, value: bytes) -> bytes:
    """A one-entry item (span 1, chunk 0xFF) with its CRC, as the firmware writes it."""
    head = bytes([ns, typ, 1, 0xFF])
    body = key.encode().ljust(16, b"\0") + value.ljust(8, b"\xff")
    return head + struct.pack("<I", zlib.crc32(head + body, 0xFFFFFFFF)) + body


def _page(entries: list[bytes], seq: int = 0, state: int = 0xFFFFFFFE) -> bytes:
    header = bytearray(b"\xff" * 32)
    struct.pack_into("<II", header, 0, state, seq)
    header[8] = 0xFE  # version 2
    struct.pack_into("<I", header, 28, zlib.crc32(bytes(header[4:28]), 0xFFFFFFFF))
    bitmap = bytearray(b"\xff" * 32)
    for i in range(len(entries)):
        bitmap[i // 4] &= ~(1 << ((i % 4) * 2)) & 0xFF  # 0b10: written
    body = b"".join(entries).ljust(126 * 32, b"\xff")
    return bytes(header) + bytes(bitmap) + body


def test_a_namespace_defined_twice_opens_at_its_first_index() -> None:
    """nvs_storage.cpp: createOrOpenNamespace finds the first namespace entry with the name
    (pages in sequence order); the keys under the other index cannot be read by name."""
    page = _page(
        [
            _entry(0, 0x01, "storage", b"\x01"),
            _entry(1, 0x01, "a", b"\x07"),
            _entry(0, 0x01, "storage", b"\x03"),
            _entry(3, 0x01, "a", b"\x09"),
            _entry(3, 0x01, "b", b"\x02"),
        ]
    )
    image = decode_image(page + b"\xff" * 0x2000)
    assert image.namespaces == {1: "storage", 3: "storage"}
    assert [(i.namespace, i.ns_index, i.key, i.value) for i in image.items] == [
        ("storage", 1, "a", 7),
        ("storage", 3, "a", 9),
        ("storage", 3, "b", 2),
    ]
    assert image.as_dict() == {"storage": {"a": 7}}  # what the firmware reads
    assert image.errors == [
        "page 0 entry 2: namespace 'storage' is defined twice, with index 1 (page 0 entry 0) and "
        "index 3; the firmware opens index 1; its keys under index 3 (a, b) cannot be read"
    ]


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (0x00000000, "state word 0x00000000 is not a page state (empty, active, full or freeing)"),
        (0x12345678, "state word 0x12345678 is not a page state (empty, active, full or freeing)"),
        (0xFFFFFFF0, "marked corrupt"),
    ],
)
def test_a_page_whose_state_word_is_not_a_state_is_corrupt(state: int, why: str) -> None:
    """nvs_page.cpp Page::load: any state but empty/active/full/freeing is CORRUPT; the page
    is not loaded (and is erased when a free page is needed)."""
    good = _page([_entry(0, 0x01, "storage", b"\x01"), _entry(1, 0x01, "a", b"\x07")])
    bad = _page([_entry(1, 0x01, "b", b"\x08")], seq=1, state=state)
    image = decode_image(good + bad + b"\xff" * 0x1000)
    assert [p.state for p in image.pages] == ["active", "corrupt", "empty"]
    assert image.as_dict() == {"storage": {"a": 7}}
    assert image.errors == [
        f"page 1: {why}; the firmware treats the page as corrupt, ignores it and erases it when "
        "it needs the space; its 1 written entries are ignored"
    ]


def test_one_key_with_three_types_is_three_values() -> None:
    """nvs_storage.cpp: items are found by namespace, type and key, so nvs_get_i32, _u32 and
    _i8 of one key read three values (nvs_tool's own setup_bad_same_key_primitive)."""
    page = _page(
        [
            _entry(0, 0x01, "storage", b"\x01"),
            _entry(1, 0x14, "same_key", struct.pack("<i", 42)),
            _entry(1, 0x04, "same_key", struct.pack("<I", 24)),
            _entry(1, 0x11, "same_key", struct.pack("<b", -5)),
        ]
    )
    image = decode_image(page + b"\xff" * 0x2000)
    assert [(i.key, i.type, i.value) for i in image.items] == [
        ("same_key", "i32", 42),
        ("same_key", "u32", 24),
        ("same_key", "i8", -5),
    ]
    assert image.errors == [
        "page 0 entry 3: key 'same_key' is stored with 3 types (i32, u32, i8): 3 values, each "
        "read by its own type (a firmware write of the key replaces them all)"
    ]


def test_the_same_key_and_type_twice_is_still_one_value() -> None:
    page = _page(
        [
            _entry(0, 0x01, "storage", b"\x01"),
            _entry(1, 0x02, "k", struct.pack("<H", 321)),
            _entry(1, 0x02, "k", struct.pack("<H", 456)),
        ]
    )
    image = decode_image(page + b"\xff" * 0x2000)
    assert [(i.key, i.value) for i in image.items] == [("k", 456)]
    assert len(image.errors) == 1 and "key 'k' is written twice" in image.errors[0]


def _inspect_err(path: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["inspect", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_inspect_refuses_an_empty_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("empty.bin").write_bytes(b"")
    assert _inspect_err("empty.bin", capsys) == (
        "empty.bin:0:0: -: the image is empty (0 bytes): not an NVS partition image\n"
    )


def test_inspect_refuses_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("dir").mkdir()
    assert _inspect_err("dir", capsys) == "dir:0:0: -: is a folder, not an NVS image file\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_inspect_refuses_a_fifo_without_opening_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo("pipe")  # opening it for reading would block until a writer comes
    assert _inspect_err("pipe", capsys) == (
        "pipe:0:0: -: not a regular file (a pipe, socket or device): save the partition to a "
        "file first (esptool read_flash OFFSET SIZE file.bin)\n"
    )


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_inspect_refuses_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert "/dev/zero:0:0: -: not a regular file" in _inspect_err("/dev/zero", capsys)


def test_inspect_refuses_a_file_larger_than_any_flash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open("huge.bin", "wb") as f:
        f.truncate(128 * 1024 * 1024 + 4096)  # sparse: no disk space used
    assert "more than any flash holds (128 MB)" in _inspect_err("huge.bin", capsys)


def test_inspect_still_reads_an_ordinary_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("ok.bin").write_bytes(encode_image([NS, NvsEntry("a", "data", "u8", "1")], 0x3000))
    assert cli.main(["inspect", "ok.bin"]) == 0
    assert "    a               u8     1" in capsys.readouterr().out


def test_inspect_lists_a_corrupt_page_as_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    good = _page([_entry(0, 0x01, "storage", b"\x01"), _entry(1, 0x01, "a", b"\x07")])
    bad = _page([_entry(1, 0x01, "b", b"\x08")], seq=1, state=0)
    Path("img.bin").write_bytes(good + bad + b"\xff" * 0x1000)
    assert cli.main(["inspect", "img.bin"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "img.bin: 12288 bytes, 3 pages",
        "  page 0: active, seq 0, version 2, 2/126 entries used, 0 erased",
        "  page 1: corrupt, ignored by the firmware (see the problems)",
    ]
    assert out[-1].startswith("  page 1: state word 0x00000000 is not a page state")
