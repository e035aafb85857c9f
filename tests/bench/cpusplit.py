"""Benchmarks' honest split: the simulated chips on their own core(s), the station on the others,
and the CPU each process used per unit.

A simulated chip is a Python process standing in for hardware that brings its own CPU. On a
machine short of cores the chips compete with the station, and a stall of the window cannot be
told apart from the chips' load. ``--split`` pins the station (this process and, by inheritance,
the device host it starts) to the first half of the cores and the chips to the rest; on 2 cores
that is core 0 for the station and core 1 for the chips.

CPU is counted per process (psutil ``cpu_times``: user + system), so it stays meaningful on a
busy machine where wall time does not.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil


def available_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(psutil.Process().cpu_affinity() or range(psutil.cpu_count() or 1))


def set_affinity(pid: int, cpus: Sequence[int]) -> None:
    """Pin ``pid`` (0: this process) to ``cpus``; Linux by sched_setaffinity, else psutil."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cpus)
    else:
        psutil.Process(pid or os.getpid()).cpu_affinity(list(cpus))


@dataclass(frozen=True)
class Split:
    station: tuple[int, ...]
    chips: tuple[int, ...]

    def describe(self) -> str:
        return f"station on CPU {list(self.station)}, chips on CPU {list(self.chips)}"


def plan(chip_cpus: int | None = None) -> Split:
    """The station gets the first cores, the chips the last ``chip_cpus`` (default: half)."""
    cpus = available_cpus()
    if len(cpus) < 2:
        raise SystemExit("--split needs at least 2 CPUs")
    n = chip_cpus or len(cpus) // 2
    n = max(1, min(n, len(cpus) - 1))
    return Split(tuple(cpus[:-n]), tuple(cpus[-n:]))


def pin_station(split: Split | None) -> None:
    """Pin this process (before it starts the device host: children inherit the mask)."""
    if split is None:
        return
    set_affinity(0, split.station)
    if os.path.isdir("/proc/self/task"):  # Linux sets one thread's mask: set every thread's
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), split.station)
            except OSError:
                pass


def pin_chips(split: Split | None, pids: Iterable[int | None]) -> None:
    if split is None:
        return
    for pid in pids:
        if pid is None:
            continue
        for proc in _tree(pid):
            try:
                set_affinity(proc.pid, split.chips)
            except (OSError, psutil.Error):
                pass  # already gone


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu(procs: Iterable[psutil.Process]) -> tuple[float, float]:
    """User and system CPU seconds of ``procs``."""
    user = system = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        user += t.user
        system += t.system
    return user, system


@dataclass
class CpuMeter:
    """CPU seconds per named group of processes between :meth:`start` and :meth:`stop`."""

    groups: dict[str, list[int]] = field(default_factory=dict)
    _start: dict[str, tuple[float, float]] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)
    system: dict[str, float] = field(default_factory=dict)  # the part of ``used`` in the kernel

    def _procs(self, name: str) -> list[psutil.Process]:
        procs = []
        for pid in self.groups[name]:  # the processes themselves: the chips are the window's
            try:  # children, so a whole tree would count them twice
                procs.append(psutil.Process(pid))
            except psutil.Error:
                pass
        return procs

    def start(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._start = {name: _cpu(self._procs(name)) for name in groups}

    def stop(self) -> None:
        """Call before the processes end (a process that is gone counts nothing)."""
        for name in self.groups:
            user, system = _cpu(self._procs(name))
            self.system[name] = system - self._start[name][1]
            self.used[name] = user - self._start[name][0] + self.system[name]

    def report(self, units: int) -> str:
        if not self.used:
            return "no CPU measured"
        parts = []
        per = max(units, 1)
        for name, secs in self.used.items():
            kernel = self.system.get(name, 0.0) / per * 1000
            parts.append(
                f"{name} {secs:6.2f} s = {secs / per * 1000:5.0f} ms/unit ({kernel:.0f} system)"
            )
        station = sum(v for k, v in self.used.items() if k in ("window", "host", "engine"))
        parts.append(f"station {station / per * 1000:.0f} ms/unit")
        return "CPU " + " · ".join(parts) + f"  ({units} units)"


def load() -> str:
    one, five, fifteen = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def start_chips(n: int, *, nice: int = 0, batch: int = 8, timeout: float = 120.0) -> list[Any]:
    """``n`` simulated chips, started ``batch`` at a time with a patient timeout: 32 Python
    processes starting at once on a loaded 2-core machine take longer than the 20 s default."""
    from station.flashing import start_simulated_devices
    from station.flashing.simulated import SimulatedDevice

    devices: list[Any] = []
    try:
        while len(devices) < n:
            k = min(batch, n - len(devices))
            if timeout <= 20.0:
                devices += start_simulated_devices(k, nice=nice)
                continue
            started: list[Any] = [None] * k
            errors: list[BaseException] = []

            def one(
                i: int, started: list[Any] = started, errors: list[BaseException] = errors
            ) -> None:
                try:
                    started[i] = SimulatedDevice(start_timeout=timeout, nice=nice)
                except BaseException as err:
                    errors.append(err)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            devices += [d for d in started if d is not None]
            if errors:
                raise errors[0]
    except BaseException:
        for d in devices:
            d.stop()
        raise
    return devices
