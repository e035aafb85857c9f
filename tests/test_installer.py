"""The installer's helpers (installer/spec_helpers.py) and scripts, without building a bundle.

The build itself is checked by `bash installer/build.sh --smoke` in CI (.ci/run).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "installer"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, INSTALLER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _load("spec_helpers")
HAS_QT = importlib.util.find_spec("PySide6") is not None


def test_resources_are_bundled_without_screenshots_ledgers_or_ignore_files(tmp_path: Path) -> None:
    res = tmp_path / "resources"
    for name in (
        "gui/station.qss",
        "gui/icons/station.png",
        "sample_lot/lot.toml",
        "sample_lot/.gitignore",
        "sample_lot/L1.station.db",
        "sample_lot/L1.station.db-wal",
        "screenshots/window.png",
    ):
        (res / name).parent.mkdir(parents=True, exist_ok=True)
        (res / name).write_text("x", encoding="utf-8")
    found = {
        (Path(src).relative_to(res).as_posix(), Path(dest).as_posix())
        for src, dest in helpers.resources_datas(str(tmp_path))
    }
    assert found == {
        ("gui/station.qss", "resources/gui"),
        ("gui/icons/station.png", "resources/gui/icons"),
        ("sample_lot/lot.toml", "resources/sample_lot"),
    }


def test_an_empty_resources_folder_stops_the_build(tmp_path: Path) -> None:
    (tmp_path / "resources").mkdir()
    with pytest.raises(SystemExit, match="no files in"):
        helpers.resources_datas(str(tmp_path))


def test_the_repository_resources_have_what_the_window_needs() -> None:
    dests = {
        (Path(src).name, Path(dest).as_posix()) for src, dest in helpers.resources_datas(str(ROOT))
    }
    assert ("station.qss", "resources/gui") in dests
    assert ("station.png", "resources/gui/icons") in dests
    assert ("lot.toml", "resources/sample_lot") in dests


@pytest.mark.parametrize(
    ("dest", "unused"),
    [
        ("PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so", True),
        ("PySide6\\plugins\\platforminputcontexts\\qtvirtualkeyboardplugin.dll", True),
        ("PySide6/Qt/plugins/imageformats/libqpdf.so", True),
        ("PySide6\\plugins\\imageformats\\qpdf.dll", True),
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", True),
        ("PySide6/Qt/plugins/platformthemes/libqxdgdesktopportal.so", False),
        ("PySide6/Qt/plugins/imageformats/libqjpeg.so", False),
        ("PySide6/Qt/plugins/printsupport/libcupsprintersupport.so", False),
        ("PySide6/Qt/lib/libQt6Pdf.so.6", False),  # a library, dropped only if nothing needs it
        ("PySide6/Qt/plugins/platforms/libqeglfs.so", True),  # embedded boards, not a line PC
        ("PySide6/Qt/plugins/platforms/libqvnc.so", True),
        ("PySide6/Qt/plugins/generic/libqevdevtouchplugin.so", True),
        ("PySide6/Qt/plugins/platforms/libqxcb.so", False),  # X11 desktops
        ("PySide6/Qt/plugins/platforms/libqwayland.so", False),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", False),  # the self-test without display
        ("PySide6\\plugins\\platforms\\qwindows.dll", False),
        ("PySide6/Qt/plugins/iconengines/libqsvgicon.so", False),
        ("libqpdf.so", False),  # not under plugins/
    ],
)
def test_unused_qt_plugins_are_recognised(dest: str, unused: bool) -> None:
    assert helpers.is_unused_plugin(dest) is unused


@pytest.mark.parametrize(
    ("dest", "dropped"),
    [
        ("PySide6/Qt/translations/qtbase_de.qm", True),
        ("PySide6\\translations\\qtbase_de.qm", True),  # where Windows wheels keep them
        ("PySide6/Qt/lib/libQt6Core.so.6", False),
        ("resources/gui/station.qss", False),
    ],
)
def test_qt_translations_are_left_out(dest: str, dropped: bool) -> None:
    assert helpers.is_qt_translation(dest) is dropped


def test_libraries_only_unused_plugins_need_are_dropped_and_shared_ones_stay() -> None:
    graph = {
        "QtGui.abi3.so": ["libQt6Gui.so.6"],  # a Python extension module: what the program loads
        "libqgtk3.so": ["libgtk-3.so.0", "libpango.so", "libQt6Gui.so.6", "libc.so.6"],
        "libpango.so": ["libharfbuzz.so", "libglib.so"],
        "libharfbuzz.so": ["libglib.so"],
        "libqvk.so": ["libQt6VirtualKeyboard.so.6"],
        "libQt6VirtualKeyboard.so.6": ["libQt6Quick.so.6"],
        "libQt6Quick.so.6": ["libQt6Qml.so.6"],
        "libQt6Qml.so.6": ["libQt6Core.so.6"],
        "libffmpegmediaplugin.so": ["libQt6Quick.so.6", "libavcodec.so"],  # kept: Quick stays
        "libQt6Gui.so.6": ["libQt6Core.so.6", "libglib.so"],
        "libQt6Core.so.6": ["libglib.so"],
        "libglib.so": [],
        "libavcodec.so": [],
    }
    dropped = helpers.unused_binaries(
        graph, lambda key: graph.get(key, []), lambda key: key in {"libqgtk3.so", "libqvk.so"}
    )
    assert dropped == {
        "libqgtk3.so",
        "libpango.so",
        "libharfbuzz.so",
        "libqvk.so",
        "libQt6VirtualKeyboard.so.6",
    }


def test_a_library_left_to_the_system_goes_with_what_only_it_needs() -> None:
    graph = {
        "libcupsprintersupport.so": ["libcups.so.2", "libQt6PrintSupport.so.6"],  # stays
        "libQt6PrintSupport.so.6": [],
        "libcups.so.2": ["libgnutls.so.30", "libgcrypt.so.20", "libc.so.6"],
        "libgnutls.so.30": ["libnettle.so.8"],
        "libnettle.so.8": [],
        "libdbus-1.so.3": ["libsystemd.so.0"],
        "libsystemd.so.0": ["libgcrypt.so.20"],
        "libgcrypt.so.20": [],  # stays: libsystemd needs it too
    }
    dropped = helpers.unused_binaries(
        graph,
        lambda key: graph.get(key, []),
        lambda key: False,
        lambda key: key == "libcups.so.2",
    )
    assert dropped == {"libcups.so.2", "libgnutls.so.30", "libnettle.so.8"}
    assert "libcups.so.2" in helpers.SYSTEM_LIBRARIES


def test_a_library_an_unbundled_one_needs_stays() -> None:
    """libGL comes from the PC, but what it links in turn from the bundle is still needed."""
    graph = {
        "libqxcb.so": ["libGL.so.1"],
        "libGL.so.1": ["libX11.so.6"],  # not bundled
        "libqgtk3.so": ["libX11.so.6", "libgtk.so"],
        "libX11.so.6": [],
        "libgtk.so": [],
    }
    bundled = ["libqxcb.so", "libqgtk3.so", "libX11.so.6", "libgtk.so"]
    dropped = helpers.unused_binaries(
        bundled, lambda key: graph.get(key, []), lambda key: key == "libqgtk3.so"
    )
    assert dropped == {"libqgtk3.so", "libgtk.so"}


def test_elf_needed_lists_a_librarys_direct_links() -> None:
    library = Path(sys.executable).resolve()
    needed = helpers.elf_needed(str(library))
    if sys.platform != "linux":
        pytest.skip("ELF files on Linux only")
    assert needed is not None and any(name.startswith("libc.so") for name in needed)
    ldd = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=False)
    listed = {line.split()[0] for line in ldd.stdout.splitlines() if "=>" in line}
    assert set(needed) <= listed  # direct links: a subset of everything ldd loads
    assert helpers.elf_needed(str(ROOT / "README.md")) is None


def test_nothing_is_dropped_without_unused_plugins() -> None:
    graph = {"a.so": ["b.so"], "b.so": []}
    assert helpers.unused_binaries(graph, lambda key: graph[key], lambda key: False) == set()


def test_binary_names_are_case_insensitive_on_windows_only() -> None:
    assert helpers.binary_key("PySide6\\Qt6Core.dll", windows=True) == "qt6core.dll"
    assert helpers.binary_key("PySide6/Qt/lib/libQt6Core.so.6", windows=False) == "libQt6Core.so.6"


@pytest.mark.parametrize(
    ("version", "numbers"),
    [
        ("0.1.0", (0, 1, 0, 0)),
        ("1.2", (1, 2, 0, 0)),
        ("2.0.0rc2", (2, 0, 0, 0)),
        ("1.4.0.dev3+g1234", (1, 4, 0, 0)),
        ("0.0.0+src", (0, 0, 0, 0)),
    ],
)
def test_windows_version_numbers(version: str, numbers: tuple[int, int, int, int]) -> None:
    assert helpers.windows_version(version) == numbers


def test_version_resource_text_carries_the_version() -> None:
    # evaluate it the way PyInstaller does, with recording stand-ins for its classes
    def record(kind: str) -> object:
        return lambda *args, **kwargs: (kind, args, kwargs)

    names = (
        "VSVersionInfo",
        "FixedFileInfo",
        "StringFileInfo",
        "StringTable",
        "StringStruct",
        "VarFileInfo",
        "VarStruct",
    )
    info = eval(helpers.version_info_text("1.2.3rc1"), {n: record(n) for n in names})  # noqa: S307
    kind, _args, kwargs = info
    assert kind == "VSVersionInfo"
    assert kwargs["ffi"][2] == {"filevers": (1, 2, 3, 0), "prodvers": (1, 2, 3, 0)}
    string_file_info = kwargs["kids"][0]
    [table] = string_file_info[1][0]
    strings = dict(struct[1] for struct in table[1][1])
    assert strings["ProductVersion"] == "1.2.3rc1"
    assert strings["FileVersion"] == "1.2.3rc1"
    assert strings["OriginalFilename"] == "station.exe"


def test_the_window_icon_becomes_a_windows_icon() -> None:
    png = (ROOT / "resources" / "gui" / "icons" / "station.png").read_bytes()
    ico = helpers.png_to_ico(png)
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    width, height, _colours, _res, planes, bits, size, offset = struct.unpack(
        "<BBBBHHII", ico[6:22]
    )
    assert (reserved, kind, count) == (0, 1, 1)
    assert (planes, bits, size, offset) == (1, 32, len(png), 22)
    assert ico[offset:] == png
    png_width, png_height = struct.unpack(">II", png[16:24])
    assert (width or 256, height or 256) == (png_width, png_height)


@pytest.mark.skipif(not HAS_QT, reason="PySide6 not installed (headless test run)")
def test_qt_reads_the_windows_icon(qapp: object) -> None:
    from PySide6.QtGui import QImage

    png = (ROOT / "resources" / "gui" / "icons" / "station.png").read_bytes()
    image = QImage.fromData(helpers.png_to_ico(png), "ICO")
    assert not image.isNull()
    assert image.width() == struct.unpack(">I", png[16:20])[0]


def test_png_to_ico_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        helpers.png_to_ico(b"GIF89a" + bytes(30))
    big = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 512, 512)
    with pytest.raises(ValueError, match="at most 256 x 256"):
        helpers.png_to_ico(big + bytes(20))


def test_build_script_is_valid_bash() -> None:
    done = subprocess.run(
        ["bash", "-n", str(INSTALLER / "build.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_build_script_rejects_unknown_options() -> None:
    done = subprocess.run(
        ["bash", str(INSTALLER / "build.sh"), "--fast"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown option --fast" in done.stderr


def test_inno_setup_script_installs_per_user_with_start_menu_entries() -> None:
    iss = (INSTALLER / "station.iss").read_text(encoding="utf-8")
    settings = dict(
        line.split("=", 1)
        for line in iss.splitlines()
        if "=" in line
        and not line.startswith(";")
        and not line.startswith("#")
        and not line.startswith("Name:")
    )
    assert settings["PrivilegesRequired"] == "lowest"
    assert settings["DefaultDirName"] == "{autopf}\\{#AppName}"
    assert settings["AppVersion"] == "{#AppVersion}"
    assert 'GetStringFileInfo(Bundle + "\\station.exe", "ProductVersion")' in iss
    icons = [line for line in iss.splitlines() if line.startswith('Name: "{autoprograms}')]
    assert any('Filename: "{app}\\station-gui.exe"' in line for line in icons)
    assert any("--self-test" in line for line in icons)


def test_spec_names_the_executables_the_installer_ships() -> None:
    spec = (INSTALLER / "station.spec").read_text(encoding="utf-8")
    iss = (INSTALLER / "station.iss").read_text(encoding="utf-8")
    assert 'name="station"' in spec and 'name="station-gui"' in spec
    assert "station-gui.exe" in iss and "station.exe" in iss
    assert 'collect_data_files("esptool")' in spec


@pytest.mark.parametrize(
    ("dest", "version"),
    [
        ("PySide6/Qt/lib/libicudata.so.73", "73"),
        ("libicudata.so.74", "74"),
        ("PySide6/Qt/lib/libicuuc.so.73", None),
        ("PySide6/Qt/lib/libicudata.so", None),
        ("PySide6\\Qt\\bin\\icudt73.dll", None),
    ],
)
def test_the_icu_data_library_is_recognised(dest: str, version: str | None) -> None:
    assert helpers.icu_data_version(dest) == version


def _bundled_icu_data() -> Path | None:
    if not HAS_QT:
        return None
    import PySide6

    found = sorted((Path(PySide6.__file__).parent / "Qt" / "lib").glob("libicudata.so.*"))
    return found[0] if found else None


@pytest.mark.skipif(_bundled_icu_data() is None, reason="no ICU data library in PySide6 here")
def test_qt_runs_on_icus_stub_data(tmp_path: Path) -> None:
    """The bundle's ICU data library is a stub with no items: Qt loads it, the window's text
    renders and cases map (built into libicuuc), and nothing is said on the way."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (the bundle's build then keeps ICU's data whole)")
    real = _bundled_icu_data()
    assert real is not None
    version = helpers.icu_data_version(str(real))
    assert version is not None
    stub = Path(helpers.build_icu_stub(version, str(tmp_path)))
    assert stub.stat().st_size < 64 * 1024 < real.stat().st_size
    probe = """
import os
from PySide6.QtCore import QLocale
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication([])
label = QLabel("Slot 1 ✔ Prüfung – SN0001")
label.show()
app.processEvents()
maps = open(f"/proc/{os.getpid()}/maps").read()
print([line.split()[-1] for line in maps.splitlines() if "libicudata" in line][0])
print(label.sizeHint().width() > 0, QLocale("de_DE").toUpper("straße"))
"""
    env = {**os.environ, "LD_LIBRARY_PATH": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(stub), "True STRASSE"]
    assert done.stderr == ""


def test_key_derivations_work_without_pythons_own_openssl() -> None:
    """The Linux bundle leaves libcrypto to the system: without it hashlib has no PBKDF2 or
    scrypt. The station derives keys with cryptography, and gets hashlib's answers."""
    salt = bytes(range(16))
    code = (
        "import sys; sys.modules['_hashlib'] = None; sys.modules['_ssl'] = None\n"
        "import hashlib; assert not hasattr(hashlib, 'scrypt')\n"
        "from station.matter.spake2p import pbkdf2\n"
        "from station.production.engineer import check_pin, hash_pin\n"
        f"salt = {salt!r}\n"
        "print(pbkdf2(20202021, salt, 1000).hex())\n"
        "stored = hash_pin('471100', salt=salt)\n"
        "assert check_pin('471100', stored) and not check_pin('471101', stored)\n"
        "print(stored.rsplit('$', 1)[1])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    import hashlib

    want_ws = hashlib.pbkdf2_hmac("sha256", (20202021).to_bytes(4, "little"), salt, 1000, 80)
    want_pin = hashlib.scrypt(b"471100", salt=salt, n=2**14, r=8, p=1, dklen=32)
    assert out == [want_ws.hex(), want_pin.hex()]
