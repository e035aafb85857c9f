"""Helpers of installer/station.spec, kept here so that the tests can run them without a build.

Plain Python, no PyInstaller imports: what to bundle from resources/, which binaries to drop
with the unused Qt plugins, the Windows version resource and the Windows icon.
"""

from __future__ import annotations

import fnmatch
import os
import re
import struct
from collections.abc import Callable, Iterable

# resources/ goes in as it is in the checkout, without what a run or the docs leave there
RESOURCES_SKIP_DIRS = frozenset({"screenshots", "__pycache__"})  # screenshots are for the README
RESOURCES_SKIP_FILES = (
    "*.station.db",
    "*.station.db-*",
    "*.station.db.*",  # rolling backups
    "*.station.lot",  # a lot's marker holds its fingerprint key: never shipped
    "*.station.journal",
    ".gitignore",
    "*.pyc",
)

# Qt plugins that the Qt hooks collect but the station never loads, each with libraries that only
# it needs: the virtual keyboard input method (Qt Quick and QML), the PDF image format (Qt Pdf),
# and the GTK3 platform theme (pango, cairo, gdk-pixbuf ... copied from the build machine, but not
# GTK itself: on a GNOME desktop the plugin would load the system's GTK next to our copies of its
# libraries). The window is Qt Widgets with its own style sheet.
UNUSED_PLUGINS = (
    "qtvirtualkeyboardplugin",
    "qpdf",
    "qgtk3",
    # platforms for embedded boards without a desktop (EGLFS, framebuffer, VNC, Vulkan display)
    # and their input plugins: a factory PC runs X11 or Wayland (xcb, wayland), tests offscreen
    "qeglfs",
    "qeglfs-emu-integration",
    "qeglfs-kms-egldevice-integration",
    "qeglfs-x11-integration",
    "qlinuxfb",
    "qvnc",
    "qvkkhrdisplay",
    "qminimalegl",
    "qevdevkeyboardplugin",
    "qevdevmouseplugin",
    "qevdevtabletplugin",
    "qevdevtouchplugin",
    "qtuiotouchplugin",
    # image formats the station never reads (its icons and labels are PNG and SVG)
    "qtiff",
    "qwebp",
    "qicns",
    "qtga",
    "qwbmp",
    # network reachability backends: the station never asks QNetworkInformation
    "qconnman",
    "qglib",
    "qnetworkmanager",
)
# Libraries the bundle leaves to the PC, with every library that only they brought in: those of
# the packages docs/installing.md asks a Linux PC for (the desktop's own libraries, which the
# self-test's display check names when one is missing). Copies from the build machine would
# only stand beside the desktop's (a bundled fontconfig can misread a newer system's fontconfig
# files) and miss its security updates. libcups.so.2 (Qt's CUPS print plugin) brought GnuTLS,
# Kerberos, Avahi, p11-kit, nettle …: 9 MB; without CUPS the plugin finds no printer either way.
SYSTEM_LIBRARIES = frozenset(
    {
        "libcups.so.2",  # libcups2
        "libdbus-1.so.3",  # libdbus-1-3 (with libsystemd, libgcrypt, lz4, zstd …)
        "libglib-2.0.so.0",  # libglib2.0-0
        "libgthread-2.0.so.0",
        "libfontconfig.so.1",  # libfontconfig1 (with expat)
        "libfreetype.so.6",  # libfreetype6, which libfontconfig1 needs (with libpng, brotli)
        "libX11.so.6",  # libx11-6 (with libXau, libXdmcp, libbsd)
        "libX11-xcb.so.1",  # libx11-xcb1
        # Python's own OpenSSL (libssl3): its ssl module matters only to psycopg over the
        # system's libpq, which needs libssl3 itself; the station's keys come from cryptography,
        # which carries its own OpenSSL
        "libssl.so.3",
        "libcrypto.so.3",
        "libxkbcommon.so.0",  # libxkbcommon0
        "libxkbcommon-x11.so.0",  # libxkbcommon-x11-0
        "libxcb-cursor.so.0",  # libxcb-cursor0 … as Qt's X11 plugin asks
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
        "libxcb-image.so.0",
        "libxcb-render-util.so.0",
        "libxcb-shape.so.0",
        "libxcb-xkb.so.1",
    }
)
# Qt's own translations (qtbase_de.qm …): the window's texts are the station's, in English


def is_qt_translation(dest: str) -> bool:
    """True for a file of Qt's own translations (the station does not load them)."""
    dest = dest.replace("\\", "/")
    return dest.startswith("PySide6/") and "/translations/" in dest


def resources_datas(root: str) -> list[tuple[str, str]]:
    """(source file, destination folder) pairs for ``root``/resources; SystemExit if empty."""
    found = []
    top = os.path.join(root, "resources")
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in RESOURCES_SKIP_DIRS)
        dest = os.path.normpath(os.path.join("resources", os.path.relpath(folder, top)))
        for name in sorted(files):
            if not any(fnmatch.fnmatch(name, pattern) for pattern in RESOURCES_SKIP_FILES):
                found.append((os.path.join(folder, name), dest))
    if not found:
        raise SystemExit(f"station.spec: no files in {top}")
    return found


def binary_key(dest: str, windows: bool) -> str:
    """How the bundle names a binary: its file name (case-insensitive on Windows)."""
    name = os.path.basename(dest.replace("\\", "/"))
    return name.lower() if windows else name


def is_unused_plugin(dest: str) -> bool:
    """True for a Qt plugin in UNUSED_PLUGINS (``.../plugins/<kind>/[lib]<name>.<so|dll>``)."""
    dest = dest.replace("\\", "/")
    name = os.path.splitext(os.path.basename(dest))[0]
    name = name[3:] if name.startswith("lib") else name
    return "/plugins/" in dest and name in UNUSED_PLUGINS


def unused_binaries(
    binaries: Iterable[str],
    needs: Callable[[str], Iterable[str]],
    unused: Callable[[str], bool],
    from_system: Callable[[str], bool] = lambda key: False,
) -> set[str]:
    """The unused plugins among ``binaries`` and every binary only they need, however indirectly;
    likewise the libraries ``from_system`` leaves to the PC (what links them still loads them,
    from the system).

    ``needs(key)`` names the libraries that ``key`` links against directly, bundled or not
    (an unbundled one, such as libGL, is followed to what it links in turn); a link to a library
    ``from_system`` is not followed. A library that anything else needs stays.
    """
    bundled = set(binaries)

    def closure(keys: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(keys)
        while todo:
            key = todo.pop()
            if key not in seen:
                seen.add(key)
                todo.extend(k for k in needs(key) if not from_system(k))
        return seen

    plugins = {key for key in bundled if unused(key) or from_system(key)}
    candidates = closure(plugins) & bundled
    return candidates - closure(bundled - candidates)


# PySide6's QtCore links ICU, whose data library (libicudata.so.NN) is 32 MB of collation
# rules, legacy codecs, time-zone and locale display names. The station uses none of them: its
# texts are its own, its CSVs are read by Python, its sorting is QString's, its times Python's.
# Case mapping and the other Unicode properties Qt asks ICU for are built into libicuuc. The
# bundle carries ICU's "stubdata" instead: a data library with no items (ICU's own build option),
# so a QCollator would say "Could not create collator" and fall back to plain comparison.
ICU_DATA_RE = re.compile(r"libicudata\.so\.(\d+)")
ICU_STUB_SOURCE = """/* ICU common data with no items, as ICU's source/stubdata/stubdata.cpp */
typedef struct {
    unsigned short headerSize;
    unsigned char magic1, magic2;
    struct {
        unsigned short size, reservedWord;
        unsigned char isBigEndian, charsetFamily, sizeofUChar, reservedByte;
        unsigned char dataFormat[4], formatVersion[4], dataVersion[4];
    } info;
    char padding[8];
    unsigned int count, reserved;
    struct { unsigned int nameOffset, dataOffset; } toc[1];
} IcuDataHeader;

__attribute__((visibility("default"), aligned(16)))
const IcuDataHeader %(symbol)s = {
    32, 0xda, 0x27,
    {20, 0, %(big_endian)d, 0, 2, 0, {0x54, 0x6f, 0x43, 0x50}, {1, 0, 0, 0}, {0, 0, 0, 0}},
    {0}, 0, 0, {{0, 0}}
};
"""


def elf_needed(path: str) -> list[str] | None:
    """The libraries a 64-bit little-endian ELF file names itself (DT_NEEDED), in order; None
    for other files. PyInstaller's get_imports() answers with ldd, which lists every library
    loaded, however indirectly: leaving one library to the system needs the direct links."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELFCLASS64, little-endian
        return None
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, size) of each PT_LOAD
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return []
    needed: list[int] = []
    strtab = None
    for at in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, at)
        if tag == 0:  # DT_NULL
            break
        if tag == 1:  # DT_NEEDED: an offset into the string table
            needed.append(value)
        elif tag == 5:  # DT_STRTAB: the string table's address once loaded
            strtab = next((o + value - v for v, o, n in loads if v <= value < v + n), None)
    if strtab is None:
        return []
    return [data[strtab + n : data.index(b"\0", strtab + n)].decode() for n in needed]


def icu_data_version(dest: str) -> str | None:
    """The ICU version of a bundled ICU data library (``.../libicudata.so.73`` -> ``73``)."""
    found = ICU_DATA_RE.fullmatch(os.path.basename(dest.replace("\\", "/")))
    return found.group(1) if found else None


def icu_stub_source(version: str, big_endian: bool = False) -> str:
    """The C source of an ICU data library of this version with no items."""
    return ICU_STUB_SOURCE % {"symbol": f"icudt{version}_dat", "big_endian": int(big_endian)}


def build_icu_stub(version: str, folder: str, compiler: str = "cc") -> str:
    """Compile the stub data library into ``folder``; its path. CalledProcessError or
    OSError (no compiler) when it cannot be built."""
    import subprocess
    import sys

    os.makedirs(folder, exist_ok=True)
    source = os.path.join(folder, f"icudt{version}_stub.c")
    with open(source, "w", encoding="ascii") as out:
        out.write(icu_stub_source(version, sys.byteorder == "big"))
    lib = os.path.join(folder, f"libicudata.so.{version}")
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-nostdlib",  # data only: no C library needed
         f"-Wl,-soname,libicudata.so.{version}", "-o", lib, source],
        check=True,
    )  # fmt: skip
    return lib


def windows_version(version: str) -> tuple[int, int, int, int]:
    """The four numbers Windows wants for a file version: "0.1.0rc2" -> (0, 1, 0, 0)."""
    numbers = []
    for part in version.split(".")[:3]:
        digits = re.match(r"\d*", part)
        numbers.append(int(digits.group(0)) if digits and digits.group(0) else 0)
    while len(numbers) < 3:
        numbers.append(0)
    return (numbers[0], numbers[1], numbers[2], 0)


def version_info_text(version: str) -> str:
    """PyInstaller's text form of a Windows version resource (what Explorer shows as properties)."""
    numbers = windows_version(version)
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={numbers}, prodvers={numbers}),
  kids=[
    StringFileInfo([StringTable('040904B0', [
      StringStruct('CompanyName', 'station'),
      StringStruct('FileDescription', 'Factory flashing station for Espressif chips'),
      StringStruct('FileVersion', {version!r}),
      StringStruct('InternalName', 'station'),
      StringStruct('OriginalFilename', 'station.exe'),
      StringStruct('ProductName', 'Station'),
      StringStruct('ProductVersion', {version!r})])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def png_to_ico(png: bytes) -> bytes:
    """A Windows .ico holding one PNG image (the form Windows Vista and later read).

    PyInstaller and Inno Setup both want an .ico; resources/ has the window's PNG icon.
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    if not (0 < width <= 256 and 0 < height <= 256):
        raise ValueError(f"an icon is at most 256 x 256 pixels, not {width} x {height}")
    header = struct.pack("<HHH", 0, 1, 1)  # reserved, type 1 = icon, one image
    entry = struct.pack(
        "<BBBBHHII",
        width % 256,  # 0 means 256
        height % 256,
        0,  # no palette
        0,
        1,  # colour planes
        32,  # bits per pixel
        len(png),
        len(header) + 16,  # the image follows this one directory entry
    )
    return header + entry + png
