"""Entry point of the frozen station (PyInstaller): the ``station`` command.

Besides ``station ARGS``, the frozen program answers ``station -m MODULE ARGS`` for a few modules,
like ``python -m``: simulated devices (esp32-mock-bootloader) start as
``sys.executable -m station.flashing.mockserve ...``, and in a bundle ``sys.executable`` is this
program, not a Python interpreter.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import sys
import warnings

# Only these packages may be run with -m; the bundle is not a general Python interpreter.
RUNNABLE = ("esp32_mock_bootloader", "station")


def _runnable(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in RUNNABLE)


def _run_module(argv: list[str]) -> int:
    if not argv or not _runnable(argv[0]):
        print(
            f"station: -m {argv[0] if argv else ''}: not available in this build", file=sys.stderr
        )
        return 2
    sys.argv = [argv[0], *argv[1:]]
    # "-m package.module" where the package itself imports that module: runpy warns about the
    # double import on stderr. Harmless, but not for operators, and a parent that reads the
    # child's first lines (SimulatedDevice waits for a ready line) must not see it.
    warnings.filterwarnings(
        "ignore", r".*found in sys\.modules after import of package", RuntimeWarning
    )
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0


def main() -> int:
    # station-gui.exe (Windows, no console) has no stdout/stderr; libraries that write to them
    # (esptool, warnings) must not fail there
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))
    multiprocessing.freeze_support()  # a no-op unless multiprocessing started this process
    if sys.argv[1:2] == ["-m"]:
        return _run_module(sys.argv[2:])

    from station.cli import main as station_main

    return station_main()


if __name__ == "__main__":
    sys.exit(main())
