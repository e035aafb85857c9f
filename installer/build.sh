#!/usr/bin/env bash
# Build the one-folder station bundle (dist/station/) with PyInstaller, on Linux.
#
#   bash installer/build.sh            build, print the bundle size and self-test start time
#   bash installer/build.sh --smoke    also run the frozen `station --self-test` (with a simulated
#                                      device) and fail on a non-zero exit or any line of output
#                                      that is not a self-test line
#
# Python: the active virtual environment if it has station, PySide6 and psycopg (CI, a developer's
# .venv); otherwise build/venv is created and station[gui,postgres] installed there. PyInstaller is
# installed into that environment at the pinned version below.
set -euo pipefail

PYINSTALLER_VERSION=6.22.3
HOOKS_CONTRIB_VERSION=2026.9

SMOKE=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
ROOT=$PWD
DIST=$ROOT/dist
WORK=$ROOT/build/pyinstaller

has_station() {
  "$1" -c 'import importlib.metadata as m, importlib.util as u
m.version("station"); assert u.find_spec("PySide6") and u.find_spec("segno") and u.find_spec("psycopg")' 2>/dev/null
}

if [ -n "${VIRTUAL_ENV:-}" ] && has_station "$VIRTUAL_ENV/bin/python"; then
  PY=$VIRTUAL_ENV/bin/python
else
  PY=$ROOT/build/venv/bin/python
  if ! has_station "$PY"; then
    echo "build.sh: creating build/venv with station[gui,postgres]"
    python3 -m venv "$ROOT/build/venv"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e "$ROOT[gui,postgres]"
  fi
fi
"$PY" -m pip install -q "pyinstaller==$PYINSTALLER_VERSION" \
  "pyinstaller-hooks-contrib==$HOOKS_CONTRIB_VERSION"

echo "build.sh: PyInstaller $PYINSTALLER_VERSION with $("$PY" -c 'import sys; print(sys.version.split()[0])') from $PY"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" "$ROOT/installer/station.spec"
echo "build.sh: built dist/station in $(( $(date +%s) - start )) s"

EXE=$DIST/station/station
echo "build.sh: bundle size $(du -sh "$DIST/station" | cut -f1) ($(find "$DIST/station" -type f | wc -l) files)"

# Start time: `station --version` (start and exit) and the whole `station --self-test` (no
# device), 3 runs each, frozen and from source.
"$PY" - "$EXE" <<'EOF'
import os, statistics, subprocess, sys, time

env = dict(os.environ)
env.pop("QT_QPA_PLATFORM", None)  # the self-test chooses offscreen itself when there is no display

def timed(cmd):
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, timeout=120)
        runs.append(time.perf_counter() - start)
    return f"median {statistics.median(runs):.2f} s (runs: {', '.join(f'{r:.2f}' for r in runs)})"

source = [sys.executable, "-m", "station"]
for args in (["--version"], ["--self-test"]):
    print(f"build.sh: `station {args[0]}` frozen:      {timed([sys.argv[1], *args])}")
    print(f"build.sh: `station {args[0]}` from source: {timed([*source, *args])}")
EOF

if [ "$SMOKE" = 1 ]; then
  echo "build.sh: smoke test: dist/station/station --self-test --self-test-port sim"
  out=$(mktemp)
  rc=0
  env -u QT_QPA_PLATFORM timeout 300 "$EXE" --self-test --self-test-port sim >"$out" 2>&1 || rc=$?
  cat "$out"
  # the same grammar as station.selftest.LINE_RE
  unexpected=$(grep -Ecv '^(ok  |FAIL|skip) [a-z0-9-]+(: .*)?$' "$out" || true)
  expected_version="station $("$PY" -c 'import importlib.metadata as m; print(m.version("station"))')"
  got_version=$("$EXE" --version 2>&1 || true)
  rm -f "$out"
  if [ "$rc" != 0 ]; then
    echo "build.sh: smoke test FAILED: the frozen self-test exited with $rc" >&2
    exit 1
  fi
  if [ "$unexpected" != 0 ]; then
    echo "build.sh: smoke test FAILED: $unexpected line(s) of unexpected output" >&2
    exit 1
  fi
  if [ "$got_version" != "$expected_version" ]; then
    echo "build.sh: smoke test FAILED: --version says '$got_version', not '$expected_version'" >&2
    exit 1
  fi
  echo "build.sh: smoke test passed"
fi
