"""``station --self-test``: a headless check that this installation (or frozen bundle) works.

Each check prints one line, ``ok   NAME: detail``, ``FAIL NAME: what went wrong`` or
``skip NAME: why``; the exit code is 1 if any check failed. Whatever a check prints itself
(esptool, a child process, a C library) is captured, and a check that prints anything fails with
that output as its reason; Qt's warnings are collected the same way. A healthy run prints only
these lines, and the release build's smoke test fails on any other line.

This module counts as core (it must work without PySide6 for a headless install), so Qt and the
window are reached through :func:`importlib.import_module`, never a static import.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import os
import pkgutil
import platform
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

OK, FAIL, SKIP = "ok", "FAIL", "skip"

# What a self-test line looks like; build.sh --smoke rejects any other line of output.
LINE_RE = re.compile(r"^(ok  |FAIL|skip) [a-z0-9-]+(: .*)?$")

# IEEE 1619-2007 Annex B, vector 10 (XTS-AES-256, data unit 0xff): the first two blocks.
_XTS_KEY = bytes.fromhex(
    "2718281828459045235360287471352662497757247093699959574966967627"
    "3141592653589793238462643383279502884197169399375105820974944592"
)
_XTS_TWEAK = bytes([0xFF]) + bytes(15)
_XTS_PLAIN = bytes(range(32))
_XTS_CIPHER = bytes.fromhex("1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b")

# The offset the flash check writes its test image to: the default "nvs" partition of ESP-IDF.
TEST_IMAGE_OFFSET = 0x9000
TEST_IMAGE_SIZE = 0x3000

# Qt messages that are expected on the offscreen platform and say nothing about the bundle.
QT_IGNORED = (
    # offscreen platform plugin: it has no real screen to report and says so at start-up
    "This plugin does not support propagateSizeHints",
)

# Modules the bundle needs that are only ever imported by name at run time (PyInstaller cannot
# see them), plus the ones whose absence would only show deep inside a production run.
THIRD_PARTY = (
    "esptool",
    "esptool.cmds",
    "esptool.loader",
    "esptool.targets",
    "serial",
    "serial.tools.list_ports",
    "serial.urlhandler.protocol_socket",
    "serial.urlhandler.protocol_rfc2217",
    "serial.urlhandler.protocol_loop",
    "serial.urlhandler.protocol_spy",
    "serial.urlhandler.protocol_hwgrep",
    "cryptography.hazmat.primitives.ciphers",
    "sqlite3",
)
GUI_MODULES = (
    "PySide6.QtCore",
    "PySide6.QtGui",
    "PySide6.QtWidgets",
    "PySide6.QtPrintSupport",
    "PySide6.QtSerialPort",
    "PySide6.QtCharts",
    "segno",
)
# Serial URL schemes the station accepts for --port (esptool resolves them through pyserial).
SERIAL_URLS = ("socket://127.0.0.1:9", "rfc2217://127.0.0.1:9", "loop://", "spy://loop://")


class Skip(Exception):
    """Raised by a check that does not apply to this installation; the line says why."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: its name, ok / FAIL / skip, and one line of detail."""

    name: str
    status: str
    detail: str = ""

    @property
    def line(self) -> str:
        """The line the self-test prints for this check."""
        text = f"{self.status:<4} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True)
class Check:
    """A named check: a function that returns a short detail, raises Skip, or raises on failure."""

    name: str
    func: Callable[[], str]
    # False for checks whose own output is expected noise (esptool, a simulated device's process)
    quiet: bool = True


@dataclass
class _Context:
    """What the checks share: the options and what earlier checks found."""

    port: str | None = None
    frozen: bool = False
    gui_expected: bool = True
    image: bytes = b""
    notes: dict[str, Any] = field(default_factory=dict)


def _one_line(text: str, limit: int = 300) -> str:
    text = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(err: BaseException) -> str:
    message = _one_line(str(err)) or "(no message)"
    return f"{type(err).__name__}: {message}"


@contextlib.contextmanager
def _captured() -> Iterator[io.StringIO]:
    """Capture everything written to stdout/stderr, from Python and at the file-descriptor level.

    Child processes and C libraries write to fds 1 and 2 directly; Python code writes to
    sys.stdout / sys.stderr, which may not be those fds (pytest, an embedding GUI). Both end up in
    the returned buffer once the block has finished.
    """
    buffer = io.StringIO()
    saved: list[tuple[int, int]] = []
    sink = tempfile.TemporaryFile()
    try:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
            except OSError:  # no such fd (a windowed program): nothing to capture there
                pass
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        sink.seek(0)
        buffer.write(sink.read().decode("utf-8", "replace"))
        sink.close()


def run_checks(checks: Sequence[Check], out: TextIO) -> list[CheckResult]:
    """Run the checks in order, print one line for each to ``out``, return the results."""
    results = []
    for check in checks:
        output = io.StringIO()
        try:
            with _captured() as output:
                detail = check.func()
            stray = output.getvalue().strip()
            if check.quiet and stray:
                result = CheckResult(check.name, FAIL, f"unexpected output: {_one_line(stray)}")
            else:
                result = CheckResult(check.name, OK, _one_line(detail))
        except Skip as skip:
            result = CheckResult(check.name, SKIP, _one_line(str(skip)))
        except Exception as err:  # a failed check is a result, never a traceback
            frames = [
                f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith("<")
            ]
            last = frames[-1] if frames else None
            place = f" ({os.path.basename(last.filename)}:{last.lineno})" if last else ""
            printed = output.getvalue().strip()
            said = f"; it printed: {_one_line(printed, 200)}" if printed else ""
            result = CheckResult(check.name, FAIL, _describe(err) + place + said)
        results.append(result)
        print(result.line, file=out, flush=True)
    return results


# --- the checks -------------------------------------------------------------------------------


def _check_version(ctx: _Context) -> str:
    from importlib.metadata import PackageNotFoundError, version

    import station

    try:
        esptool_version = version("esptool")
    except PackageNotFoundError:
        raise RuntimeError("no package metadata for esptool (copy_metadata missing)") from None
    if station.__version__.endswith("+src") and ctx.frozen:
        raise RuntimeError("no package metadata for station (copy_metadata missing)")
    kind = "frozen" if ctx.frozen else "source"
    return (
        f"station {station.__version__} ({kind}), esptool {esptool_version}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    )


def _station_modules(include_gui: bool) -> list[str]:
    import station

    names = ["station"]
    # a package that fails to import is still listed (and its import fails below, with the reason)
    for info in pkgutil.walk_packages(station.__path__, "station.", onerror=lambda _name: None):
        name = info.name
        if name in ("station.__main__", "station.selftest"):
            continue
        if not include_gui and name.startswith(("station.gui", "station.labels")):
            continue
        names.append(name)
    return names


def _check_imports(ctx: _Context) -> str:
    gui = ctx.gui_expected or importlib.util.find_spec("PySide6") is not None
    wanted = [*THIRD_PARTY, *(GUI_MODULES if gui else ())]
    missing = []
    for name in wanted:
        try:
            importlib.import_module(name)
        except Exception as err:
            missing.append(f"{name} ({_describe(err)})")
    # station's own modules last: a missing third-party module is the likelier cause of both
    own = _station_modules(include_gui=gui)
    for name in own:
        try:
            importlib.import_module(name)
        except Exception as err:
            missing.append(f"{name} ({_describe(err)})")
    if missing:
        raise RuntimeError("cannot import " + "; ".join(missing))
    ctx.notes["gui"] = gui
    extra = "" if gui else " (no PySide6: headless install)"
    return f"{len(own)} station modules, {len(wanted)} others{extra}"


def _check_esptool_stubs(ctx: _Context) -> str:
    from esptool.loader import StubFlasher
    from esptool.targets import CHIP_DEFS

    stub_dir = StubFlasher.STUB_DIR
    if not os.path.isdir(stub_dir):
        raise RuntimeError(f"stub flasher folder missing: {stub_dir}")
    files = sorted(
        f"{sub}/{name}"
        for sub in os.listdir(stub_dir)
        if os.path.isdir(os.path.join(stub_dir, sub))
        for name in os.listdir(os.path.join(stub_dir, sub))
        if name.endswith(".json")
    )
    if not files:
        raise RuntimeError(f"no stub flasher JSON files in {stub_dir}")
    loaded = []
    for chip in ("esp32", "esp32c3", "esp32s3"):
        stub = StubFlasher(CHIP_DEFS[chip])
        if not stub.text or not stub.entry:
            raise RuntimeError(f"the {chip} stub flasher is empty")
        loaded.append(chip)
    return f"{len(files)} stub flasher files, loaded {', '.join(loaded)}"


def _check_serial_urls(ctx: _Context) -> str:
    import serial

    schemes = []
    for url in SERIAL_URLS:
        port = serial.serial_for_url(url, do_not_open=True)
        if port.is_open:
            raise RuntimeError(f"{url} opened although do_not_open was given")
        schemes.append(url.split("://")[0])
    return f"pyserial {serial.VERSION}: {', '.join(schemes)}"


def _check_postgresql(ctx: _Context) -> str:
    from station.ledger.connection import why_no_psycopg

    try:
        import psycopg
    except ImportError as err:
        raise Skip(
            f"no PostgreSQL client ({why_no_psycopg(err)}): only a line's shared ledger needs "
            "it (libpq5 on Debian)"
        ) from None
    libpq = psycopg.pq.version()
    return (
        f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__} implementation), "
        f"libpq {libpq // 10000}.{libpq % 10000}"
    )


def _check_aes_xts(ctx: _Context) -> str:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(_XTS_KEY), modes.XTS(_XTS_TWEAK))
    encryptor = cipher.encryptor()
    got = encryptor.update(_XTS_PLAIN) + encryptor.finalize()
    if got != _XTS_CIPHER:
        raise RuntimeError(f"IEEE 1619 vector 10 gave {got.hex()[:16]}…, not 1c3b3a10…")
    decryptor = cipher.decryptor()
    if decryptor.update(got) + decryptor.finalize() != _XTS_PLAIN:
        raise RuntimeError("XTS decryption does not give the plaintext back")
    return "XTS-AES-256 matches IEEE 1619 vector 10"


def _sample_entries() -> tuple[list[Any], dict[str, dict[str, object]]]:
    from station.nvs import NvsEntry

    rows = [
        ("selftest", "namespace", "", ""),
        ("u8", "data", "u8", "200"),
        ("i32", "data", "i32", "-123456"),
        ("serial_no", "data", "string", "SELFTEST-0001"),
        ("blob", "data", "hex2bin", "deadbeef00ff"),
    ]
    entries = [
        NvsEntry(key, kind, enc, value, file="self-test", line=n)
        for n, (key, kind, enc, value) in enumerate(rows, start=1)
    ]
    expected: dict[str, dict[str, object]] = {
        "selftest": {
            "u8": 200,
            "i32": -123456,
            "serial_no": "SELFTEST-0001",
            "blob": bytes.fromhex("deadbeef00ff"),
        }
    }
    return entries, expected


def _check_nvs(ctx: _Context) -> str:
    from station.nvs import (
        decode_image,
        encode_image,
        generate_keys,
        key_partition_image,
        parse_key_partition,
    )

    entries, expected = _sample_entries()
    image = encode_image(entries, TEST_IMAGE_SIZE)
    if len(image) != TEST_IMAGE_SIZE:
        raise RuntimeError(f"image is {len(image)} bytes, not {TEST_IMAGE_SIZE}")
    decoded = decode_image(image)
    if decoded.errors:
        raise RuntimeError(f"decoding found errors: {'; '.join(decoded.errors)}")
    if decoded.as_dict() != expected:
        raise RuntimeError(f"decoded {decoded.as_dict()!r}, expected {expected!r}")
    keys = generate_keys()
    if parse_key_partition(key_partition_image(keys), "self-test") != keys:
        raise RuntimeError("the key partition does not give the keys back")
    encrypted = encode_image(entries, TEST_IMAGE_SIZE, keys=keys)
    # page headers and entry state bitmaps stay plain; the entries from offset 64 are encrypted
    if encrypted[64:128] == image[64:128]:
        raise RuntimeError("the encrypted image has the same entries as the plain one")
    back = decode_image(encrypted, keys=keys)
    if back.errors or back.as_dict() != expected:
        raise RuntimeError("the encrypted image does not decode to the same values")
    ctx.image = image
    n = len(expected["selftest"])
    return f"{n} values in {TEST_IMAGE_SIZE:#x} bytes, plain and encrypted, decoded back"


def _flash(port: str, image: bytes) -> str:
    """Write the test image, verify it, then read it back in a new session and decode it."""
    from station.flashing import FlashJob, WriteRegion, run_job
    from station.flashing.host import DeviceHost
    from station.nvs import decode_image

    job = FlashJob(
        port=port,
        regions=(WriteRegion(TEST_IMAGE_OFFSET, image, "self-test nvs"),),
        verify=True,
    )
    result = run_job(job)
    if not result.ok:
        raise RuntimeError(f"{port}: {result.reason}")
    # read back as the window does: a session in the device host (a child process)
    with DeviceHost() as host, host.open_device(port) as session:
        back = session.read(TEST_IMAGE_OFFSET, len(image))
    _, expected = _sample_entries()
    if decode_image(back).as_dict() != expected:
        raise RuntimeError(
            f"{port}: what the device host read back in a new session is not the test image"
        )
    return (
        f"{result.chip} {result.mac} on {port}: {len(image)} bytes at {TEST_IMAGE_OFFSET:#x} "
        "written, verified, read back through the device host and decoded"
    )


def _check_device_host(ctx: _Context) -> str:
    """The window flashes through a child process (``-m station.flashing.host``; in the frozen
    program, ``station -m ...``): it must start from this installation and answer."""
    from station.flashing.host import DeviceHost

    started = time.perf_counter()
    with DeviceHost(start_timeout=30.0) as host:
        host.wait_ready()
        pid = host.pid
    return f"started (pid {pid}) and answered in {time.perf_counter() - started:.2f} s"


def _check_flash(ctx: _Context) -> str:
    if ctx.port is None:
        raise Skip("no device given (--self-test-port PORT, or 'sim' for a simulated one)")
    if not ctx.image:
        raise RuntimeError("no test image (the nvs-encode check failed)")
    if ctx.port != "sim":
        return _flash(ctx.port, ctx.image)
    if importlib.util.find_spec("esp32_mock_bootloader") is None:
        raise RuntimeError(
            "simulated devices need esp32-mock-bootloader (the GUI extra): "
            "pip install 'station[gui]'"
        )
    from station.flashing import SimulatedDevice

    with SimulatedDevice() as device:
        return "simulated " + _flash(device.port, ctx.image)


# Debian/Ubuntu package of a library whose name does not follow the soname rule below.
_DEBIAN_PACKAGES = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libOpenGL.so.0": "libopengl0",
}


def debian_package(library: str) -> str:
    """The Debian/Ubuntu package that ships ``library`` (a soname such as libxcb-icccm.so.4):
    Debian names library packages after the soname, lower case, with a hyphen before the
    version when the name ends in a digit (libxkbcommon-x11.so.0 -> libxkbcommon-x11-0)."""
    if library in _DEBIAN_PACKAGES:
        return _DEBIAN_PACKAGES[library]
    name, _, version = library.partition(".so.")
    name = name.lower()
    version = version.split(".")[0]
    return f"{name}-{version}" if name[-1:].isdigit() else f"{name}{version}"


def _ldd_missing(path: str) -> list[str]:
    """The shared libraries ``path`` needs that the dynamic loader cannot find (via ldd)."""
    import subprocess

    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        out = subprocess.run(
            [ldd, path], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split()[0] for line in out.splitlines() if "not found" in line]


def missing_xcb_libraries(plugins_dir: str | None = None) -> list[str]:
    """System libraries Qt's X11 platform plugin (xcb) needs and this Linux machine lacks;
    without them the window aborts at start ("could not load the Qt platform plugin xcb").
    Empty elsewhere, or when the plugin is not installed. Loads no Qt platform plugin."""
    if not sys.platform.startswith("linux"):
        return []
    if plugins_dir is None:
        try:
            qtcore = importlib.import_module("PySide6.QtCore")
        except ImportError:
            return []
        plugins_dir = qtcore.QLibraryInfo.path(qtcore.QLibraryInfo.LibraryPath.PluginsPath)
    plugin = os.path.join(plugins_dir, "platforms", "libqxcb.so")
    if not os.path.isfile(plugin):
        return []
    missing = _ldd_missing(plugin)
    # the plugin's own Qt library (PySide6/Qt/lib next to PySide6/Qt/plugins) needs them too
    qpa = os.path.join(os.path.dirname(plugins_dir), "lib", "libQt6XcbQpa.so.6")
    if os.path.isfile(qpa):
        missing += _ldd_missing(qpa)
    return sorted(set(missing))


def xcb_advice(missing: Sequence[str]) -> str:
    """One line naming the missing libraries and the command that installs them."""
    packages = " ".join(sorted({debian_package(lib) for lib in missing}))
    return (
        f"the window cannot start on X11: missing {', '.join(missing)} "
        f"(Debian/Ubuntu: sudo apt install {packages})"
    )


def _check_display(ctx: _Context) -> str:
    """Qt's X11 plugin can load (its system libraries are installed). Fails only where a display
    is in use; on a headless machine the missing libraries are named in a skip line."""
    if not ctx.notes.get("gui", ctx.gui_expected):
        raise Skip("PySide6 is not installed (headless install)")
    if not sys.platform.startswith("linux"):
        raise Skip(f"X11 libraries are Linux only ({sys.platform}: Qt brings its own plugin)")
    missing = missing_xcb_libraries()
    if missing and (os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "xcb"):
        raise RuntimeError(xcb_advice(missing))
    if missing:
        raise Skip("no display here; " + xcb_advice(missing))
    return "the X11 platform plugin has all its libraries"


def _use_offscreen_if_headless() -> str:
    """Choose the offscreen Qt platform when there is no display; return the platform name."""
    if "QT_QPA_PLATFORM" not in os.environ and sys.platform.startswith("linux"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
    return os.environ.get("QT_QPA_PLATFORM", "native")


class _QtMessages:
    """Collects Qt's warnings while installed, instead of letting Qt print them."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._previous: Any = None
        self._qtcore: Any = None

    def __enter__(self) -> _QtMessages:
        self._qtcore = importlib.import_module("PySide6.QtCore")
        self._previous = self._qtcore.qInstallMessageHandler(self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._qtcore.qInstallMessageHandler(self._previous)

    def _handle(self, kind: Any, context: Any, message: str) -> None:
        levels = self._qtcore.QtMsgType
        if kind in (levels.QtDebugMsg, levels.QtInfoMsg):
            return
        if any(ignored in message for ignored in QT_IGNORED):
            return
        self.problems.append(message)

    def raise_if_any(self) -> None:
        if self.problems:
            raise RuntimeError("Qt said: " + " | ".join(self.problems))


def _application() -> Any:
    widgets = importlib.import_module("PySide6.QtWidgets")
    return widgets.QApplication.instance() or widgets.QApplication([sys.argv[0] or "station"])


def _plugins(kind: str) -> list[str]:
    qtcore = importlib.import_module("PySide6.QtCore")
    root = qtcore.QLibraryInfo.path(qtcore.QLibraryInfo.LibraryPath.PluginsPath)
    folder = os.path.join(root, kind)
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _check_qt(ctx: _Context) -> str:
    if not ctx.notes.get("gui", ctx.gui_expected):
        raise Skip("PySide6 is not installed (headless install: no window, no labels)")
    qt_platform = _use_offscreen_if_headless()
    with _QtMessages() as messages:
        _application()
        printsupport = importlib.import_module("PySide6.QtPrintSupport")
        serialport = importlib.import_module("PySide6.QtSerialPort")
        printers = printsupport.QPrinterInfo.availablePrinterNames()
        ports = serialport.QSerialPortInfo.availablePorts()
        segno = importlib.import_module("segno")
        qr = segno.make("X-HM://0023ISYWY1234", error="m")
        png = io.BytesIO()
        qr.save(png, kind="png", scale=2)
        # the window's sounds: this platform's player, else the system beep (not a failure)
        player = importlib.import_module("station.gui.sound_player").find_player()
        sounds = f"sounds via {player!r}" if player is not None else "system beep for sounds"
    messages.raise_if_any()
    if not _plugins("printsupport") and not sys.platform.startswith("darwin"):
        raise RuntimeError("no Qt print support plugin (plugins/printsupport is empty)")
    if not _plugins("platforms"):
        raise RuntimeError("no Qt platform plugins (plugins/platforms is empty)")
    qtcore = importlib.import_module("PySide6.QtCore")
    return (
        f"Qt {qtcore.qVersion()} on {qt_platform}, {len(printers)} printers, "
        f"{len(ports)} serial ports, QR {len(png.getvalue())} bytes, {sounds}"
    )


def _main_window(settings_file: str) -> Any:
    """The station's main window as the program builds it, with throw-away settings.

    Closing the window saves its layout; a settings file of its own keeps the self-test from
    touching the operator's settings.
    """
    qtcore = importlib.import_module("PySide6.QtCore")
    window_module = importlib.import_module("station.gui.window")
    settings_module = importlib.import_module("station.gui.settings")
    qsettings = qtcore.QSettings(settings_file, qtcore.QSettings.Format.IniFormat)
    return window_module.MainWindow(settings_module.StationSettings(qsettings))


def _check_resources(ctx: _Context) -> str:
    if not ctx.notes.get("gui", ctx.gui_expected):
        raise Skip("PySide6 is not installed (headless install)")
    resources = importlib.import_module("station.gui.resources")
    app_module = importlib.import_module("station.gui.app")
    folder = resources.resources_dir()
    if not folder.is_dir():
        raise RuntimeError(f"resources folder missing: {folder}")
    _use_offscreen_if_headless()
    with _QtMessages() as messages:
        app_module.make_application()  # loads the style sheet and the icon, as the window does
        missing = []
        if not resources.style_sheet():
            missing.append("the style sheet")
        if resources.app_icon().isNull():
            missing.append("the window icon")
        if not list(app_module.sample_lot_dir().glob("*.toml")):
            missing.append("the sample lot (station --demo)")
    messages.raise_if_any()
    if missing:
        raise RuntimeError(f"missing from {folder}: {', '.join(missing)}")
    count = sum(1 for path in folder.rglob("*") if path.is_file())
    return f"{count} files in {folder}"


def _check_lot(ctx: _Context) -> str:
    """Open a copy of the sample lot (``station --demo``'s) as production would, ledger and all."""
    if not ctx.notes.get("gui", ctx.gui_expected):
        raise Skip("PySide6 is not installed (headless install: no sample lot)")
    app_module = importlib.import_module("station.gui.app")
    from station.nvs import decode_image
    from station.production import open_lot

    source = app_module.sample_lot_dir()
    # ignore_cleanup_errors here and below: on Windows a file Qt or SQLite has not quite let go
    # of yet must not turn a passing check into a failure
    with tempfile.TemporaryDirectory(prefix="station-selftest-", ignore_cleanup_errors=True) as tmp:
        folder = os.path.join(tmp, "lot")
        shutil.copytree(source, folder)
        lot_files = sorted(name for name in os.listdir(folder) if name.endswith(".toml"))
        if not lot_files:
            raise RuntimeError(f"no lot file in {source}")
        with open_lot(os.path.join(folder, lot_files[0])) as lot:
            rows = lot.mfg.rows
            imported = lot.ledger.count()
            image = lot.image_for(rows[0])
            factory = lot.factory
            keys = sum(1 for line in lot.mfg.config if line.type != "namespace")
    if imported != len(rows):
        raise RuntimeError(f"the ledger holds {imported} rows, the lot has {len(rows)}")
    decoded = decode_image(image)
    found = sum(len(values) for values in decoded.as_dict().values())
    if decoded.errors or found != keys:
        raise RuntimeError(f"the first row's image decodes to {found} of {keys} keys")
    return (
        f"sample lot: {len(rows)} rows validated and imported into a ledger, first image "
        f"{len(image)} bytes for {factory.name} at {factory.offset:#x}"
    )


def _check_label(ctx: _Context) -> str:
    if not ctx.notes.get("gui", ctx.gui_expected):
        raise Skip("PySide6 is not installed (headless install: no labels)")
    _use_offscreen_if_headless()
    labels = importlib.import_module("station.labels")
    template = labels.template_from_dict(
        {
            "width_mm": 50,
            "height_mm": 25,
            "lines": ["{serial_no}", "MAC {mac}"],
            "qr": "{serial_no}",
            "code128": "{serial_no}",
        },
        file="self-test",
    )
    fields = {"serial_no": "SELFTEST-0001", "mac": "24:0a:c4:00:00:01"}
    with (
        tempfile.TemporaryDirectory(prefix="station-selftest-", ignore_cleanup_errors=True) as tmp,
        _QtMessages() as messages,
    ):
        _application()
        render = importlib.import_module("station.gui.label_render")
        png = render.render_png(template, fields)
        pdf_path = os.path.join(tmp, "label.pdf")
        render.render_pdf(template, fields, pdf_path)
        with open(pdf_path, "rb") as pdf_file:
            pdf = pdf_file.read()
    messages.raise_if_any()
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise RuntimeError("the label PNG is not a PNG")
    if not pdf.startswith(b"%PDF-"):
        raise RuntimeError("the label PDF is not a PDF")
    return f"50 x 25 mm label with QR and Code 128: PNG {len(png)} bytes, PDF {len(pdf)} bytes"


def _check_window(ctx: _Context) -> str:
    if not ctx.notes.get("gui", ctx.gui_expected):
        raise Skip("PySide6 is not installed (headless install)")
    _use_offscreen_if_headless()
    qtcore = importlib.import_module("PySide6.QtCore")
    app_module = importlib.import_module("station.gui.app")
    with (
        tempfile.TemporaryDirectory(prefix="station-selftest-", ignore_cleanup_errors=True) as tmp,
        _QtMessages() as messages,
    ):
        app = app_module.make_application()
        window = _main_window(os.path.join(tmp, "station.ini"))
        window.setAttribute(qtcore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        window.show()
        app.processEvents()
        title = window.windowTitle()
        closed = window.close()
        window.deleteLater()
        app.sendPostedEvents(None, qtcore.QEvent.Type.DeferredDelete)
        app.processEvents()
    messages.raise_if_any()
    if not closed:
        raise RuntimeError("the main window refused to close")
    return f"main window {title!r} opened and closed"


def default_checks(port: str | None = None, *, frozen: bool | None = None) -> list[Check]:
    """The checks ``station --self-test`` runs, in order."""
    is_frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    # A frozen bundle always contains the GUI; a source install may be headless.
    gui = is_frozen or importlib.util.find_spec("PySide6") is not None
    ctx = _Context(port=port, frozen=is_frozen, gui_expected=gui)
    return [
        Check("version", lambda: _check_version(ctx)),
        Check("imports", lambda: _check_imports(ctx)),
        Check("esptool-stubs", lambda: _check_esptool_stubs(ctx)),
        Check("serial-urls", lambda: _check_serial_urls(ctx)),
        Check("postgresql", lambda: _check_postgresql(ctx)),
        Check("aes-xts", lambda: _check_aes_xts(ctx)),
        Check("nvs-encode", lambda: _check_nvs(ctx)),
        Check("device-host", lambda: _check_device_host(ctx)),
        Check("flash", lambda: _check_flash(ctx)),
        Check("display", lambda: _check_display(ctx)),
        Check("qt", lambda: _check_qt(ctx)),
        Check("resources", lambda: _check_resources(ctx)),
        Check("lot", lambda: _check_lot(ctx)),
        Check("label", lambda: _check_label(ctx)),
        Check("window", lambda: _check_window(ctx)),
    ]


def run(args: argparse.Namespace) -> int:
    """Handler of ``station --self-test [--self-test-port P]``: 0 if every check passed."""
    results = run_checks(default_checks(getattr(args, "self_test_port", None)), sys.stdout)
    return 1 if any(r.status == FAIL for r in results) else 0
