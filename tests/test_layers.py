"""The core never imports Qt: an AST scan of every module outside station.gui / station.labels."""

from __future__ import annotations

import ast
from pathlib import Path

import station

PACKAGE = Path(station.__file__).parent
QT_ALLOWED = {"gui", "labels"}  # the only layers that may import PySide6


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
    return [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in QT_ALLOWED]


def test_core_modules_exist() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in _core_modules()}
    assert "errors.py" in names and "cli.py" in names


def test_core_never_imports_qt() -> None:
    offenders = []
    for path in _core_modules():
        for line, name in _imports(path):
            top = name.split(".")[0]
            if top in {"PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6"} or name.startswith(
                ("station.gui", "station.labels")
            ):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}")
    assert offenders == []


def test_scanner_sees_a_qt_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import os\nfrom PySide6.QtCore import QObject\n", encoding="utf-8")
    assert (2, "PySide6.QtCore") in _imports(sample)
