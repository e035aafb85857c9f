"""Only station.gui imports Qt: an AST scan of every other module.

The core (everything but gui and the command line on top) also never imports the gui layer: the
labels layer gets its Qt renderer injected by a front end. (The import-linter contracts in
pyproject.toml say the same for every layer; this scan runs without import-linter.)"""

from __future__ import annotations

import ast
from pathlib import Path

import station

PACKAGE = Path(station.__file__).parent
QT_NAMES = {"PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6"}
FRONT_ENDS = {"gui", "cli.py"}  # above the core: they may import the gui


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _core_modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in FRONT_ENDS]


def _outside_gui() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "gui"]


def test_core_modules_exist() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in _core_modules()}
    assert "errors.py" in names and "labels/service.py" in names


def test_core_never_imports_qt() -> None:
    offenders = []
    for path in _core_modules():
        for line, name in _imports(path):
            if name.startswith("station.gui"):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}")
    assert offenders == []


def test_only_gui_imports_qt() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}"
        for path in _outside_gui()
        for line, name in _imports(path)
        if name.split(".")[0] in QT_NAMES
    ]
    assert offenders == []


def test_scanner_sees_a_qt_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import os\nfrom PySide6.QtCore import QObject\n", encoding="utf-8")
    assert (2, "PySide6.QtCore") in _imports(sample)
