"""Cold start of the station window to its first painted frame (run by hand).

    python tests/bench/bench_start.py [--runs 5] [--exe dist/station/station] [LOT]

Starts ``station gui LOT`` (the sample lot by default) with ``STATION_FIRST_FRAME=1``: the
window prints the seconds from process start to its first painted frame and quits. Prints the
median of the runs (and each), the CPU the process used, and the load average. From source by
default; ``--exe`` measures a frozen bundle. Offscreen unless QT_QPA_PLATFORM says otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "bench"))

import cpusplit  # noqa: E402


def once(
    cmd: list[str], env: dict[str, str], cpu: list[float] | None = None
) -> tuple[float, float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:  # the child's CPU (and its children's): steady on a busy machine
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    m = re.search(r"first frame ([0-9.]+) s[^(]*(?:\(CPU ([0-9.]+) s)?", proc.stdout)
    if m is None:
        raise SystemExit(f"no first frame: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
    shown = re.search(r"lot shown ([0-9.]+) s", proc.stdout)  # older builds: the lot came first
    first_cpu = float(m.group(2)) if m.group(2) else float("nan")
    return float(m.group(1)), float(shown.group(1)) if shown else float(m.group(1)), first_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lot", nargs="?", default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exe", default=None, help="a frozen station (else: this Python)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        lot = args.lot
        if lot is None:  # a private copy: the window binds a lot to its ledger
            shutil.copytree(ROOT / "resources" / "sample_lot", Path(tmp) / "lot")
            lot = str(Path(tmp) / "lot" / "lot.toml")
        env = dict(os.environ, STATION_FIRST_FRAME="1", HOME=tmp, XDG_CONFIG_HOME=tmp)
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installation has its bytecode
        exe = [args.exe] if args.exe else [sys.executable, "-m", "station"]
        cmd = [*exe, "gui", lot]
        print(cpusplit.load())
        once(cmd, env)  # warm the file cache
        cpu: list[float] = []
        pairs = [once(cmd, env, cpu) for _ in range(args.runs)]
        runs = [first for first, _, _ in pairs]
        print(
            f"first frame: median {statistics.median(runs):.2f} s "
            f"(runs: {', '.join(f'{r:.2f}' for r in runs)}); lot shown: median "
            f"{statistics.median(s for _, s, _ in pairs):.2f} s; CPU to the first frame: median "
            f"{statistics.median(c for _, _, c in pairs):.2f} s; CPU to the lot shown and exit: "
            f"median {statistics.median(cpu):.2f} s  {' '.join(cmd[:3])}"
        )
        print(cpusplit.load())


if __name__ == "__main__":
    main()
