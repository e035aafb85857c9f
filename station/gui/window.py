"""The station window: panels over one station session (station.production.session).

The session holds the lot, the orchestrator, the device host, the label service and the rules;
the window puts its panels together (ports, scan bar, rows and failed units, lot, log), passes on
what the operator asks, and shows the answer. Ledger work runs on the session's worker thread
(:class:`~station.gui.session_link.SessionLink`); orchestrator events are folded by
:class:`~station.gui.bridge.EventBridge` and a 4 Hz timer repaints from that state.

May import: PySide6, station.gui, station.production (the session and its events).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from station.errors import Problem, StationError
from station.gui import efuse_panel
from station.gui.bridge import EventBridge
from station.gui.labels import use_qt_renderer
from station.gui.models import LogBuffer
from station.gui.panels.actions import build_actions, install_shortcuts
from station.gui.panels.engineer import EngineerBand, EngineerMode
from station.gui.panels.log import LogPanel
from station.gui.panels.lot import PartitionsPage, ProblemsPage
from station.gui.panels.ports import PortsPanel, StationPorts
from station.gui.panels.rows import FailedPage, RowsPage
from station.gui.panels.scanbar import ScanBar
from station.gui.panels.status import Repaint, build_status
from station.gui.resources import Sounds
from station.gui.scanner import ScanEventFilter, SerialScanner
from station.gui.session_link import SessionLink, SessionRows
from station.gui.settings import StationSettings
from station.labels import LabelOutcome
from station.production.session import Outcome, PortsPlugged, StationSession, first_message

REFRESH_MS = 250  # the 4 Hz repaint


class MainWindow(QMainWindow):
    """The station window. ``settings`` are this station's; ``title_suffix`` marks a demo."""

    HOT_PLUG_POLL = 1.0  # seconds between looks at the serial port list

    lot_opened = Signal(str)  # lot name
    scan_handled = Signal(str, bool, str)  # code, accepted, message shown to the operator
    mode_changed = Signal(bool)  # engineer mode on?
    closing = Signal()  # shutdown() begins: helpers stop before production does

    # False: esptool on threads of this process (bench_gui_stall.py's "inproc", for comparison)
    use_device_host = True

    def __init__(self, settings: StationSettings, *, title_suffix: str = "") -> None:
        super().__init__()
        self.settings = settings
        self._title_suffix = title_suffix
        self.setWindowTitle("Station" + title_suffix)
        self.setObjectName("stationWindow")
        use_qt_renderer()  # PDF files and system printers are drawn by Qt
        self.session = StationSession(settings.session_config())
        settings.on_change(lambda: self.session.configure(settings.session_config()))
        # port -> slot name, for every port this window has shown (kept after a port goes, so
        # older log lines and rows still name their slot)
        self.slot_names: dict[str, str] = {}
        self.sounds = Sounds(settings.sound, self)
        self.log_buffer = LogBuffer(parent=self)
        self.bridge = EventBridge(self.log_buffer, self)
        self.link = SessionLink(self.session, self.bridge, self)
        self.link.posted.connect(self._session_event)
        self.serial_scanner: SerialScanner | None = None
        self._closing = False
        self.reprint_armed = False  # F8: the next scan reprints a label instead of assigning

        build_actions(
            self,
            {
                "start_all": lambda: self._answer(self.session.start_all()),
                "stop_all": lambda: self.session.cancel(None),
                "toggle_reprint": lambda: self.arm_reprint(not self.reprint_armed),
            },
        )
        self._build_central()
        self._build_docks()
        build_status(self)
        install_shortcuts(self)
        self.ports = StationPorts(self, self.cards_scroll)
        self.add_port, self.add_ports = self.ports.add_port, self.ports.add_ports
        self.replace_port, self.remove_port = self.ports.replace_port, self.ports.remove_port
        self.choose_port, self._choose_port_number = (
            self.ports.choose_port,
            self.ports.choose_port_number,
        )
        self.mode = EngineerMode(self)
        self.set_engineer, self.toggle_mode = self.mode.set, self.mode.toggle
        self.open_settings, self.apply_settings = self.mode.open_settings, self.mode.apply_settings
        self.repaint_state = Repaint(self)
        self.refresh, self._refresh_failed = (
            self.repaint_state.tick,
            self.repaint_state.refresh_failed,
        )
        for model in (self.row_model, self.failed_model, self.log_model):
            model.slots = self.slot_names

        self.scan_filter = ScanEventFilter(self, self.scan_field, self.handle_scan)
        self.scan_filter.attach()
        self.bridge.decision.connect(self._ask_decision)
        self.bridge.port_finished.connect(self._port_finished)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(lambda: self.refresh())
        self.timer.start()

        geometry, state = settings.window_layout()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1366, 740)
        if state is not None:
            self.restoreState(state)
        self.set_engineer(False)
        self._start_serial_scanner()
        self.log("info", "Station ready. Scan a unit's code to assign it to a port.")

    # ==== construction ====
    def _build_central(self) -> None:
        central = _Central(lambda: self.cards_scroll.room_changed())
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        self.engineer_band = EngineerBand()  # engineer mode must be unmistakable
        layout.addWidget(self.engineer_band)
        self.cards_scroll = PortsPanel(self._cards_room)
        self.cards = self.cards_scroll.cards  # the same dict, kept up to date by the panel
        self.cards_host = self.cards_scroll.host
        layout.addWidget(self.cards_scroll, 0)
        self.scan_panel = ScanBar()
        self.scan_field = self.scan_panel.field
        self.scan_field.returnPressed.connect(
            lambda: (code := self.scan_panel.take_code()) and self.handle_scan(code)
        )
        self.port_choice = self.scan_panel.port_choice
        self.scan_result = self.scan_panel.result
        layout.addWidget(self.scan_panel)  # no stretch factor: the scan result is Expanding
        self.setCentralWidget(central)
        self.central = central

    def _build_docks(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("lotTabs")
        self.rows_page = RowsPage(self)
        self.row_model, self.row_view = self.rows_page.model, self.rows_page.view
        self.filter_box, self.search_field = self.rows_page.filter_box, self.rows_page.search_field
        self.tabs.addTab(self.rows_page, "&Rows")
        self.failed_page = FailedPage(self)
        self.failed_model, self.failed_view = self.failed_page.model, self.failed_page.view
        self.release_button = self.failed_page.release_button
        self.failed_tab = self.tabs.addTab(self.failed_page, "&Failed")
        self.partitions = PartitionsPage()
        self.partition_model, self.flash_map = self.partitions.model, self.partitions.flash_map
        self.flash_map_note = self.partitions.note
        self.tabs.addTab(self.partitions, "P&artitions")
        self.problems = ProblemsPage()
        self.problem_model, self.problem_source = self.problems.model, self.problems.source
        self.show_problem = self.problems.show_problem
        self.problems_tab = self.tabs.addTab(self.problems, "Pro&blems")
        from station.gui.dashboard import DashboardPanel  # the line's figures (QtCharts)

        self.dashboard = DashboardPanel()
        self.tabs.addTab(self.dashboard, "&Dashboard")
        self.log_view = LogPanel(self.log_buffer)
        self.log_model = self.log_view.model_
        docks = []
        for title, name, widget, area in (
            ("Lot", "lotDock", self.tabs, Qt.DockWidgetArea.RightDockWidgetArea),
            ("Log", "logDock", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
            self.addDockWidget(area, dock)
            docks.append(dock)
        self.lot_dock, self.log_dock = docks
        self.resizeDocks([self.lot_dock], [560], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [110], Qt.Orientation.Vertical)

    # ==== the session's state, as the tests and the demo see it ====
    lot = property(lambda self: self.session.lot)
    orchestrator = property(lambda self: self.session.orchestrator)
    device_host = property(lambda self: self.session.device_host)
    engineer = property(lambda self: self.session.engineer)
    image_used = property(lambda self: self.partitions.used)
    chosen_port = property(lambda self: self.ports.chosen)
    _counters = property(
        lambda self: self.repaint_state.counters,
        lambda self, value: setattr(self.repaint_state, "counters", value),
    )

    # ==== logging and messages ====
    def log(self, level: str, text: str, port: str = "") -> None:
        self.log_buffer.append(port, level, text)

    def show_scan_result(self, ok: bool, text: str) -> None:
        self.scan_panel.show_result(ok, text)
        self.sounds.play("ok" if ok else "error")

    def refuse(self, text: str, port: str = "") -> None:
        """Refuse what the operator asked for: the red banner, the error sound, and the Log
        (a banner is replaced by the next one; the Log keeps every refusal)."""
        self.log("warning", text.removeprefix("✘ "), port)
        self.show_scan_result(False, text)

    def show_hint(self, text: str) -> None:
        self.scan_panel.show_hint(text)

    def _answer(self, outcome: Outcome) -> bool:
        """Show a session outcome: accepted (green) or refused (red, logged)."""
        if outcome.ok:
            if outcome.message:
                self.show_scan_result(True, outcome.message)
        elif outcome.message:
            self.refuse(outcome.message, outcome.port)
        return outcome.ok

    # Dialog hooks: tests replace these (a modal dialog would block a test).
    def ask_yes_no(self, title: str, question: str) -> bool:
        yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
        return QMessageBox.question(self, title, question, yes | no, no) == yes

    def ask_text(self, title: str, prompt: str) -> str | None:
        text, ok = QInputDialog.getText(self, title, prompt)
        return text.strip() if ok and text.strip() else None

    def ask_pin(self, prompt: str) -> str | None:
        text, ok = QInputDialog.getText(self, "Engineer PIN", prompt, QLineEdit.EchoMode.Password)
        return text if ok and text else None

    # ==== lot ====
    def choose_lot(self) -> None:
        if not self._answer(self.session.may("open another lot")):
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Open lot", self.settings.last_lot, "Lot files (*.toml);;All files (*)"
        )
        if path:
            self.open_lot(path)

    def new_lot(self) -> None:
        if not self._answer(self.session.may("build a new lot")):
            return
        from station.gui.dialogs import NewLotDialog

        dialog = NewLotDialog(self)
        if dialog.exec() and dialog.saved_path is not None:
            self.open_lot(str(dialog.saved_path))

    def open_lot(self, path: str, *, db_url: str | None = None) -> bool:
        """Open and validate a lot. On problems, list them (clickable) and keep the current lot."""
        if self.session.lot is not None and self.session.busy_ports():
            self.refuse("✘ Finish or stop the running jobs first")
            return False
        # Load the flashing engine (esptool) and the NVS encoder now, on the GUI thread, before
        # any port starts: eight workers importing them at once hold the GIL for long stretches
        # of C code (unmarshalling modules), which froze the window for ~300 ms at the start.
        import station.flashing
        import station.nvs  # noqa: F401

        self.close_lot()
        self.session.use_device_host = self.use_device_host
        try:
            self.link.call(self.session.open, path, db_url=db_url)
        except StationError as err:
            self.show_problems(list(err.problems))
            self.log("error", f"Lot {path} has {len(err.problems)} problem(s); see Problems.")
            self.show_scan_result(False, f"Lot not opened: {first_message(err)}")
            return False
        if not efuse_panel.allow(self, self.session.lot):  # burns eFuses: engineer-enabled
            self.link.call(self.session.close_lot)
            return False
        self._show_lot()
        self.settings.last_lot = str(path)
        return True

    def show_problems(self, problems: list[Problem]) -> None:
        self.problems.set_problems(problems, show_first=True)
        self.tabs.setTabText(self.problems_tab, f"Pro&blems ({len(problems)})")
        self.tabs.setCurrentIndex(self.problems_tab)

    def _show_lot(self) -> None:
        """The session opened a lot: show it and put the station's ports on it."""
        lot = self.session.lot
        assert lot is not None
        self._counters = None
        self.rows_page.show_lot(lot, SessionRows(self.link))
        self.dashboard.set_ledger(lot.ledger)
        # the label template's problems and the lot's warnings (allowed, but they look like
        # mistakes: two rows sharing a key …) are listed with the problems, never a value
        label_problems = self.session.label_policy.problems
        warnings = list(getattr(lot.mfg, "warnings", ()))
        self.problems.set_problems([*label_problems, *warnings])
        listed = len(label_problems) + len(warnings)
        self.tabs.setTabText(self.problems_tab, f"Pro&blems ({listed})" if listed else "Pro&blems")
        if label_problems:
            self.log(
                "warning",
                f"the lot's label template has {len(label_problems)} problem(s) (see Problems); "
                "no labels will be printed",
            )
        if warnings:
            self.log("warning", f"the lot has {len(warnings)} warning(s): see Problems")
        self.partitions.show_lot(lot)
        efuse_panel.show(self, lot)  # the lot's eFuse recipe, if it has one
        # how full the partition is: row 1's image is built on the session's worker
        self.link.later(self.session.reads.image_usage, then=self.partitions.show_usage)
        self.add_ports([(port, None) for port in self.settings.ports])
        if self.settings.hot_plug:
            self.session.start_hot_plug(self.HOT_PLUG_POLL)
        self._refresh_failed()
        self.repaint_state.show_counters(self.link.call(self.session.counters))
        name = getattr(lot.settings, "name", "") or "lot"
        self._update_title()
        self.status_lot.setText(f"Lot: {name}")
        self.tabs.setCurrentIndex(0)
        self.log("info", f"Lot {name} opened: {self.row_model.rowCount()} rows.")
        self.lot_opened.emit(name)
        self.refresh()

    def _update_title(self) -> None:
        lot = self.session.lot
        name = (getattr(lot.settings, "name", "") or "lot") if lot is not None else ""
        title = f"Station – {name}" if name else "Station"
        if self.engineer:
            title = f"ENGINEER MODE – {title}"
        self.setWindowTitle(title + self._title_suffix)

    def close_lot(self) -> None:
        """Stop production on the current lot (cancels, joins the workers)."""
        self.rows_page.stop()
        self.dashboard.stop()  # its reader thread uses the ledger too
        if self.session.lot is not None:
            self.link.call(self.session.close_lot)  # queued labels are printed first
        self.ports.remove_all()
        self.failed_page.set_rows([])

    # ==== ports ====
    def _cards_room(self) -> tuple[int, int]:
        """The width and height the cards may take: the central area less the engineer band
        and the scan panel at its smallest (the scan field and two lines of feedback)."""
        margins = self.central.layout().contentsMargins()
        spacing = self.central.layout().spacing()
        width = self.central.width() - margins.left() - margins.right()
        height = self.central.height() - margins.top() - margins.bottom()
        height -= self.scan_panel.minimumSizeHint().height() + spacing
        if self.engineer_band.isVisible():
            height -= self.engineer_band.heightForWidth(width) + spacing
        return width, height

    def _session_event(self, event: object) -> None:
        """A session event on the GUI thread: new devices plugged in, a label's fate."""
        if isinstance(event, PortsPlugged):
            self.add_ports(list(event.ports))
        elif isinstance(event, LabelOutcome):
            if event.ok:
                self.log("info", event.text)
                return
            what = "reprint" if event.reprint else "label"
            self.log("error", f"{what} of {event.unit_id} failed: {event.text}")
            self.show_scan_result(False, f"✘ label {event.unit_id} not printed: {event.text}")

    # ==== scanning ====
    def _start_serial_scanner(self) -> None:
        port = self.settings.scanner_port
        if self.serial_scanner is not None:
            self.serial_scanner.stop()
            self.serial_scanner = None
        if port:
            self.serial_scanner = SerialScanner(port, parent=self)
            self.serial_scanner.scanned.connect(self.handle_scan)
            self.serial_scanner.failed.connect(lambda m: self.log("error", m))
            self.serial_scanner.start()

    def handle_scan(self, code: str) -> None:
        """A scanned code: the session assigns its row to the chosen (or next free) port, or
        reprints its label (F8); refusals are shown loudly and change nothing."""
        code = code.strip()
        if not code:
            return
        reprint, self.reprint_armed = self.reprint_armed, False
        if reprint:
            self.arm_reprint(False)
        if self.session.lot is None:
            outcome = Outcome(False, f"✘ {code}: no lot is open")
        else:
            outcome = self.link.call(self.session.scan, code, self.chosen_port, reprint=reprint)
        if self._answer(outcome) and not reprint and outcome.row_index is not None:
            self.rows_page.show_row(outcome.row_index)
            self.bridge.mark_rows_changed(outcome.row_index)
            self.choose_port(None)
        self.scan_handled.emit(code, outcome.ok, outcome.message)

    def selected_row_index(self) -> int | None:
        return self.rows_page.selected_index()

    def assign_selected(self) -> None:
        """Send the selected row (or the next pending one) to the chosen or next free port."""
        if self.session.lot is None:
            self.refuse("✘ No lot is open")
            return
        selected = self.selected_row_index()
        outcome = self.link.call(self.session.next, selected, self.chosen_port)
        if self._answer(outcome) and outcome.row_index is not None:
            self.row_view.clearSelection()  # used up: the next F6 takes the next row
            self.bridge.mark_rows_changed(outcome.row_index)
            self.choose_port(None)

    # ==== production actions ====
    def start_port(self, port: str) -> None:
        if self.session.lot is not None:
            self._answer(self.session.start(port))

    def _selected_failed(self) -> int | None:
        """The unit Retry and Release act on: the Failed list's selection, else the row
        selected in Rows, else the first failed unit."""
        index = self.failed_page.selected_index()
        if index is None and self.tabs.currentIndex() == 0:
            index = self.selected_row_index()
        return index if index is not None else self.failed_page.first_index()

    def _selected_unit(self) -> int | None:
        """The unit selected in the list on screen: the Failed list, else the row table."""
        if self.tabs.currentIndex() == self.failed_tab:
            return self.failed_page.selected_index()
        index = self.selected_row_index()
        return index if index is not None else self.failed_page.selected_index()

    def retry_selected(self) -> None:
        """Retry the selected failed unit (same row; the session picks the port)."""
        index = self._selected_failed()
        outcome = self.link.call(self.session.retry, index) if index is not None else None
        if self._answer(outcome or Outcome(False, "✘ No failed unit selected")) and outcome:
            self.bridge.mark_rows_changed(index)  # type: ignore[arg-type]

    def reprint_selected(self) -> None:
        """Reprint the selected unit's label (Rows: a done unit, or the Failed list). With no
        label output set up, show the label instead (what would be printed)."""
        index = self._selected_unit()
        lot = self.session.lot
        if index is None or lot is None:
            self.refuse("✘ No unit selected")
            return
        if self.session.label_policy.goes_to_printer():
            self._answer(self.link.call(self.session.reprint, index))
            return
        from station.gui.dialogs import LabelDialog

        rec = self.link.call(self.session.reads.row, index)
        LabelDialog(self, lot, rec, on_print=self._print_from_dialog).exec()

    def _print_from_dialog(self, rec: Any) -> tuple[bool, str]:
        output = self.settings.label_output or "printer:"
        outcome = self.link.call(self.session.reprint, rec.index, output=output)
        self._answer(outcome)
        return outcome.ok, outcome.message

    def arm_reprint(self, on: bool) -> None:
        """F8: the next scan reprints that unit's label (once) instead of assigning it."""
        if on and self.session.lot is None:
            self.refuse("✘ No lot is open")
            on = False
        self.reprint_armed = on
        self.act_reprint_scan.setChecked(on)
        self.scan_panel.set_reprint(on)
        if not on:
            self.choose_port(self.chosen_port)

    def release_selected(self) -> None:
        """Supervisor only: give a failed row back to production, with a reason (audited)."""
        index = self._selected_failed()
        if index is None or self.session.lot is None:
            self.refuse("✘ No failed unit selected")
            return
        if not self._answer(self.session.may("release a row")):
            return
        rec = self.link.call(self.session.reads.row, index)
        unit = rec.unit_id if rec is not None else index + 1
        reason = self.ask_text("Release row", f"Why release unit {unit}? (audited)")
        if not reason:
            return
        who = self.settings.operator
        outcome = self.link.call(self.session.release, index, reason, who)
        if outcome.question:
            if not self.ask_yes_no("Release row", f"{outcome.question}\n\nIs it gone?"):
                return
            outcome = self.link.call(self.session.release, index, reason, who, station_gone=True)
        if self._answer(outcome):
            self.bridge.mark_rows_changed(index, "pending")
            self._counters = None  # re-read on the next tick

    def _ask_decision(self, decision: Any) -> None:
        """The orchestrator found something it must not decide alone (e.g. foreign data)."""
        self.session.decide(decision, lambda q: self.ask_yes_no("Decision needed", q))

    def _port_finished(self, port: str, state: str) -> None:
        self.sounds.play("ok" if state == "passed" else "error")
        if state == "failed":
            self.link.later(self.session.failed, then=self.repaint_state.show_failed)

    # ==== closing ====
    def closeEvent(self, event: QCloseEvent) -> None:
        busy = self.session.busy_ports()
        if busy and not self.ask_yes_no(
            "Devices are being flashed",
            f"{len(busy)} port(s) are flashing. Stop them and close? "
            "The units will be marked as interrupted and can be retried.",
        ):
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Cancel production, stop every timer and thread the window started."""
        if self._closing:
            return
        self._closing = True
        self.closing.emit()
        self.settings.save_window_layout(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.timer.stop()
        self.scan_filter.detach()
        if self.serial_scanner is not None:
            self.serial_scanner.stop()
            self.serial_scanner = None
        self.close_lot()
        self.link.stop()
        self.session.shutdown()


class _Central(QWidget):
    """The central area; tells the window when its room changes (the cards' layout follows)."""

    def __init__(self, resized: Any) -> None:
        super().__init__()
        self._resized = resized

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._resized()
