"""The station window: a thin view over the orchestrator and the ledger.

Everything that changes production state goes through :class:`station.production.Orchestrator`;
the window only shows what the ledger and the orchestrator's events say. Orchestrator events
arrive on worker threads and are folded by :class:`~station.gui.bridge.EventBridge`; a 4 Hz timer
repaints the cards, the counters and the rows from that state.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QFontMetrics,
    QKeySequence,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextEdit,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from station.errors import Problem, StationError
from station.gui import theme
from station.gui.bridge import EventBridge
from station.gui.labels import PRINTABLE_STATES, LabelJob, LabelOutcome, LabelPrinter, lot_template
from station.gui.models import (
    ROW_FILTERS,
    FailedModel,
    LogBuffer,
    LogModel,
    PartitionModel,
    ProblemModel,
    RowTableModel,
)
from station.gui.resources import Sounds
from station.gui.scanner import ScanEventFilter, SerialScanner
from station.gui.settings import StationSettings
from station.gui.widgets import FeedbackLabel, FlashMapWidget, PortCard
from station.gui.wording import port_label

REFRESH_MS = 250  # the 4 Hz repaint
SCAN_PLACEHOLDER = "scan a unit"
ENGINEER_COLOR = "#b45309"


def _problems_of(err: StationError) -> list[Problem]:
    return list(err.problems)


def _first_message(err: StationError) -> str:
    p = err.problems[0]
    return p.message if len(err.problems) == 1 else f"{p.message} (+{len(err.problems) - 1} more)"


class MainWindow(QMainWindow):
    """The station window. ``settings`` are this station's; ``title_suffix`` marks a demo."""

    HOT_PLUG_POLL = 1.0  # seconds between looks at the serial port list

    lot_opened = Signal(str)  # lot name
    scan_handled = Signal(str, bool, str)  # code, accepted, message shown to the operator
    mode_changed = Signal(bool)  # engineer mode on?
    image_size_done = Signal(object, int, str)  # lot, bytes used, problem (from a worker)
    closing = Signal()  # shutdown() begins: helpers stop before production does

    # False: esptool on threads of this process (bench_gui_stall.py's "inproc", for comparison)
    use_device_host = True

    def __init__(self, settings: StationSettings, *, title_suffix: str = "") -> None:
        super().__init__()
        self.settings = settings
        self._title_suffix = title_suffix
        self.setWindowTitle("Station" + title_suffix)
        self.setObjectName("stationWindow")
        self.lot: Any | None = None
        self.orchestrator: Any | None = None
        # esptool runs in a child process, not on threads of this one: flashing threads here
        # would compete with the GUI thread for the GIL on every cell Qt paints (see
        # station.flashing.host). Started with the first port, stopped in shutdown().
        self.device_host: Any | None = None
        self.engineer = False
        self.chosen_port: str | None = None
        self.cards: dict[str, PortCard] = {}
        # port -> slot name, for every port this window has shown (kept after a port goes, so
        # older log lines and rows still name their slot)
        self.slot_names: dict[str, str] = {}
        self.sounds = Sounds(settings.sound, self)
        self.log_buffer = LogBuffer(parent=self)
        self.bridge = EventBridge(self.log_buffer, self)
        self.serial_scanner: SerialScanner | None = None
        self.port_watcher: Any | None = None
        self._closing = False
        self._counters: Any | None = None
        self._regions: tuple[list[Any], int | None] = ([], None)
        self._db_url: str | None = None
        self._failed_indexes: set[int] = set()
        self._filtered_dirty = False
        self._filtered_at = 0.0
        self._running_config: tuple[int, bool, str] | None = None
        self.image_used: int | None = None
        self._workers: list[threading.Thread] = []
        self.image_size_done.connect(self._image_size_ready)
        self.labels = LabelPrinter(self)
        self.labels.done.connect(self._label_done)
        self.label_problems: list[Problem] = []
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

        self.bridge.rows_changed.connect(self._rows_changed)
        self.bridge.decision.connect(self._ask_decision)
        self.bridge.port_finished.connect(self._port_finished)
        self.bridge.unit_passed.connect(self._unit_passed)
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

        def action(
            text: str, shortcut: str | QKeySequence.StandardKey | None, slot: Any, tip: str
        ) -> QAction:
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
            "Next",
            "F6",
            self.assign_selected,
            "Send the selected (or next pending) row to the next free port",
        )
        tb.addSeparator()
        self.act_retry = action("Retry", "Ctrl+R", self.retry_selected, "Retry the failed unit")
        self.act_reprint = action(
            "Reprint label",
            "Ctrl+P",
            self.reprint_selected,
            "Show / print the label of the selected unit",
        )
        self.act_reprint_scan = action(
            "Reprint by scan",
            "F8",
            self.toggle_reprint_scan,
            "The next scan prints that unit's label again instead of assigning it",
        )
        self.act_reprint_scan.setCheckable(True)
        self.act_release = action(
            "Release row…",
            "Ctrl+Shift+R",
            self.release_selected,
            "Supervisor: give a failed row back to production",
        )
        tb.addSeparator()
        self.act_mode = action(
            "Engineer mode", "F2", self.toggle_mode, "Unlock settings and lot changes (PIN)"
        )
        self.act_settings = action(
            "Settings…", "Ctrl+,", self.open_settings, "Ports, baud, auto-start, PIN"
        )

    def _build_central(self) -> None:
        central = _Central(self._cards_resized)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)

        # engineer mode must be unmistakable: settings, lots and releases are open in it
        self.engineer_band = QLabel(
            "ENGINEER MODE — settings, lots and releases are unlocked.  F2: back to operator mode"
        )
        self.engineer_band.setObjectName("engineerBand")
        self.engineer_band.setWordWrap(True)
        self.engineer_band.setStyleSheet(
            f"background-color: {ENGINEER_COLOR}; color: white; font-weight: bold; "
            "padding: 4px 8px; border-radius: 4px;"
        )
        self.engineer_band.setVisible(False)
        layout.addWidget(self.engineer_band)

        self.cards_host = QWidget()
        self.cards_grid = QGridLayout(self.cards_host)
        self.cards_grid.setContentsMargins(0, 0, 0, 0)
        self.cards_grid.setSpacing(8)
        self.no_ports = QLabel(
            "No ports yet. Plug in a device, or add ports in Settings (engineer mode)."
        )
        self.no_ports.setWordWrap(True)
        self.no_ports.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.cards_grid.addWidget(self.no_ports, 0, 0)
        scroll = _CardsScroll(self._cards_resized)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.cards_host)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.cards_scroll = scroll
        layout.addWidget(scroll, 0)

        # the scan field and its feedback: under the cards, with the room the cards leave
        scan_panel = QWidget()
        self.scan_panel = scan_panel
        panel = QVBoxLayout(scan_panel)
        panel.setContentsMargins(0, 4, 0, 0)
        scan_row = QHBoxLayout()
        label = QLabel("&Scan:")
        big = label.font()
        big.setPointSizeF(max(big.pointSizeF(), 9.0) * 1.4)
        big.setBold(True)
        label.setFont(big)
        self.scan_field = QLineEdit()
        self.scan_field.setObjectName("scanField")
        self.scan_field.setFont(big)
        self.scan_field.setPlaceholderText(SCAN_PLACEHOLDER)
        self.scan_field.setToolTip("A scan works wherever the focus is (Ctrl+L: this field)")
        self.scan_field.setClearButtonEnabled(True)
        self.scan_field.returnPressed.connect(self._scan_field_entered)
        self.scan_field.setMinimumWidth(
            QFontMetrics(big).horizontalAdvance(SCAN_PLACEHOLDER + "WW") + 24
        )
        label.setBuddy(self.scan_field)
        self.port_choice = QLabel("→ next free port")
        self.port_choice.setFont(big)
        self.port_choice.setToolTip("Ctrl+1…9 pick the port for the next scan, Ctrl+0 any port")
        scan_row.addWidget(label)
        scan_row.addWidget(self.scan_field, 1)
        scan_row.addWidget(self.port_choice)
        panel.addLayout(scan_row)
        self.scan_result = FeedbackLabel("")
        self.scan_result.setObjectName("scanResult")
        feedback = label.font()
        feedback.setPointSizeF(max(feedback.pointSizeF(), 9.0) * 1.6)
        feedback.setBold(True)
        self.scan_result.setFont(feedback)  # read from a metre away, like the cards' state
        self.scan_result.setWordWrap(True)  # a long refusal wraps: no word is cut off
        self.scan_result.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        lines = QFontMetrics(feedback).lineSpacing()
        self.scan_result.setMinimumHeight(lines * 2 + 12)
        self.scan_result.setMaximumHeight(lines * 3 + 12)  # no wall of colour: three lines
        self.scan_result.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        panel.addWidget(self.scan_result, 1)
        panel.addStretch(0)
        layout.addWidget(scan_panel)  # no stretch factor: the scan result is Expanding
        self.setCentralWidget(central)
        self.central = central

    def _build_docks(self) -> None:
        # --- lot: rows / failed / partitions / problems ----------------------------------------
        self.tabs = QTabWidget()
        self.tabs.setObjectName("lotTabs")

        rows_page = QWidget()
        rl = QVBoxLayout(rows_page)
        rl.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.filter_box = QComboBox()
        self.filter_box.addItems(list(ROW_FILTERS))
        self.filter_box.setToolTip("Show pending, done, failed or all rows")
        self.filter_box.currentTextChanged.connect(self._filter_changed)
        self.search_field = QLineEdit()
        self.search_field.setPlaceholderText("search unit, scan code, MAC (Ctrl+F)")
        self.search_field.setClearButtonEnabled(True)
        self.search_field.returnPressed.connect(self._filter_changed)
        self.search_field.textChanged.connect(self._search_typed)
        self.next_button = QPushButton("Next → port (F6)")
        self.next_button.clicked.connect(self.assign_selected)
        bar.addWidget(self.filter_box)
        bar.addWidget(self.search_field, 1)
        bar.addWidget(self.next_button)
        rl.addLayout(bar)
        self.row_model = RowTableModel(parent=self, background=True)
        self.row_view = QTableView()
        self.row_view.setObjectName("rowTable")
        self.row_view.setModel(self.row_model)
        self.row_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.row_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.row_view.verticalHeader().setVisible(False)
        self.row_view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.row_view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.row_view.horizontalHeader().setStretchLastSection(True)
        self.row_view.setWordWrap(False)
        self.row_view.doubleClicked.connect(lambda _i: self.assign_selected())
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(300)
        self._search_timer.timeout.connect(self._filter_changed)
        rl.addWidget(self.row_view, 1)
        self.tabs.addTab(rows_page, "&Rows")

        failed_page = QWidget()
        fl = QVBoxLayout(failed_page)
        fl.setContentsMargins(4, 4, 4, 4)
        self.failed_model = FailedModel(self)
        self.failed_view = QTableView()
        self.failed_view.setObjectName("failedTable")
        self.failed_view.setModel(self.failed_model)
        self.failed_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.failed_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.failed_view.verticalHeader().setVisible(False)
        self.failed_view.horizontalHeader().setStretchLastSection(True)
        self.failed_view.setWordWrap(True)  # the reason is what the operator reads here
        self.failed_model.modelReset.connect(self._size_failed_columns)
        fl.addWidget(self.failed_view, 1)
        fb = QHBoxLayout()
        self.retry_button = QPushButton("Retry (Ctrl+R)")
        self.retry_button.clicked.connect(self.retry_selected)
        self.reprint_button = QPushButton("Reprint label (Ctrl+P)")
        self.reprint_button.clicked.connect(self.reprint_selected)
        self.release_button = QPushButton("Release row… (supervisor)")
        self.release_button.clicked.connect(self.release_selected)
        for b in (self.retry_button, self.reprint_button, self.release_button):
            fb.addWidget(b)
        fb.addStretch(1)
        fl.addLayout(fb)
        self.failed_tab = self.tabs.addTab(failed_page, "&Failed")

        part_page = QWidget()
        pl = QVBoxLayout(part_page)
        pl.setContentsMargins(4, 4, 4, 4)
        self.flash_map = FlashMapWidget()
        self.flash_map_note = QLabel("")
        self.flash_map_note.setWordWrap(True)
        self.partition_model = PartitionModel(self)
        self.partition_view = QTableView()
        self.partition_view.setModel(self.partition_model)
        self.partition_view.verticalHeader().setVisible(False)
        self.partition_view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.partition_view.horizontalHeader().setStretchLastSection(True)
        self.partition_warnings = QLabel("")
        self.partition_warnings.setWordWrap(True)
        self.partition_warnings.setStyleSheet(f"color: {theme.LOG_LEVEL['warning']};")
        pl.addWidget(self.flash_map)
        pl.addWidget(self.flash_map_note)
        pl.addWidget(self.partition_view, 1)
        pl.addWidget(self.partition_warnings)
        self.tabs.addTab(part_page, "P&artitions")

        prob_page = QWidget()
        ql = QVBoxLayout(prob_page)
        ql.setContentsMargins(4, 4, 4, 4)
        self.problem_model = ProblemModel(self)
        self.problem_view = QListView()
        self.problem_view.setObjectName("problemList")
        self.problem_view.setModel(self.problem_model)
        self.problem_view.setWordWrap(True)
        self.problem_view.activated.connect(self.show_problem)
        self.problem_view.clicked.connect(self.show_problem)
        self.problem_source = QPlainTextEdit()
        self.problem_source.setReadOnly(True)
        self.problem_source.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.problem_source.setPlaceholderText("Click a problem to see the line it is about.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.problem_view)
        split.addWidget(self.problem_source)
        ql.addWidget(split)
        self.problems_tab = self.tabs.addTab(prob_page, "Pro&blems")

        from station.gui.dashboard import DashboardPanel  # the line's figures (QtCharts)

        self.dashboard = DashboardPanel()
        self.tabs.addTab(self.dashboard, "&Dashboard")

        self.lot_dock = QDockWidget("Lot", self)
        self.lot_dock.setObjectName("lotDock")
        self.lot_dock.setWidget(self.tabs)
        self.lot_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.lot_dock)

        # --- log -----------------------------------------------------------------------------
        self.log_model = LogModel(self.log_buffer, parent=self)
        self.log_view = QTableView()
        self.log_view.setObjectName("logView")
        self.log_view.setModel(self.log_model)
        self.log_view.verticalHeader().setVisible(False)
        self.log_view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        self.log_view.horizontalHeader().setStretchLastSection(True)
        self.log_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.log_view.setWordWrap(False)
        self.log_model.rowsInserted.connect(lambda *_: self.log_view.scrollToBottom())
        self.log_dock = QDockWidget("Log", self)
        self.log_dock.setObjectName("logDock")
        self.log_dock.setWidget(self.log_view)
        self.log_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.log_dock)
        self.resizeDocks([self.lot_dock], [560], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [110], Qt.Orientation.Vertical)

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

        sc("Ctrl+F", self._focus_search)
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

    def _focus_search(self) -> None:
        self._show_tab(0)
        self.search_field.setFocus()
        self.search_field.selectAll()

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

    # ==== logging and messages ====
    def log(self, level: str, text: str, port: str = "") -> None:
        self.log_buffer.append(port, level, text)

    def show_scan_result(self, ok: bool, text: str) -> None:
        color = theme.SCAN_OK if ok else theme.SCAN_BAD
        self.scan_result.setText(text)
        self.scan_result.setToolTip(text)
        self.scan_result.setStyleSheet(
            f"background-color: {color}; color: white; border-radius: 4px; padding: 2px 8px;"
        )
        self.sounds.play("ok" if ok else "error")

    def refuse(self, text: str, port: str = "") -> None:
        """Refuse what the operator asked for: the red banner, the error sound, and the Log
        (a banner is replaced by the next one; the Log keeps every refusal)."""
        self.log("warning", text.removeprefix("✘ "), port)
        self.show_scan_result(False, text)

    def show_hint(self, text: str) -> None:
        """A neutral message where scan results appear (e.g. the demo's first steps)."""
        self.scan_result.setText(text)
        self.scan_result.setToolTip(text)
        self.scan_result.setStyleSheet(
            "background-color: #dbeafe; color: #0b2a4d; border-radius: 4px; padding: 2px 8px;"
        )

    # Dialog hooks: tests replace these (a modal dialog would block a test).
    def ask_yes_no(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def ask_text(self, title: str, prompt: str) -> str | None:
        text, ok = QInputDialog.getText(self, title, prompt)
        return text.strip() if ok and text.strip() else None

    def ask_pin(self, prompt: str) -> str | None:
        text, ok = QInputDialog.getText(self, "Engineer PIN", prompt, QLineEdit.EchoMode.Password)
        return text if ok and text else None

    def tell(self, title: str, text: str) -> None:
        QMessageBox.information(self, title, text)

    # ==== lot ====
    def choose_lot(self) -> None:
        if not self._engineer_only("open another lot"):
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Open lot", self.settings.last_lot, "Lot files (*.toml);;All files (*)"
        )
        if path:
            self.open_lot(path)

    def new_lot(self) -> None:
        if not self._engineer_only("build a new lot"):
            return
        from station.gui.dialogs import NewLotDialog

        dialog = NewLotDialog(self)
        if dialog.exec() and dialog.saved_path is not None:
            self.open_lot(str(dialog.saved_path))

    def open_lot(self, path: str, *, db_url: str | None = None) -> bool:
        """Open and validate a lot. On problems, list them (clickable) and keep the current lot."""
        from station.production import open_lot

        if self.orchestrator is not None and self._busy_ports():
            self.refuse("✘ Finish or stop the running jobs first")
            return False
        self._db_url = db_url
        try:
            lot = open_lot(path, db_url=db_url) if db_url else open_lot(path)
        except StationError as err:
            self.show_problems(_problems_of(err))
            self.log("error", f"Lot {path} has {len(err.problems)} problem(s); see Problems.")
            self.show_scan_result(False, f"Lot not opened: {_first_message(err)}")
            return False
        from station.gui import efuse_panel

        if not efuse_panel.allow(self, lot):  # a lot that burns eFuses: engineer-enabled
            lot.close()
            return False
        self.set_lot(lot)
        self.settings.last_lot = str(path)
        return True

    def show_problems(self, problems: list[Problem]) -> None:
        self.problem_model.set_problems(problems)
        self.tabs.setTabText(self.problems_tab, f"Pro&blems ({len(problems)})")
        self.tabs.setCurrentIndex(self.problems_tab)
        self.problem_source.clear()
        if problems:
            self.problem_view.setCurrentIndex(self.problem_model.index(0, 0))
            self.show_problem(self.problem_model.index(0, 0))

    def show_problem(self, index: QModelIndex) -> None:
        """Show the file a problem is about, with its line highlighted."""
        if not index.isValid():
            return
        problem: Problem = self.problem_model.problem(index.row())
        path = Path(problem.file)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            self.problem_source.setPlainText(f"{problem}\n\n(the file {path} cannot be read)")
            return
        self.problem_source.setPlainText(text)
        if problem.line > 0:
            block = self.problem_source.document().findBlockByLineNumber(problem.line - 1)
            cursor = QTextCursor(block)
            if problem.column > 0:
                cursor.movePosition(
                    QTextCursor.MoveOperation.Right,
                    QTextCursor.MoveMode.MoveAnchor,
                    min(problem.column - 1, max(block.length() - 1, 0)),
                )
            self.problem_source.setTextCursor(cursor)
            selection = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setBackground(QColor("#fee2e2"))
            fmt.setProperty(QTextCharFormat.Property.FullWidthSelection, True)
            selection.format = fmt  # type: ignore[attr-defined]
            selection.cursor = QTextCursor(block)  # type: ignore[attr-defined]
            self.problem_source.setExtraSelections([selection])
            self.problem_source.centerCursor()

    def set_lot(self, lot: Any) -> None:
        """Show ``lot`` and start an orchestrator for it (replaces the current one)."""
        # Load the flashing engine (esptool) and the NVS encoder now, on the GUI thread, before
        # any port starts: eight workers importing them at once hold the GIL for long stretches
        # of C code (unmarshalling modules), which froze the window for ~300 ms at the start.
        import station.flashing
        import station.nvs  # noqa: F401
        from station.flashing.host import DeviceHost
        from station.gui import efuse_panel
        from station.production import Orchestrator

        self.close_lot()
        self._counters = None
        self.lot = lot
        self._running_config = self._orchestrator_config()
        if self.device_host is None and self.use_device_host:
            self.device_host = DeviceHost()
        self.orchestrator = Orchestrator(
            lot,
            on_event=self.bridge.on_event,
            baud=self.settings.baud,
            operator=self.settings.operator,
            auto_start=self.settings.continuous,
            opener=efuse_panel.opener(lot, self.device_host),
        )
        mfg = lot.mfg
        self.row_model.set_source(
            lot.ledger,
            value_columns=mfg.columns,
            values=lambda i: mfg.rows[i].values,
            secret_columns=frozenset(lot.secret_columns),
        )
        self.row_model.record(0, wait=True)  # the first page now, so columns fit its contents
        self.dashboard.set_ledger(lot.ledger)
        header = self.row_view.horizontalHeader()
        header.resizeSections(QHeaderView.ResizeMode.ResizeToContents)
        fm = self.row_view.fontMetrics()
        header.resizeSection(4, fm.horizontalAdvance("24:0a:c4:00:00:00") + 12)  # MAC
        header.resizeSection(5, fm.horizontalAdvance("COM10") + 12)  # port (tooltip: full)
        self._check_label_template(lot)
        self._show_partitions(lot)
        efuse_panel.show(self, lot)  # the lot's eFuse recipe, if it has one
        self.add_ports([(port, None) for port in self.settings.ports])
        self._start_port_watcher()
        self._refresh_failed()
        name = getattr(lot.settings, "name", "") or "lot"
        self._update_title()
        self.status_lot.setText(f"Lot: {name}")
        self.tabs.setCurrentIndex(0)
        self.log("info", f"Lot {name} opened: {self.row_model.rowCount()} rows.")
        self.lot_opened.emit(name)
        self.refresh()

    def _update_title(self) -> None:
        name = (getattr(self.lot.settings, "name", "") or "lot") if self.lot is not None else ""
        title = f"Station – {name}" if name else "Station"
        if self.engineer:
            title = f"ENGINEER MODE – {title}"
        self.setWindowTitle(title + self._title_suffix)

    def _check_label_template(self, lot: Any) -> None:
        """Check the lot's label template against its columns; problems go to the Problems tab
        (the lot still opens: units are flashed, but no label is printed from a broken
        template)."""
        try:
            template, problems = lot_template(lot)
        except ImportError:  # an installation without the label renderer
            template, problems = None, []
        self.labels.set_template(lot, template)
        self.label_problems = problems
        # the lot's warnings (allowed, but they look like mistakes: two rows sharing a key, a
        # NUL in a string …) are listed with the problems; they never show a value
        warnings = list(getattr(lot.mfg, "warnings", ()))
        self.problem_model.set_problems([*problems, *warnings])
        self.problem_source.clear()
        listed = len(problems) + len(warnings)
        self.tabs.setTabText(self.problems_tab, f"Pro&blems ({listed})" if listed else "Pro&blems")
        if problems:
            self.log(
                "warning",
                f"the lot's label template has {len(problems)} problem(s) (see Problems); "
                "no labels will be printed",
            )
        if warnings:
            self.log("warning", f"the lot has {len(warnings)} warning(s): see Problems")

    def _orchestrator_config(self) -> tuple[int, bool, str]:
        return (self.settings.baud, self.settings.continuous, self.settings.operator)

    def _show_partitions(self, lot: Any) -> None:
        from station.partitions import flash_map, validate

        table = lot.table
        factory = lot.factory
        self.partition_model.set_table(table.partitions, factory.name)
        flash_size = getattr(lot, "flash_size", None)
        try:
            regions = flash_map(table, flash_size, factory.name, chip=lot.settings.chip)
        except StationError as err:
            regions = []
            self.partition_warnings.setText("\n".join(str(p) for p in err.problems))
        self._regions = (regions, flash_size)
        self.flash_map.set_map(regions, flash_size)
        self.flash_map_note.setText(
            f"Factory data: partition “{factory.name}” at 0x{factory.offset:x}, "
            f"0x{factory.size:x} bytes ({factory.size // 4096} pages)."
        )
        warnings = [str(p) for p in validate(table, flash_size)]
        self.partition_warnings.setText("\n".join(warnings))
        self.partition_view.resizeColumnsToContents()
        # how full the partition is: row 1's image is built on a worker thread, never here
        self._join_workers()
        worker = threading.Thread(
            target=_image_size_job, args=(lot, self.image_size_done.emit), name="image size"
        )
        self._workers.append(worker)
        worker.start()

    def _join_workers(self) -> None:
        for worker in self._workers:
            worker.join(10.0)
        self._workers = [w for w in self._workers if w.is_alive()]

    def _image_size_ready(self, lot: Any, used: int, error: str) -> None:
        current: Any = self.lot
        if lot is not current or current is None or self._closing:
            return
        factory = current.factory
        if error:
            self.flash_map_note.setText(f"{self.flash_map_note.text()} Row 1: {error}")
            return
        regions, flash_size = self._regions
        self.flash_map.set_map(regions, flash_size, used)
        self.image_used = used
        self.flash_map_note.setText(
            f"Factory data: partition “{factory.name}” at 0x{factory.offset:x}, "
            f"0x{factory.size:x} bytes. Row 1's NVS image fills {used} bytes of it "
            f"({100 * used / factory.size:.0f} %)."
        )

    def close_lot(self) -> None:
        """Stop production on the current lot (cancels, joins the workers)."""
        if self.orchestrator is not None:
            self.orchestrator.close()
            self.orchestrator = None
        self.row_model.stop()  # its reader thread uses the ledger: stop it before closing
        self.dashboard.stop()  # so does the dashboard's
        self.row_model.set_source(None)
        self._join_workers()
        self.labels.stop()  # queued labels are printed (and audited) before the ledger closes
        self.labels.set_template(None, None)
        if self.lot is not None:
            self.lot.close()
        self._stop_port_watcher()
        for port in list(self.cards):
            self._remove_card(port)
        self.lot = None
        self.failed_model.set_rows([])

    # ==== ports ====
    def add_port(self, port: str, slot: str | None = None) -> None:
        """Put ``port`` on the station (a card, then the orchestrator)."""
        self.add_ports([(port, slot)])

    def add_ports(self, ports: list[tuple[str, str | None]]) -> None:
        """Put several ports on the station: every card is built and laid out first, then the
        orchestrator gets the ports (in continuous mode each starts working at once, and
        building widgets while flashing threads compete for the GIL would freeze the window)."""
        if self.orchestrator is None:
            return
        added = []
        for port, slot in ports:
            if port in self.cards:
                continue
            name = slot or f"Slot {len(self.cards) + 1}"
            self.slot_names[port] = name
            self.bridge.add_port(port, name)
            card = PortCard(port, name)
            view = self.bridge.view(port)
            if view is not None:
                card.set_view(view)
            card.start_requested.connect(self.start_port)
            card.cancel_requested.connect(self.cancel_port)
            card.chosen.connect(self.choose_port)
            self.cards[port] = card
            added.append((port, name))
        if not added:
            return
        if self.device_host is not None:
            try:
                self.device_host.start()  # ready by the time the first device answers
            except Exception as err:  # the ports say why when they try to connect
                self.log("error", f"cannot start the device host: {err}")
        self._layout_cards()
        self.cards_host.repaint()  # paint the new cards now, before any port works
        for port, name in added:
            try:
                self.orchestrator.add_port(port, name)
            except StationError as err:
                self.log("error", _first_message(err), port)
                self._remove_card(port)

    def replace_port(self, old: str, new: str) -> None:
        """A slot's device now answers on another port (e.g. a new simulated device): keep the
        slot's name, place and counters."""
        card = self.cards.get(old)
        if card is None or self.orchestrator is None:
            return
        view = self.bridge.view(old) or card.view
        order = list(self.cards)
        ports = self.settings.ports
        if old in ports:  # the station's port list follows (Settings shows the ports as they are)
            ports[ports.index(old)] = new
            self.settings.ports = ports
        self.orchestrator.remove_port(old)
        self._remove_card(old)
        self.bridge.add_port(new, view.slot, passed=view.passed_count, failed=view.failed_count)
        self.add_port(new, view.slot)
        order[order.index(old)] = new
        self.cards = {p: self.cards[p] for p in order if p in self.cards}
        self._layout_cards()

    def remove_port(self, port: str) -> None:
        if self.orchestrator is not None and port in self.cards:
            self.orchestrator.remove_port(port)
        self._remove_card(port)

    def _remove_card(self, port: str) -> None:
        card = self.cards.pop(port, None)
        self.bridge.remove_port(port)
        if card is not None:
            self.cards_grid.removeWidget(card)
            card.deleteLater()
        if self.chosen_port == port:
            self.choose_port(None)
        self._layout_cards()

    def _card_layout(self) -> tuple[int, bool]:
        """Columns, and whether the cards are compact: full cards when they all fit in view,
        else compact ones (an operator must see every slot without scrolling: eight ports on a
        1366x768 line PC)."""
        if not self.cards:
            return 1, False
        n = len(self.cards)
        card = next(iter(self.cards.values()))
        room_width, room_height = self._cards_room()
        spacing = self.cards_grid.spacing()

        def columns(compact: bool) -> int:
            width = card.width_for(compact=compact) + spacing
            return max(1, min(n, (room_width + spacing) // width))

        def fits(cols: int, height: int) -> bool:
            return -(-n // cols) * (height + spacing) <= room_height + spacing

        cols = columns(False)
        if n == 1 or fits(cols, card.full_height):
            return cols, False
        widest = columns(True)
        # the fewest columns that fit: the widest cards, the state word at its largest
        return next((c for c in range(1, widest + 1) if fits(c, card.compact_height)), widest), True

    def _cards_room(self) -> tuple[int, int]:
        """The width and height the cards may take: the central area less the engineer band
        and the scan panel at its smallest (the scan field and two lines of feedback)."""
        central = self.central
        margins = central.layout().contentsMargins()
        spacing = central.layout().spacing()
        width = central.width() - margins.left() - margins.right()
        height = central.height() - margins.top() - margins.bottom()
        height -= self.scan_panel.minimumSizeHint().height() + spacing
        if self.engineer_band.isVisible():
            height -= self.engineer_band.heightForWidth(width) + spacing
        return width, height

    def _layout_cards(self) -> None:
        for card in self.cards.values():
            self.cards_grid.removeWidget(card)
        self.cards_grid.removeWidget(self.no_ports)
        self.no_ports.setVisible(not self.cards)
        if not self.cards:
            self.cards_grid.addWidget(self.no_ports, 0, 0)
            self.cards_scroll.updateGeometry()
            return
        cols, compact = self._card_layout()
        for i, card in enumerate(self.cards.values()):
            card.set_compact(compact)
            self.cards_grid.addWidget(card, i // cols, i % cols)
        for c in range(self.cards_grid.columnCount()):
            self.cards_grid.setColumnStretch(c, 1 if c < cols else 0)
        self.cards_grid.setRowStretch(self.cards_grid.rowCount(), 1)
        self._card_mode = (cols, compact)
        self.cards_scroll.updateGeometry()  # its size hint is the cards' height

    def _cards_resized(self) -> None:
        """The cards' room changed (window, dock or log resized): relayout if the mode does."""
        if self.cards and self._card_layout() != getattr(self, "_card_mode", None):
            self._layout_cards()

    def choose_port(self, port: str | None) -> None:
        """The port the next scan goes to (None: the next free one)."""
        self.chosen_port = port if port in self.cards else None
        for p, card in self.cards.items():
            card.set_selected(p == self.chosen_port)
        if self.chosen_port is None:
            self.port_choice.setText("→ next free port")
        else:
            self.port_choice.setText(f"→ {self.cards[self.chosen_port].view.slot}")

    def _choose_port_number(self, n: int) -> None:
        ports = list(self.cards)
        if 0 < n <= len(ports):
            self.choose_port(ports[n - 1])

    def _ready_port(self) -> str | None:
        """The first port showing READY with no unit waiting (a fresh device, or never used);
        None lets the orchestrator pick any free port. A port still showing PASS or FAIL most
        likely holds the finished device, so a scan does not go there while a READY one exists."""
        for port in self.cards:
            v = self.bridge.view(port)  # up to date: assign() reported to the bridge already
            if v is not None and v.state == "idle" and v.row_index is None:
                return port
        return None

    def _busy_ports(self) -> list[str]:
        """Ports with a job running right now (asks the orchestrator, not the painted cards)."""
        orch = self.orchestrator
        if orch is None:
            return []
        busy = []
        for port in self.cards:
            try:
                if orch.busy(port):
                    busy.append(port)
            except StationError:
                continue
        return busy

    def _start_port_watcher(self) -> None:
        if not self.settings.hot_plug or self.port_watcher is not None:
            return
        try:
            from station.flashing import PortWatcher
        except ImportError:
            return
        self.port_watcher = _HotPlug(self, PortWatcher)

    def _stop_port_watcher(self) -> None:
        if self.port_watcher is not None:
            self.port_watcher.stop()
            self.port_watcher = None

    # ==== scanning ====
    def _scan_field_entered(self) -> None:
        code = self.scan_field.text().strip()
        self.scan_field.clear()
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
        """A scanned code: select its row and assign it to the chosen (or next free) port.

        Unknown codes, codes already done and codes assigned elsewhere are refused loudly and
        change nothing (the orchestrator refuses them; the window only reports)."""
        code = code.strip()
        if not code:
            return
        if self.orchestrator is None:
            msg = f"✘ {code}: no lot is open"
            self.refuse(msg)
            self.scan_handled.emit(code, False, msg)
            return
        known = self.lot.ledger.find_scan(code) if self.lot is not None else None
        if self.reprint_armed:
            self.arm_reprint(False)
            ok, msg = self.request_label(known, reprint=True, what=code)
            self.scan_handled.emit(code, ok, msg)
            return
        if known is not None and known.state == "done":
            # a finished unit scanned again: never re-flash it from a scan (Release is for that)
            msg = f"✘ {code}: already done, put it aside"
            self.refuse(msg)
            self.scan_handled.emit(code, False, msg)
            return
        try:
            port, row_index = self.orchestrator.assign_scan(
                code, self.chosen_port or self._ready_port()
            )
        except StationError as err:
            msg = f"✘ {code}: {_first_message(err)}"
            self.refuse(msg)
            self.scan_handled.emit(code, False, msg)
            return
        msg = f"✔ {code} → {self._slot(port)}"
        self.log("info", f"scan {code}: row {row_index + 1} assigned", port)
        self.show_scan_result(True, msg)
        self._show_row(row_index)
        self._after_assign(port)
        self.bridge.mark_rows_changed(row_index)
        self.choose_port(None)
        self.scan_handled.emit(code, True, msg)

    def _after_assign(self, port: str) -> None:
        """With auto-start, a device already waiting on ``port`` starts at once."""
        orch = self.orchestrator
        if orch is None or not self.settings.auto_start:
            return
        if getattr(orch, "auto_start", False):
            return  # the orchestrator starts assigned rows itself
        try:
            orch.start(port)
        except StationError as err:
            self.log("warning", _first_message(err), port)

    def _slot(self, port: str) -> str:
        return port_label(port, self.slot_names)

    def _show_row(self, row_index: int) -> None:
        """Bring a scanned unit's row into view without selecting it: a selection is the
        operator's own choice of what F6 sends next, and a scan must not make it."""
        model = self.row_model
        if model.state_filter is None and not model.search:
            row: int | None = row_index
        else:
            row = model.row_of(row_index)
        self.row_view.clearSelection()
        if row is not None and 0 <= row < model.rowCount():
            index = model.index(row, 0)
            self.row_view.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.NoUpdate
            )
            self.row_view.scrollTo(index)

    def selected_row_index(self) -> int | None:
        rows = self.row_view.selectionModel().selectedRows()
        if not rows:
            return None
        rec = self.row_model.record(rows[0].row(), wait=True)
        return None if rec is None else rec.index

    def assign_selected(self) -> None:
        """Send the selected row (or the next pending one) to the chosen or next free port."""
        if self.orchestrator is None:
            self.refuse("✘ No lot is open")
            return
        row_index = self._chosen_pending_row()
        if row_index is None:
            row_index = self._next_unassigned_row()
            if row_index is None:
                self.refuse("✘ No pending rows left")
                return
        try:
            port = self.orchestrator.assign(self.chosen_port or self._ready_port(), row_index)
        except StationError as err:
            self.refuse(f"✘ row {row_index + 1}: {_first_message(err)}")
            return
        self.row_view.clearSelection()  # the choice is used up: the next F6 takes the next row
        rec = self.lot.ledger.row(row_index) if self.lot is not None else None
        unit = (rec.unit_id if rec is not None else "") or f"row {row_index + 1}"
        self.show_scan_result(True, f"✔ {unit} → {self._slot(port)}")
        self._after_assign(port)
        self.bridge.mark_rows_changed(row_index)
        self.choose_port(None)

    def _chosen_pending_row(self) -> int | None:
        """The row the operator selected, if it is one F6 can send (pending, not waiting on a
        port); any other selection (a done unit, a row already assigned) leaves F6 to the next
        pending row."""
        row_index = self.selected_row_index()
        if row_index is None or self.lot is None:
            return None
        rec = self.lot.ledger.row(row_index)
        if rec is None or rec.state != "pending":
            return None
        orch = self.orchestrator
        if orch is not None and row_index in orch.assigned_rows().values():
            return None
        return row_index

    def _next_unassigned_row(self) -> int | None:
        """The first pending row no port is waiting for."""
        if self.lot is None:
            return None
        # the orchestrator's assignments, not the cards: those are repainted at 4 Hz, and a
        # second Next (F6) right after the first must not pick the same row again
        taken: set[int | None] = {c.view.row_index for c in self.cards.values()}
        if self.orchestrator is not None:
            taken |= set(self.orchestrator.assigned_rows().values())
        offset = 0
        while True:
            page = self.lot.ledger.rows(offset, 100, "pending")
            for rec in page:
                if rec.index not in taken:
                    return int(rec.index)
            if len(page) < 100:
                return None
            offset += 100

    # ==== production actions ====
    def start_port(self, port: str) -> None:
        if self.orchestrator is None:
            return
        try:
            self.orchestrator.start(port)
        except StationError as err:
            self.refuse(f"✘ {self._slot(port)}: {_first_message(err)}", port)

    def cancel_port(self, port: str) -> None:
        """Stop: cancel the job on the port, and drop the unit waiting there."""
        if self.orchestrator is None:
            return
        self.orchestrator.cancel(port)
        if port not in self._busy_ports():
            try:
                self.orchestrator.unassign(port)
            except StationError:
                return
            self.bridge.on_event(_idle_update(port, self.cards[port].view.slot, "unit dropped"))

    def start_all(self) -> None:
        if self.orchestrator is None:
            self.refuse("✘ No lot is open")
            return
        try:
            self.orchestrator.start_all()
        except StationError as err:
            self.refuse(f"✘ {_first_message(err)}")

    def stop_all(self) -> None:
        if self.orchestrator is not None:
            self.orchestrator.cancel(None)

    def _selected_failed(self) -> Any | None:
        rows = self.failed_view.selectionModel().selectedRows()
        if rows:
            return self.failed_model.record(rows[0].row())
        if self.tabs.currentIndex() == 0:
            index = self.selected_row_index()
            if index is not None and self.lot is not None:
                return self.lot.ledger.row(index)
        return self.failed_model.record(0)

    def retry_selected(self) -> None:
        """Retry the selected failed unit (same row; the orchestrator picks the port)."""
        rec = self._selected_failed()
        if rec is None or self.orchestrator is None:
            self.refuse("✘ No failed unit selected")
            return
        try:
            port = self.orchestrator.retry(rec.index)
        except StationError as err:
            self.refuse(f"✘ Retry refused: {_first_message(err)}")
            return
        self.show_scan_result(
            True, f"↻ {rec.unit_id or rec.index + 1} → retry on {self._slot(port)}"
        )
        self.bridge.mark_rows_changed(rec.index)

    def _selected_unit(self) -> Any | None:
        """The unit selected in the list on screen: the Failed list, else the row table."""
        if self.tabs.currentIndex() == self.failed_tab:
            rows = self.failed_view.selectionModel().selectedRows()
            return self.failed_model.record(rows[0].row()) if rows else None
        index = self.selected_row_index()
        if index is not None and self.lot is not None:
            return self.lot.ledger.row(index)
        rows = self.failed_view.selectionModel().selectedRows()
        return self.failed_model.record(rows[0].row()) if rows else None

    def reprint_selected(self) -> None:
        """Reprint the selected unit's label (Rows: a done unit, or the Failed list). With no
        label output set up, show the label instead (what would be printed)."""
        rec = self._selected_unit()
        if rec is None or self.lot is None:
            self.refuse("✘ No unit selected")
            return
        if self.label_problems or (
            self.settings.label_output and self.labels.template(self.lot) is not None
        ):
            self.request_label(rec, reprint=True)
            return
        from station.gui.dialogs import LabelDialog

        LabelDialog(self, self.lot, rec, on_print=self._print_from_dialog).exec()

    def _print_from_dialog(self, rec: Any) -> tuple[bool, str]:
        return self.request_label(
            rec, reprint=True, output=self.settings.label_output or "printer:"
        )

    # ==== labels ====
    def toggle_reprint_scan(self) -> None:
        self.arm_reprint(not self.reprint_armed)

    def arm_reprint(self, on: bool) -> None:
        """F8: the next scan reprints that unit's label (once) instead of assigning it."""
        if on and self.lot is None:
            self.refuse("✘ No lot is open")
            on = False
        self.reprint_armed = on
        self.act_reprint_scan.setChecked(on)
        self.scan_field.setProperty("reprint", on)
        if on:
            self.scan_field.setPlaceholderText("REPRINT: scan a unit")
            self.scan_field.setStyleSheet("background-color: #fde68a; border: 2px solid #b45309;")
            self.port_choice.setText("→ REPRINT")
            self.port_choice.setStyleSheet("color: #b45309; font-weight: bold;")
            self.show_hint("Reprint: scan a unit (Esc: cancel)")
        else:
            self.scan_field.setPlaceholderText(SCAN_PLACEHOLDER)
            self.scan_field.setStyleSheet("")
            self.port_choice.setStyleSheet("")
            self.choose_port(self.chosen_port)

    def request_label(
        self, rec: Any | None, *, reprint: bool, what: str = "", output: str | None = None
    ) -> tuple[bool, str]:
        """Queue ``rec``'s label for the printer thread (refused loudly when it cannot be
        printed); returns (accepted, the message shown)."""
        name = what or (rec.unit_id if rec is not None else "") or "unit"
        output = self.settings.label_output if output is None else output
        why = ""
        if self.lot is None:
            why = "no lot is open"
        elif rec is None:
            why = "not in this lot"
        elif rec.state not in PRINTABLE_STATES:
            why = f"not flashed yet ({rec.state}): no label to reprint"
        elif self.labels.template(self.lot) is None:
            why = (
                "the lot's label template has problems (see Problems)"
                if self.label_problems
                else "this lot has no label ([label] in lot.toml)"
            )
        elif not output:
            why = "no label output is set (Settings, engineer mode)"
        if why or rec is None:
            msg = f"✘ {name}: {why}"
            self.refuse(msg)
            return False, msg
        job = LabelJob(self.lot, rec.index, output, reprint, self.settings.operator)
        self.labels.submit(job)
        msg = f"✔ {rec.unit_id or name}: label {'reprint ' if reprint else ''}sent to the printer"
        self.show_scan_result(True, msg)
        return True, msg

    def _unit_passed(self, port: str, row_index: int) -> None:
        """A unit passed: print its label if this station does so."""
        s = self.settings
        if not (s.print_on_pass and s.label_output) or self.lot is None or self._closing:
            return
        if self.labels.template(self.lot) is None:
            return  # the problems were shown when the lot opened
        self.labels.submit(LabelJob(self.lot, row_index, s.label_output, False, s.operator, port))

    def _label_done(self, outcome: LabelOutcome) -> None:
        if outcome.ok:
            self.log("info", outcome.text)
            return
        what = "reprint" if outcome.reprint else "label"
        self.log("error", f"{what} of {outcome.unit_id} failed: {outcome.text}")
        self.show_scan_result(False, f"✘ label {outcome.unit_id} not printed: {outcome.text}")

    def release_selected(self) -> None:
        """Supervisor only: give a failed row back to production, with a reason (audited)."""
        rec = self._selected_failed()
        if rec is None or self.orchestrator is None:
            self.refuse("✘ No failed unit selected")
            return
        if not self._engineer_only("release a row"):
            return
        reason = self.ask_text("Release row", f"Why release unit {rec.unit_id}? (audited)")
        if not reason:
            return
        from station.ledger import ClaimOfAnotherStation

        operator = self.settings.operator or "engineer"
        try:
            try:
                self.orchestrator.release(rec.index, reason, operator)
            except ClaimOfAnotherStation as err:  # only that station can tell if its run lives
                if not self.ask_yes_no("Release row", f"{_first_message(err)}\n\nIs it gone?"):
                    return
                self.orchestrator.release(rec.index, reason, operator, station_gone=True)
        except StationError as err:
            self.refuse(f"✘ Release refused: {_first_message(err)}")
            return
        self.log("warning", f"row {rec.index + 1} ({rec.unit_id}) released: {reason}")
        self.show_scan_result(True, f"Row {rec.index + 1} released")
        self.bridge.mark_rows_changed(rec.index, "pending")
        self._counters = None  # re-read on the next tick

    def _ask_decision(self, decision: Any) -> None:
        """The orchestrator found something it must not decide alone (e.g. foreign data)."""
        if self.orchestrator is None:
            return
        overwrite = self.engineer and self.ask_yes_no("Decision needed", decision.question)
        if not self.engineer:
            self.log("warning", f"{decision.question} — refused in operator mode", decision.port)
        self.orchestrator.answer(decision.port, overwrite)

    def _port_finished(self, port: str, state: str) -> None:
        self.sounds.play("ok" if state == "passed" else "error")
        if state == "failed":
            self._refresh_failed()

    # ==== modes and settings ====
    def set_engineer(self, on: bool) -> None:
        self.engineer = on
        for a in (self.act_open, self.act_new, self.act_settings):
            a.setEnabled(on)
        self.release_button.setEnabled(on)
        self.act_mode.setText("Operator mode" if on else "Engineer mode")
        self.status_mode.setText("ENGINEER" if on else "Operator")
        self.status_mode.setStyleSheet(f"color: {ENGINEER_COLOR}; font-weight: bold;" if on else "")
        self.engineer_band.setVisible(on)
        self._update_title()
        if self.cards:
            self._layout_cards()  # the band takes room from the cards
        self.mode_changed.emit(on)

    def toggle_mode(self) -> None:
        if self.engineer:
            self.set_engineer(False)
            self.log("info", "operator mode")
            return
        if not self.settings.has_pin:
            pin = self.ask_pin("No engineer PIN is set on this station. Choose one (6+ digits):")
            if not pin:
                return
            again = self.ask_pin("Type the new PIN again:")
            if pin != again:
                self.refuse("✘ The PINs differ; nothing changed")
                return
            try:  # too short, or a machine-wide PIN file this account cannot write
                self.settings.set_pin(pin)
            except ValueError as err:
                self.refuse(f"✘ {err}")
                return
        else:
            if self.settings.pin_wait() > 0:  # wrong tries: each one waits longer
                wait = math.ceil(self.settings.pin_wait())
                self.refuse(f"✘ Too many wrong PINs: try again in {wait} s")
                return
            pin = self.ask_pin("Engineer PIN:")
            if pin is None:
                return
            if not self.settings.check_pin(pin):
                wait = math.ceil(self.settings.pin_wait())
                self.refuse("✘ Wrong PIN" + (f"; the next try in {wait} s" if wait else ""))
                return
        self.set_engineer(True)
        self.log("info", "engineer mode")
        self.show_hint("Engineer mode (F2: back to operator mode)")  # replaces "Wrong PIN"

    def _engineer_only(self, what: str) -> bool:
        if self.engineer:
            return True
        self.refuse(f"✘ Engineer mode needed to {what} (F2)")
        return False

    def open_settings(self) -> None:
        if not self._engineer_only("change settings"):
            return
        from station.gui.dialogs import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() and dialog.changed:
            self.apply_settings()

    def apply_settings(self) -> None:
        """Settings changed: ports, scanner and sounds follow."""
        self.sounds.enabled = self.settings.sound
        if self.lot is not None and self._orchestrator_config() != self._running_config:
            # baud, continuous mode and operator are the orchestrator's: start a new one
            if self._busy_ports():
                self.log("warning", "new port settings apply when the running jobs are done")
            else:
                self.open_lot(str(self.lot.settings.path), db_url=self._db_url)
        if self.orchestrator is not None:
            wanted = self.settings.ports
            for port in list(self.cards):
                if port not in wanted and not self._is_hot_plugged(port):
                    self.remove_port(port)
            self.add_ports([(port, None) for port in wanted])
        self._start_serial_scanner()

    def _is_hot_plugged(self, port: str) -> bool:
        return self.port_watcher is not None and port in self.port_watcher.present

    # ==== the 4 Hz repaint =====================================================================
    def refresh(self) -> None:
        """Repaint from model state (never called per progress event)."""
        snap = self.bridge.take()
        if snap.ports is not None:
            for port, view in snap.ports.items():
                card = self.cards.get(port)
                if card is not None:
                    card.set_view(view)
        now = time.monotonic()
        for card in self.cards.values():
            card.tick(now)  # a working port's clock runs between its events
        if snap.rows and self.lot is not None:
            if not self.row_model.update_rows(snap.rows, self.lot.ledger.row):
                self._filtered_dirty = True
            if any(st == "failed" for st in snap.rows.values()) or any(
                i in self._failed_indexes for i in snap.rows
            ):
                self._refresh_failed()
        if self._filtered_dirty and time.monotonic() - self._filtered_at >= 1.0:
            # a filter is on: membership may have changed; recount at most once a second
            self._filtered_dirty = False
            self._filtered_at = time.monotonic()
            self.row_model.refresh()
        counters = snap.counters
        if counters is None and self.lot is not None and self._counters is None:
            counters = self.lot.ledger.counters()
        if counters is not None:
            self._counters = counters
            self.status_counts.setText(
                f"Done {counters.done}   Failed {counters.failed}   Remaining {counters.remaining}"
            )
            self.status_rate.setText(f"{counters.units_per_hour:.0f} units/h")

    def _rows_changed(self) -> None:
        pass  # the next tick repaints; the signal exists for tests and other views

    def _refresh_failed(self) -> None:
        if self.lot is None:
            self.failed_model.set_rows([])
            return
        failed = self.lot.ledger.failed()
        self._failed_indexes = {r.index for r in failed}
        self.failed_model.set_rows(failed)
        self.tabs.setTabText(self.failed_tab, f"&Failed ({len(failed)})" if failed else "&Failed")

    def _size_failed_columns(self) -> None:
        header = self.failed_view.horizontalHeader()
        fm = self.failed_view.fontMetrics()
        for col, sample in enumerate(("00000", "SN00000000", "SN00000000", "COM10", "Tries")):
            header.resizeSection(col, fm.horizontalAdvance(sample) + 16)
        self.failed_view.resizeRowsToContents()

    def _filter_changed(self, *_: Any) -> None:
        self._search_timer.stop()
        self.row_model.set_filter(
            ROW_FILTERS[self.filter_box.currentText()], self.search_field.text()
        )

    def _search_typed(self, _text: str) -> None:
        self._search_timer.start()

    # ==== closing ====
    def closeEvent(self, event: QCloseEvent) -> None:
        busy = self._busy_ports()
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
        self._search_timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.scan_filter)
        if self.serial_scanner is not None:
            self.serial_scanner.stop()
            self.serial_scanner = None
        self._join_workers()
        self.close_lot()
        if self.device_host is not None:
            self.device_host.close()
            self.device_host = None


class _CardsScroll(QScrollArea):
    """The scroll area around the port cards; tells the window when its room changes."""

    def __init__(self, resized: Any) -> None:
        super().__init__()
        self._resized = resized

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._resized()

    def eventFilter(self, watched: Any, event: Any) -> bool:
        handled = super().eventFilter(watched, event)
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the cards' height changed: so does this area's size hint
        return handled

    def sizeHint(self) -> QSize:
        """As tall as the cards (the scan panel below takes the rest of the room)."""
        hint = super().sizeHint()
        widget = self.widget()
        if widget is None:
            return hint
        return QSize(hint.width(), widget.sizeHint().height() + 2 * self.frameWidth())


class _Central(QWidget):
    """The central area; tells the window when its room changes (the cards' layout follows)."""

    def __init__(self, resized: Any) -> None:
        super().__init__()
        self._resized = resized

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._resized()


def _idle_update(port: str, slot: str, message: str) -> Any:
    from station.production import PortUpdate

    return PortUpdate(port, slot, "idle", message=message)


def _image_size_job(lot: Any, emit: Any) -> None:
    """Build row 1's NVS image (a worker thread) and report how many bytes of it are used."""
    try:
        image = lot.image_for(lot.row(0))
    except StationError as err:
        emit(lot, 0, _first_message(err))
        return
    except Exception as err:  # a broken row must not kill the worker silently
        emit(lot, 0, f"cannot build its image ({err})")
        return
    emit(lot, nvs_bytes_used(image), "")


def nvs_bytes_used(image: bytes) -> int:
    """Bytes of NVS entries in use: non-erased 32-byte entries after each page's 64-byte header
    and bitmap (erased flash reads 0xFF), plus those headers of pages in use."""
    used = 0
    for page in range(0, len(image), 4096):
        entries = [image[o : o + 32] for o in range(page + 64, page + 4096, 32)]
        n = sum(1 for e in entries if e != b"\xff" * 32)
        if n:
            used += 64 + 32 * n
    return used


class _HotPlug:
    """Adds ports to the station as devices are plugged in (station.flashing.PortWatcher)."""

    def __init__(self, window: MainWindow, watcher_cls: Any) -> None:
        self.window = window
        self.present: set[str] = set()
        self._relay = _Relay(window)
        self._relay.changed.connect(self._changed)
        self.watcher = watcher_cls(
            poll_interval=window.HOT_PLUG_POLL, on_change=self._relay.changed.emit
        )

    def _changed(self, *args: Any) -> None:
        ports = args[0] if args else []
        slots = {getattr(p, "device", p): getattr(p, "slot", "") or None for p in ports}
        names = set(slots)
        for name in sorted(names - self.present):
            self.window.log("info", "device plugged in", name)
            if name in self.window.cards:
                self.window.bridge.set_offline(name, False)
            else:
                self.window.add_port(name, slots[name])
        for name in sorted(self.present - names):
            self.window.log("warning", "device unplugged", name)
            self.window.bridge.set_offline(name, True)
        self.present = names

    def stop(self) -> None:
        stop = getattr(self.watcher, "stop", None)
        if stop is not None:
            stop()


class _Relay(QObject):
    """Carries the port watcher's callback (its thread) to the GUI thread, queued."""

    changed = Signal(object)
