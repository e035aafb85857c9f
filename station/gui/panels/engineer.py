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


class EngineerMode:
    """Engineer mode and the settings it unlocks, as the window shows them."""

    def __init__(self, window: Any) -> None:
        self.window = window

    def set(self, on: bool) -> None:
        w = self.window
        w.session.engineer = on
        for a in (w.act_open, w.act_new, w.act_settings):
            a.setEnabled(on)
        w.release_button.setEnabled(on)
        w.act_mode.setText("Operator mode" if on else "Engineer mode")
        w.status_mode.setText("ENGINEER" if on else "Operator")
        w.status_mode.setStyleSheet(f"color: {ENGINEER_COLOR}; font-weight: bold;" if on else "")
        w.engineer_band.setVisible(on)
        w._update_title()
        if w.cards:
            w.cards_scroll.relayout()  # the band takes room from the cards
        w.mode_changed.emit(on)

    def toggle(self) -> None:
        w = self.window
        if w.session.engineer:
            self.set(False)
            w.log("info", "operator mode")
        elif unlock(w):
            self.set(True)
            w.log("info", "engineer mode")
            w.show_hint("Engineer mode (F2: back to operator mode)")  # replaces "Wrong PIN"

    def open_settings(self) -> None:
        w = self.window
        if not w._answer(w.session.may("change settings")):
            return
        from station.gui.dialogs import SettingsDialog

        dialog = SettingsDialog(w.settings, w)
        if dialog.exec() and dialog.changed:
            self.apply_settings()

    def apply_settings(self) -> None:
        """Settings changed: the session's, the ports, scanner and sounds follow."""
        w = self.window
        session = w.session
        w.sounds.enabled = w.settings.sound
        session.configure(w.settings.session_config())
        # baud, continuous mode and operator are the orchestrator's: a new one on the same lot
        if session.needs_restart and not w.link.call(session.restart):
            w.log("warning", "new port settings apply when the running jobs are done")
        if session.lot is not None:
            wanted = w.settings.ports
            for port in list(w.cards):
                if port not in wanted and not session.hot_plug.present(port):
                    w.remove_port(port)
            w.add_ports([(port, None) for port in wanted])
        w._start_serial_scanner()
