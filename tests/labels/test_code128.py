"""Our Code 128 encoder, read back by zxing-cpp (no Qt: modules drawn straight into pixels)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.labels import code128
from tests.labels.conftest import decode_lum


def _read(text: str, scale: int = 3) -> list[tuple[str, str]]:
    row = [False] * code128.QUIET_ZONE + code128.modules(text) + [False] * code128.QUIET_ZONE
    line = bytes(0 if bar else 255 for bar in row for _ in range(scale))
    height = 40
    return decode_lum(line * height, len(line), height, len(line))


def test_table_is_well_formed() -> None:
    patterns = code128._PATTERNS
    assert len(patterns) == 107 and len(set(patterns)) == 107
    assert all(sum(map(int, p)) == 11 for p in patterns[:106])
    assert sum(map(int, patterns[106])) == 13


@pytest.mark.parametrize(
    "text",
    [
        "SN-000123",
        "12345678",
        "A1234567",
        "24:0A:C4:12:34:56",
        "x",
        "1",
        "123",
        "1234",
        "ABC12345",
        "12345ABC",
        "Hello World 42!",
        "a^b~c_d",
        " ",
        string.printable[:95],
    ],
)
def test_read_back(text: str) -> None:
    assert _read(text) == [("Code128", text)]


def test_digits_are_packed() -> None:
    assert code128.symbols("12345678") == [105, 12, 34, 56, 78, 47, 106]
    assert len(code128.symbols("SN0000000001")) < len("SN0000000001") + 3


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30)
)
def test_any_printable_ascii_reads_back(text: str) -> None:
    assert _read(text, scale=2) == [("Code128", text)]


@pytest.mark.parametrize(
    ("text", "message"), [("", "empty"), ("é", "printable ASCII"), ("a\tb", "printable ASCII")]
)
def test_unsupported(text: str, message: str) -> None:
    assert message in (code128.unsupported(text) or "")
    with pytest.raises(ValueError, match=message):
        code128.symbols(text)
