"""The window's sounds without QtMultimedia: which player each platform uses, and that playing
never blocks, never piles up processes and never fails loudly."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from station.gui import sound_player
from station.gui.resources import Sounds, gui_resource
from station.gui.sound_player import CommandPlayer, find_player


def test_linux_prefers_pipewire_then_pulseaudio_then_alsa():
    def which_of(*present):
        return lambda name: f"/usr/bin/{name}" if name in present else None

    assert (
        find_player("linux", which_of("aplay", "paplay", "pw-play")).command == "/usr/bin/pw-play"
    )
    assert find_player("linux", which_of("aplay", "paplay")).command == "/usr/bin/paplay"
    alsa = find_player("linux", which_of("aplay"))
    assert alsa.command == "/usr/bin/aplay"
    assert alsa.args == ("-q", "-N")  # quiet, and never waits for a busy sound card
    assert find_player("linux", which_of()) is None


def test_macos_uses_afplay():
    assert find_player("darwin", lambda n: "/usr/bin/afplay" if n == "afplay" else None).command
    assert find_player("darwin", lambda n: None) is None


@pytest.mark.skipif(sys.platform == "win32", reason="winsound exists there")
def test_windows_player_needs_winsound():
    assert find_player("win32") is None  # no winsound module on this platform: the beep


def _fake_player(tmp_path: Path, block: bool) -> tuple[Path, Path]:
    """A stand-in for paplay that records the file it was given (and may wait to be released)."""
    log = tmp_path / "played.txt"
    gate = tmp_path / "gate"
    script = tmp_path / "paplay"
    wait = f'while [ ! -e "{gate}" ]; do :; done\n' if block else ""
    script.write_text(f'#!/bin/sh\n{wait}echo "$@" >> "{log}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log if not block else gate


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script stands in for the player")
def test_command_player_plays_the_file_and_reaps_its_processes(tmp_path):
    script, log = _fake_player(tmp_path, block=False)
    player = CommandPlayer(str(script))
    wav = gui_resource("sounds", "ok.wav")
    for _ in range(3):
        player(wav)
    player.close()
    assert log.read_text().split() == [str(wav)] * 3
    assert player._running == []


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script stands in for the player")
def test_sounds_still_playing_are_dropped_not_queued(tmp_path):
    script, gate = _fake_player(tmp_path, block=True)
    player = CommandPlayer(str(script))
    wav = gui_resource("sounds", "error.wav")
    for _ in range(sound_player.MAX_PLAYING + 3):
        player(wav)
    assert len(player._running) == sound_player.MAX_PLAYING
    gate.touch()
    player.close()
    assert player._running == []


def test_a_player_that_vanished_is_quiet(tmp_path):
    player = CommandPlayer(str(tmp_path / "no-such-player"))
    player(gui_resource("sounds", "ok.wav"))  # no exception, nothing running
    assert player._running == []


def test_window_sounds_go_to_the_player_and_beep_without_one(qapp, monkeypatch):
    played: list[Path] = []
    sounds = Sounds(True, player=played.append)
    sounds.play("ok")
    sounds.play("error")
    assert [p.name for p in played] == ["ok.wav", "error.wav"]
    assert all(p.is_file() for p in played)

    beeps: list[int] = []
    monkeypatch.setattr(sound_player, "find_player", lambda: None)
    monkeypatch.setattr("station.gui.resources.find_player", lambda: None)
    monkeypatch.setattr("station.gui.resources.QApplication.beep", lambda: beeps.append(1))
    quiet = Sounds(True)
    quiet.play("error")
    assert beeps == [1]
    assert quiet.backend == "system beep"

    off = Sounds(False, player=played.append)
    off.play("ok")
    assert len(played) == 2 and off.played == ["ok"]


def test_the_sound_files_are_short_wavs():
    for name in ("ok", "error"):
        data = gui_resource("sounds", f"{name}.wav").read_bytes()
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
        assert os.path.getsize(gui_resource("sounds", f"{name}.wav")) < 64 * 1024
