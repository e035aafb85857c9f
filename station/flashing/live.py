"""Live per-port status lines for ``station flash`` on a terminal.

One line per port (phase, a bar, percent, seconds), redrawn in place with ANSI cursor moves at
most four times a second. Progress arrives from the job threads (:meth:`LiveStatus.update` only
records it); drawing happens on the caller's thread (:meth:`LiveStatus.render`). When the ports
do not fit the terminal, a single summary line is redrawn instead. Nothing is drawn unless the
stream is a terminal that understands the escapes (:func:`live_capable`).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from station.flashing.types import PHASES, Progress

MIN_INTERVAL = 0.25  # seconds between redraws: at most 4 Hz
BAR = 20
ESC = "\x1b"


def live_capable(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that takes cursor moves (on Windows: VT mode on)."""
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    if sys.platform == "win32":
        return _enable_windows_vt()
    return True


def _enable_windows_vt() -> bool:  # pragma: no cover - Windows only
    try:
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.GetStdHandle(-11)  # STD_OUTPUT_HANDLE
        mode = ctypes.c_uint32()
        if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            return False
        return bool(kernel32.SetConsoleMode(handle, mode.value | 0x0004))
    except Exception:
        return False


class LiveStatus:
    """Status lines for a set of ports; thread-safe :meth:`update`/:meth:`finish`, and
    :meth:`render`/:meth:`clear` on the drawing thread."""

    def __init__(
        self,
        ports: Sequence[str],
        stream: TextIO,
        *,
        rows: int | None = None,
        columns: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        size = shutil.get_terminal_size((100, 24))
        self.ports = list(ports)
        self.stream = stream
        self.rows = rows or size.lines
        self.columns = columns or size.columns
        self.clock = clock
        self.min_interval = min_interval
        self.compact = len(self.ports) > max(1, self.rows - 2)
        self._lock = threading.Lock()
        self._state: dict[str, tuple[str, int, int]] = {p: ("waiting", 0, 0) for p in ports}
        self._ended: dict[str, str] = {}  # port -> "ok" | "FAILED"
        self._start = clock()
        self._last = float("-inf")
        self._drawn = 0  # lines on screen from the last render

    # -- any thread ------------------------------------------------------------------------
    def update(self, p: Progress) -> None:
        """Record a job's progress (called on the job's thread; never draws)."""
        with self._lock:
            if p.port in self._state and p.port not in self._ended:
                self._state[p.port] = (p.phase, p.done, p.total)

    def finish(self, port: str, ok: bool) -> None:
        """Mark a port as ended."""
        with self._lock:
            self._ended[port] = "ok" if ok else "FAILED"

    # -- drawing thread --------------------------------------------------------------------
    def lines(self) -> list[str]:
        """What the display shows now (one line per port, or one summary line)."""
        with self._lock:
            state = dict(self._state)
            ended = dict(self._ended)
        seconds = self.clock() - self._start
        if self.compact:
            return [self._summary(state, ended, seconds)]
        width = max(len(p) for p in self.ports)
        out = []
        for port in self.ports:
            phase, done, total = state[port]
            if port in ended:
                text = f"{port:<{width}}  {ended[port]}"
            else:
                pct = (100 * done // total) if total else 0
                filled = BAR * pct // 100
                bar = "#" * filled + "-" * (BAR - filled)
                text = f"{port:<{width}}  {phase:<11} [{bar}] {pct:3d}%  {seconds:5.1f} s"
            out.append(text[: max(10, self.columns - 1)])
        return out

    def _summary(
        self, state: dict[str, tuple[str, int, int]], ended: dict[str, str], s: float
    ) -> str:
        counts: dict[str, int] = {}
        for port, (phase, _, _) in state.items():
            if port not in ended:
                counts[phase] = counts.get(phase, 0) + 1
        order = ["waiting", *PHASES]
        parts = [f"{counts[ph]} {ph}" for ph in order if counts.get(ph)]
        parts += [f"{n} {ph}" for ph, n in counts.items() if ph not in order]
        ok = sum(1 for v in ended.values() if v == "ok")
        failed = len(ended) - ok
        text = f"{len(self.ports)} ports: " + ", ".join(parts or ["all ended"])
        text += f" | {ok} ok, {failed} failed  {s:5.1f} s"
        return text[: max(10, self.columns - 1)]

    def render(self, *, force: bool = False) -> bool:
        """Redraw in place unless the last redraw was under ``min_interval`` ago; True if
        drawn."""
        now = self.clock()
        if not force and now - self._last < self.min_interval:
            return False
        self._last = now
        lines = self.lines()
        out = [f"{ESC}[{self._drawn}F" if self._drawn else "\r"]
        out += [f"{ESC}[2K{line}\n" for line in lines]
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = len(lines)
        return True

    def clear(self) -> None:
        """Remove the status lines (before the final summary lines are printed)."""
        if self._drawn:
            self.stream.write(f"{ESC}[{self._drawn}F{ESC}[J")
            self.stream.flush()
            self._drawn = 0
