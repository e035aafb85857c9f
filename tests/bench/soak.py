"""Soak: a shift without a restart. 8 ports, a simulated operator, a lot of N rows.

Run by hand (the machine is shared: nice it)::

    nice -n 10 python tests/bench/soak.py --mode headless --rows 10000
    nice -n 10 python tests/bench/soak.py --mode window --rows 10000

Each port holds one simulated device (esp32-mock-bootloader in its own process, a new MAC each).
As soon as a port's unit passes or fails, the operator takes the device off (the station lets go
of the port), plugs a fresh one in (a new port address in the same slot), reads the old one's
factory region back through a device host of its own and decodes it, then stops it. No pauses.

Faults at a fixed seed, four in each block of 1,000 units: a device that stops answering in the
middle of a write (SIGSTOP), one holding foreign factory data (the station must leave it alone),
one unplugged mid-write (SIGKILL), and a device-host restart (SIGKILL of the station's host).

``headless`` is the ``station run`` path (the Orchestrator, events through its printer) with the
esptool sessions in a device host; ``window`` is the station window offscreen (MainWindow, the
device host, 4 Hz repaint), driven as ``station --demo`` drives it.

Every ``--every`` units it records, per process (the station, its device host, the chips apart):
RSS, open descriptors, threads, children, units per hour; with the window also the live QObjects
and the event-loop gaps. At the end: the slope of each per 1,000 units after warm-up, the
ledger's final state, and whether ledger and devices agree. Figures are printed (and written as
JSON with ``--json``), never asserted here: ``tests/production/test_soak.py`` runs a short soak
in CI and checks the counts.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import os
import queue
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "resources" / "sample_lot"
FAULTS = ("hang", "foreign", "unplug", "host")
SIMULATED_NICE = 10  # as the demo: real chips bring their own CPU


# -- the lot --------------------------------------------------------------------------------------
def make_lot(folder: Path, rows: int, name: str = "SOAK") -> Path:
    """A lot like the sample one with ``rows`` rows (serial, 16-byte key, revision)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE / "partitions.csv", folder / "partitions.csv")
    (folder / "config.csv").write_text(
        "factory,namespace,\nserial_no,data,string\ndevice_key,data,hex2bin\nhw_rev,data,u32\n"
    )
    with (folder / "values.csv").open("w") as f:
        f.write("serial_no,device_key,hw_rev\n")
        for i in range(rows):
            f.write(f"SN{i:08d},{os.urandom(16).hex()},3\n")
    lot = folder / "lot.toml"
    lot.write_text(
        f'name = "{name}"\nconfig = "config.csv"\nvalues = "values.csv"\n'
        'partition_table = "partitions.csv"\npartition = "fctry"\nchip = "esp32"\n'
        'fileid = "serial_no"\nscan_column = "serial_no"\n'
    )
    return lot


# -- processes, from /proc ------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcStats:
    rss_mb: float
    fds: int
    threads: int
    children: int


def proc_stats(pid: int) -> ProcStats | None:
    """RSS, descriptors, threads and child processes of ``pid`` (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    return ProcStats(rss, fds, int(fields["Threads"]), len(children_of(pid)))


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (zombies count: an unreaped child is a leak)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        after = stat.rsplit(")", 1)[1].split()
        if int(after[1]) == pid:
            kids.append(int(name))
    return kids


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y per 1,000 units of x (0 for fewer than two points)."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return 0.0
    return 1000.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


# -- the simulated operator -------------------------------------------------------------------
@dataclass
class Plugged:
    """One device in one slot."""

    slot: str
    device: Any  # SimulatedDevice
    fault: str = ""  # the fault this device carries ("" for a good one)
    foreign: bytes = b""  # the foreign factory data written into it before plugging
    swapping: bool = False
    faulted: bool = False  # its mid-write fault was applied


@dataclass
class Readback:
    mac: str
    sha256: str
    serial: str | None  # serial_no decoded from the factory region (None: did not decode)
    blank: bool
    foreign: bool  # it still holds the foreign data written before it was plugged


@dataclass
class Record:
    """What the soak saw; the figures and the final state."""

    mode: str
    rows: int
    ports: int
    samples: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    readbacks: dict[str, Readback] = field(default_factory=dict)
    unread: list[str] = field(default_factory=list)  # devices that could not be read back
    swaps: int = 0


class Operator:
    """Plays the operator's hands: swaps each finished device for a fresh one, applies faults.

    ``events`` is fed with the orchestrator's raw events (any thread); ``plug(old, new, slot)``
    moves a slot to a new port in the station and returns once the station let go of ``old``.
    """

    def __init__(
        self,
        *,
        factory: Any,
        rows: int,
        seed: int,
        plug: Callable[[str, str, str], None],
        host_pid: Callable[[], int | None],
        record: Record,
        readback: bool = True,
        faults: bool = True,
    ) -> None:
        from station.flashing.host import DeviceHost

        self.factory = factory  # the lot's factory partition (offset, size)
        self.plug = plug
        self.host_pid = host_pid
        self.record = record
        self.readback = readback
        self.rng = random.Random(seed)
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.slots: dict[str, Plugged] = {}  # by port
        self.finished = 0  # units passed or failed (as the ports said)
        self.changed = threading.Event()
        self.pending_faults = self._plan(rows) if faults else {}
        self.armed: list[str] = []  # mid-write faults waiting for the next write
        self.next_foreign = 0
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="operator")
        self.inflight = 0
        self.reader = DeviceHost()  # reads devices back; not the station's host
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _plan(self, rows: int) -> dict[int, str]:
        """Four faults in each block of 1,000 units (or of the whole lot when shorter)."""
        block = min(1000, rows)
        plan: dict[int, str] = {}
        for start in range(0, rows - block + 1, block):
            lo, hi = start + block // 10, start + block * 9 // 10
            for at, kind in zip(self.rng.sample(range(lo, hi), len(FAULTS)), FAULTS, strict=True):
                plan[at] = kind
        return plan

    # -- devices --
    def start(self, slots: list[str]) -> list[Plugged]:
        from station.flashing import start_simulated_devices

        devices = start_simulated_devices(len(slots), nice=SIMULATED_NICE)
        plugged = [Plugged(slot, d) for slot, d in zip(slots, devices, strict=True)]
        with self.lock:
            for p in plugged:
                self.slots[p.device.port] = p
        self._thread.start()
        return plugged

    def _new_device(self, slot: str) -> Plugged:
        from station.flashing import start_simulated_devices
        from station.flashing.types import WriteRegion

        device = start_simulated_devices(1, nice=SIMULATED_NICE)[0]
        plugged = Plugged(slot, device)
        with self.lock:
            if self.next_foreign:
                self.next_foreign -= 1
                plugged.fault = "foreign"
        if plugged.fault == "foreign":
            data = bytes(self.rng.getrandbits(8) for _ in range(64)).ljust(self.factory.size, b"\0")
            with self.reader.open_device(device.port, no_stub=True) as s:
                s.write([WriteRegion(self.factory.offset, data, "fctry")])
            plugged.foreign = data
            self.record.faults.append(f"foreign data on {device.mac}")
        return plugged

    def _read_back(self, p: Plugged) -> None:
        from station.flashing.types import FlashError
        from station.nvs import decode_image

        mac = p.device.mac
        try:
            with self.reader.open_device(p.device.port, no_stub=True, timeout=5.0) as s:
                data = s.read(self.factory.offset, self.factory.size)
        except FlashError as err:
            self.record.unread.append(f"{mac}: {err.reason}")
            return
        blank = data.count(0xFF) == len(data)
        serial = None
        if not blank:
            decoded = decode_image(data)
            if not decoded.errors:
                serial = str(decoded.as_dict().get("factory", {}).get("serial_no"))
        self.record.readbacks[mac] = Readback(
            mac,
            hashlib.sha256(data).hexdigest(),
            serial,
            blank,
            bool(p.foreign) and data == p.foreign,
        )

    def _swap(self, old_port: str, p: Plugged) -> None:
        try:
            new = self._new_device(p.slot)
            with self.lock:  # before the station sees it: its first unit may pass at once
                self.slots[new.device.port] = new
            self.plug(old_port, new.device.port, p.slot)
            with self.lock:
                self.slots.pop(old_port, None)
                self.record.swaps += 1
            if p.fault in ("hang", "unplug") and p.faulted:
                if p.device.pid is not None:
                    try:
                        os.kill(p.device.pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.record.unread.append(f"{p.device.mac}: {p.fault} (not read back)")
            elif self.readback:
                self._read_back(p)
            p.device.stop()
        except Exception as err:  # the soak goes on with one slot less; the record says why
            self.record.faults.append(f"swap of {p.slot} failed: {err!r}")
        finally:
            with self.lock:
                self.inflight -= 1
            self.changed.set()

    # -- events --
    def _run(self) -> None:
        from station.production import PortUpdate

        while not self._stop:
            event = self.events.get()
            if event is None:
                return
            if not isinstance(event, PortUpdate):
                continue
            self._on_update(event)

    def _on_update(self, ev: Any) -> None:
        with self.lock:
            p = self.slots.get(ev.port)
            if p is None or p.swapping:
                return
            if ev.state == "busy" and ev.phase == "writing" and not p.faulted:
                if self.armed and not p.fault:
                    kind = self.armed.pop(0)
                    self._apply(kind, p)
                return
            done = ev.state in ("passed", "failed") and ev.row_index is not None
            refused = ev.state == "attention" and bool(ev.mac)
            if not (done or refused):
                return
            if done:
                self.finished += 1
                kind = self.pending_faults.pop(self.finished, "")
                if kind in ("hang", "unplug", "host"):
                    self.armed.append(kind)
                elif kind == "foreign":
                    self.next_foreign += 1
            p.swapping = True
            self.inflight += 1
        self.changed.set()
        self.pool.submit(self._swap, ev.port, p)

    def _apply(self, kind: str, p: Plugged) -> None:
        """A mid-write fault on ``p`` (called with the lock held)."""
        if kind == "host":
            pid = self.host_pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                self.record.faults.append(f"device host {pid} killed while {p.slot} wrote")
            return
        p.fault, p.faulted = kind, True
        pid = p.device.pid
        if pid is None:
            return
        if kind == "hang":
            os.kill(pid, signal.SIGSTOP)
            self.record.faults.append(f"{p.device.mac} stopped answering mid-write")
        else:
            os.kill(pid, signal.SIGKILL)
            self.record.faults.append(f"{p.device.mac} unplugged mid-write")

    @property
    def busy(self) -> bool:
        with self.lock:
            return self.inflight > 0

    def chip_pids(self) -> list[int]:
        with self.lock:
            return [p.device.pid for p in self.slots.values() if p.device.pid is not None]

    def stop(self) -> None:
        self._stop = True
        self.events.put(None)
        self._thread.join(10.0)
        self.pool.shutdown(wait=True)
        with self.lock:
            plugged = list(self.slots.values())
        for p in plugged:
            if p.device.pid is not None:
                try:
                    os.kill(p.device.pid, signal.SIGCONT)
                except OSError:
                    pass
        for p in plugged:
            p.device.stop()
        self.reader.close()


# -- measuring --------------------------------------------------------------------------------
class Sampler:
    """Takes a sample every ``every`` finished units."""

    def __init__(self, record: Record, every: int, warmup: int = 0) -> None:
        self.record = record
        self.warmup = warmup
        self.baseline: tracemalloc.Snapshot | None = None  # with --trace: at warm-up
        self.every = every
        self.next_at = every
        self.last_t = time.monotonic()
        self.last_units = 0
        # children the process had before the run (inside pytest: multiprocessing's forkserver
        # and resource tracker left by earlier tests) are not the station's
        self.before = set(children_of(os.getpid()))

    def due(self, units: int) -> bool:
        return units >= self.next_at

    def take(
        self,
        units: int,
        *,
        host_pid: int | None,
        reader_pid: int | None,
        chips: list[int],
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = time.monotonic()
        me = os.getpid()
        own = proc_stats(me)
        assert own is not None
        kids = set(children_of(me))
        chip_set = set(chips)
        station_children = sorted(kids - chip_set - {reader_pid} - self.before)
        host = proc_stats(host_pid) if host_pid else None
        chip_stats = [s for s in (proc_stats(pid) for pid in chips) if s is not None]
        objects = gc.get_objects()
        kinds = Counter(type(o).__name__ for o in objects)
        n_objects = len(objects)
        del objects
        interval = now - self.last_t
        per_hour = (units - self.last_units) * 3600.0 / interval if interval > 0 else 0.0
        sample: dict[str, Any] = {
            "units": units,
            "t": round(now, 2),
            "units_per_hour": round(per_hour),
            "rss_mb": round(own.rss_mb, 1),
            "fds": own.fds,
            "threads": own.threads,
            "py_threads": threading.active_count(),
            "children": len(station_children),
            "py_objects": n_objects,
            "weakrefs": kinds["ReferenceType"],  # the window's leak of 2026-12-03
            "host_rss_mb": round(host.rss_mb, 1) if host else None,
            "host_fds": host.fds if host else None,
            "host_threads": host.threads if host else None,
            "host_children": host.children if host else None,
            "chips": len(chip_stats),
            "chips_rss_mb": round(sum(s.rss_mb for s in chip_stats), 1),
            "chip_fds_max": max((s.fds for s in chip_stats), default=0),
        }
        if extra:
            sample.update(extra)
        sample["top_types"] = dict(kinds.most_common(6))
        if tracemalloc.is_tracing():
            sample["py_heap_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 2)
            snap = tracemalloc.take_snapshot()
            if self.baseline is None and units >= self.warmup:
                self.baseline = snap
            elif self.baseline is not None:
                top = snap.compare_to(self.baseline, "lineno")[:8]
                sample["heap_growth"] = [str(stat) for stat in top]
        self.record.samples.append(sample)
        self.last_t, self.last_units = now, units
        while self.next_at <= units:
            self.next_at += self.every
        line = " ".join(f"{k}={v}" for k, v in sample.items() if k not in ("t", "top_types"))
        print(f"[{self.record.mode}] {line}", flush=True)
        return sample


SLOPE_KEYS = (
    "rss_mb",
    "fds",
    "threads",
    "py_threads",
    "children",
    "py_objects",
    "weakrefs",
    "host_rss_mb",
    "host_fds",
    "host_threads",
    "host_children",
    "chips",
    "chips_rss_mb",
    "qobjects",
    "gap_p50_ms",
    "gap_p99_ms",
)


def summarise(record: Record, warmup: int) -> dict[str, Any]:
    """Slopes per 1,000 units after warm-up, and throughput first vs last 1,000 units."""
    # under load only: the final sample (taken once every port is idle) would tilt the slopes
    loaded = [s for s in record.samples if not s.get("final")]
    late = [s for s in loaded if s["units"] >= warmup] or loaded
    slopes = {}
    for key in SLOPE_KEYS:
        pts = [(s["units"], s[key]) for s in late if s.get(key) is not None]
        if pts:
            slopes[key] = round(slope(pts), 3)
    out: dict[str, Any] = {"slopes_per_1000": slopes}
    samples = loaded
    if len(samples) >= 2:
        window = min(1000, samples[-1]["units"] // 2)
        first = [s for s in samples if s["units"] <= window]
        last = [s for s in samples if s["units"] > samples[-1]["units"] - window]
        if first and last:

            def rate(group: list[dict[str, Any]], start: dict[str, Any] | None) -> float:
                t0 = (
                    start["t"]
                    if start
                    else group[0]["t"]
                    - group[0]["units"] * 3600.0 / max(group[0]["units_per_hour"], 1)
                )
                u0 = start["units"] if start else 0
                dt = group[-1]["t"] - t0
                return (group[-1]["units"] - u0) * 3600.0 / dt if dt > 0 else 0.0

            before_last = [s for s in samples if s["units"] <= samples[-1]["units"] - window]
            r_first = rate(first, None)
            r_last = rate(last, before_last[-1] if before_last else None)
            out["units_per_hour_first"] = round(r_first)
            out["units_per_hour_last"] = round(r_last)
            out["throughput_change_pct"] = (
                round(100.0 * (r_last - r_first) / r_first, 1) if r_first else None
            )
    return out


# -- the ledger and the devices agree -------------------------------------------------------------
def account(lot: Any, record: Record) -> dict[str, Any]:
    """Every row done or failed with a reason; every done row's device holds that row; the
    ledger and the lot's journal agree (``station ledger check``)."""
    from station.production import ledgerlink

    ledger = lot.ledger
    counts = ledger.state_counts()
    journal = ledgerlink.differences(ledger, lot.link, lambda i: lot.key_file(lot.row(i)))
    problems = [f"journal: {line}" for line in journal]
    rows = ledger.rows(0, ledger.count())
    images: dict[int, str | None] = {}
    for a in ledger.attempts():
        if a.result == "done":
            images[a.row_index] = a.image_sha256
    macs_done: set[str] = set()
    failed_reasons: dict[str, int] = {}
    for row in rows:
        if row.state == "done":
            macs_done.add(row.mac or "")
            rb = record.readbacks.get(row.mac or "")
            if rb is None:
                if record.readbacks:  # read back was on: a done device we never read
                    why = [u for u in record.unread if u.startswith(f"{row.mac}:")]
                    problems.append(
                        f"{row.unit_id}: its device {row.mac} was not read back"
                        + (f" ({why[0]})" if why else "")
                    )
                continue
            if rb.sha256 != images.get(row.index):
                problems.append(f"{row.unit_id}: {row.mac} holds other data than the ledger says")
            if rb.serial != row.unit_id:
                problems.append(f"{row.unit_id}: {row.mac} decodes as {rb.serial!r}")
        elif row.state == "failed":
            if not row.reason:
                problems.append(f"{row.unit_id}: failed without a reason")
            key = row.reason.split(":")[0][:60]
            failed_reasons[key] = failed_reasons.get(key, 0) + 1
        else:
            problems.append(f"{row.unit_id}: left {row.state}")
    for rb in record.readbacks.values():
        if rb.mac not in macs_done and rb.serial is not None and not rb.foreign:
            held = ledger.row_of_mac(rb.mac)
            if held is None:
                problems.append(f"{rb.mac} holds {rb.serial} but the ledger has no row on it")
    foreign_kept = sum(1 for rb in record.readbacks.values() if rb.foreign)
    return {
        "states": counts,
        "failed_reasons": failed_reasons,
        "devices_read_back": len(record.readbacks),
        "foreign_devices_left_untouched": foreign_kept,
        "devices_not_read": len(record.unread),
        "journal_differences": len(journal),
        "problems": problems[:20],
        "problem_count": len(problems),
    }


# -- the two modes -------------------------------------------------------------------------------
@dataclass
class Options:
    rows: int = 10_000
    ports: int = 8
    seed: int = 18
    every: int = 500
    warmup: int = 1000
    readback: bool = True
    faults: bool = True
    limit: float = 0.0  # seconds; 0: until the lot is done
    quiet: bool = False


def run_headless(folder: Path, opts: Options) -> dict[str, Any]:
    """``station run``'s path: an Orchestrator in auto mode, events through its printer."""
    from station.flashing.host import DeviceHost
    from station.production import Orchestrator, PortRemoved, open_lot
    from station.production.commands import _RunPrinter

    lot_path = make_lot(folder / "lot", opts.rows)
    record = Record("headless", opts.rows, opts.ports)
    lot = open_lot(lot_path)
    host = DeviceHost()
    sink = io.StringIO() if opts.quiet else sys.stdout
    printer = _RunPrinter(_Discard() if opts.quiet else sink, _Discard())
    box: dict[str, Any] = {}
    let_go = threading.Condition()
    removed: set[str] = set()

    def on_event(event: object) -> None:
        if isinstance(event, PortRemoved):
            with let_go:
                removed.add(event.port)
                let_go.notify_all()
        printer(event)
        box["operator"].events.put(event)

    orch = Orchestrator(
        lot,
        on_event=on_event,
        auto_start=True,
        auto_retry=0,
        poll_interval=0.2,
        opener=host.open_device,
    )
    printer.orch = orch

    def plug(old: str, new: str, slot: str) -> None:
        orch.remove_port(old)  # returns at once; PortRemoved says when the device is free
        orch.add_port(new, slot)
        with let_go:
            let_go.wait_for(lambda: old in removed, timeout=60.0)
            removed.discard(old)

    operator = Operator(
        factory=lot.factory,
        rows=opts.rows,
        seed=opts.seed,
        plug=plug,
        host_pid=lambda: host.pid,
        record=record,
        readback=opts.readback,
        faults=opts.faults,
    )
    box["operator"] = operator
    sampler = Sampler(record, opts.every, opts.warmup)
    started = time.monotonic()
    try:
        plugged = operator.start([f"Slot {i + 1}" for i in range(opts.ports)])
        for p in plugged:
            orch.add_port(p.device.port, p.slot)
        while True:
            operator.changed.wait(0.5)
            operator.changed.clear()
            units = _units(lot.ledger)
            if sampler.due(units):
                sampler.take(
                    units,
                    host_pid=host.pid,
                    reader_pid=operator.reader.pid,
                    chips=operator.chip_pids(),
                )
            if _finished(lot.ledger, operator) or _out_of_time(started, opts):
                break
        orch.wait_idle(30.0)
        c = lot.ledger.counters()
        final = sampler.take(
            c.done + c.failed,
            host_pid=host.pid,
            reader_pid=operator.reader.pid,
            chips=operator.chip_pids(),
        )
        final["final"] = True
    finally:
        orch.close()
        operator.stop()
        host.close()
    result = _result(record, opts, time.monotonic() - started)
    _wind_down(orch, result)
    result["ledger"] = account(lot, record)
    lot.close()
    return result


class _Discard(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


def _wind_down(orch: Any, result: dict[str, Any] | None) -> None:
    """After the station closed: wait for port threads that were still ending (close() waits
    5 s; a loaded machine can take longer) and record any that never end."""
    threads = [p.thread for p in orch._ports.values() if p.thread is not None]
    threads += getattr(orch, "_stray", [])
    late = [t for t in threads if t.is_alive()]
    for t in late:
        t.join(60.0)
    if result is not None:
        result["threads_ending_late"] = len(late)
        result["threads_never_ended"] = [t.name for t in late if t.is_alive()]


def _units(ledger: Any) -> int:
    """Units that ended, done or failed. The rows' states only: the soak asks several times
    a second (on the GUI thread in window mode), and counters() also reads the last hour's
    attempts, a cost that grew with the run and was the soak's, not the station's."""
    counts = ledger.state_counts()
    return int(counts["done"] + counts["failed"])


def _finished(ledger: Any, operator: Operator) -> bool:
    """No row left pending, nothing claimed, no swap under way."""
    return not ledger.any_pending() and not ledger.active_attempts() and not operator.busy


def _out_of_time(started: float, opts: Options) -> bool:
    return bool(opts.limit) and time.monotonic() - started > opts.limit


def _result(record: Record, opts: Options, seconds: float) -> dict[str, Any]:
    return {
        "mode": record.mode,
        "rows": opts.rows,
        "ports": opts.ports,
        "seconds": round(seconds, 1),
        "swaps": record.swaps,
        "faults": record.faults,
        "unread": record.unread[:20],
        "samples": record.samples,
        **summarise(record, opts.warmup),
    }


def run_window(folder: Path, opts: Options) -> dict[str, Any]:
    """The station window offscreen, driven as the demo drives it."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QObject, QSettings, Qt, QTimer, Signal
    from PySide6.QtWidgets import QApplication

    from station.gui.resources import style_sheet
    from station.gui.settings import StationSettings
    from station.gui.window import MainWindow

    app = QApplication.instance() or QApplication([])
    app.setStyleSheet(style_sheet())  # the station's own: it costs in every paint
    lot_path = make_lot(folder / "lot", opts.rows)
    record = Record("window", opts.rows, opts.ports)
    qs = QSettings(str(folder / "soak.ini"), QSettings.Format.IniFormat)
    settings = StationSettings(qs)
    settings.sound = False
    settings.hot_plug = False
    settings.continuous = True
    settings.ports = []

    class Hands(QObject):
        """Runs the operator's station actions on the GUI thread; the caller waits."""

        act = Signal(object)

        def __init__(self) -> None:
            super().__init__()
            self.act.connect(self._do, Qt.ConnectionType.QueuedConnection)

        def _do(self, job: Any) -> None:
            fn, done = job
            try:
                fn()
            finally:
                done.set()

        def call(self, fn: Callable[[], None]) -> None:
            done = threading.Event()
            self.act.emit((fn, done))
            done.wait(60.0)

    class Gaps(QObject):
        """A 5 ms timer on the GUI thread; the gaps between its ticks."""

        def __init__(self) -> None:
            super().__init__()
            self.gaps: list[float] = []
            self.clock = QElapsedTimer()
            self.timer = QTimer(self)
            self.timer.setTimerType(Qt.TimerType.PreciseTimer)
            self.timer.timeout.connect(self._tick)
            self.clock.start()
            self.last = self.clock.nsecsElapsed()
            self.timer.start(5)

        def _tick(self) -> None:
            now = self.clock.nsecsElapsed()
            self.gaps.append((now - self.last) / 1e6)
            self.last = now

        def take(self) -> dict[str, float]:
            g = sorted(self.gaps)
            self.gaps = []
            if not g:
                return {}
            pick = lambda q: round(g[min(len(g) - 1, int(len(g) * q))], 1)  # noqa: E731
            return {
                "gap_p50_ms": pick(0.5),
                "gap_p99_ms": pick(0.99),
                "gap_max_ms": round(g[-1], 1),
            }

    window = MainWindow(settings)
    window.resize(1366, 740)
    window.show()
    if not window.open_lot(str(lot_path)):
        raise RuntimeError("the soak lot did not open")
    orch = window.orchestrator
    assert orch is not None
    orch.auto_retry = 0  # a failed device goes to the reject bin (the operator swaps it)
    orch.poll_interval = 0.2
    hands = Hands()
    box: dict[str, Any] = {}
    raw = orch._emit_raw

    let_go = threading.Condition()
    removed: set[str] = set()

    def tee(event: object) -> None:
        if type(event).__name__ == "PortRemoved":
            with let_go:
                removed.add(event.port)  # type: ignore[attr-defined]
                let_go.notify_all()
        raw(event)
        box["operator"].events.put(event)

    orch._emit_raw = tee

    def plug(old: str, new: str, slot: str) -> None:
        hands.call(lambda: window.replace_port(old, new))
        with let_go:  # the window does not wait for the port to let go of the device
            let_go.wait_for(lambda: old in removed, timeout=60.0)
            removed.discard(old)

    def host_pid() -> int | None:
        return window.device_host.pid if window.device_host is not None else None

    operator = Operator(
        factory=window.lot.factory,
        rows=opts.rows,
        seed=opts.seed,
        plug=plug,
        host_pid=host_pid,
        record=record,
        readback=opts.readback,
        faults=opts.faults,
    )
    box["operator"] = operator
    sampler = Sampler(record, opts.every, opts.warmup)
    gaps = Gaps()
    loop = QEventLoop()
    started = time.monotonic()

    def qobjects() -> int:
        count = len(app.findChildren(QObject))
        for w in app.topLevelWidgets():
            count += 1 + len(w.findChildren(QObject))
        return count

    def sample(units: int) -> dict[str, Any]:
        extra = {
            "qobjects": qobjects(),
            "widgets": len(app.allWidgets()),
            "cards": len(window.cards),
            "port_views": len(window.bridge._views),  # the bridge's state per port
            **gaps.take(),
        }
        return sampler.take(
            units,
            host_pid=host_pid(),
            reader_pid=operator.reader.pid,
            chips=operator.chip_pids(),
            extra=extra,
        )

    def check() -> None:
        lot = window.lot
        if lot is None:
            loop.quit()
            return
        units = _units(lot.ledger)
        if sampler.due(units):
            sample(units)
        if _finished(lot.ledger, operator) or _out_of_time(started, opts):
            loop.quit()

    checker = QTimer()
    checker.timeout.connect(check)
    try:
        plugged = operator.start([f"Slot {i + 1}" for i in range(opts.ports)])
        window.add_ports([(p.device.port, p.slot) for p in plugged])
        checker.start(250)
        loop.exec()
        checker.stop()
        deadline = time.monotonic() + 30.0
        while orch.wait_idle(0.0) is False and time.monotonic() < deadline:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 100)
        for _ in range(5):  # let deleteLater() and the 4 Hz repaint catch up
            app.processEvents()
        app.sendPostedEvents(None, 0)  # DeferredDelete
        c = window.lot.ledger.counters()
        final = sample(c.done + c.failed)
        final["final"] = True
        result = _result(record, opts, time.monotonic() - started)
        result["ledger"] = account(window.lot, record)
    finally:
        gaps.timer.stop()

        def stop_operator() -> None:
            operator.stop()

        stopper = threading.Thread(target=stop_operator)  # its swaps may wait on the GUI thread
        stopper.start()
        while stopper.is_alive():
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 100)
            stopper.join(0.05)
        window.shutdown()
        _wind_down(orch, result if "result" in locals() else None)
        window.deleteLater()
        app.processEvents()
    return result


def report(result: dict[str, Any]) -> str:
    """The figures of one run, as text."""
    lines = [
        f"== {result['mode']}: {result['rows']} rows on {result['ports']} ports, "
        f"{result['seconds']:.0f} s, {result['swaps']} devices swapped"
    ]
    if "units_per_hour_first" in result:
        lines.append(
            f"units/hour: first {result['units_per_hour_first']}, last "
            f"{result['units_per_hour_last']} ({result['throughput_change_pct']:+}%)"
        )
    lines.append(
        "slopes per 1,000 units after warm-up: "
        + ", ".join(f"{k} {v:+g}" for k, v in result["slopes_per_1000"].items())
    )
    lines.append(f"faults: {len(result['faults'])}: " + "; ".join(result["faults"][:12]))
    led = result["ledger"]
    lines.append(
        f"ledger: {led['states']}; failed: {led['failed_reasons']}; "
        f"differences from the journal: {led['journal_differences']}"
    )
    lines.append(
        f"devices read back {led['devices_read_back']}, foreign left untouched "
        f"{led['foreign_devices_left_untouched']}, not read {led['devices_not_read']}; "
        f"problems {led['problem_count']}" + (f": {led['problems'][:5]}" if led["problems"] else "")
    )
    return "\n".join(lines)


def main() -> None:
    from station.native import limit_malloc_arenas

    limit_malloc_arenas()  # as station's own main() does, before any thread starts
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("headless", "window", "both"), default="both")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--ports", type=int, default=8)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--every", type=int, default=500, help="units between samples")
    parser.add_argument("--warmup", type=int, default=1000, help="units before slopes count")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this long")
    parser.add_argument("--no-readback", action="store_true")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no PASS/FAIL line per unit")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="trace Python allocations (slower): the Python heap and where it grew",
    )
    args = parser.parse_args()
    opts = Options(
        rows=args.rows,
        ports=args.ports,
        seed=args.seed,
        every=args.every,
        warmup=args.warmup,
        readback=not args.no_readback,
        faults=not args.no_faults,
        limit=args.minutes * 60.0,
        quiet=args.quiet,
    )
    if args.trace:
        tracemalloc.start(4)
    modes = ("headless", "window") if args.mode == "both" else (args.mode,)
    results = []
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix=f"soak-{mode}-") as tmp:
            run = run_headless if mode == "headless" else run_window
            result = run(Path(tmp), opts)
        print(report(result), flush=True)
        for line in result["samples"][-1].get("heap_growth", []):
            print(f"  heap growth since warm-up: {line}", flush=True)
        results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
