"""The window is a view over the station session: every ledger call it causes runs off the GUI
thread (on the session's worker, the row model's page reader or the dashboard's pool)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from station.gui.resources import resources_dir
from station.gui.settings import StationSettings
from station.gui.window import MainWindow
from station.ledger import Ledger

PORTS = ["socket://127.0.0.1:9", "socket://127.0.0.1:7"]  # no device answers on these
WATCHED = (
    "count rows row find_scan failed state_counts counters attempts audit_log audit start_run "
    "end_run recover claim_next claim_row release import_lot attach"
).split()


@pytest.fixture
def on_gui_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The ledger methods called on the GUI (main) thread, by name (``seen[0]``: every call)."""
    seen: list[str] = [""]
    for name in WATCHED:
        real = getattr(Ledger, name)

        def spy(self: Ledger, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            if threading.get_ident() == threading.main_thread().ident:  # (no dummy thread)
                seen.append(_name)
            seen[0] += f" {_name}"
            return _real(self, *args, **kw)

        monkeypatch.setattr(Ledger, name, spy)
    yield seen


def test_the_window_never_calls_the_ledger_on_the_gui_thread(
    qtbot: QtBot, settings: StationSettings, tmp_path: Path, on_gui_thread: list[str]
) -> None:
    shutil.copytree(resources_dir() / "sample_lot", tmp_path / "lot")
    settings.ports = PORTS
    settings.auto_start = False
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    try:
        assert w.open_lot(str(tmp_path / "lot" / "lot.toml"))
        assert "Remaining 200" in w.status_counts.text()
        w.handle_scan("SN26110003")
        assert w.scan_result.text().startswith("✔"), w.scan_result.text()
        w.handle_scan("SN26110003")  # refused: assigned already
        w.row_view.selectRow(9)
        w.act_next.trigger()
        assert w.orchestrator.assigned_rows() == {PORTS[0]: 2, PORTS[1]: 9}  # type: ignore[union-attr]
        w.filter_box.setCurrentText("Pending")
        assert w.row_model.rowCount() == 200
        w.retry_selected()
        w.reprint_selected()
        w.refresh()
        qtbot.waitUntil(lambda: w.image_used is not None)
        w.close_lot()
    finally:
        w.shutdown()
    every, on_gui = on_gui_thread[0].split(), on_gui_thread[1:]
    assert {"find_scan", "count", "rows", "failed", "counters", "end_run"} <= set(every)
    assert on_gui == []
