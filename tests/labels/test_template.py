"""Label templates from lot.toml tables, fields for one unit, secrets, filling in. No Qt."""

from __future__ import annotations

import re

import pytest

from station.errors import StationError
from station.labels import (
    MASK,
    LabelTemplate,
    check_template,
    fill,
    label_fields,
    template_from_dict,
    template_to_dict,
)

GOOD = {
    "width_mm": 50,
    "height_mm": 25,
    "lines": ["SN {serial_no}", "MAC {mac}", "Code {setup_code}"],
    "qr": "{homekit_payload}",
    "code128": "{serial_no}",
    "show_secrets": ["setup_code"],
}


def test_parse_and_round_trip() -> None:
    t = template_from_dict(GOOD, "lot.toml")
    assert t == LabelTemplate(
        50.0,
        25.0,
        300,
        tuple(GOOD["lines"]),
        "{homekit_payload}",
        "{serial_no}",
        frozenset({"setup_code"}),
    )
    assert template_from_dict(template_to_dict(t)) == t
    assert t.placeholders() == ["serial_no", "mac", "setup_code", "homekit_payload"]


def test_every_problem_reported() -> None:
    bad = {
        "width_mm": "50",
        "height_mm": 500,
        "dpi": 72,
        "lines": ["{serial_no", "{a.b}"],
        "qr": 5,
        "show_secrets": "setup_code",
        "colour": "red",
    }
    with pytest.raises(StationError) as e:
        template_from_dict(bad, "lots/x/lot.toml")
    lines = str(e.value).splitlines()
    assert all(line.startswith("lots/x/lot.toml:0:0: label.") for line in lines)
    keys = [line.split(": ")[1] for line in lines]
    assert keys == [
        "label.colour",
        "label.width_mm",
        "label.height_mm",
        "label.dpi",
        "label.lines",
        "label.lines",
        "label.qr",
        "label.show_secrets",
    ]


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"width_mm": 50}, "height_mm: missing"),
        ({"width_mm": 50, "height_mm": 25}, "the label is empty"),
        ({"width_mm": 50, "height_mm": 25, "lines": "SN"}, "must be a list of strings"),
        ({"width_mm": 50, "height_mm": 25, "lines": ["{x!r}"]}, "no format spec"),
        ({"width_mm": 50, "height_mm": 25, "lines": ["{}"]}, "must be a column name"),
        ({"width_mm": 50, "height_mm": 25, "lines": ["a"], "font_size": -1}, "font_size"),
    ],
)
def test_single_problems(d: dict[str, object], message: str) -> None:
    with pytest.raises(StationError, match=re.escape(message)):
        template_from_dict(d)


def test_check_template_against_lot() -> None:
    t = template_from_dict(
        {
            **GOOD,
            "code128": "{wifi_pass}",
            "lines": ["{serail_no}"],
            "show_secrets": ["setup_code", "nope"],
        }
    )
    problems = [
        str(p)
        for p in check_template(
            t, ["serial_no", "wifi_pass", "setup_code"], ["wifi_pass", "setup_code"]
        )
    ]
    assert problems == [
        "lot.toml:0:0: label.lines: {serail_no} is neither a column of the values CSV nor a "
        "device fact (mac, chip, unit_id, port, lot, date, setup_code, setup_id, "
        "homekit_payload, matter_qr, matter_manual_code)",
        "lot.toml:0:0: label.code128: {wifi_pass} is a secret column; list it in "
        "label.show_secrets to print it",
        "lot.toml:0:0: label.show_secrets: 'nope' is not a column of the values CSV",
    ]
    assert (
        check_template(template_from_dict(GOOD), ["serial_no", "setup_code"], ["setup_code"]) == []
    )


def test_secrets_masked_unless_asked() -> None:
    row = {"serial_no": "SN-1", "wifi_pass": "hunter2", "setup_code": "518-08-582"}
    device = {"mac": "24:0A:C4:00:00:01", "unit_id": "SN-1"}
    t = template_from_dict({**GOOD, "lines": ["{wifi_pass}", "{setup_code}"]})
    fields = label_fields(t, row, device, ["wifi_pass", "setup_code"])
    assert fields["wifi_pass"] == MASK and fields["setup_code"] == "518-08-582"
    assert fields["mac"] == "24:0A:C4:00:00:01"
    plain = template_from_dict({**GOOD, "show_secrets": []})
    assert label_fields(plain, row, device, ["setup_code"])["setup_code"] == MASK
    # a device fact of the same name is masked too: the template must ask for it
    assert label_fields(plain, {}, {"setup_code": "518-08-582"}, ["setup_code"]) == {
        "setup_code": MASK
    }


def test_fill() -> None:
    t = template_from_dict(GOOD)
    fields = {
        "serial_no": "SN-1",
        "mac": "M",
        "setup_code": "518-08-582",
        "homekit_payload": "X-HM://007JNU5AE7OSX",
    }
    content = fill(t, fields)
    assert content.lines == ("SN SN-1", "MAC M", "Code 518-08-582")
    assert (content.qr, content.code128) == ("X-HM://007JNU5AE7OSX", "SN-1")


def test_fill_problems() -> None:
    t = template_from_dict({**GOOD, "code128": "{setup_code}", "show_secrets": []})
    with pytest.raises(StationError) as e:
        fill(t, {"serial_no": "SN-1", "setup_code": MASK})
    assert str(e.value).splitlines() == [
        "lot.toml:0:0: label.lines: no value for {mac}",
        "lot.toml:0:0: label.qr: no value for {homekit_payload}",
        "lot.toml:0:0: label.code128: a secret would be printed as a mask; list it in "
        "label.show_secrets",
    ]
    t = template_from_dict({"width_mm": 50, "height_mm": 25, "code128": "{name}"})
    with pytest.raises(StationError, match="printable ASCII"):
        fill(t, {"name": "Gerät"})
