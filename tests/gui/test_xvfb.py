"""End to end on a real X server: `station --demo` under Xvfb (1366x768) with a window manager,
driven only by the keyboard through xdotool, as an operator with a keyboard-wedge scanner would:
type a scan, F6, Esc, F2 and the PIN. Screenshots of the whole screen are saved at each step
(into $STATION_SCREENSHOTS if set, else the test's folder).

Needs Xvfb, openbox, xdotool and the libraries of Qt's X11 plugin (.ci/run installs them); the
test is skipped, saying which is missing, where they are not installed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.gui.settings import DEMO_PIN
from station.selftest import missing_xcb_libraries, xcb_advice

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("Xvfb", "openbox", "xdotool")
SCREEN = "1366x768x24"

pytestmark = pytest.mark.slow


def _missing() -> str:
    if not sys.platform.startswith("linux"):
        return "an X server test: Linux only"
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"{', '.join(absent)} not installed (Debian: apt install xvfb openbox xdotool)"
    libraries = missing_xcb_libraries()
    return xcb_advice(libraries) if libraries else ""


if _missing():
    pytest.skip(_missing(), allow_module_level=True)


class Display:
    """An Xvfb server with openbox on it; ``env`` runs programs on it."""

    def __init__(self, folder: Path) -> None:
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", SCREEN, "-nolisten", "tcp"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()  # Xvfb writes its display number once it listens
        if not number:
            self.xvfb.kill()
            raise RuntimeError("Xvfb did not start")
        runtime = folder / "runtime"
        runtime.mkdir(mode=0o700)
        self.env = {
            **os.environ,
            "DISPLAY": f":{number}",
            "QT_QPA_PLATFORM": "xcb",
            "XDG_RUNTIME_DIR": str(runtime),
            "HOME": str(folder),
            "TMPDIR": str(folder),
        }
        self.env.pop("WAYLAND_DISPLAY", None)
        self.wm = subprocess.Popen(
            ["openbox"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    def screenshot(self, path: Path) -> None:
        """The whole screen, window manager frames and all (Qt's screen grab, in a child)."""
        prog = (
            "import sys; from PySide6.QtGui import QGuiApplication; "
            "app = QGuiApplication(sys.argv[:1]); "
            "ok = app.primaryScreen().grabWindow(0).save(sys.argv[1]); "
            "raise SystemExit(0 if ok else 1)"
        )
        subprocess.run(
            [sys.executable, "-c", prog, str(path)], env=self.env, timeout=60, check=True
        )

    def close(self) -> None:
        for proc in (self.wm, self.xvfb):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def display(tmp_path: Path) -> Iterator[Display]:
    d = Display(tmp_path)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("STATION_SCREENSHOTS", "") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _ledger_states(folder: Path) -> Callable[[], dict[str, str]]:
    """Unit -> state from the demo's ledger (the demo works in a folder under TMPDIR)."""

    def states() -> dict[str, str]:
        dbs = sorted(folder.glob("station-demo-*/lot/*.station.db"))
        if not dbs:
            return {}
        con = sqlite3.connect(f"file:{dbs[0]}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute("SELECT unit_id, state FROM rows WHERE state != 'pending'")
            return {str(u): str(s) for u, s in rows}
        except sqlite3.Error:
            return {}
        finally:
            con.close()

    return states


def test_the_demo_window_on_a_real_x_server_with_the_keyboard_only(
    qtbot: QtBot, display: Display, shots: Path, tmp_path: Path
) -> None:
    log = (tmp_path / "station.log").open("w")
    station = subprocess.Popen(
        [sys.executable, "-m", "station", "--demo"],
        env=display.env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        window = display.xdotool("search", "--sync", "--onlyvisible", "--name", "Station")
        window = window.splitlines()[0]
        display.xdotool("windowactivate", "--sync", window)
        # the lot opens after the first frame: on a loaded machine that takes more than 5 s
        qtbot.waitUntil(
            lambda: "SAMPLE-2611" in display.xdotool("getwindowname", window), timeout=60_000
        )
        display.screenshot(shots / "xvfb-1-start.png")

        states = _ledger_states(tmp_path)
        # a keyboard-wedge scanner: the code's keys, then Enter, wherever the focus is
        display.xdotool("type", "--delay", "15", "SN26110001")
        display.xdotool("key", "Return")
        # F6 right after the scan: the next pending row (not the scanned one again)
        display.xdotool("key", "F6")
        qtbot.waitUntil(lambda: {"SN26110001", "SN26110002"} <= set(states()), timeout=120_000)
        display.screenshot(shots / "xvfb-2-scan-and-f6.png")
        qtbot.waitUntil(
            lambda: states().get("SN26110001") == "done" and states().get("SN26110002") == "done",
            timeout=180_000,
        )
        display.screenshot(shots / "xvfb-3-passed.png")

        display.xdotool("key", "Escape")
        display.xdotool("key", "F2")  # engineer mode: the PIN prompt
        prompt = display.xdotool("search", "--sync", "--onlyvisible", "--name", "Engineer PIN")
        display.screenshot(shots / "xvfb-4-pin.png")
        display.xdotool("windowactivate", "--sync", prompt.splitlines()[0])
        display.xdotool("type", "--delay", "15", DEMO_PIN)
        display.xdotool("key", "Return")
        qtbot.waitUntil(
            lambda: display.xdotool("getwindowname", window).startswith("ENGINEER MODE")
        )
        display.screenshot(shots / "xvfb-5-engineer.png")

        display.xdotool("windowactivate", "--sync", window)
        display.xdotool("key", "alt+F4")  # openbox closes the window; the demo cleans up
        station.wait(60)
        assert station.returncode == 0, (tmp_path / "station.log").read_text()
        assert not list(tmp_path.glob("station-demo-*"))  # the demo's folder is gone
    finally:
        if station.poll() is None:
            station.terminate()
            station.wait(30)
        log.close()
    output = (tmp_path / "station.log").read_text()
    assert "Traceback" not in output, output
