"""Engineer mode: the band that makes it unmistakable, and the PIN dialogue that unlocks it
(the first time, the engineer chooses the PIN). What the mode allows is the session's rule.

May import: PySide6, station.gui (security through the settings)."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtWidgets import QLabel

ENGINEER_COLOR = "#b45309"


class EngineerBand(QLabel):
    """Shown across the top of the window while engineer mode is on."""

    def __init__(self) -> None:
        super().__init__(
            "ENGINEER MODE — settings, lots and releases are unlocked.  F2: back to operator mode"
        )
        self.setObjectName("engineerBand")
        self.setWordWrap(True)
        self.setStyleSheet(
            f"background-color: {ENGINEER_COLOR}; color: white; font-weight: bold; "
            "padding: 4px 8px; border-radius: 4px;"
        )
        self.setVisible(False)


def unlock(window: Any) -> bool:
    """Ask the engineer PIN (set one first if the station has none); True when it is right.
    Wrong tries wait longer each time; the reason is shown where scan results appear."""
    settings = window.settings
    if not settings.has_pin:
        pin = window.ask_pin("No engineer PIN is set on this station. Choose one (6+ digits):")
        if not pin:
            return False
        again = window.ask_pin("Type the new PIN again:")
        if pin != again:
            window.refuse("✘ The PINs differ; nothing changed")
            return False
        try:  # too short, or a machine-wide PIN file this account cannot write
            settings.set_pin(pin)
        except ValueError as err:
            window.refuse(f"✘ {err}")
            return False
        return True
    if settings.pin_wait() > 0:  # wrong tries: each one waits longer
        window.refuse(f"✘ Too many wrong PINs: try again in {math.ceil(settings.pin_wait())} s")
        return False
    pin = window.ask_pin("Engineer PIN:")
    if pin is None:
        return False
    if not settings.check_pin(pin):
        wait = math.ceil(settings.pin_wait())
        window.refuse("✘ Wrong PIN" + (f"; the next try in {wait} s" if wait else ""))
        return False
    return True
