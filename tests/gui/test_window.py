"""The station window without devices: lots, problems, partitions, scans, modes, settings."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from station.gui import theme
from station.gui.dialogs import LabelDialog, NewLotDialog, SettingsDialog
from station.gui.panels.ports import CARDS_PER_TURN
from station.gui.resources import resources_dir
from station.gui.settings import StationSettings
from station.gui.window import MainWindow

SAMPLE = resources_dir() / "sample_lot"
# ports no device answers on: the window may list them; nothing is started in these tests
DEAD_PORTS = ["socket://127.0.0.1:9", "socket://127.0.0.1:7"]


@pytest.fixture
def lot_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "lot"
    shutil.copytree(SAMPLE, folder)
    return folder


def _without_label(lot_dir: Path) -> Path:
    """The sample lot without its [label] table (a test that sets its own, or none)."""
    lot_file = lot_dir / "lot.toml"
    text = lot_file.read_text()
    lot_file.write_text(text[: text.index("[label]")])
    return lot_file


@pytest.fixture
def window(qtbot: QtBot, settings: StationSettings) -> Iterator[MainWindow]:
    settings.ports = DEAD_PORTS
    settings.auto_start = False
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def _cells(qtbot: QtBot, w: MainWindow, row: int) -> list[str]:
    """The row as shown, once its page arrived from the page reader thread."""
    m = w.row_model
    qtbot.waitUntil(lambda: m.data(m.index(row, 0)) != "…")
    return [m.data(m.index(row, c)) for c in range(m.columnCount())]


def test_open_lot_shows_rows_ports_and_partitions(
    qtbot: QtBot, window: MainWindow, lot_dir: Path, qtmodeltester: ModelTester
) -> None:
    assert window.open_lot(str(lot_dir / "lot.toml"))
    assert window.row_model.rowCount() == 200
    first = _cells(qtbot, window, 0)
    assert first[:4] == ["1", "SN26110001", "SN26110001", "pending"]
    assert "b89cf2e9421bc33515fff6ecc1bb92c0" not in first  # device_key is a secret column
    assert "••••••" in first
    assert [c.view.slot for c in window.cards.values()] == ["Slot 1", "Slot 2"]
    assert "SAMPLE-2611" in window.windowTitle()
    assert "Remaining 200" in window.status_counts.text()
    # partition preview: the table and the map, the factory partition highlighted
    names = [window.partition_model.index(r, 0).data() for r in range(4)]
    assert names == ["nvs", "phy_init", "fctry", "factory"]
    written = [b for b in window.flash_map.blocks if b.written]
    assert [(b.name, b.offset, b.size) for b in written] == [("fctry", 0x10000, 0x6000)]
    assert window.flash_map.zoomed  # 24 KiB next to a 1 MiB app: a zoomed bar shows it
    # row 1's image is built on a worker thread; the note then says how full the partition is
    qtbot.waitUntil(lambda: window.image_used is not None)
    assert 0 < window.image_used < 0x6000  # type: ignore[operator]
    assert "Row 1's NVS image fills" in window.flash_map_note.text()
    qtmodeltester.check(window.row_model)
    qtmodeltester.check(window.partition_model)


def test_filter_and_search(window: MainWindow, lot_dir: Path) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    window.filter_box.setCurrentText("Done")
    assert window.row_model.rowCount() == 0
    window.filter_box.setCurrentText("All")
    window.search_field.setText("SN2611015")
    window.search_field.returnPressed.emit()
    assert window.row_model.rowCount() == 10  # SN26110150 … SN26110159


def test_bad_lot_lists_located_problems_and_shows_the_line(
    window: MainWindow, lot_dir: Path
) -> None:
    values = lot_dir / "values.csv"
    lines = values.read_text().splitlines()
    lines[3] = "SN26110003,not-hex,3,STATION-DEMO,files/ca_cert.pem"  # bad hex, duplicate serial
    values.write_text("\n".join(lines) + "\n")
    assert not window.open_lot(str(lot_dir / "lot.toml"))
    assert window.lot is None
    assert window.tabs.currentIndex() == window.problems_tab
    problems = [window.problem_model.problem(r) for r in range(window.problem_model.rowCount())]
    assert problems, "the problems are listed"
    assert all(p.file and p.line for p in problems)
    assert any(p.line == 4 and Path(p.file).name == "values.csv" for p in problems)
    assert "Lot not opened" in window.scan_result.text()
    # clicking a problem shows its file with the line under the cursor
    row = next(i for i, p in enumerate(problems) if p.line == 4)
    window.show_problem(window.problem_model.index(row, 0))
    cursor = window.problem_source.textCursor()
    assert cursor.blockNumber() == 3
    assert cursor.block().text().startswith("SN26110003,not-hex")


def test_unknown_scan_is_rejected_and_changes_nothing(window: MainWindow, lot_dir: Path) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    before = [window.lot.ledger.row(i) for i in range(3)]
    results: list[tuple[str, bool, str]] = []
    window.scan_handled.connect(lambda c, ok, m: results.append((c, ok, m)))
    window.handle_scan("NOT-A-UNIT")
    assert results == [("NOT-A-UNIT", False, results[0][2])]
    assert "no unit 'NOT-A-UNIT'" in window.scan_result.text()
    assert theme.SCAN_BAD in window.scan_result.styleSheet()
    assert window.sounds.played[-1] == "error"
    assert [window.lot.ledger.row(i) for i in range(3)] == before
    window.refresh()
    assert all(c.view.row_index is None for c in window.cards.values())


def test_scan_assigns_the_row_to_a_free_port_and_twice_is_refused(
    qtbot: QtBot, window: MainWindow, lot_dir: Path
) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    window.handle_scan("SN26110005")
    assert theme.SCAN_OK in window.scan_result.styleSheet()
    assert window.sounds.played[-1] == "ok"
    # the scanned row is shown (current), not selected: a selection would steer F6
    assert window.selected_row_index() is None
    assert window.row_view.currentIndex().row() == 4
    port = DEAD_PORTS[0]
    qtbot.waitUntil(lambda: window.cards[port].view.row_index == 4)
    assert window.cards[port].fields["Unit"].text() == "SN26110005"
    # the same code again: it is assigned already; refused loudly, nothing changes
    window.handle_scan("SN26110005")
    assert theme.SCAN_BAD in window.scan_result.styleSheet()
    assert "already assigned" in window.scan_result.text()
    window.refresh()
    assert window.cards[DEAD_PORTS[1]].view.row_index is None


def test_quick_scans_go_to_different_ports(window: MainWindow, lot_dir: Path) -> None:
    """Two scans before the next repaint tick: the second must not replace the first."""
    window.open_lot(str(lot_dir / "lot.toml"))
    window.handle_scan("SN26110001")
    window.handle_scan("SN26110002")
    views = [window.bridge.view(p) for p in DEAD_PORTS]
    assert [v.row_index for v in views if v is not None] == [0, 1]
    window.handle_scan("SN26110003")  # every port has a unit waiting now
    assert "no free port" in window.scan_result.text()


def test_scan_goes_to_the_chosen_port(qtbot: QtBot, window: MainWindow, lot_dir: Path) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    window._choose_port_number(2)  # Ctrl+2
    assert window.cards[DEAD_PORTS[1]].property("selected") is True
    window.handle_scan("SN26110007")
    qtbot.waitUntil(lambda: window.cards[DEAD_PORTS[1]].view.row_index == 6)
    assert window.chosen_port is None  # back to "next free port"


def test_keyboard_scan_while_the_row_table_has_focus(
    qtbot: QtBot, window: MainWindow, lot_dir: Path
) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    window.activateWindow()
    qtbot.waitActive(window)
    window.row_view.setFocus()
    qtbot.waitUntil(window.row_view.hasFocus)
    with qtbot.waitSignal(window.scan_handled) as blocker:
        qtbot.keyClicks(window.row_view, "SN26110009")
        qtbot.keyClick(window.row_view, Qt.Key.Key_Return)
    assert blocker.args[:2] == ["SN26110009", True]
    assert window.scan_field.text() == ""


def test_next_sends_the_selected_row(qtbot: QtBot, window: MainWindow, lot_dir: Path) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    window.row_view.selectRow(10)
    window.act_next.trigger()
    qtbot.waitUntil(lambda: window.cards[DEAD_PORTS[0]].view.row_index == 10)
    window.row_view.clearSelection()
    window.assign_selected()  # nothing selected: the first pending row no port waits for
    qtbot.waitUntil(lambda: window.cards[DEAD_PORTS[1]].view.row_index == 0)
    window.row_view.clearSelection()
    window.assign_selected()  # every port has a unit: refused, loudly
    assert "no free port" in window.scan_result.text()


def test_operator_mode_blocks_settings_and_lot_changes(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("station.gui.dialogs.SettingsDialog.exec", lambda self: opened.append(1))
    assert not window.engineer
    assert not window.act_settings.isEnabled()
    assert not window.act_open.isEnabled() and not window.act_new.isEnabled()
    window.open_settings()
    window.choose_lot()
    assert opened == []
    assert "Engineer mode needed" in window.scan_result.text()
    # a wrong PIN keeps operator mode; the right one unlocks
    window.settings.set_pin("246800")
    monkeypatch.setattr(window, "ask_pin", lambda prompt: "111100")
    window.toggle_mode()
    assert not window.engineer and "Wrong PIN" in window.scan_result.text()
    monkeypatch.setattr(window, "ask_pin", lambda prompt: "246800")
    window.toggle_mode()
    assert window.engineer and window.act_settings.isEnabled()
    window.open_settings()
    assert opened == [1]
    window.toggle_mode()
    assert not window.engineer


def test_first_engineer_mode_sets_a_pin(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["975310", "975310"])
    monkeypatch.setattr(window, "ask_pin", lambda prompt: next(answers))
    window.toggle_mode()
    assert window.engineer
    assert window.settings.check_pin("975310")


def test_release_needs_a_supervisor(
    window: MainWindow, lot_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    asked: list[str] = []
    monkeypatch.setattr(window, "ask_text", lambda t, p: asked.append(p))
    window.row_view.selectRow(0)
    window.release_selected()
    assert asked == []
    assert "Engineer mode needed" in window.scan_result.text()


def test_window_layout_and_settings_persist(
    qtbot: QtBot, settings: StationSettings, lot_dir: Path
) -> None:
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    qtbot.waitExposed(w)
    w.resize(w.width() - 20, w.height() - 30)
    size = (w.width(), w.height())
    w.close()
    again = StationSettings(QSettings(settings.qs.fileName(), QSettings.Format.IniFormat))
    geometry, state = again.window_layout()
    assert geometry is not None and state is not None
    w2 = MainWindow(again)
    qtbot.addWidget(w2)
    assert w2.height() == size[1]  # (the width is clamped to the 800-pixel offscreen screen)
    w2.shutdown()


def test_new_lot_dialog_saves_a_lot_file_the_window_opens(
    qtbot: QtBot, window: MainWindow, lot_dir: Path, tmp_path: Path
) -> None:
    dialog = NewLotDialog(window)
    qtbot.addWidget(dialog)
    assert not dialog.save_to(tmp_path / "empty.toml")
    assert "missing: name, config, values, partition_table" in dialog.error.text()
    dialog.name.setText("L2026-11-B")
    dialog.config.edit.setText(str(lot_dir / "config.csv"))
    dialog.values.edit.setText(str(lot_dir / "values.csv"))
    dialog.table.edit.setText(str(lot_dir / "partitions.csv"))
    assert dialog.scan_column.findText("serial_no") > 0  # columns read from the values CSV
    dialog.fileid.setCurrentText("serial_no")
    dialog.scan_column.setCurrentText("serial_no")
    target = lot_dir / "new.toml"
    assert dialog.save_to(target)
    text = target.read_text()
    assert 'name = "L2026-11-B"' in text and 'scan_column = "serial_no"' in text
    assert window.open_lot(str(target))
    assert window.row_model.rowCount() == 200


def test_reprint_shows_what_would_be_printed(
    qtbot: QtBot, window: MainWindow, lot_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lot_file = _without_label(lot_dir)
    lot_file.write_text(
        lot_file.read_text()
        + 'label = { width_mm = 50, height_mm = 25, lines = ["{serial_no}", "key {device_key}"],'
        ' code128 = "{serial_no}" }\n'
    )
    assert window.open_lot(str(lot_file))
    shown: list[LabelDialog] = []
    monkeypatch.setattr(LabelDialog, "exec", lambda self: shown.append(self))
    window.row_view.selectRow(2)
    window.reprint_selected()
    assert len(shown) == 1
    dialog = shown[0]
    qtbot.addWidget(dialog)
    assert dialog.fields["serial_no"] == "SN26110003"
    assert "9cad89dd" not in " ".join(dialog.fields.values())  # the secret stays masked
    assert dialog.image is not None and not dialog.image.pixmap().isNull()
    assert dialog.print_button.isEnabled()


def test_reprint_without_a_label_layout_lists_the_fields(
    qtbot: QtBot, window: MainWindow, lot_dir: Path
) -> None:
    window.open_lot(str(_without_label(lot_dir)))
    dialog = LabelDialog(window, window.lot, window.lot.ledger.row(0))
    qtbot.addWidget(dialog)
    assert dialog.image is None and not dialog.print_button.isEnabled()
    assert dialog.fields["serial_no"] == "SN26110001"
    assert "b89cf2e9" not in " ".join(dialog.fields.values())


def test_keyboard_only_operation(
    qtbot: QtBot, window: MainWindow, lot_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    window.activateWindow()
    qtbot.waitActive(window)
    window.row_view.setFocus()
    qtbot.waitUntil(window.row_view.hasFocus)
    ctrl, alt = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.AltModifier
    qtbot.keyClick(window.row_view, Qt.Key.Key_F, ctrl)  # Ctrl+F: search
    assert window.search_field.hasFocus()
    qtbot.keyClick(window.search_field, Qt.Key.Key_2, alt)  # Alt+2: failed units
    assert window.tabs.currentIndex() == window.failed_tab
    qtbot.keyClick(window.focusWidget(), Qt.Key.Key_1, alt)  # Alt+1: rows
    window.row_view.setFocus()
    qtbot.keyClick(window.row_view, Qt.Key.Key_Down)
    qtbot.keyClick(window.row_view, Qt.Key.Key_Down)
    qtbot.keyClick(window.row_view, Qt.Key.Key_2, ctrl)  # Ctrl+2: the second port
    assert window.chosen_port == DEAD_PORTS[1]
    selected = window.selected_row_index()
    assert selected is not None
    qtbot.keyClick(window.row_view, Qt.Key.Key_F6)  # F6: the selected row to that port
    qtbot.waitUntil(lambda: window.cards[DEAD_PORTS[1]].view.row_index is not None)
    assert window.cards[DEAD_PORTS[1]].view.row_index == selected
    assert window.selected_row_index() is None  # used up: the next F6 takes the next row
    monkeypatch.setattr(window, "ask_pin", lambda prompt: "246800")
    window.settings.set_pin("246800")
    qtbot.keyClick(window.row_view, Qt.Key.Key_F2)  # F2: engineer mode
    assert window.engineer
    qtbot.keyClick(window.row_view, Qt.Key.Key_F2)
    assert not window.engineer


def test_settings_dialog_saves_and_the_window_follows(
    qtbot: QtBot, window: MainWindow, lot_dir: Path
) -> None:
    window.open_lot(str(lot_dir / "lot.toml"))
    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    dialog.baud.setCurrentText("fast")
    dialog.accept()
    assert "not a number" in dialog.error.text() and dialog.result() == 0
    dialog.baud.setCurrentText("921600")
    dialog.ports.setText(f"{DEAD_PORTS[1]}, socket://127.0.0.1:5 ,")
    dialog.continuous.setChecked(True)
    dialog.accept()
    assert window.settings.baud == 921600
    assert window.settings.ports == [DEAD_PORTS[1], "socket://127.0.0.1:5"]
    assert window.settings.continuous
    window.settings.continuous = False  # keep the test's ports idle
    old = window.orchestrator
    window.apply_settings()  # a new baud: a new orchestrator on the same lot
    assert window.orchestrator is not old and window.orchestrator.baud == 921600
    assert list(window.cards) == [DEAD_PORTS[1], "socket://127.0.0.1:5"]


def test_hot_plug_adds_ports_and_marks_unplugged_ones(
    qtbot: QtBot, settings: StationSettings, lot_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    import station.flashing as flashing

    present: list[flashing.PortInfo] = []

    def info(device: str, slot: str) -> flashing.PortInfo:
        return flashing.PortInfo(device, "USB serial", 0x10C4, 0xEA60, None, "1-1", slot)

    monkeypatch.setattr(
        flashing,
        "PortWatcher",
        functools.partial(flashing.PortWatcher, lister=lambda: list(present)),
    )
    monkeypatch.setattr(MainWindow, "HOT_PLUG_POLL", 0.05)
    settings.hot_plug = True
    settings.ports = []
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    assert w.open_lot(str(lot_dir / "lot.toml"))
    present.append(info("socket://127.0.0.1:9", "Bay A"))
    qtbot.waitUntil(lambda: "socket://127.0.0.1:9" in w.cards, timeout=5000)
    assert w.cards["socket://127.0.0.1:9"].view.slot == "Bay A"
    present.clear()  # unplugged: the card stays (the slot), marked as such
    qtbot.waitUntil(lambda: w.bridge.view("socket://127.0.0.1:9").state == "offline")
    present.append(info("socket://127.0.0.1:9", "Bay A"))  # plugged in again
    qtbot.waitUntil(lambda: w.bridge.view("socket://127.0.0.1:9").state == "idle")
    w.shutdown()


def _in_view(w: MainWindow, card: object) -> bool:
    viewport = w.cards_scroll.viewport()
    top_left = card.mapTo(viewport, card.rect().topLeft())  # type: ignore[attr-defined]
    bottom_right = card.mapTo(viewport, card.rect().bottomRight())  # type: ignore[attr-defined]
    return viewport.rect().contains(top_left) and viewport.rect().contains(bottom_right)


def test_eight_slots_on_a_line_pc_screen_all_stay_in_view(
    qtbot: QtBot, window: MainWindow, lot_dir: Path
) -> None:
    """1366x768 minus the task bar: two full cards fit; eight become compact cards, every one
    in view without scrolling (a slot scrolled out of view is a slot nobody watches)."""
    window.resize(1366, 740)
    assert window.open_lot(str(lot_dir / "lot.toml"))
    qtbot.waitUntil(lambda: all(c.isVisible() for c in window.cards.values()))
    assert len(window.cards) == 2
    assert not any(c.compact for c in window.cards.values())
    assert all(c.details.isVisible() for c in window.cards.values())
    window.add_ports([(f"socket://127.0.0.1:{port}", None) for port in range(10, 16)])
    qtbot.waitUntil(lambda: not window.ports.plugging)  # the cards come a few at a time
    cards = list(window.cards.values())
    assert len(cards) == 8
    qtbot.waitUntil(lambda: all(c.isVisible() and _in_view(window, c) for c in cards))
    assert all(c.compact and not c.details.isVisible() and c.summary.isVisible() for c in cards)
    assert window.cards_scroll.verticalScrollBar().maximum() == 0
    # back to two ports: full cards again
    for port in list(window.cards)[2:]:
        window.remove_port(port)
    qtbot.waitUntil(lambda: not any(c.compact for c in window.cards.values()))


def _grid_order(w: MainWindow) -> list[str]:
    """The ports of the cards in the order the grid shows them (row by row)."""
    grid = w.cards_scroll.grid
    placed = []
    for port, card in w.cards.items():
        row, col, _, _ = grid.getItemPosition(grid.indexOf(card))
        placed.append(((row, col), port))
    return [port for _, port in sorted(placed)]


def test_a_hub_of_ports_is_shown_over_a_few_turns_then_given_to_the_session(
    qtbot: QtBot, window: MainWindow, lot_dir: Path
) -> None:
    """Plugging in 20 ports builds their cards a few at a time (the window answers in
    between), laid out for all 20 from the first; the session gets the ports, in order, only
    when every card is on screen."""
    window.resize(1366, 740)
    assert window.open_lot(str(lot_dir / "lot.toml"))
    hub = [f"socket://127.0.0.1:{port}" for port in range(20, 40)]
    window.add_ports([(port, None) for port in hub])
    assert window.ports.plugging
    assert len(window.cards) == len(DEAD_PORTS) + CARDS_PER_TURN
    assert all(card.compact for card in window.cards.values())  # 22 to come: compact at once
    assert window.orchestrator.ports() == DEAD_PORTS  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: not window.ports.plugging)
    assert list(window.cards) == DEAD_PORTS + hub
    assert _grid_order(window) == DEAD_PORTS + hub
    assert [window.cards[p].view.slot for p in hub] == [f"Slot {n}" for n in range(3, 23)]
    assert window.orchestrator.ports() == DEAD_PORTS + hub  # type: ignore[union-attr]
    cards = list(window.cards.values())
    qtbot.waitUntil(lambda: all(c.isVisible() for c in cards))


def test_ports_unplugged_or_swapped_while_their_cards_are_built(
    qtbot: QtBot, window: MainWindow, lot_dir: Path
) -> None:
    assert window.open_lot(str(lot_dir / "lot.toml"))
    hub = [f"socket://127.0.0.1:{port}" for port in range(20, 40)]
    window.add_ports([(port, None) for port in hub])
    built, unbuilt = hub[0], hub[-1]
    assert built in window.cards and unbuilt not in window.cards
    window.remove_port(built)
    window.remove_port(unbuilt)
    swapped = hub[-2]
    window.replace_port(swapped, "socket://127.0.0.1:50")  # a new device in that slot
    qtbot.waitUntil(lambda: not window.ports.plugging)
    kept = [p if p != swapped else "socket://127.0.0.1:50" for p in hub[1:-1]]
    assert list(window.cards) == DEAD_PORTS + kept
    assert window.orchestrator.ports() == DEAD_PORTS + kept  # type: ignore[union-attr]
    assert window.cards["socket://127.0.0.1:50"].view.slot == "Slot 21"
    assert window.bridge.view(built) is None and window.bridge.view(unbuilt) is None


def test_closing_the_lot_while_cards_are_built_leaves_no_port_behind(
    qtbot: QtBot, window: MainWindow, lot_dir: Path
) -> None:
    assert window.open_lot(str(lot_dir / "lot.toml"))
    orchestrator = window.orchestrator
    window.add_ports([(f"socket://127.0.0.1:{port}", None) for port in range(20, 40)])
    window.close_lot()
    assert not window.cards and not window.ports.plugging
    for _ in range(5):  # the turns of card building that were queued
        QApplication.processEvents()
    assert not window.cards
    assert orchestrator is not None and orchestrator.ports() == DEAD_PORTS  # none of the hub


def test_next_pressed_twice_at_once_sends_two_different_units(
    window: MainWindow, lot_dir: Path
) -> None:
    """The cards are repainted at 4 Hz; a second F6 before that must not pick the same row."""
    assert window.open_lot(str(lot_dir / "lot.toml"))
    window.row_view.clearSelection()
    window.act_next.trigger()
    window.act_next.trigger()  # no event processed in between
    assert window.scan_result.text().startswith("✔"), window.scan_result.text()
    assert window.orchestrator.assigned_rows() == {  # type: ignore[union-attr]
        DEAD_PORTS[0]: 0,
        DEAD_PORTS[1]: 1,
    }


def test_wrong_pins_in_the_window_wait_longer_each_time(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.settings.set_pin("246800")
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "000000"

    monkeypatch.setattr(window, "ask_pin", ask)
    for _ in range(3):
        window.toggle_mode()
    assert not window.engineer and "the next try in 2 s" in window.scan_result.text()
    window.toggle_mode()  # during the delay the PIN is not even asked
    assert len(asked) == 3 and "try again in" in window.scan_result.text()


def test_a_short_first_pin_is_refused(window: MainWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["1234", "1234"])
    monkeypatch.setattr(window, "ask_pin", lambda prompt: next(answers))
    window.toggle_mode()
    assert not window.engineer and not window.settings.has_pin
    assert "at least 6 digits" in window.scan_result.text()


def test_the_lots_warnings_are_listed_in_problems_without_values(
    window: MainWindow, lot_dir: Path
) -> None:
    """Two units sharing a device key opens (a warning, not a refusal), and the window says so
    where the engineer looks: the Problems tab and the Log, naming lines, never the key."""
    lot_file = _without_label(lot_dir)
    values = lot_dir / "values.csv"
    lines = values.read_text().splitlines()
    key = lines[1].split(",")[1]
    lines[2] = ",".join([lines[2].split(",")[0], key, *lines[2].split(",")[2:]])
    values.write_text("\n".join(lines) + "\n")
    assert window.open_lot(str(lot_file))
    shown = [window.problem_model.problem(r) for r in range(window.problem_model.rowCount())]
    assert any("same value as line 2" in p.message and p.line == 3 for p in shown), shown
    assert "(1)" in window.tabs.tabText(window.problems_tab)
    assert all(key not in str(p) for p in shown)
    logged = [window.log_model.index(r, 3).data() for r in range(window.log_model.rowCount())]
    assert any("1 warning(s): see Problems" in str(text) for text in logged), logged
