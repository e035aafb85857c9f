"""esp-matter-mfg-tool 1.0.29, the oracle, in a virtual environment of its own.

It pins its own dependency versions (cryptography, esptool, an older esp-idf-nvs-partition-gen),
so it cannot live in the station's environment. The environment is made once per machine under
``~/.cache/station-test-peers/`` (or ``$STATION_TEST_PEERS``) from PyPI and reused; a test
session that cannot make it skips the oracle tests, saying why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

VERSION = "1.0.29"
PACKAGE = f"esp-matter-mfg-tool=={VERSION}"


def cache_dir() -> Path:
    base = os.environ.get("STATION_TEST_PEERS")
    root = Path(base) if base else Path.home() / ".cache" / "station-test-peers"
    return root / f"esp-matter-mfg-tool-{VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"


def _exe(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def ensure_oracle() -> Path:
    """The tool's executable; made on first use. RuntimeError (with pip's words) if it cannot be.

    Two test sessions at once: the second waits on a file lock (POSIX) for the first to finish.
    """
    env = cache_dir()
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f"{env.name}.lock", "a+b") as lock:
        try:
            import fcntl

            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        except ImportError:  # Windows: no flock; sessions there run one at a time
            pass
        return _make(env)


def _make(env: Path) -> Path:
    tool = _exe(env, "esp-matter-mfg-tool")
    ready = env / ".station-ready"
    if ready.exists() and tool.exists():
        return tool
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    result = subprocess.run(
        [
            str(_exe(env, "python")),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            PACKAGE,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0 or not tool.exists():
        raise RuntimeError(f"pip install {PACKAGE} failed: {result.stderr.strip()[-500:]}")
    ready.write_text(PACKAGE + "\n")
    return tool


def run_oracle(tool: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs the tool in ``cwd`` (it writes esp_secure_cert_data/ into the current folder)."""
    return subprocess.run(
        [str(tool), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
