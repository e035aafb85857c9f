"""Plays the window's two short WAV sounds without QtMultimedia.

QtMultimedia brought 37 MB into the bundle (its FFmpeg backend links Qt Quick) and printed FFmpeg
and PulseAudio warnings on Linux PCs with sound, all for two beeps. Each platform has a player of
its own: ``winsound`` on Windows, ``afplay`` on macOS, and on Linux the first of PipeWire's
``pw-play``, PulseAudio's ``paplay`` or ALSA's ``aplay`` found on PATH. Where none is there,
:func:`find_player` returns None and the window falls back to the system beep. Nothing here
imports Qt.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

LINUX_PLAYERS = ("pw-play", "paplay", "aplay")  # PipeWire, PulseAudio, ALSA: the first found wins
MAX_PLAYING = 4  # sounds beyond this many still playing are dropped, not queued


class CommandPlayer:
    """Starts ``COMMAND FILE`` for each sound and never waits for it.

    Finished players are reaped on the next call, so a shift of beeps leaves no zombie processes.
    """

    def __init__(self, command: str, args: tuple[str, ...] = ()) -> None:
        self.command = command
        self.args = args
        self._running: list[subprocess.Popen[bytes]] = []

    def __call__(self, path: Path) -> None:
        self._running = [p for p in self._running if p.poll() is None]
        if len(self._running) >= MAX_PLAYING:
            return
        try:
            proc = subprocess.Popen(
                [self.command, *self.args, str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:  # removed since it was found, or not executable: stay quiet
            return
        self._running.append(proc)

    def close(self) -> None:
        """Wait for the sounds still playing (they are short)."""
        for proc in self._running:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._running.clear()

    def __repr__(self) -> str:
        return f"CommandPlayer({self.command!r})"


def _winsound_player() -> Callable[[Path], None] | None:
    try:
        import winsound  # Windows only
    except ImportError:
        return None

    def play(path: Path) -> None:
        winsound.PlaySound(str(path), winsound.SND_FILENAME | winsound.SND_ASYNC)  # type: ignore[attr-defined]

    return play


def find_player(
    platform: str = sys.platform, which: Callable[[str], str | None] = shutil.which
) -> Callable[[Path], None] | None:
    """The way this machine plays a WAV file, or None (then the caller beeps)."""
    if platform == "win32":
        return _winsound_player()
    if platform == "darwin":
        found = which("afplay")
        return CommandPlayer(found) if found else None
    for name in LINUX_PLAYERS:
        found = which(name)
        if found:
            # aplay prints to stderr and would wait on a busy device; -q and -N keep it short
            return CommandPlayer(found, ("-q", "-N") if name == "aplay" else ())
    return None
