"""Many claimers on one ledger — threads and processes — never share a row or a device."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from station.ledger import ClaimRefused, Ledger, LedgerRow

ROWS = 3000
PROCESSES = 3
THREADS = 3

# One claimer: claims until the lot is empty. Every 7th unit fails before writing (the row goes
# back to pending for anyone), every 11th fails after writing (the row stays with that device
# and is retried by it), the rest complete. Prints the (row, mac) pairs it completed.
CLAIMER = r"""
import json, sys, threading
from station.ledger import Ledger

path, tag, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
done = []
lock = threading.Lock()

def claimer(name):
    led = Ledger(path)
    led.attach("L1")
    n = 0
    while True:
        n += 1
        mac = f"{name}-{n}"
        c = led.claim_next(mac=mac, port=name)
        if c is None:
            break
        led.set_image(c, "ab" * 32) if n % 7 else None
        if n % 7 == 0:
            led.fail(c, "before writing")
            continue
        if n % 11 == 0:
            led.fail(c, "after writing")
            c = led.claim_row(c.row_index, mac=mac, port=name)
            led.set_image(c, "ab" * 32)
        led.complete(c, {})
        with lock:
            done.append((c.row_index, mac))
    led.close()

ts = [threading.Thread(target=claimer, args=(f"{tag}.{i}",)) for i in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(done))
"""


def check_ledger(led: Ledger, done: list[tuple[int, str]]) -> None:
    rows = Counter(r for r, _ in done)
    macs = Counter(m for _, m in done)
    assert [r for r, n in rows.items() if n > 1] == []  # no row given twice
    assert [m for m, n in macs.items() if n > 1] == []  # no device given two rows
    assert sorted(rows) == list(range(ROWS))  # every row given out
    for r in led.rows(0, ROWS):
        assert r.state == "done" and (r.index, r.mac) in set(done)


@pytest.mark.slow
def test_threads_and_processes_never_share_a_row(tmp_path: Path) -> None:
    path = tmp_path / "lot.station.db"
    with Ledger(path) as led:
        led.import_lot(
            "L1", "r", [LedgerRow(i, i + 2, str(i), None, [str(i)]) for i in range(ROWS)]
        )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(path), f"P{i}", str(THREADS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    # claimers in this process too, at the same time
    local: list[tuple[int, str]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        led = Ledger(path)
        led.attach("L1")
        n = 0
        while (c := led.claim_next(mac=f"{name}-{n}", port=name)) is not None:
            led.set_image(c, "cd" * 32)
            led.complete(c, {})
            with lock:
                local.append((c.row_index, c.mac))
            n += 1
        led.close()

    threads = [threading.Thread(target=claimer, args=(f"T{i}",)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = list(local)
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        done += [tuple(x) for x in json.loads(out)]  # type: ignore[misc]
    with Ledger(path) as led:
        led.attach("L1")
        check_ledger(led, done)
        attempts = led.attempts()
        assert len(attempts) >= ROWS
        assert sum(1 for a in attempts if a.result == "done") == ROWS


MACS = [f"aa:{i:02d}" for i in range(6)]


class LedgerMachine(RuleBasedStateMachine):
    """Random sequences of claims, failures, completions, releases and recoveries."""

    def __init__(self) -> None:
        super().__init__()
        self.led: Ledger | None = None
        self.claims: dict[str, object] = {}

    @initialize()
    def open(self) -> None:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.led = Ledger(Path(self.tmp.name) / "db")
        self.led.import_lot(
            "L", "r", [LedgerRow(i, i + 2, str(i), None, [str(i)]) for i in range(4)]
        )
        self.run = self.led.start_run()

    def teardown(self) -> None:
        if self.led is not None:
            self.led.close()
            self.tmp.cleanup()

    @rule(mac=st.sampled_from(MACS))
    def claim_next(self, mac: str) -> None:
        assert self.led is not None
        if mac in self.claims:
            return
        try:
            c = self.led.claim_next(mac=mac, port="p", run_id=self.run)
        except ClaimRefused:
            assert self.led.row_of_mac(mac) is not None
            return
        if c is not None:
            self.claims[mac] = c

    @rule(mac=st.sampled_from(MACS), index=st.integers(0, 3))
    def claim_row(self, mac: str, index: int) -> None:
        assert self.led is not None
        if mac in self.claims:
            return
        try:
            self.claims[mac] = self.led.claim_row(index, mac=mac, port="p", run_id=self.run)
        except ClaimRefused:
            pass

    @rule(mac=st.sampled_from(MACS), write=st.booleans(), ok=st.booleans())
    def finish(self, mac: str, write: bool, ok: bool) -> None:
        assert self.led is not None
        c = self.claims.pop(mac, None)
        if c is None:
            return
        if write:
            self.led.set_image(c, "ab" * 32)  # type: ignore[arg-type]
        if ok:
            self.led.complete(c, {})  # type: ignore[arg-type]
        else:
            self.led.fail(c, "x")  # type: ignore[arg-type]

    @rule(index=st.integers(0, 3))
    def release(self, index: int) -> None:
        assert self.led is not None
        try:
            self.led.release(index, "scrapped", "boss")
        except ClaimRefused:
            pass

    @rule()
    def crash_and_recover(self) -> None:
        assert self.led is not None
        self.led.end_run(self.run)
        self.led.recover()
        self.claims.clear()
        self.run = self.led.start_run()

    @invariant()
    def rules_hold(self) -> None:
        if self.led is None:
            return
        rows = self.led.rows(0, 10)
        live = [r.mac for r in rows if r.mac is not None]
        assert len(live) == len(set(live))  # a MAC on at most one row
        for r in rows:
            if r.state in ("claimed", "written", "done"):
                assert r.mac is not None
            if r.state == "pending":
                assert r.mac is None
        active = self.led.active_attempts()
        assert len({a.row_index for a in active}) == len(active)
        assert {a.row_index for a in active} == {
            r.index for r in rows if r.state in ("claimed", "written")
        }


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
