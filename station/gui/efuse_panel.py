"""The window's side of a lot's ``[security]`` recipe: enabling it (engineer only, once per
recipe, audited in the ledger) and the "eFuses" tab showing every step, irreversible ones
marked. The policy is Qt-free (station/production/security_step.py); the port card shows the
"burning eFuses" phase like any other."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget


def allow(window: Any, lot: Any) -> bool:
    """May ``lot`` be opened for production in ``window``? A lot without a recipe, or whose
    recipe an engineer enabled already, yes; else only an engineer, after confirming it."""
    from station.production import security_step

    if getattr(lot, "security", None) is None or window.link.call(security_step.enabled, lot):
        return True
    name = getattr(lot.settings, "name", "") or "lot"
    if not window.engineer:
        window.refuse(
            f"✘ Lot {name} burns eFuses (irreversible): an engineer must enable it first (F2)"
        )
        window.log(
            "error",
            f"Lot {name} not opened: its eFuse recipe is not enabled yet; engineer mode "
            "enables it once",
        )
        return False
    question = (
        f"Lot {name} burns these eFuses into every unit, after its verification:\n\n"
        f"{security_step.recipe_text(lot)}\n\nEnable eFuse burning for this lot?"
    )
    if not window.ask_yes_no("Enable eFuse burning", question):
        window.log("warning", f"Lot {name} not opened: eFuse burning not enabled")
        return False
    window.link.call(security_step.enable, lot, window.settings.operator or "engineer")
    window.log("warning", f"Lot {name}: eFuse burning enabled (audited)")
    return True


def show(window: Any, lot: Any) -> None:
    """Show the lot's recipe on an "eFuses" tab (made on first use; hidden without one)."""
    from station.production import security_step

    page = getattr(window, "_efuse_page", None)
    if page is None:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        page.note = QLabel("")  # type: ignore[attr-defined]
        page.note.setWordWrap(True)  # type: ignore[attr-defined]
        page.text = QPlainTextEdit()  # type: ignore[attr-defined]
        page.text.setReadOnly(True)  # type: ignore[attr-defined]
        page.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))  # type: ignore[attr-defined]
        layout.addWidget(page.note)  # type: ignore[attr-defined]
        layout.addWidget(page.text, 1)  # type: ignore[attr-defined]
        window._efuse_page = page
        window._efuse_tab = window.tabs.addTab(page, "eF&uses")
    has = getattr(lot, "security", None) is not None
    window.tabs.setTabVisible(window._efuse_tab, has)
    if not has:
        page.text.setPlainText("")
        return
    page.note.setText(
        "Burned into every unit after its read-back verification passed, in this order. "
        "Steps marked IRREVERSIBLE cannot be undone."
    )
    page.text.setPlainText(security_step.recipe_text(lot))
