"""Colours and sizes of the station window, in one place (the style sheet is in resources/)."""

from __future__ import annotations

# Port card colours: chosen to be told apart from a metre away and by colour-blind operators
# (the card also says the state in words).
CARD = {
    "idle": ("#d9dde3", "#1d2430"),  # (background, text)
    "waiting": ("#bcd7f5", "#0b2a4d"),
    "busy": ("#1f6feb", "#ffffff"),
    "passed": ("#1a7f37", "#ffffff"),
    "failed": ("#cf222e", "#ffffff"),
    "attention": ("#f0a500", "#1d1d1d"),
    "offline": ("#8c959f", "#ffffff"),
    "ledger": ("#424a53", "#ffffff"),  # the ledger's database is away: every card
}
CARD_WORD = {
    "idle": "READY",
    "waiting": "WAITING",
    "busy": "WORKING",
    "passed": "PASS",
    "failed": "FAIL",
    "attention": "CHECK",
    "offline": "UNPLUGGED",
    "ledger": "NO LEDGER",  # short enough for the big word of a card
}
LEDGER_OFFLINE_MESSAGE = (
    "Ledger offline: reconnecting… Nothing is lost: units stop before they are recorded."
)

ROW_BACKGROUND = {
    "pending": "#ffffff",
    "claimed": "#dbeafe",
    "written": "#fef3c7",
    "done": "#dcfce7",
    "failed": "#fee2e2",
}
ROW_TEXT = "#111827"
FACTORY = "#fde68a"
LOG_LEVEL = {"error": "#b91c1c", "warning": "#92400e"}

FLASH_MAP = {
    "bootloader": "#6366f1",
    "table": "#a855f7",
    "app": "#3b82f6",
    "data": "#14b8a6",
    "gap": "#e5e7eb",
    "reserved": "#9ca3af",
    "factory": "#f59e0b",
}

SCAN_OK = "#1a7f37"
SCAN_BAD = "#cf222e"
