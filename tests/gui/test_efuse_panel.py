"""A lot that burns eFuses in the window: enabled by an engineer once (audited), its recipe on
the eFuses tab with the irreversible steps marked, the "burning eFuses" phase on the card."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.gui.settings import StationSettings
from station.gui.widgets import PortCard, PortView
from station.gui.window import MainWindow
from tests.security.conftest import make_lot


@pytest.fixture
def window(qtbot: QtBot, settings: StationSettings) -> Iterator[MainWindow]:
    settings.ports = []
    settings.auto_start = False
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


@pytest.fixture
def hmac_lot(tmp_path: Path) -> Path:
    (tmp_path / "hmac.key").write_bytes(os.urandom(32))
    return make_lot(
        tmp_path,
        chip="esp32c3",
        build=False,
        security='recipes = ["nvs_hmac"]\nhmac_key_id = 0\nhmac_keyfile = "hmac.key"\n',
    )


def test_an_engineer_enables_a_security_lot_once(
    window: MainWindow, hmac_lot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def yes(title: str, question: str) -> bool:
        asked.append(question)
        return True

    monkeypatch.setattr(window, "ask_yes_no", yes)
    assert not window.engineer
    assert not window.open_lot(str(hmac_lot))  # an operator cannot enable it
    assert window.lot is None and asked == []
    assert "an engineer must enable it" in window.scan_result.text()

    window.set_engineer(True)
    monkeypatch.setattr(window, "ask_yes_no", lambda t, q: asked.append(q) or False)
    assert not window.open_lot(str(hmac_lot))  # the engineer said no
    assert window.lot is None

    monkeypatch.setattr(window, "ask_yes_no", yes)
    assert window.open_lot(str(hmac_lot))
    question = asked[-1]
    assert "[IRREVERSIBLE] nvs_hmac" in question and "BLOCK_KEY0" in question
    assert "1 of 1 steps cannot be undone" in question
    tab = window._efuse_tab  # type: ignore[attr-defined]
    assert window.tabs.isTabVisible(tab)
    text = window._efuse_page.text.toPlainText()  # type: ignore[attr-defined]
    assert "[IRREVERSIBLE] nvs_hmac" in text and "KEY_PURPOSE = HMAC_UP" in text
    assert window.lot is not None
    audit = [a for a in window.lot.ledger.audit_log() if a.action == "security-enable"]
    assert len(audit) == 1 and "nvs_hmac" in audit[0].detail

    # enabled once: an operator reopens it (e.g. the next shift) without asking again
    window.close_lot()
    window.set_engineer(False)
    n = len(asked)
    assert window.open_lot(str(hmac_lot))
    assert len(asked) == n


def test_a_lot_without_a_recipe_hides_the_tab(
    window: MainWindow, hmac_lot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.set_engineer(True)
    monkeypatch.setattr(window, "ask_yes_no", lambda t, q: True)
    assert window.open_lot(str(hmac_lot))
    plain = make_lot(tmp_path / "plain", chip="esp32c3", build=False)
    assert window.open_lot(str(plain))
    assert not window.tabs.isTabVisible(window._efuse_tab)  # type: ignore[attr-defined]


def test_the_card_shows_the_burning_efuses_phase(qtbot: QtBot) -> None:
    card = PortCard("COM7", "Slot 1")
    qtbot.addWidget(card)
    card.set_view(
        PortView(port="COM7", slot="Slot 1", state="busy", phase="burning eFuses", done=3, total=11)
    )
    assert card.fields["Phase"].text() == "burning eFuses"
    assert "burning eFuses" in card.progress.format()
