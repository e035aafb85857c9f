"""The operator's screen as tried on a real display (issue 14): scan then F6, Esc, refusals in the
Log, the unit while a port connects, Settings in the demo, the sample lot's label, and reading
the screen at 1366x768 (nothing cut off, slots instead of ports, one card height per row,
reasons in the operator's words, the PIN banner, engineer mode, the scan panel's room)."""

from __future__ import annotations

import shutil
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from station.gui.dialogs import SettingsDialog
from station.gui.models import LogModel
from station.gui.resources import resources_dir
from station.gui.settings import StationSettings
from station.gui.window import MainWindow
from station.production import PortUpdate

PORTS = [
    "socket://127.0.0.1:9",
    "socket://127.0.0.1:7",
    "socket://127.0.0.1:13",
    "socket://127.0.0.1:19",
]  # no device answers on these; nothing is started in these tests
LONG_REASON = (
    "garbled data from socket://127.0.0.1:9 while writing — check the cable, or use a lower "
    "--baud; the device stopped answering after 12 KiB and was reset twice before giving up"
)


@pytest.fixture
def lot_file(tmp_path: Path) -> Path:
    shutil.copytree(resources_dir() / "sample_lot", tmp_path / "lot")
    return tmp_path / "lot" / "lot.toml"


@pytest.fixture
def window(qtbot: QtBot, settings: StationSettings, lot_file: Path) -> Iterator[MainWindow]:
    settings.ports = PORTS
    settings.auto_start = False
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.resize(1366, 740)  # a 1366x768 line PC less its task bar
    w.show()
    qtbot.waitExposed(w)
    assert w.open_lot(str(lot_file))
    yield w
    w.shutdown()


def log_texts(w: MainWindow) -> list[str]:
    w.log_model.pull()
    m: LogModel = w.log_model
    return [m.line(i).text for i in range(m.rowCount())]


def finish(w: MainWindow, index: int, *, ok: bool, reason: str = "verify failed") -> None:
    """Row ``index`` as a flashed unit (through the ledger's own API), on the first port."""
    led = w.lot.ledger
    claim = led.claim_row(index, mac=f"24:0a:c4:00:00:{index:02x}", port=PORTS[0], chip="ESP32")
    if ok:
        led.complete(claim, {})
    else:
        led.fail(claim, reason, bad_row=True)
    w.bridge.mark_rows_changed(index, "done" if ok else "failed")
    w.refresh()


# --- scanning and F6 ----------------------------------------------------------------------------


def test_after_a_scan_f6_takes_the_next_pending_row(qtbot: QtBot, window: MainWindow) -> None:
    window.handle_scan("SN26110001")
    assert window.selected_row_index() is None  # the scan selected nothing
    window.act_next.trigger()  # F6
    assert window.scan_result.text().startswith("✔"), window.scan_result.text()
    assert window.orchestrator.assigned_rows() == {PORTS[0]: 0, PORTS[1]: 1}


def test_f6_with_a_done_row_selected_takes_the_next_pending_row(window: MainWindow) -> None:
    finish(window, 0, ok=True)
    window.row_view.selectRow(0)  # a done unit: not something F6 can send
    window.act_next.trigger()
    assert window.orchestrator.assigned_rows() == {PORTS[0]: 1}


def test_f6_sends_a_pending_row_selected_by_hand_once(window: MainWindow) -> None:
    window.row_view.selectRow(7)
    window.act_next.trigger()
    window.act_next.trigger()  # the choice was used up: the next pending row
    assert window.orchestrator.assigned_rows() == {PORTS[0]: 7, PORTS[1]: 0}


def test_esc_clears_the_selection_and_the_chosen_port(qtbot: QtBot, window: MainWindow) -> None:
    window.activateWindow()
    qtbot.waitActive(window)
    window.row_view.setFocus()
    window.row_view.selectRow(5)
    window._choose_port_number(2)
    qtbot.keyClick(window.row_view, Qt.Key.Key_Escape)
    assert window.selected_row_index() is None
    assert window.chosen_port is None
    assert window.scan_field.hasFocus()


def test_every_refusal_goes_to_the_log(window: MainWindow) -> None:
    window.handle_scan("XYZ-NOPE-42")
    for _ in PORTS:
        window.act_next.trigger()
    window.act_next.trigger()  # every port has a unit waiting: refused
    window.retry_selected()  # nothing failed: refused
    texts = log_texts(window)
    assert any("XYZ-NOPE-42" in t for t in texts)
    assert any("no free port" in t for t in texts), texts
    assert any("No failed unit" in t for t in texts), texts


def test_the_unit_being_connected_shows_as_the_unit(window: MainWindow) -> None:
    port = PORTS[0]
    window.bridge.on_event(
        PortUpdate(
            port,
            "Slot 1",
            "busy",
            phase="connecting",
            elapsed=0.1,
            next_unit="SN26110001",
            next_row_index=0,
        )
    )
    window.refresh()
    card = window.cards[port]
    assert card.fields["Unit"].text() == "SN26110001"
    assert card.fields["Next"].text() == "–"


# --- Settings in the demo -----------------------------------------------------------------------


def test_settings_show_the_ports_as_they_are_and_an_unchanged_save_changes_nothing(
    qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = "socket://127.0.0.1:5"
    window.replace_port(PORTS[0], new)  # the demo swaps a finished device for a new one
    window.bridge.on_event(PortUpdate(new, "Slot 1", "passed", row_index=None))
    window.refresh()
    dialogs: list[SettingsDialog] = []

    def save_as_is(self: SettingsDialog) -> int:
        dialogs.append(self)
        qtbot.addWidget(self)
        self.accept()  # Save, nothing edited
        return int(self.result())

    monkeypatch.setattr(SettingsDialog, "exec", save_as_is)
    window.set_engineer(True)
    orchestrator, cards = window.orchestrator, list(window.cards)
    window.open_settings()
    assert new in dialogs[0].ports.text() and PORTS[0] not in dialogs[0].ports.text()
    assert window.orchestrator is orchestrator
    assert list(window.cards) == cards and cards[0] == new
    assert window.cards[new].view.passed_count == 1  # the slot's counter is kept


def test_a_swapped_device_keeps_its_slots_card_and_leaves_nothing_behind(
    window: MainWindow,
) -> None:
    """A shift swaps thousands of devices. The slot's card stays (same widget, same place, the
    operator's choice of the slot kept) and answers for the new port; a swap leaves no weak
    reference behind (cards once connected straight to the session's methods: the window
    soak's leak)."""

    def references() -> int:
        return len(weakref.getweakrefs(window.session)) + len(weakref.getweakrefs(window.ports))

    def swap(old: str, new: str) -> None:
        window.replace_port(old, new)
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    port, card = PORTS[0], window.cards[PORTS[0]]
    window.ports.choose_port(port)
    swap(port, "socket://127.0.0.1:100")
    port, before = "socket://127.0.0.1:100", references()
    for n in range(101, 121):
        swap(port, f"socket://127.0.0.1:{n}")
        port = f"socket://127.0.0.1:{n}"
    assert references() == before
    assert window.cards[port] is card and list(window.cards) == [port, *PORTS[1:]]
    assert card.port_label.toolTip() == port and card.view.slot == "Slot 1"
    assert window.chosen_port == port  # the operator chose the slot, not the device

    window.ports.choose_port(None)
    card.chosen.emit(port)  # a click on the card chooses its slot
    assert window.chosen_port == port
    window.act_next.trigger()  # F6: the next pending row waits on the chosen port
    assert window.orchestrator.assigned_rows()[port] == 0
    card.cancel_requested.emit(port)  # its Stop drops the waiting unit
    assert port not in window.orchestrator.assigned_rows()
    assert PORTS[0] not in window.orchestrator.ports()  # the swapped-out ports are gone


def test_enter_in_the_settings_dialog_saves(qtbot: QtBot, settings: StationSettings) -> None:
    settings.ports = PORTS[:1]
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.ports.setFocus()
    dialog.ports.setText(f"{PORTS[0]}, {PORTS[1]}")
    qtbot.keyClick(dialog.ports, Qt.Key.Key_Return)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert settings.ports == PORTS[:2] and dialog.changed


def test_the_sample_lot_has_a_label_with_qr_code128_and_text(window: MainWindow) -> None:
    from station.gui.labels import lot_template

    template, problems = lot_template(window.lot)
    assert problems == [] and template is not None
    assert template.qr and template.code128 and template.lines


# --- reading the screen at 1366x768 --------------------------------------------------------------


def _all_text_visible(label: object) -> bool:
    """The label shows all its text: wrapped, not shortened, and within its height."""
    width = label.contentsRect().width()  # type: ignore[attr-defined]
    shown = label.shown_text() if hasattr(label, "shown_text") else label.text()  # type: ignore[attr-defined]
    return (
        bool(label.wordWrap())  # type: ignore[attr-defined]
        and "…" not in shown
        and label.heightForWidth(width) <= label.height()  # type: ignore[attr-defined]
    )


def test_hints_and_refusals_are_not_cut_off(qtbot: QtBot, window: MainWindow) -> None:
    from station.gui.app import demo_hint

    window.show_hint(demo_hint("SN26110001"))
    qtbot.waitUntil(lambda: _all_text_visible(window.scan_result))
    window.handle_scan("XYZ-NOPE-42")
    assert "XYZ-NOPE-42" in window.scan_result.text()
    qtbot.waitUntil(lambda: _all_text_visible(window.scan_result))
    field = window.scan_field
    placeholder = field.fontMetrics().horizontalAdvance(field.placeholderText())
    assert placeholder < field.width() - 30  # the clear button and the frame take some


def test_ports_show_as_slots_with_the_port_in_a_tooltip(window: MainWindow) -> None:
    window.log("info", "device plugged in", PORTS[1])
    finish(window, 3, ok=False, reason=f"the connection to {PORTS[0]} was lost while writing")
    window.row_model.refresh()
    m = window.log_model
    m.pull()
    last = m.rowCount() - 1
    assert m.data(m.index(last, 1)) == "Slot 2"
    assert m.data(m.index(last, 1), Qt.ItemDataRole.ToolTipRole) == PORTS[1]
    rows = window.row_model
    window.row_model.record(3, wait=True)
    assert rows.data(rows.index(3, 5)) == "Slot 1"
    assert rows.data(rows.index(3, 5), Qt.ItemDataRole.ToolTipRole) == PORTS[0]
    assert "Slot 1" in rows.data(rows.index(3, 7)) and "socket://" not in rows.data(
        rows.index(3, 7)
    )
    failed = window.failed_model
    window._refresh_failed()
    assert failed.data(failed.index(0, 3)) == "Slot 1"
    # the Retry banner names the slot too
    monkey_retry = window.orchestrator
    monkey_retry.retry = lambda index: PORTS[0]  # type: ignore[method-assign]
    window.failed_view.selectRow(0)
    window.retry_selected()
    assert "retry on Slot 1" in window.scan_result.text()
    assert "socket://" not in window.scan_result.text()


def test_cards_in_a_row_keep_one_height(qtbot: QtBot, window: MainWindow) -> None:
    cards = list(window.cards.values())
    qtbot.waitUntil(lambda: all(c.isVisible() and c.height() >= c.full_height for c in cards))
    before = [c.height() for c in cards]
    window.bridge.on_event(
        PortUpdate(PORTS[0], "Slot 1", "failed", row_index=0, message=LONG_REASON)
    )
    window.refresh()
    qtbot.waitUntil(lambda: cards[0].message.text() != "")
    window.centralWidget().layout().activate()
    assert [c.height() for c in cards] == before
    assert cards[0].message.text().endswith("…")  # shortened, the tooltip has all of it
    assert "12 KiB" in cards[0].message.toolTip()


def test_failure_reasons_speak_to_the_operator(window: MainWindow) -> None:
    window.bridge.on_event(
        PortUpdate(PORTS[0], "Slot 1", "failed", row_index=0, message=LONG_REASON)
    )
    window.refresh()
    card = window.cards[PORTS[0]]
    shown = card.message.toolTip().split("\n\n")[0]
    assert "--baud" not in shown and "--" not in card.message.text()
    assert "socket://" not in card.message.text() and "Slot 1" in card.message.text()
    assert "baud rate" in shown


def test_the_wrong_pin_banner_clears_after_a_correct_pin(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.settings.set_pin("246813")
    monkeypatch.setattr(window, "ask_pin", lambda prompt: "000000")
    window.toggle_mode()
    assert "Wrong PIN" in window.scan_result.text() and not window.engineer
    monkeypatch.setattr(window, "ask_pin", lambda prompt: "246813")
    window.toggle_mode()
    assert window.engineer
    assert "Wrong PIN" not in window.scan_result.text()


def test_engineer_mode_is_unmistakable(qtbot: QtBot, window: MainWindow) -> None:
    window.set_engineer(True)
    assert window.engineer_band.isVisible()
    assert "ENGINEER" in window.engineer_band.text()
    assert window.windowTitle().startswith("ENGINEER MODE")
    window.set_engineer(False)
    assert not window.engineer_band.isVisible()
    assert "ENGINEER" not in window.windowTitle()


def test_the_scan_panel_gets_the_room_under_the_cards(qtbot: QtBot, window: MainWindow) -> None:
    cards = list(window.cards.values())
    qtbot.waitUntil(lambda: all(c.isVisible() for c in cards))
    window.centralWidget().layout().activate()
    central = window.centralWidget()
    lowest = max(c.mapTo(central, c.rect().bottomLeft()).y() for c in cards)
    field_top = window.scan_field.mapTo(central, window.scan_field.rect().topLeft()).y()
    assert 0 < field_top - lowest < 40  # right under the cards, no empty band between
    line = window.scan_result.fontMetrics().lineSpacing()
    assert window.scan_result.height() >= 3 * line  # the feedback has the rest of the room


def test_the_demo_keeps_pass_on_screen_for_five_seconds(window: MainWindow) -> None:
    from station.gui.app import Demo, DemoSwapper

    demo = Demo(Path("unused"), Path("unused"), window.settings)
    swapper = DemoSwapper(window, demo)
    try:
        window.bridge.port_finished.emit(PORTS[0], "passed")
        assert swapper._timers[PORTS[0]].interval() >= 5000
    finally:
        swapper.stop()


def test_the_demo_prints_a_label_on_each_pass_into_its_folder(tmp_path: Path) -> None:
    from station.gui.app import start_demo

    demo = start_demo(0, folder=tmp_path / "demo")
    try:
        s = demo.settings
        assert s.print_on_pass
        assert s.label_output.startswith(f"pdf:{tmp_path / 'demo'}")
        assert "{unit_id}" in s.label_output
    finally:
        demo.stop()
