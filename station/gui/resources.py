"""Where the window's resources (style sheet, icons, sounds, sample lot) are, and the sounds."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from station import paths


def resources_dir() -> Path:
    """resources/ of a checkout, of the frozen bundle or of a plain install (station.paths)."""
    return paths.resources_dir()


def gui_resource(*parts: str) -> Path:
    return resources_dir().joinpath("gui", *parts)


def style_sheet() -> str:
    path = gui_resource("station.qss")
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def app_icon() -> QIcon:
    path = gui_resource("icons", "station.png")
    return QIcon(str(path)) if path.is_file() else QIcon()


class Sounds(QObject):
    """Short confirmation and alarm sounds (resources/gui/sounds/*.wav).

    Uses QtMultimedia when it can play on this machine, else the system beep. ``enabled`` off
    (tests, quiet lines) makes it silent.
    """

    def __init__(self, enabled: bool = True, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.enabled = enabled
        self._effects: dict[str, object] = {}
        self.played: list[str] = []  # what was played, newest last (tests read it)
        if enabled:
            self._load()

    def _load(self) -> None:
        try:
            from PySide6.QtMultimedia import QSoundEffect
        except ImportError:  # QtMultimedia needs a sound system (libpulse on Linux)
            return
        for name in ("ok", "error"):
            path = gui_resource("sounds", f"{name}.wav")
            if path.is_file():
                effect = QSoundEffect(self)
                effect.setSource(QUrl.fromLocalFile(str(path)))
                self._effects[name] = effect

    def play(self, name: str) -> None:
        """Play "ok" or "error"."""
        self.played.append(name)
        del self.played[:-20]
        if not self.enabled:
            return
        effect = self._effects.get(name)
        if effect is not None:
            effect.play()  # type: ignore[attr-defined]
        else:
            QApplication.beep()
