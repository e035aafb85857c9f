"""The station window: panels over one station session (station.production.session).

The session holds the lot, the orchestrator, the device host, the label service and the rules;
the window puts its panels together (ports, scan bar, rows and failed units, lot, log), passes on
what the operator asks, and shows the answer. Ledger work runs on the session's worker thread
(:class:`~station.gui.session_link.SessionLink`); orchestrator events are folded by
:class:`~station.gui.bridge.EventBridge` and a 4 Hz timer repaints from that state.

May import: PySide6, station.gui, station.production (the session and its events).
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from station.errors import Problem, StationError
from station.gui.bridge import EventBridge
from station.gui.labels import use_qt_renderer
from station.gui.models import LogBuffer
from station.gui.panels.engineer import ENGINEER_COLOR, EngineerBand, unlock
from station.gui.panels.log import LogPanel
from station.gui.panels.lot import PartitionsPage, ProblemsPage
from station.gui.panels.ports import PortsPanel
from station.gui.panels.rows import FailedPage, RowsPage
from station.gui.panels.scanbar import ScanBar
from station.gui.resources import Sounds
from station.gui.scanner import ScanEventFilter, SerialScanner
from station.gui.session_link import SessionLink
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
        self.chosen_port: str | None = None
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
        self._counters: Any | None = None
        self._counting = False
        self._db_url: str | None = None
        self._filtered_dirty = False
        self._filtered_at = 0.0
        self.reprint_armed = False  # F8: the next scan reprints a label instead of assigning

        self._build_actions()
        self._build_central()
        self._build_docks()
        self._build_status()
        self._build_shortcuts()
        for model in (self.row_model, self.failed_model, self.log_model):
            model.slots = self.slot_names

        self.scan_filter = ScanEventFilter(self, self.scan_field, self.handle_scan)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self.scan_filter)
        self.bridge.decision.connect(self._ask_decision)
        self.bridge.port_finished.connect(self._port_finished)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
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
    def _build_actions(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("mainToolBar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(tb)

        def action(text: str, shortcut: str | None, slot: Any, tip: str) -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            a.setToolTip(f"{tip} ({a.shortcut().toString()})" if shortcut else tip)
            a.triggered.connect(slot)
            tb.addAction(a)
            self.addAction(a)
            return a

        self.act_open = action("Open lot…", "Ctrl+O", self.choose_lot, "Open a lot file")
        self.act_new = action("New lot…", "Ctrl+N", self.new_lot, "Build a lot from CSV files")
        tb.addSeparator()
        self.act_start = action("Start all", "F5", self.start_all, "Flash every ready port")
        self.act_stop = action("Stop all", "Shift+F5", self.stop_all, "Cancel every job")
        self.act_next = action(
            "Next", "F6", self.assign_selected,
            "Send the selected (or next pending) row to the next free port",
        )  # fmt: skip
        tb.addSeparator()
        self.act_retry = action("Retry", "Ctrl+R", self.retry_selected, "Retry the failed unit")
        self.act_reprint = action(
            "Reprint label", "Ctrl+P", self.reprint_selected,
            "Show / print the label of the selected unit",
        )  # fmt: skip
        self.act_reprint_scan = action(
            "Reprint by scan", "F8", lambda: self.arm_reprint(not self.reprint_armed),
            "The next scan prints that unit's label again instead of assigning it",
        )  # fmt: skip
        self.act_reprint_scan.setCheckable(True)
        self.act_release = action(
            "Release row…", "Ctrl+Shift+R", self.release_selected,
            "Supervisor: give a failed row back to production",
        )  # fmt: skip
        tb.addSeparator()
        self.act_mode = action(
            "Engineer mode", "F2", self.toggle_mode, "Unlock settings and lot changes (PIN)"
        )
        self.act_settings = action(
            "Settings…", "Ctrl+,", self.open_settings, "Ports, baud, auto-start, PIN"
        )

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
        self.scan_field.returnPressed.connect(self._scan_field_entered)
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
        self.problems_tab = self.tabs.addTab(self.problems, "Pro&blems")
        from station.gui.dashboard import DashboardPanel  # the line's figures (QtCharts)

        self.dashboard = DashboardPanel()
        self.tabs.addTab(self.dashboard, "&Dashboard")
        self.lot_dock = self._dock(
            "Lot", "lotDock", self.tabs, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.log_view = LogPanel(self.log_buffer)
        self.log_model = self.log_view.model_
        self.log_dock = self._dock(
            "Log", "logDock", self.log_view, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.resizeDocks([self.lot_dock], [560], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [110], Qt.Orientation.Vertical)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(area, dock)
        return dock

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.status_counts = QLabel("no lot")
        self.status_rate = QLabel("")
        self.status_lot = QLabel("")
        self.status_mode = QLabel("")
        for w in (self.status_counts, self.status_rate, self.status_lot, self.status_mode):
            w.setContentsMargins(8, 0, 8, 0)
            sb.addPermanentWidget(w)

    def _build_shortcuts(self) -> None:
        def sc(key: str, slot: Any) -> None:
            s = QShortcut(QKeySequence(key), self)
            s.setContext(Qt.ShortcutContext.WindowShortcut)
            s.activated.connect(slot)

        def focus_search() -> None:
            self._show_tab(0)
            self.search_field.setFocus()
            self.search_field.selectAll()

        sc("Ctrl+F", focus_search)
        sc("Ctrl+L", lambda: self.scan_field.setFocus())
        sc("Ctrl+0", lambda: self.choose_port(None))
        for i in range(1, 10):
            sc(f"Ctrl+{i}", lambda i=i: self._choose_port_number(i))
        for i in range(4):
            sc(f"Alt+{i + 1}", lambda i=i: self._show_tab(i))
        sc("Alt+5", lambda: self.log_view.setFocus())
        sc("Escape", self._escape)

    def _show_tab(self, i: int) -> None:
        self.tabs.setCurrentIndex(i)
        page = self.tabs.currentWidget()
        view = page.findChild(QAbstractItemView) if page is not None else None
        if view is not None:
            view.setFocus()

    def _escape(self) -> None:
        """Esc: back to the plain state: no selection, no chosen port, no reprint, scan field."""
        self.scan_field.clear()
        self.scan_field.setFocus()
        self.row_view.clearSelection()
        self.failed_view.clearSelection()
        if self.chosen_port is not None:
            self.choose_port(None)
        if self.reprint_armed:
            self.arm_reprint(False)

    # ==== the session's state, as the tests and the demo see it ====
    lot = property(lambda self: self.session.lot)
    orchestrator = property(lambda self: self.session.orchestrator)
    device_host = property(lambda self: self.session.device_host)
    engineer = property(lambda self: self.session.engineer)
    image_used = property(lambda self: self.partitions.used)

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

        self._db_url = db_url
        self.close_lot()
        self.session.use_device_host = self.use_device_host
        try:
            self.link.call(self.session.open, path, db_url=db_url)
        except StationError as err:
            self.show_problems(list(err.problems))
            self.log("error", f"Lot {path} has {len(err.problems)} problem(s); see Problems.")
            self.show_scan_result(False, f"Lot not opened: {first_message(err)}")
            return False
        self._show_lot()
        self.settings.last_lot = str(path)
        return True

    def show_problems(self, problems: list[Problem]) -> None:
        self.problems.set_problems(problems, show_first=True)
        self.tabs.setTabText(self.problems_tab, f"Pro&blems ({len(problems)})")
        self.tabs.setCurrentIndex(self.problems_tab)

    def show_problem(self, index: QModelIndex) -> None:
        self.problems.show_problem(index)

    def _show_lot(self) -> None:
        """The session opened a lot: show it and put the station's ports on it."""
        lot = self.session.lot
        assert lot is not None
        self._counters = None
        self.rows_page.show_lot(lot)
        self.dashboard.set_ledger(lot.ledger)
        # the label template's problems and the lot's warnings (allowed, but they look like
        # mistakes: two rows sharing a key …) are listed with the problems, never a value
        label_problems = self.session.label_problems
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
        # how full the partition is: row 1's image is built on the session's worker
        self.link.later(self.session.image_usage, then=self.partitions.show_usage)
        self.add_ports([(port, None) for port in self.settings.ports])
        if self.settings.hot_plug:
            self.session.start_hot_plug(self.HOT_PLUG_POLL)
        self._refresh_failed()
        self._set_counters(self.link.call(self.session.counters))
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
        for port in list(self.cards):
            self._remove_card(port)
        self.failed_page.set_rows([])

    # ==== ports ====
    def add_port(self, port: str, slot: str | None = None) -> None:
        """Put ``port`` on the station (a card, then the session)."""
        self.add_ports([(port, slot)])

    def add_ports(self, ports: list[tuple[str, str | None]]) -> None:
        """Put several ports on the station: every card is built and laid out first, then the
        session gets the ports (in continuous mode each starts working at once, and building
        widgets while flashing threads compete for the GIL would freeze the window)."""
        if self.session.lot is None:
            return
        added = []
        for port, slot in ports:
            if port in self.cards:
                continue
            name = slot or f"Slot {len(self.cards) + 1}"
            self.slot_names[port] = name
            self.bridge.add_port(port, name)
            self.cards_scroll.add_card(port, name, self.bridge.view(port), self)
            added.append((port, name))
        if not added:
            return
        self.session.start_device_host()
        self.cards_scroll.relayout()
        self.cards_host.repaint()  # paint the new cards now, before any port works
        for port, name in added:
            if not self.session.add_port(port, name):
                self._remove_card(port)

    def replace_port(self, old: str, new: str) -> None:
        """A slot's device now answers on another port (e.g. a new simulated device): keep the
        slot's name, place and counters."""
        card = self.cards.get(old)
        if card is None or self.session.lot is None:
            return
        view = self.bridge.view(old) or card.view
        order = list(self.cards)
        ports = self.settings.ports
        if old in ports:  # the station's port list follows (Settings shows the ports as they are)
            ports[ports.index(old)] = new
            self.settings.ports = ports
        self.session.remove_port(old)
        self._remove_card(old)
        self.bridge.add_port(new, view.slot, passed=view.passed_count, failed=view.failed_count)
        self.add_port(new, view.slot)
        order[order.index(old)] = new
        self.cards_scroll.reorder(order)

    def remove_port(self, port: str) -> None:
        if port in self.cards:
            self.session.remove_port(port)
        self._remove_card(port)

    def _remove_card(self, port: str) -> None:
        self.bridge.remove_port(port)
        self.cards_scroll.remove_card(port)
        if self.chosen_port == port:
            self.choose_port(None)

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

    def choose_port(self, port: str | None) -> None:
        """The port the next scan goes to (None: the next free one)."""
        self.chosen_port = port if port in self.cards else None
        self.cards_scroll.select(self.chosen_port)
        chosen = self.cards[self.chosen_port].view.slot if self.chosen_port else None
        self.scan_panel.set_port_choice(chosen)

    def _choose_port_number(self, n: int) -> None:
        ports = list(self.cards)
        if 0 < n <= len(ports):
            self.choose_port(ports[n - 1])

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
    def _scan_field_entered(self) -> None:
        code = self.scan_panel.take_code()
        if code:
            self.handle_scan(code)

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

    def cancel_port(self, port: str) -> None:
        """Stop: cancel the job on the port, and drop the unit waiting there."""
        self.session.cancel(port)

    def start_all(self) -> None:
        self._answer(self.session.start_all())

    def stop_all(self) -> None:
        self.session.cancel(None)

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
        if self.session.label_goes_to_printer():
            self._answer(self.link.call(self.session.reprint, index))
            return
        from station.gui.dialogs import LabelDialog

        rec = self.link.call(self.session.row, index)
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
        rec = self.link.call(self.session.row, index)
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
            self.link.later(self.session.failed, then=self._show_failed)

    # ==== modes and settings ====
    def set_engineer(self, on: bool) -> None:
        self.session.engineer = on
        for a in (self.act_open, self.act_new, self.act_settings):
            a.setEnabled(on)
        self.release_button.setEnabled(on)
        self.act_mode.setText("Operator mode" if on else "Engineer mode")
        self.status_mode.setText("ENGINEER" if on else "Operator")
        self.status_mode.setStyleSheet(f"color: {ENGINEER_COLOR}; font-weight: bold;" if on else "")
        self.engineer_band.setVisible(on)
        self._update_title()
        if self.cards:
            self.cards_scroll.relayout()  # the band takes room from the cards
        self.mode_changed.emit(on)

    def toggle_mode(self) -> None:
        if self.engineer:
            self.set_engineer(False)
            self.log("info", "operator mode")
        elif unlock(self):
            self.set_engineer(True)
            self.log("info", "engineer mode")
            self.show_hint("Engineer mode (F2: back to operator mode)")  # replaces "Wrong PIN"

    def open_settings(self) -> None:
        if not self._answer(self.session.may("change settings")):
            return
        from station.gui.dialogs import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() and dialog.changed:
            self.apply_settings()

    def apply_settings(self) -> None:
        """Settings changed: the session's, the ports, scanner and sounds follow."""
        self.sounds.enabled = self.settings.sound
        self.session.configure(self.settings.session_config())
        lot = self.session.lot
        if lot is not None and self.session.needs_restart:
            # baud, continuous mode and operator are the orchestrator's: start a new one
            if self.session.busy_ports():
                self.log("warning", "new port settings apply when the running jobs are done")
            else:
                self.open_lot(str(lot.settings.path), db_url=self._db_url)
        if self.session.lot is not None:
            wanted = self.settings.ports
            for port in list(self.cards):
                if port not in wanted and not self.session.present(port):
                    self.remove_port(port)
            self.add_ports([(port, None) for port in wanted])
        self._start_serial_scanner()

    # ==== the 4 Hz repaint =====================================================================
    def refresh(self) -> None:
        """Repaint from model state (never called per progress event); what the ledger says is
        read on the session's worker and shown when it arrives."""
        snap = self.bridge.take()
        self.cards_scroll.show_views(snap.ports, time.monotonic())
        if snap.rows and self.session.lot is not None:
            rows = dict(snap.rows)
            self.link.later(self.session.records, list(rows), then=self._rows_read)
        if self._filtered_dirty and time.monotonic() - self._filtered_at >= 1.0:
            # a filter is on: membership may have changed; recount at most once a second
            self._filtered_dirty = False
            self._filtered_at = time.monotonic()
            self.row_model.refresh()
        if snap.counters is not None:
            self._set_counters(snap.counters)
        elif self.session.lot is not None and self._counters is None and not self._counting:
            self._counting = True  # asked; the answer comes with a later tick
            self.link.later(self.session.counters, then=self._set_counters)

    def _rows_read(self, records: dict[int, Any]) -> None:
        if not records or self.session.lot is None:
            return
        if not self.row_model.update_rows(list(records), records.__getitem__):
            self._filtered_dirty = True
        failed = self.failed_page.indexes
        if any(r is not None and (r.state == "failed" or i in failed) for i, r in records.items()):
            self.link.later(self.session.failed, then=self._show_failed)

    def _set_counters(self, counters: Any) -> None:
        self._counting = False
        if counters is None:
            return
        self._counters = counters
        self.status_counts.setText(
            f"Done {counters.done}   Failed {counters.failed}   Remaining {counters.remaining}"
        )
        self.status_rate.setText(f"{counters.units_per_hour:.0f} units/h")

    def _refresh_failed(self) -> None:
        self._show_failed(self.link.call(self.session.failed))

    def _show_failed(self, failed: list[Any]) -> None:
        self.failed_page.set_rows(failed)
        self.tabs.setTabText(self.failed_tab, f"&Failed ({len(failed)})" if failed else "&Failed")

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
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.scan_filter)
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
