"""The window's toolbar actions and keyboard shortcuts (F2 … F8, Ctrl+digits, Alt+digits, Esc):
the keys an operator works with, each bound to what the window passes on to the session.

May import: PySide6."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QToolBar

# (attribute, text, shortcut, the window's slot, tooltip); None: a separator
ACTIONS: tuple[tuple[str, str, str, str, str] | None, ...] = (
    ("act_open", "Open lot…", "Ctrl+O", "choose_lot", "Open a lot file"),
    ("act_new", "New lot…", "Ctrl+N", "new_lot", "Build a lot from CSV files"),
    None,
    ("act_start", "Start all", "F5", "start_all", "Flash every ready port"),
    ("act_stop", "Stop all", "Shift+F5", "stop_all", "Cancel every job"),
    ("act_next", "Next", "F6", "assign_selected",
     "Send the selected (or next pending) row to the next free port"),
    None,
    ("act_retry", "Retry", "Ctrl+R", "retry_selected", "Retry the failed unit"),
    ("act_reprint", "Reprint label", "Ctrl+P", "reprint_selected",
     "Show / print the label of the selected unit"),
    ("act_reprint_scan", "Reprint by scan", "F8", "toggle_reprint",
     "The next scan prints that unit's label again instead of assigning it"),
    ("act_release", "Release row…", "Ctrl+Shift+R", "release_selected",
     "Supervisor: give a failed row back to production"),
    None,
    ("act_mode", "Engineer mode", "F2", "toggle_mode", "Unlock settings and lot changes (PIN)"),
    ("act_settings", "Settings…", "Ctrl+,", "open_settings", "Ports, baud, auto-start, PIN"),
)  # fmt: skip


def build_actions(window: Any, slots: dict[str, Any]) -> None:
    """The toolbar; each action becomes ``window.<attribute>`` and works app-wide."""
    tb = QToolBar("Main")
    tb.setObjectName("mainToolBar")
    tb.setMovable(False)
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    window.addToolBar(tb)
    for entry in ACTIONS:
        if entry is None:
            tb.addSeparator()
            continue
        name, text, shortcut, slot, tip = entry
        a = QAction(text, window)
        a.setShortcut(QKeySequence(shortcut))
        a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        a.setToolTip(f"{tip} ({a.shortcut().toString()})")
        # looked up when triggered: the window's panels are built after its actions
        a.triggered.connect(slots.get(slot) or (lambda _=False, slot=slot: getattr(window, slot)()))
        tb.addAction(a)
        window.addAction(a)
        setattr(window, name, a)
    window.act_reprint_scan.setCheckable(True)


def show_tab(window: Any, i: int) -> None:
    """A tab of the lot dock, with the focus in its list."""
    window.tabs.setCurrentIndex(i)
    page = window.tabs.currentWidget()
    view = page.findChild(QAbstractItemView) if page is not None else None
    if view is not None:
        view.setFocus()


def escape(window: Any) -> None:
    """Esc: back to the plain state: no selection, no chosen port, no reprint, scan field."""
    window.scan_field.clear()
    window.scan_field.setFocus()
    window.row_view.clearSelection()
    window.failed_view.clearSelection()
    if window.chosen_port is not None:
        window.choose_port(None)
    if window.reprint_armed:
        window.arm_reprint(False)


def install_shortcuts(window: Any) -> None:
    def sc(key: str, slot: Any) -> None:
        s = QShortcut(QKeySequence(key), window)
        s.setContext(Qt.ShortcutContext.WindowShortcut)
        s.activated.connect(slot)

    def focus_search() -> None:
        show_tab(window, 0)
        window.search_field.setFocus()
        window.search_field.selectAll()

    sc("Ctrl+F", focus_search)
    sc("Ctrl+L", lambda: window.scan_field.setFocus())
    sc("Ctrl+0", lambda: window.choose_port(None))
    for i in range(1, 10):
        sc(f"Ctrl+{i}", lambda i=i: window._choose_port_number(i))
    for i in range(4):
        sc(f"Alt+{i + 1}", lambda i=i: show_tab(window, i))
    sc("Alt+5", lambda: window.log_view.setFocus())
    sc("Escape", lambda: escape(window))
