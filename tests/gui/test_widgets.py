"""The port card shows a port's state in big colour and words; the flash map draws to scale."""

from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from station.gui import theme
from station.gui.widgets import FlashMapWidget, PortCard, PortView


def test_card_states_have_distinct_colours_and_words(qtbot: QtBot) -> None:
    card = PortCard("socket://127.0.0.1:9001", "Slot 1")
    qtbot.addWidget(card)
    seen = set()
    for state in ("idle", "waiting", "busy", "passed", "failed", "attention"):
        card.set_view(PortView(port=card.port, slot="Slot 1", state=state, total=100, done=50))
        assert theme.CARD[state][0] in card.big.styleSheet()
        seen.add(card.big.text())
    assert len(seen) == 6
    assert card.big.text().startswith("CHECK")


def test_card_shows_unit_progress_and_counters(qtbot: QtBot) -> None:
    card = PortCard("COM7", "Slot 3")
    qtbot.addWidget(card)
    card.set_view(
        PortView(
            port="COM7",
            slot="Slot 3",
            state="busy",
            phase="writing",
            done=250,
            total=1000,
            chip="ESP32",
            mac="aa:bb:cc:00:00:01",
            unit_id="SN-0042",
            row_index=41,
            elapsed=3.25,
            next_unit="SN-0043",
            passed_count=7,
            failed_count=1,
        )
    )
    assert card.big.text() == "WORKING 25%"
    assert card.fields["Next"].text() == "SN-0043"
    assert card.progress.value() == 250
    assert card.fields["Unit"].text() == "SN-0042"
    assert card.fields["MAC"].text() == "aa:bb:cc:00:00:01"
    assert card.fields["Phase"].text() == "writing"
    assert card.fields["Elapsed"].text() == "3.2 s"
    assert "7" in card.counters.text() and "1" in card.counters.text()
    assert not card.start_button.isEnabled() and card.cancel_button.isEnabled()
    card.set_view(replace(card.view, state="passed", next_unit=""))
    assert card.fields["Next"].text() == "–"


def test_card_buttons_emit_the_port(qtbot: QtBot) -> None:
    card = PortCard("COM7", "Slot 1")
    qtbot.addWidget(card)
    with qtbot.waitSignal(card.start_requested) as blocker:
        card.start_button.click()
    assert blocker.args == ["COM7"]


@dataclass(frozen=True)
class Region:
    kind: str
    name: str
    offset: int
    size: int
    written: bool = False


def test_flash_map_draws_regions_to_scale(qtbot: QtBot) -> None:
    w = FlashMapWidget()
    qtbot.addWidget(w)
    w.resize(1002, 120)
    regions = [
        Region("bootloader", "bootloader", 0x1000, 0x7000),
        Region("table", "partition table", 0x8000, 0x1000),
        Region("data", "nvs", 0x9000, 0x6000),
        Region("data", "fctry", 0xF000, 0x6000, written=True),
        Region("gap", "", 0x15000, 0xB000),
        Region("app", "factory", 0x20000, 0xE0000),
    ]
    w.set_map(regions, flash_size=0x100000, image_size=0x3000)
    w.show()
    qtbot.waitExposed(w)
    geometry = w._geometry()
    top = min(r.top() for r, _ in geometry)
    rects = {b.name or b.kind: r for r, b in geometry if r.top() == top}  # the whole-flash bar
    # the app is 0xE0000 of 0x100000: 87.5 % of the width
    assert abs(rects["factory"].width() / 1000 - 0xE0000 / 0x100000) < 0.01
    assert rects["fctry"].left() < rects["gap"].left() < rects["factory"].left()
    assert w.block_at(rects["fctry"].center().x(), rects["fctry"].center().y()).written
    image = w.grab().toImage()
    centre = rects["fctry"].center()
    assert (
        image.pixelColor(QPoint(int(centre.x()), int(centre.y()))).name()
        == theme.FLASH_MAP["factory"]
    )


def test_a_working_port_s_clock_runs_between_events(qtbot: QtBot) -> None:
    """A port that hangs mid-write sends no events; its elapsed time must still grow."""
    card = PortCard("COM7", "Slot 3")
    qtbot.addWidget(card)
    card.set_view(PortView(port="COM7", state="busy", elapsed=1.25, received=100.0))
    card.tick(100.0)
    assert card.fields["Elapsed"].text() == "1.2 s"
    card.tick(105.0)
    assert card.fields["Elapsed"].text() == "6.2 s"
    card.set_view(PortView(port="COM7", state="passed", elapsed=7.0, received=106.0))
    card.tick(200.0)  # a finished unit's time stands still
    assert card.fields["Elapsed"].text() == "7.0 s"


def test_a_card_whose_view_did_not_change_is_not_updated(qtbot: QtBot, monkeypatch) -> None:
    card = PortCard("COM7", "Slot 3")
    qtbot.addWidget(card)
    view = PortView(port="COM7", slot="Slot 3", state="busy", phase="writing", done=1, total=4)
    card.set_view(replace(view, received=1.0))
    applied: list[PortView] = []
    shown: list[str] = []
    real_apply, real_show = card._apply, card._show_message
    monkeypatch.setattr(card, "_apply", lambda v, force=False: (applied.append(v), real_apply(v)))
    monkeypatch.setattr(card, "_show_message", lambda: (shown.append(""), real_show()))
    card.set_view(replace(view, received=1.0))  # the same view
    card.set_view(replace(view, received=2.0))  # an event that changed nothing shown
    assert applied == [] and shown == []
    assert card.view.received == 2.0  # the clock runs from the newest event
    card.set_view(replace(view, done=2, received=3.0))  # progress: applied, message untouched
    assert len(applied) == 1 and shown == []
    assert card.progress.value() == 500
    card.set_view(replace(view, done=2, message="the device stopped answering"))
    assert len(shown) == 1


def test_every_card_says_ledger_offline_until_it_is_back(qtbot: QtBot) -> None:
    """The bridge hears LedgerStatus once and shows it on every card, cards added meanwhile
    included; when the ledger is back each card shows its own state and message again."""
    from station.gui.bridge import EventBridge
    from station.gui.models import LogBuffer
    from station.production import PortUpdate
    from station.production.events import LedgerStatus

    bridge = EventBridge(LogBuffer())
    cards = {p: PortCard(p, f"Slot {p[-1]}") for p in ("COM1", "COM2", "COM3")}
    for p, card in cards.items():
        qtbot.addWidget(card)
        bridge.add_port(p, f"Slot {p[-1]}")
    bridge.on_event(PortUpdate("COM1", state="busy", phase="writing", done=1, total=4))
    bridge.on_event(PortUpdate("COM2", state="failed", message="verify failed at 0x10000"))

    def show() -> None:
        for port, view in (bridge.take().ports or {}).items():
            cards[port].set_view(view)

    show()
    bridge.on_event(LedgerStatus(True))
    bridge.add_port("COM4", "Slot 4")  # plugged in while the ledger is away
    cards["COM4"] = PortCard("COM4", "Slot 4")
    qtbot.addWidget(cards["COM4"])
    show()
    for card in cards.values():
        assert card.big.text() == "NO LEDGER"
        assert theme.CARD["ledger"][0] in card.big.styleSheet()
        assert card.message.toolTip().startswith("Ledger offline: reconnecting")
        assert not card.start_button.isEnabled()
    bridge.on_event(LedgerStatus(False))
    show()
    assert cards["COM1"].big.text() == "WORKING 25%"
    assert cards["COM2"].big.text() == "FAIL" and "verify failed" in cards["COM2"].message.toolTip()
    assert cards["COM3"].big.text() == "READY" and cards["COM3"].start_button.isEnabled()


def test_a_press_anywhere_on_the_card_chooses_it(qtbot: QtBot) -> None:
    """Gloved operators tap the card where they tap it: on its state, its counters, or one of
    its facts, which are selectable (and so kept their presses: a tap there chose nothing)."""
    card = PortCard("COM7", "Slot 1")
    qtbot.addWidget(card)
    card.resize(420, 260)
    card.show()
    qtbot.waitExposed(card)
    chosen: list[str] = []
    card.chosen.connect(chosen.append)
    parts = [card.big, card.message, card.counters, card.title, *card.fields.values()]
    for part in parts:
        qtbot.mouseClick(part, Qt.MouseButton.LeftButton)
    assert chosen == ["COM7"] * len(parts)
    mac = card.fields["MAC"]
    mac.setText("24:0a:c4:00:00:01")
    qtbot.mouseDClick(mac, Qt.MouseButton.LeftButton, pos=QPoint(5, mac.height() // 2))
    assert mac.hasSelectedText()  # and the fact is still selectable
