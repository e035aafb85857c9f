"""station --self-test: one line per check, exit 1 on any failure, nothing else printed."""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import station
from station import selftest
from station.selftest import FAIL, LINE_RE, OK, SKIP, Check, CheckResult, Skip, run_checks

ROOT = Path(__file__).resolve().parents[1]
CHECK_NAMES = [
    "version",
    "imports",
    "esptool-stubs",
    "serial-urls",
    "postgresql",
    "aes-xts",
    "nvs-encode",
    "device-host",
    "flash",
    "display",
    "qt",
    "resources",
    "lot",
    "label",
    "window",
]
HAS_QT = importlib.util.find_spec("PySide6") is not None


def _station(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the source install's station (or a few lines of Python before it) in a child."""
    prog = code or "from station.cli import main; raise SystemExit(main())"
    return subprocess.run(
        [sys.executable, "-c", prog, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


# --- the real command ---------------------------------------------------------------------------


@pytest.mark.slow
def test_self_test_of_the_source_install_passes_and_prints_only_check_lines() -> None:
    done = _station("--self-test", "--self-test-port", "sim")
    lines = (done.stdout + done.stderr).splitlines()
    assert all(LINE_RE.match(line) for line in lines), lines
    assert [line[5:].split(":")[0] for line in lines] == CHECK_NAMES
    failed = [line for line in lines if line.startswith(FAIL)]
    assert failed == []
    assert done.returncode == 0
    statuses = {line[5:].split(":")[0]: line[:4].strip() for line in lines}
    assert statuses["nvs-encode"] == OK
    assert statuses["window"] == (OK if HAS_QT else SKIP)
    assert statuses["label"] == (OK if HAS_QT else SKIP)
    assert statuses["lot"] == (OK if HAS_QT else SKIP)
    assert statuses["flash"] == OK
    assert statuses["device-host"] == OK


@pytest.mark.slow
def test_one_failing_check_makes_the_exit_code_non_zero() -> None:
    # inject a failure: a wrong known answer for the AES-XTS check
    inject = (
        "import station.selftest as s; s._XTS_CIPHER = bytes(32); "
        "from station.cli import main; raise SystemExit(main())"
    )
    done = _station("--self-test", code=inject)
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    failed = [line for line in lines if line.startswith(FAIL)]
    assert len(failed) == 1
    assert failed[0].startswith("FAIL aes-xts: RuntimeError: IEEE 1619 vector 10 gave 1c3b3a10")
    assert all(LINE_RE.match(line) for line in lines)
    assert done.stderr == ""


def test_run_returns_one_when_a_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise ValueError("injected")

    monkeypatch.setattr(
        selftest,
        "default_checks",
        lambda port=None: [Check("ok-one", lambda: "fine"), Check("broken", broken)],
    )
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert selftest.run(argparse.Namespace(self_test_port=None)) == 1
    assert out.getvalue().splitlines()[0] == "ok   ok-one: fine"
    assert out.getvalue().splitlines()[1].startswith("FAIL broken: ValueError: injected (")


def test_run_returns_zero_when_checks_pass_or_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    def skipped() -> str:
        raise Skip("not here")

    monkeypatch.setattr(
        selftest, "default_checks", lambda port=None: [Check("a", lambda: ""), Check("b", skipped)]
    )
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert selftest.run(argparse.Namespace(self_test_port=None)) == 0
    assert out.getvalue().splitlines() == ["ok   a", "skip b: not here"]


# --- the runner ---------------------------------------------------------------------------------


def test_each_check_prints_one_line_even_with_a_multi_line_error() -> None:
    def broken() -> str:
        raise RuntimeError("first line\nsecond line")

    out = io.StringIO()
    results = run_checks([Check("broken", broken), Check("fine", lambda: "a\nb")], out)
    assert [r.status for r in results] == [FAIL, OK]
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("FAIL broken: RuntimeError: first line | second line (")
    assert lines[1] == "ok   fine: a | b"
    assert all(LINE_RE.match(line) for line in lines)


def test_a_quiet_check_that_prints_fails_and_its_output_is_kept_off_the_terminal(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def chatty() -> str:
        print("from python")
        os.write(2, b"from a C library\n")
        return "done"

    out = io.StringIO()
    results = run_checks([Check("chatty", chatty), Check("noisy", chatty, quiet=False)], out)
    assert results[0] == CheckResult(
        "chatty", FAIL, "unexpected output: from python | from a C library"
    )
    assert results[1] == CheckResult("noisy", OK, "done")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_failing_check_keeps_what_it_printed_as_part_of_the_reason() -> None:
    def broken() -> str:
        print("A fatal error occurred: Failed to connect")
        raise RuntimeError("no device")

    [result] = run_checks([Check("flash", broken)], io.StringIO())
    assert result.status == FAIL
    assert result.detail.startswith("RuntimeError: no device (test_selftest.py:")
    assert result.detail.endswith("; it printed: A fatal error occurred: Failed to connect")


def test_the_flash_check_is_skipped_without_a_port() -> None:
    checks = {c.name: c for c in selftest.default_checks(None)}
    out = io.StringIO()
    [result] = run_checks([checks["flash"]], out)
    assert result.status == SKIP
    assert "--self-test-port" in result.detail


def test_the_postgresql_check_names_the_driver_or_skips_without_a_client_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = {c.name: c for c in selftest.default_checks(None)}
    [found] = run_checks([checks["postgresql"]], io.StringIO())
    assert found.status == OK and "libpq" in found.detail
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    [missing] = run_checks([checks["postgresql"]], io.StringIO())
    assert missing.status == SKIP and "libpq5" in missing.detail


def test_a_frozen_bundle_without_station_metadata_fails_the_version_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(station, "__version__", "0.0.0+src")
    checks = {c.name: c for c in selftest.default_checks(None, frozen=True)}
    [result] = run_checks([checks["version"]], io.StringIO())
    assert result.status == FAIL
    assert "copy_metadata" in result.detail
    checks = {c.name: c for c in selftest.default_checks(None, frozen=False)}
    [result] = run_checks([checks["version"]], io.StringIO())
    assert result.status == OK


def test_nvs_and_crypto_checks_pass_in_process() -> None:
    checks = {c.name: c for c in selftest.default_checks(None)}
    results = run_checks(
        [checks["aes-xts"], checks["nvs-encode"], checks["esptool-stubs"]], io.StringIO()
    )
    assert [r.status for r in results] == [OK, OK, OK], results


def test_a_missing_stub_flasher_folder_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from esptool.loader import StubFlasher

    monkeypatch.setattr(StubFlasher, "STUB_DIR", str(tmp_path / "nowhere"))
    checks = {c.name: c for c in selftest.default_checks(None)}
    [result] = run_checks([checks["esptool-stubs"]], io.StringIO())
    assert result.status == FAIL
    assert "stub flasher folder missing" in result.detail


def test_offscreen_is_chosen_only_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    assert selftest._use_offscreen_if_headless() == "offscreen"
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("DISPLAY", ":0")
    assert selftest._use_offscreen_if_headless() == "native"
    assert "QT_QPA_PLATFORM" not in os.environ


@pytest.mark.skipif(not HAS_QT, reason="PySide6 not installed (headless test run)")
def test_qt_warnings_are_collected_not_printed(qapp: object) -> None:
    from PySide6.QtCore import qWarning

    with selftest._QtMessages() as messages:
        qWarning("something is wrong")
        qWarning("This plugin does not support propagateSizeHints()")
    assert messages.problems == ["something is wrong"]
    with pytest.raises(RuntimeError, match="Qt said: something is wrong"):
        messages.raise_if_any()


def test_build_script_checks_the_same_line_format() -> None:
    script = (ROOT / "installer" / "build.sh").read_text(encoding="utf-8")
    assert f"'{LINE_RE.pattern}'" in script


# --- the frozen program's entry point ------------------------------------------------------------


def _entry() -> ModuleType:
    spec = importlib.util.spec_from_file_location("station_entry", ROOT / "installer" / "entry.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entry_runs_allowed_modules_like_python_dash_m(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = _entry()
    monkeypatch.setattr(sys, "argv", ["station", "-m", "station", "--version"])
    assert entry.main() == 0
    assert capsys.readouterr().out == f"station {station.__version__}\n"


def test_entry_refuses_other_modules(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = _entry()
    for module in ("http.server", "stationery", "esp32_mock_bootloaderx.cli"):
        monkeypatch.setattr(sys, "argv", ["station", "-m", module])
        assert entry.main() == 2
        assert "not available in this build" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_QT, reason="PySide6 not installed (headless test run)")
def test_missing_resources_fail_the_resources_check(
    qapp: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from PySide6.QtWidgets import QApplication

    import station.gui.app as app_module
    import station.gui.resources as resources

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = (app.styleSheet(), app.applicationName(), app.organizationName(), app.windowIcon())
    monkeypatch.setattr(resources, "resources_dir", lambda: tmp_path)
    monkeypatch.setattr(app_module, "resources_dir", lambda: tmp_path)  # imported by name there
    try:
        checks = {c.name: c for c in selftest.default_checks(None)}
        [result] = run_checks([checks["resources"]], io.StringIO())
    finally:
        app.setStyleSheet(before[0])
        app.setApplicationName(before[1])
        app.setOrganizationName(before[2])
        app.setWindowIcon(before[3])
    assert result.status == FAIL
    assert (
        f"missing from {tmp_path}: the style sheet, the window icon, the sample lot "
        "(station --demo)"
    ) in result.detail


def test_entry_without_a_console_gets_null_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _entry()
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    monkeypatch.setattr(sys, "argv", ["station-gui", "-m", "station", "--version"])
    assert entry.main() == 0
    assert sys.stdout is not None and sys.stderr is not None
    sys.stdout.close()
    sys.stderr.close()


def test_entry_runs_a_module_its_package_already_imported_without_a_runpy_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # station.selftest is in sys.modules (this file imports it), so runpy would warn; pytest
    # turns that warning into an error, and a frozen station would print it to operators
    entry = _entry()
    monkeypatch.setattr(sys, "argv", ["station", "-m", "station.selftest"])
    assert entry.main() == 0
    assert capsys.readouterr() == ("", "")


def test_entry_runs_the_simulated_device_launcher(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = _entry()  # SimulatedDevice starts "sys.executable -m station.flashing.mockserve"
    monkeypatch.setattr(sys, "argv", ["station", "-m", "station.flashing.mockserve", "--help"])
    assert entry.main() == 0
    assert "--mac" in capsys.readouterr().out


# --- first start on a plain desktop: Qt's X11 plugin and its system libraries --------------------


def test_debian_package_names_follow_the_soname() -> None:
    assert selftest.debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert selftest.debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert selftest.debian_package("libxcb-render-util.so.0") == "libxcb-render-util0"
    assert selftest.debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert selftest.debian_package("libX11-xcb.so.1") == "libx11-xcb1"
    assert selftest.debian_package("libglib-2.0.so.0") == "libglib2.0-0"


def _fake_qt(tmp_path: Path) -> str:
    plugins = tmp_path / "Qt" / "plugins"
    (plugins / "platforms").mkdir(parents=True)
    (plugins / "platforms" / "libqxcb.so").write_bytes(b"")
    (tmp_path / "Qt" / "lib").mkdir()
    (tmp_path / "Qt" / "lib" / "libQt6XcbQpa.so.6").write_bytes(b"")
    return str(plugins)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 libraries: Linux only")
def test_missing_x11_libraries_of_the_plugin_and_its_qt_library_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins = _fake_qt(tmp_path)
    said = {
        "libqxcb.so": ["libxcb-icccm.so.4"],
        "libQt6XcbQpa.so.6": ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"],
    }
    monkeypatch.setattr(selftest, "_ldd_missing", lambda path: said[os.path.basename(path)])
    missing = selftest.missing_xcb_libraries(plugins)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    advice = selftest.xcb_advice(missing)
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1" in advice


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 libraries: Linux only")
def test_the_display_check_fails_with_a_display_and_names_the_packages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(selftest, "missing_xcb_libraries", lambda: ["libxcb-keysyms.so.1"])
    check = next(c for c in selftest.default_checks() if c.name == "display")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    [result] = run_checks([check], io.StringIO())
    if not HAS_QT:
        assert result.status == SKIP
        return
    assert result.status == FAIL
    assert "libxcb-keysyms.so.1" in result.detail and "apt install libxcb-keysyms1" in result.detail
    monkeypatch.delenv("DISPLAY")  # headless: not a failure, but the names are still given
    [result] = run_checks([check], io.StringIO())
    assert result.status == SKIP and "libxcb-keysyms1" in result.detail


def test_simulated_devices_without_the_gui_extra_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "esp32_mock_bootloader" else real(name, *a),
    )
    checks = selftest.default_checks("sim")
    wanted = [c for c in checks if c.name in ("nvs-encode", "flash")]
    results = run_checks(wanted, io.StringIO())
    assert results[1].status == FAIL
    assert "pip install 'station[gui]'" in results[1].detail
