"""`station flash` live status: redrawn per port on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from station import cli
from station.flashing import Progress
from station.flashing.live import LiveStatus, live_capable
from tests.flashing.conftest import FACTORY_OFFSET, nvs_image

ANSI = re.compile(r"\x1b\[[0-9]*[A-Za-z]")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def screen(text: str) -> list[str]:
    """Replay what a terminal shows: cursor-up-N-lines (F), erase line (2K) / below (J)."""
    rows: list[str] = []
    y = 0
    for token in re.split(r"(\x1b\[[0-9]*[A-Za-z]|\n|\r)", text):
        if not token:
            continue
        if token == "\n":
            y += 1
        elif token == "\r":
            pass
        elif token.startswith("\x1b["):
            n, cmd = token[2:-1], token[-1]
            if cmd == "F":
                y -= int(n or 1)
            elif cmd == "K":
                if y < len(rows):
                    rows[y] = ""
            elif cmd == "J":
                del rows[y:]
        else:
            while len(rows) <= y:
                rows.append("")
            rows[y] = token
    return rows


def test_one_line_per_port_redrawn_in_place_at_most_4_hz() -> None:
    out, clock = Tty(), Clock()
    live = LiveStatus(["COM7", "COM10"], out, rows=40, columns=120, clock=clock)
    live.update(Progress("COM7", "writing", 0x3000, 0x6000))
    live.update(Progress("COM10", "connecting", 0, 0))
    assert live.render()
    first = screen(out.getvalue())
    assert first[0].startswith("COM7   writing     [##########----------]  50%")
    assert first[1].startswith("COM10  connecting  [--------------------]   0%")
    live.update(Progress("COM7", "verifying", 0x6000, 0x6000))
    clock.now += 0.1
    assert not live.render()  # too soon: nothing written
    assert screen(out.getvalue()) == first
    clock.now += 0.2
    live.finish("COM10", False)
    assert live.render()
    assert out.getvalue().count("\x1b[2F") == 1  # redrawn over the two lines, not appended
    now = screen(out.getvalue())
    assert len(now) == 2
    assert now[0].startswith("COM7   verifying   [####################] 100%")
    assert now[1] == "COM10  FAILED"
    live.clear()
    assert screen(out.getvalue()) == []


def test_many_ports_on_a_small_terminal_share_one_summary_line() -> None:
    out, clock = Tty(), Clock()
    ports = [f"/dev/ttyUSB{i}" for i in range(32)]
    live = LiveStatus(ports, out, rows=24, columns=100, clock=clock)
    for p in ports[:20]:
        live.update(Progress(p, "writing", 1, 2))
    for p in ports[20:30]:
        live.update(Progress(p, "verifying", 1, 2))
    live.finish(ports[30], True)
    live.finish(ports[31], False)
    live.render()
    clock.now += 1
    live.render()
    rows = screen(out.getvalue())
    assert len(rows) == 1
    assert rows[0].startswith("32 ports: 20 writing, 10 verifying | 1 ok, 1 failed")


def test_not_a_terminal_means_no_live_display() -> None:
    assert not live_capable(io.StringIO())
    assert live_capable(Tty()) or sys.platform == "win32"


@pytest.mark.slow
def test_station_flash_on_a_terminal_ends_with_the_summary_lines(
    sim, tmp_path: Path, monkeypatch, capsys
) -> None:
    devs = sim(2)
    f = tmp_path / "fctry.bin"
    f.write_bytes(nvs_image("SN-TTY"))
    tty = Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    monkeypatch.setattr("station.flashing.live.MIN_INTERVAL", 0.01)  # look often
    import station.flashing.live as live_mod

    drawn = []
    real_render = live_mod.LiveStatus.render

    def render(self, *, force: bool = False) -> bool:  # type: ignore[no-untyped-def]
        ok = real_render(self, force=True)
        drawn.append(ok)
        return ok

    monkeypatch.setattr(live_mod.LiveStatus, "render", render)
    argv = ["flash", "--port", devs[0].port, "--port", devs[1].port, hex(FACTORY_OFFSET), str(f)]
    assert cli.main(argv) == 0
    raw = tty.getvalue()
    assert drawn  # the status lines were drawn while the ports worked
    assert "\x1b[2K" in raw
    final = screen(raw)
    assert len(final) == 2  # the status lines are gone; the summary lines stay
    for d, line in zip(devs, final, strict=True):
        assert line.startswith(d.port) and " ok " in line and "verified" in line
    assert "\x1b" not in capsys.readouterr().err
