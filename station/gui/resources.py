"""Where the window's resources (style sheet, icons, sounds, sample lot) are, and the sounds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from station import paths
from station.gui.sound_player import find_player


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

    Played by this platform's own player (:mod:`station.gui.sound_player`), else the system
    beep. ``enabled`` off (tests, quiet lines) makes it silent.
    """

    def __init__(
        self,
        enabled: bool = True,
        parent: QObject | None = None,
        player: Callable[[Path], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.enabled = enabled
        self.played: list[str] = []  # what was played, newest last (tests read it)
        self._player = player
        self._looked = player is not None  # find_player() runs once, when first needed

    def _find(self) -> Callable[[Path], None] | None:
        if not self._looked:
            self._player, self._looked = find_player(), True
        return self._player

    @property
    def backend(self) -> str:
        """What plays the sounds, in words (the self-test reports it)."""
        player = self._find()
        return repr(player) if player is not None else "system beep"

    def play(self, name: str) -> None:
        """Play "ok" or "error"."""
        self.played.append(name)
        del self.played[:-20]
        if not self.enabled:
            return
        path = gui_resource("sounds", f"{name}.wav")
        player = self._find()
        if player is None or not path.is_file():
            QApplication.beep()
        else:
            player(path)
