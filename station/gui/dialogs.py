"""Dialogs of the station window: settings, a new lot, and the label preview."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from station.errors import StationError
from station.flashing.types import CHIPS
from station.gui.settings import StationSettings
from station.labels.service import preview_fields
from station.production.engineer import MIN_PIN_DIGITS, PinError, pin_problem

BAUD_RATES = ("115200", "230400", "460800", "921600", "1500000", "2000000")


class SettingsDialog(QDialog):
    """This station's settings (engineer mode only): ports, baud, auto-start, scanner, PIN."""

    def __init__(self, settings: StationSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Station settings")
        self.settings = settings
        self.changed = False  # set by accept(): whether Save changed any setting
        form = QFormLayout()
        # one line (Enter saves, as in every other field): ports separated by commas
        self.ports = QLineEdit(", ".join(settings.ports))
        self.ports.setPlaceholderText("COM7, COM8, /dev/ttyUSB0, socket://host:port")
        self.ports.setToolTip("The station's ports, separated by commas or spaces")
        self.ports.setMinimumWidth(self.ports.fontMetrics().averageCharWidth() * 60)
        form.addRow("&Ports:", self.ports)
        self.baud = QComboBox()
        self.baud.setEditable(True)
        self.baud.addItems(BAUD_RATES)
        self.baud.setCurrentText(str(settings.baud))
        form.addRow("&Baud while writing:", self.baud)
        self.auto_start = QCheckBox("Start flashing as soon as a scanned unit has a device")
        self.auto_start.setChecked(settings.auto_start)
        form.addRow("&Auto-start:", self.auto_start)
        self.continuous = QCheckBox(
            "Flash every connected device with the next pending row (no scan needed)"
        )
        self.continuous.setChecked(settings.continuous)
        form.addRow("&Continuous:", self.continuous)
        self.hot_plug = QCheckBox("Add serial ports when devices are plugged in")
        self.hot_plug.setChecked(settings.hot_plug)
        form.addRow("&Hot-plug:", self.hot_plug)
        self.scanner = QLineEdit(settings.scanner_port)
        self.scanner.setPlaceholderText("empty: a keyboard scanner (needs no setting)")
        form.addRow("Serial &scanner port:", self.scanner)
        self.sound = QCheckBox("Beep on scans and results")
        self.sound.setChecked(settings.sound)
        form.addRow("S&ound:", self.sound)
        self.operator = QLineEdit(settings.operator)
        form.addRow("&Operator name:", self.operator)
        self.label_output = QLineEdit(settings.label_output)
        self.label_output.setPlaceholderText(
            "printer:  printer:NAME  pdf:PATH  zpl:tcp://HOST:9100  zpl:/dev/usb/lp0"
        )
        self.label_output.setToolTip(
            "Where labels go. pdf: paths may contain {unit_id} (one file per unit)."
        )
        form.addRow("&Label output:", self.label_output)
        self.print_on_pass = QCheckBox("Print a label when a unit passes")
        self.print_on_pass.setChecked(settings.print_on_pass)
        form.addRow("Label on &pass:", self.print_on_pass)
        pin = QPushButton("Change engineer PIN…")
        pin.setAutoDefault(False)  # Enter saves the dialog, it never opens the PIN prompt
        pin.clicked.connect(self.change_pin)
        form.addRow("", pin)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #b91c1c;")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        # Enter in any field saves (set once the button is in the dialog, or Qt ignores it)
        buttons.button(QDialogButtonBox.StandardButton.Save).setDefault(True)

    def change_pin(self) -> None:
        pin, ok = QInputDialog.getText(
            self,
            "New PIN",
            f"New engineer PIN ({MIN_PIN_DIGITS}+ digits):",
            QLineEdit.EchoMode.Password,
        )
        if not ok:
            return
        problem = pin_problem(pin)
        if problem:
            self.error.setText(f"{problem} Nothing changed.")
            return
        again, ok = QInputDialog.getText(
            self, "New PIN", "Type it again:", QLineEdit.EchoMode.Password
        )
        if ok and again == pin:
            try:
                self.settings.set_pin(pin)
            except PinError as err:
                self.error.setText(f"{err} Nothing changed.")
                return
            self.error.setText("PIN changed.")
        else:
            self.error.setText("The PINs differ; nothing changed.")

    def accept(self) -> None:
        try:
            baud = int(self.baud.currentText())
        except ValueError:
            self.error.setText(f"Baud: {self.baud.currentText()!r} is not a number.")
            return
        if not 9600 <= baud <= 5_000_000:
            self.error.setText(f"Baud: {baud} is out of range (9600 – 5000000).")
            return
        output = self.label_output.text().strip()
        if output:
            from station.labels import parse_output

            try:
                parse_output(output)
            except StationError as err:
                self.error.setText(f"Label output: {err.problems[0].message}")
                return
        elif self.print_on_pass.isChecked():
            self.error.setText("Label output: printing on pass needs an output.")
            return
        ports = [p for p in re.split(r"[,\s]+", self.ports.text()) if p]
        s = self.settings
        before = _snapshot(s)
        s.ports = list(dict.fromkeys(ports))
        s.baud = baud
        s.auto_start = self.auto_start.isChecked()
        s.continuous = self.continuous.isChecked()
        s.hot_plug = self.hot_plug.isChecked()
        s.scanner_port = self.scanner.text().strip()
        s.sound = self.sound.isChecked()
        s.operator = self.operator.text().strip()
        s.label_output = output
        s.print_on_pass = self.print_on_pass.isChecked()
        s.sync()
        self.changed = _snapshot(s) != before
        super().accept()


def _snapshot(s: StationSettings) -> tuple[object, ...]:
    """The settings the dialog edits, to tell whether Save changed any."""
    return (
        s.ports,
        s.baud,
        s.auto_start,
        s.continuous,
        s.hot_plug,
        s.scanner_port,
        s.sound,
        s.operator,
        s.label_output,
        s.print_on_pass,
    )


class _FileField(QWidget):
    """A path field with a "…" button."""

    def __init__(self, caption: str, pattern: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = caption
        self.pattern = pattern
        self.edit = QLineEdit()
        button = QPushButton("…")
        button.setToolTip(f"Choose the {caption.lower()}")
        button.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(button)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.caption, self.edit.text(), self.pattern)
        if path:
            self.edit.setText(path)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text) if text else None


def csv_header(path: Path) -> list[str]:
    """The column names of a values CSV (empty if it cannot be read)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [c.strip() for c in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


class NewLotDialog(QDialog):
    """Build a lot from an mfg_gen config CSV, a values CSV and a partition table, and save it as
    lot.toml. The window opens (and validates) the saved lot."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New lot")
        self.saved_path: Path | None = None
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. L2026-11-A")
        form.addRow("Lot &name:", self.name)
        self.config = _FileField("Config CSV", "CSV files (*.csv);;All files (*)")
        form.addRow("&Config CSV:", self.config)
        self.values = _FileField("Values CSV", "CSV files (*.csv);;All files (*)")
        self.values.edit.editingFinished.connect(self._load_columns)
        self.values.edit.textChanged.connect(lambda _t: self._load_columns())
        form.addRow("&Values CSV:", self.values)
        self.table = _FileField("Partition table", "Partition tables (*.csv *.bin);;All files (*)")
        form.addRow("&Partition table:", self.table)
        self.partition = QLineEdit("fctry")
        form.addRow("&Factory partition:", self.partition)
        self.chip = QComboBox()
        self.chip.addItems(CHIPS)
        self.chip.setCurrentText("esp32")  # the usual choice; "auto" takes whatever answers
        form.addRow("C&hip:", self.chip)
        self.fileid = QComboBox()
        self.scan_column = QComboBox()
        form.addRow("&Unit id column:", self.fileid)
        form.addRow("S&can column:", self.scan_column)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b91c1c;")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        save = buttons.addButton("Save lot as…", QDialogButtonBox.ButtonRole.AcceptRole)
        save.setDefault(True)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.resize(self.fontMetrics().averageCharWidth() * 80, self.sizeHint().height())

    def _load_columns(self) -> None:
        path = self.values.path()
        columns = csv_header(path) if path is not None else []
        for box in (self.fileid, self.scan_column):
            current = box.currentText()
            box.clear()
            box.addItem("")
            box.addItems(columns)
            if current in columns:
                box.setCurrentText(current)

    def lot_settings(self, lot_path: Path) -> Any:
        """The LotSettings this dialog describes; StationError naming every missing field."""
        from station.production.lot import LotSettings

        missing = []
        name = self.name.text().strip()
        if not name:
            missing.append("name")
        paths = {}
        for key, field in (
            ("config", self.config),
            ("values", self.values),
            ("partition_table", self.table),
        ):
            p = field.path()
            if p is None:
                missing.append(key)
            elif not p.exists():
                missing.append(f"{key} ({p} does not exist)")
            else:
                paths[key] = p.resolve()
        if missing:
            raise StationError.at(str(lot_path), "missing: " + ", ".join(missing), key="lot")
        return LotSettings(
            name=name,
            path=lot_path,
            config=paths["config"],
            values=paths["values"],
            partition_table=paths["partition_table"],
            partition=self.partition.text().strip() or None,
            chip=self.chip.currentText(),
            fileid=self.fileid.currentText() or None,
            scan_column=self.scan_column.currentText() or None,
        )

    def save_to(self, lot_path: Path) -> bool:
        """Write lot.toml at ``lot_path`` (no dialog); False with the problem shown if it fails."""
        from station.production.lot import write_lot_file

        try:
            settings = self.lot_settings(lot_path)
            write_lot_file(settings, lot_path)
        except StationError as err:
            self.error.setText("\n".join(str(p) for p in err.problems))
            return False
        except OSError as err:
            self.error.setText(f"{lot_path}: cannot write the lot file ({err.strerror})")
            return False
        self.saved_path = lot_path
        return True

    def save(self) -> None:
        values = self.values.path()
        start = str(values.parent / "lot.toml") if values is not None else "lot.toml"
        path, _ = QFileDialog.getSaveFileName(self, "Save lot", start, "Lot files (*.toml)")
        if path and self.save_to(Path(path)):
            self.accept()


class LabelDialog(QDialog):
    """A unit's label as it would be printed, and its fields. ``on_print(record)`` queues the
    print (the window's printer thread, audited) and returns (accepted, message)."""

    def __init__(
        self,
        parent: QWidget | None,
        lot: Any,
        record: Any,
        on_print: Callable[[Any], tuple[bool, str]] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Label of {record.unit_id}")
        layout = QVBoxLayout(self)
        self.fields = preview_fields(lot, record)
        self.image: QLabel | None = None
        png, problem = render_label(lot, self.fields)
        if png is not None:
            pixmap = QPixmap()
            pixmap.loadFromData(png)
            self.image = QLabel()
            self.image.setPixmap(
                pixmap.scaledToWidth(
                    min(pixmap.width(), self.fontMetrics().averageCharWidth() * 70),
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
            layout.addWidget(self.image)
        elif problem:
            note = QLabel(problem)
            note.setWordWrap(True)
            layout.addWidget(note)
        text = QPlainTextEdit("\n".join(f"{k}: {v}" for k, v in self.fields.items()))
        text.setReadOnly(True)
        layout.addWidget(text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.print_button = buttons.addButton("Print", QDialogButtonBox.ButtonRole.ActionRole)
        self.print_button.clicked.connect(self._print)
        self.print_button.setEnabled(png is not None and on_print is not None)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._record = record
        self._on_print = on_print

    def _print(self) -> None:
        if self._on_print is None:
            return
        ok, message = self._on_print(self._record)
        if ok:
            self.accept()
        else:
            QMessageBox.warning(self, "Label not printed", message)


def render_label(lot: Any, fields: dict[str, str]) -> tuple[bytes | None, str]:
    """PNG bytes of the label, or (None, why not)."""
    if not getattr(lot.settings, "label", None):
        return None, "This lot has no label layout ([label] in lot.toml); the fields are:"
    try:
        from station.gui.label_render import render_png
        from station.labels import template_from_dict
    except ImportError:
        return None, "Label printing is not available in this installation; the fields are:"
    try:
        return render_png(template_from_dict(lot.settings.label), fields), ""
    except StationError as err:
        return None, "\n".join(str(p) for p in err.problems)
