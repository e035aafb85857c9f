"""Engineer mode releases a claim left by a station that stopped (issue: no claim gets stuck)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.gui.resources import resources_dir
from station.gui.settings import StationSettings
from station.gui.window import MainWindow


@pytest.fixture
def window(qtbot: QtBot, settings: StationSettings) -> Iterator[MainWindow]:
    settings.ports = ["socket://127.0.0.1:9"]
    settings.auto_start = False
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


@pytest.mark.parametrize("gone", [True, False])
def test_engineer_releases_another_stations_stuck_claim(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gone: bool
) -> None:
    folder = tmp_path / "lot"
    shutil.copytree(resources_dir() / "sample_lot", folder)
    assert window.open_lot(str(folder / "lot.toml"))
    assert window.lot is not None
    led = window.lot.ledger
    claim = led.claim_next(mac="24:0a:c4:00:00:99", port="COM9", run_id="far")
    assert claim is not None
    con = sqlite3.connect(led.path)  # that run was on a line PC that is switched off now
    con.execute(
        "INSERT INTO runs (id, lot_id, station_id, host, pid, started_at) "
        "VALUES ('far', ?, 'pc7', 'line-pc-7', 4242, 0)",
        (led.lot_id,),
    )
    con.commit()
    con.close()
    window.set_engineer(True)
    questions: list[str] = []
    monkeypatch.setattr(window, "ask_text", lambda title, prompt: "pc died")
    monkeypatch.setattr(
        window, "ask_yes_no", lambda title, text: questions.append(text) is None and gone
    )
    window.row_view.selectRow(claim.row_index)
    window.release_selected()
    assert len(questions) == 1 and "line-pc-7" in questions[0]
    assert led.row(claim.row_index).state == ("pending" if gone else "claimed")
