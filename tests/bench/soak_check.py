"""What the CI soak asserts (tests/production/test_soak.py, tests/gui/test_soak_window.py):
counts of descriptors, threads and child processes, never timings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

# what may differ between the end of a 16-unit run and the end of a 300-unit one: a
# descriptor or thread that a late swap or a restarted device host holds for a moment
SLACK = {
    "fds": 3,
    "threads": 2,
    "py_threads": 2,
    "children": 0,
    "host_fds": 2,
    "host_threads": 1,
    "host_children": 0,
}


def load() -> ModuleType:
    """tests/bench/soak.py as a module (tests/bench is not a package pytest collects)."""
    name = "station_soak_driver"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("soak.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def leaks(short: dict[str, Any], long: dict[str, Any]) -> list[str]:
    """What the long run's final state holds beyond the short run's (both idle at the end)."""
    a, b = short["samples"][-1], long["samples"][-1]
    found = [
        f"{key}: {a[key]} after {short['rows']} units, {b[key]} after {long['rows']}"
        for key, slack in SLACK.items()
        if a.get(key) is not None and b.get(key) is not None and b[key] > a[key] + slack
    ]
    if long.get("threads_never_ended"):
        found.append(f"port threads that never ended: {long['threads_never_ended']}")
    if b["children"] != 1:
        found.append(f"the station has {b['children']} child processes; only the device host")
    return found


def unaccounted(result: dict[str, Any]) -> list[str]:
    """Rows neither done nor failed with a reason, devices that disagree with the ledger."""
    led = result["ledger"]
    states = led["states"]
    problems = list(led["problems"])
    if states.get("done", 0) + states.get("failed", 0) != result["rows"]:
        problems.append(f"not every row is done or failed: {states}")
    if led["devices_read_back"] < states.get("done", 0):
        problems.append(f"{led['devices_read_back']} devices read back, {states} in the ledger")
    return problems
