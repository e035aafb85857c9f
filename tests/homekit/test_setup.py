"""Setup codes, setup IDs, the X-HM:// payload, the lot's homekit settings, per-row setup data."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

from station.errors import StationError
from station.homekit import (
    HomeKitSettings,
    check_rows,
    fill_values_csv,
    generate_setup_code,
    generate_setup_id,
    homekit_settings_from_dict,
    label_facts,
    normalize_setup_code,
    parse_setup_payload,
    setup_for_row,
    setup_payload,
    srp_salt_verifier,
    validate_setup_code,
    validate_setup_id,
)
from station.homekit import setup as hk


def test_documented_payload_example() -> None:
    # esp-homekit-sdk setup_payload_gen: category 7, 51808582, 7OSX, flags 0xA (IP + WAC)
    assert setup_payload("518-08-582", "7OSX", 7, ip=True, wac=True) == "X-HM://007JNU5AE7OSX"


@pytest.mark.parametrize("category", [1, 2, 7, 36, 37, 200, 255])
@pytest.mark.parametrize("flags", [(True, False, False), (False, True, False), (True, False, True)])
def test_payload_round_trip_and_fixed_width(category: int, flags: tuple[bool, bool, bool]) -> None:
    ip, ble, wac = flags
    payload = setup_payload("101-48-005", "AB12", category, ip=ip, ble=ble, wac=wac)
    assert re.fullmatch(r"X-HM://[0-9A-Z]{9}AB12", payload)
    parsed = parse_setup_payload(payload)
    assert parsed.version == 0
    assert parsed.category == category
    assert parsed.flags == (2 if ip else 0) | (4 if ble else 0) | (8 if wac else 0)
    assert parsed.code == "101-48-005"
    assert parsed.setup_id == "AB12"


def test_payload_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="8 digits"):
        setup_payload("518-08-58", "7OSX", 7)
    with pytest.raises(ValueError, match="setup ID"):
        setup_payload("518-08-582", "7osx", 7)
    with pytest.raises(ValueError, match=r"1\.\.255"):
        setup_payload("518-08-582", "7OSX", 256)
    with pytest.raises(ValueError, match="not an X-HM"):
        parse_setup_payload("X-HM://007JNU5AE7OS")


@pytest.mark.parametrize(
    "code", ["000-00-000", "111-11-111", "99999999", "123-45-678", "87654321", "876-54-321"]
)
def test_disallowed_codes(code: str) -> None:
    assert "disallows" in (validate_setup_code(code) or "")


@pytest.mark.parametrize("code", ["", "1234567", "123-456-78", "12a-45-678", "123 45 678", "1-2"])
def test_malformed_codes(code: str) -> None:
    assert "8 digits" in (validate_setup_code(code) or "")


def test_good_codes_normalize() -> None:
    assert validate_setup_code("518-08-582") is None
    assert normalize_setup_code("51808582") == "518-08-582"
    assert normalize_setup_code(" 518-08-582 ") == "518-08-582"


@pytest.mark.parametrize("setup_id", ["", "ABC", "ABCDE", "abcd", "AB-1", "ÄBCD"])
def test_bad_setup_ids(setup_id: str) -> None:
    assert validate_setup_id(setup_id) is not None


def test_generated_codes_and_ids_are_valid_and_varied() -> None:
    codes = {generate_setup_code() for _ in range(500)}
    ids = {generate_setup_id() for _ in range(500)}
    assert all(
        validate_setup_code(c) is None and re.fullmatch(r"\d{3}-\d{2}-\d{3}", c) for c in codes
    )
    assert all(validate_setup_id(i) is None for i in ids)
    assert len(codes) > 490 and len(ids) > 450


def test_generator_skips_disallowed_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([12345678, 0, 33333333, 87654321, 51808582])
    monkeypatch.setattr(hk.secrets, "randbelow", lambda n: next(draws))
    assert generate_setup_code() == "518-08-582"


def test_settings_defaults_and_names() -> None:
    s = homekit_settings_from_dict({"category": "Outlet"}, "lot.toml")
    assert s == HomeKitSettings(category=7, ip=True, file="lot.toml")
    s = homekit_settings_from_dict(
        {"category": 5, "flags": ["ble"], "code_column": "code", "id_column": "sid",
         "generate": True}
    )  # fmt: skip
    assert (s.category, s.ip, s.ble, s.wac, s.generate) == (5, False, True, False, True)
    assert (s.code_column, s.id_column) == ("code", "sid")


def test_settings_report_every_problem() -> None:
    with pytest.raises(StationError) as e:
        homekit_settings_from_dict(
            {"category": 0, "flags": ["ip", "nfc"], "generate": "yes", "colour": 1,
             "code_column": "x", "id_column": "x"},
            "lots/a/lot.toml",
        )  # fmt: skip
    text = str(e.value)
    lines = text.splitlines()
    assert len(lines) == 5, text
    assert "lots/a/lot.toml:0:0: homekit.colour: unknown key" in text
    assert "homekit.category: 0 is out of range 1..255" in text
    assert "homekit.flags: unknown flag 'nfc'" in text
    assert "homekit.generate: must be true or false" in text
    assert "homekit.id_column: must differ from code_column" in text


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({}, "category: missing"),
        ({"category": "toaster"}, "unknown category 'toaster'"),
        ({"category": True}, "must be a number"),
        ({"category": 7, "flags": "ip"}, "must be a list"),
        ({"category": 7, "flags": []}, "at least one"),
        ({"category": 7, "flags": ["wac"]}, "wac is for IP"),
        ({"category": 7, "flags": ["ble", "wac"]}, "wac is for IP"),
        ({"category": "7"}, "write the number without quotes: category = 7"),
        ({"category": 7, "code_column": ""}, "code_column: must be the name"),
    ],
)
def test_settings_single_problems(d: dict[str, object], message: str) -> None:
    with pytest.raises(StationError, match=re.escape(message)):
        homekit_settings_from_dict(d)


def test_setup_for_row_from_values() -> None:
    settings = HomeKitSettings(category=7, wac=True)
    setup = setup_for_row(settings, {"serial_no": "A1", "setup_code": "51808582",
                                     "setup_id": "7OSX"})  # fmt: skip
    assert setup.code == "518-08-582" and setup.setup_id == "7OSX" and not setup.generated
    assert setup.payload == "X-HM://007JNU5AE7OSX"
    assert srp_salt_verifier(setup.code, setup.salt)[1] == setup.verifier
    assert "518" not in repr(setup) and setup.salt.hex() not in repr(setup)


def test_setup_for_row_generates_when_asked() -> None:
    settings = HomeKitSettings(category=7, generate=True)
    a = setup_for_row(settings, {"serial_no": "A1", "setup_code": "", "setup_id": ""})
    b = setup_for_row(settings, {"serial_no": "A2"})
    assert a.generated and b.generated
    assert validate_setup_code(a.code) is None and validate_setup_id(b.setup_id) is None
    assert a.salt != b.salt


def test_setup_for_row_locates_problems() -> None:
    settings = HomeKitSettings(category=7)
    with pytest.raises(StationError) as e:
        setup_for_row(settings, {"serial_no": "A1", "setup_code": "12345678", "setup_id": ""},
                      file="values.csv", line=4)  # fmt: skip
    assert str(e.value).splitlines() == [
        "values.csv:4:2: setup_code: setup code is one Apple disallows (all digits the same, "
        "12345678 or 87654321)",
        "values.csv:4:3: setup_id: is empty; fill it in or set homekit.generate = true",
    ]
    with pytest.raises(StationError, match="is not a column of the values CSV"):
        setup_for_row(settings, {"serial_no": "A1", "setup_code": "518-08-582"})


def test_fill_values_csv(tmp_path: Path) -> None:
    values = tmp_path / "values.csv"
    values.write_text(
        'serial_no,setup_code,note\r\nSN1,518-08-582,a\r\nSN2,,"two\r\nlines"\r\nSN3,,c\r\n'
    )
    settings = HomeKitSettings(category=7)
    assert fill_values_csv(values, settings) == 3  # every row needed at least an ID
    with values.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["serial_no", "setup_code", "note", "setup_id"]
    assert rows[0]["setup_code"] == "518-08-582"
    assert rows[1]["note"] == "two\r\nlines"
    for row in rows:
        assert validate_setup_code(row["setup_code"]) is None
        assert validate_setup_id(row["setup_id"]) is None
    before = values.read_bytes()
    assert fill_values_csv(values, settings) == 0
    assert values.read_bytes() == before
    assert b"\r\n" in before and b"\n\n" not in before


def test_fill_values_csv_refuses_bad_values_and_writes_nothing(tmp_path: Path) -> None:
    values = tmp_path / "values.csv"
    values.write_text('serial_no,setup_code,setup_id\nSN1,12345678,7OSX\nSN2,"1\n2",ab\n')
    before = values.read_bytes()
    with pytest.raises(StationError) as e:
        fill_values_csv(values, HomeKitSettings(category=7))
    assert [line.split(": ")[0] for line in str(e.value).splitlines()] == [
        f"{values}:2:2",
        f"{values}:4:2",
        f"{values}:4:3",
    ]
    assert values.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["values.csv"]


def _official_payload(category: int, code: str, setup_id: str, flags: int) -> str:
    """esp-homekit-sdk's setup_payload_gen, restated: "00" + base36 without padding."""
    n = (category << 31) | (flags << 27) | int(code.replace("-", ""))
    digits = ""
    while n > 0:
        n, r = divmod(n, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r] + digits
    return "X-HM://00" + digits + setup_id


@pytest.mark.parametrize("category", range(1, 36))
def test_payload_equals_espressif_for_categories_below_36(category: int) -> None:
    for code in ("101-48-005", "999-99-998", generate_setup_code()):
        ours = setup_payload(code, "7OSX", category, ip=True, wac=True)
        assert ours == _official_payload(category, code, "7OSX", 0xA)


def test_fill_values_csv_leaves_a_complete_file_alone(tmp_path: Path) -> None:
    values = tmp_path / "values.csv"
    values.write_text("serial_no,setup_code,setup_id\nSN1,518-08-582,7OSX\n")
    os.utime(values, (1_000_000_000, 1_000_000_000))
    assert fill_values_csv(values, HomeKitSettings(category=7)) == 0
    assert values.stat().st_mtime == 1_000_000_000


def test_label_facts() -> None:
    settings = HomeKitSettings(category=7, wac=True, code_column="code", id_column="sid")
    assert label_facts(settings, {"code": "51808582", "sid": "7OSX"}) == {
        "setup_code": "518-08-582",
        "setup_id": "7OSX",
        "homekit_payload": "X-HM://007JNU5AE7OSX",
    }
    assert label_facts(settings, {"code": "", "sid": "7OSX"}) == {}
    assert label_facts(settings, {"code": "12345678", "sid": "7OSX"}) == {}


def test_check_rows_locates_every_problem() -> None:
    settings = HomeKitSettings(category=7)
    columns = ["serial_no", "setup_code", "setup_id"]
    rows = [
        (2, {"serial_no": "A", "setup_code": "518-08-582", "setup_id": "7OSX"}),
        (3, {"serial_no": "B", "setup_code": "518-08-58", "setup_id": "7OSX"}),
        (5, {"serial_no": "C", "setup_code": "", "setup_id": "7osx"}),
    ]
    problems = [str(p) for p in check_rows(settings, rows, file="values.csv", columns=columns)]
    assert problems == [
        "values.csv:3:2: setup_code: setup code must be 8 digits, written XXX-XX-XXX "
        "or XXXXXXXX (not 9 characters)",
        "values.csv:5:2: setup_code: is empty; fill it in or set homekit.generate = true",
        "values.csv:5:3: setup_id: setup ID '7osx' must be 4 characters, digits or capital "
        "letters A-Z",
    ]
    generating = HomeKitSettings(category=7, generate=True)
    assert [p.line for p in check_rows(generating, rows, file="values.csv")] == [3, 5]
