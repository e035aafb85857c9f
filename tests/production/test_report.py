"""`station report`: rows with state, MAC, port, attempts; totals; secrets masked."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from station.cli import main
from station.production import open_lot
from tests.production.conftest import make_small_lot


def test_report_json(worked_lot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(worked_lot), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    s = data["summary"]
    assert (s["rows"], s["done"], s["failed"], s["remaining"]) == (6, 3, 1, 2)
    assert s["yield"] == 0.75 and s["attempts"] == 4 and s["devices"] == 4
    rows = {r["unit_id"]: r for r in data["rows"]}
    failed = [r for r in rows.values() if r["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["mac"] == "24:0a:c4:00:00:03"
    assert "write failed" in failed[0]["reason"] and failed[0]["attempts"] == 1
    assert rows["SN0005"]["state"] == "pending" and rows["SN0005"]["mac"] == ""
    assert {r["port"] for r in rows.values() if r["state"] == "done"} == {
        "sim://a",
        "sim://b",
        "sim://c",
    }
    assert all(r["value.device_key"] == "••••••" for r in data["rows"])
    assert rows["SN0002"]["value.hw_rev"] == "1"
    assert any(a["action"] == "lot" for a in data["audit"])
    attempts = data["attempts"]
    assert len(attempts) == 4 and {a["result"] for a in attempts} == {"done", "failed"}
    assert all(len(a["image_sha256"]) == 64 and a["started_at"] for a in attempts)


def test_report_csv_masks_secrets(
    worked_lot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.csv"
    assert main(["report", str(worked_lot), "--csv", str(out)]) == 0
    assert "3 done, 1 failed, 2 remaining" in capsys.readouterr().out
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # which port claims which row is a race: count states, not positions
    assert sorted(r["state"] for r in rows) == ["done"] * 3 + ["failed"] + ["pending"] * 2
    secrets = (worked_lot.parent / "values.csv").read_text(encoding="utf-8")
    keys = [line.split(",")[1] for line in secrets.splitlines()[1:]]
    text = out.read_text(encoding="utf-8")
    assert not any(k in text for k in keys)


def test_report_text(worked_lot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(worked_lot)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("lot SMALL: 6 rows — 3 done, 1 failed, 2 remaining; yield 75.0%")
    assert len(out) == 2 + 6


def test_report_of_a_broken_lot_is_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lot = tmp_path / "lot.toml"
    lot.write_text('name = "X"\nconfig = 3\n', encoding="utf-8")
    assert main(["report", str(lot)]) == 2
    err = capsys.readouterr().err
    assert f"{lot}:2:1: config: must be a non-empty text" in err and "Traceback" not in err


def test_report_from_the_ledger_alone_when_the_csv_changed(
    worked_lot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = worked_lot.parent / "values.csv"
    values.write_text(
        values.read_text(encoding="utf-8").replace("SN0001", "SN9999"), encoding="utf-8"
    )
    assert main(["report", str(worked_lot), "--json"]) == 0
    captured = capsys.readouterr()
    assert "row 1: changed after production started" in captured.err
    assert "ledger alone" in captured.err
    data = json.loads(captured.out)
    assert data["summary"]["done"] == 3 and len(data["rows"]) == 6
    assert not any(k.startswith("value.") for k in data["rows"][0])


def test_report_csv_neutralises_spreadsheet_formulas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """OWASP's CSV injection: a cell starting with = + - @ tab or CR gets a leading '."""
    lot = make_small_lot(tmp_path / "lot", 1)
    (lot.parent / "config.csv").write_text(
        "factory,namespace,\nserial_no,data,string\nmodel,data,string\nhw_rev,data,u32\n",
        encoding="utf-8",
    )
    models = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "plain"]
    rows = [f'=1+{i},"{m.replace(chr(34), chr(34) * 2)}",{i}' for i, m in enumerate(models)]
    (lot.parent / "values.csv").write_text(
        "serial_no,model,hw_rev\n" + "\n".join(rows) + "\n", encoding="utf-8", newline=""
    )
    with open_lot(lot):  # production opened the lot: a report never creates a ledger
        pass
    out = tmp_path / "report.csv"
    assert main(["report", str(lot), "--csv", str(out)]) == 0
    with out.open(encoding="utf-8", newline="") as f:
        got = list(csv.DictReader(f))
    assert [r["value.model"] for r in got] == ["'" + m for m in models[:-1]] + ["plain"]
    assert [r["unit_id"] for r in got] == [f"'=1+{i}" for i in range(len(models))]
    assert [r["value.hw_rev"] for r in got] == [str(i) for i in range(len(models))]
    assert [r["row"] for r in got] == [str(i + 1) for i in range(len(models))]
