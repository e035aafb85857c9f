"""The scan bar: the scan field, the port the next scan goes to, and the big feedback line.

May import: PySide6, station.gui (theme, widgets)."""

from __future__ import annotations

from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QSizePolicy, QVBoxLayout, QWidget

from station.gui import theme
from station.gui.widgets import FeedbackLabel

SCAN_PLACEHOLDER = "scan a unit"
REPRINT_COLOR = "#b45309"


class ScanBar(QWidget):
    """Under the cards, with the room the cards leave."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        panel = QVBoxLayout(self)
        panel.setContentsMargins(0, 4, 0, 0)
        row = QHBoxLayout()
        label = QLabel("&Scan:")
        big = label.font()
        big.setPointSizeF(max(big.pointSizeF(), 9.0) * 1.4)
        big.setBold(True)
        label.setFont(big)
        self.field = QLineEdit()
        self.field.setObjectName("scanField")
        self.field.setFont(big)
        self.field.setPlaceholderText(SCAN_PLACEHOLDER)
        self.field.setToolTip("A scan works wherever the focus is (Ctrl+L: this field)")
        self.field.setClearButtonEnabled(True)
        self.field.setMinimumWidth(
            QFontMetrics(big).horizontalAdvance(SCAN_PLACEHOLDER + "WW") + 24
        )
        label.setBuddy(self.field)
        self.port_choice = QLabel("→ next free port")
        self.port_choice.setFont(big)
        self.port_choice.setToolTip("Ctrl+1…9 pick the port for the next scan, Ctrl+0 any port")
        row.addWidget(label)
        row.addWidget(self.field, 1)
        row.addWidget(self.port_choice)
        panel.addLayout(row)
        self.result = FeedbackLabel("")
        self.result.setObjectName("scanResult")
        feedback = label.font()
        feedback.setPointSizeF(max(feedback.pointSizeF(), 9.0) * 1.6)
        feedback.setBold(True)
        self.result.setFont(feedback)  # read from a metre away, like the cards' state
        self.result.setWordWrap(True)  # a long refusal wraps: no word is cut off
        from PySide6.QtCore import Qt

        self.result.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        lines = QFontMetrics(feedback).lineSpacing()
        self.result.setMinimumHeight(lines * 2 + 12)
        self.result.setMaximumHeight(lines * 3 + 12)  # no wall of colour: three lines
        self.result.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        panel.addWidget(self.result, 1)
        panel.addStretch(0)

    def take_code(self) -> str:
        """The typed code (the field is cleared)."""
        code = self.field.text().strip()
        self.field.clear()
        return code

    def show_result(self, ok: bool, text: str) -> None:
        self._show(
            text, f"background-color: {theme.SCAN_OK if ok else theme.SCAN_BAD}; color: white;"
        )

    def show_hint(self, text: str) -> None:
        """A neutral message where scan results appear (e.g. the demo's first steps)."""
        self._show(text, "background-color: #dbeafe; color: #0b2a4d;")

    def _show(self, text: str, colors: str) -> None:
        self.result.setText(text)
        self.result.setToolTip(text)
        self.result.setStyleSheet(f"{colors} border-radius: 4px; padding: 2px 8px;")

    def set_port_choice(self, slot: str | None) -> None:
        self.port_choice.setText(f"→ {slot}" if slot else "→ next free port")

    def set_reprint(self, on: bool) -> None:
        """F8 armed: the next scan reprints; obvious on screen, beside the scan field."""
        self.field.setProperty("reprint", on)
        if on:
            self.field.setPlaceholderText("REPRINT: scan a unit")
            self.field.setStyleSheet(
                f"background-color: #fde68a; border: 2px solid {REPRINT_COLOR};"
            )
            self.port_choice.setText("→ REPRINT")
            self.port_choice.setStyleSheet(f"color: {REPRINT_COLOR}; font-weight: bold;")
            self.show_hint("Reprint: scan a unit (Esc: cancel)")
        else:
            self.field.setPlaceholderText(SCAN_PLACEHOLDER)
            self.field.setStyleSheet("")
            self.port_choice.setStyleSheet("")
