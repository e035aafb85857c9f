"""Progress coalescing in the device host: fewer messages, never a lost or stale one."""

from __future__ import annotations

import threading

from station.flashing import Progress
from station.flashing.host import ProgressCoalescer, _Flusher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_counts_in_between_are_coalesced_and_order_and_final_kept() -> None:
    sent: list[Progress] = []
    clock = Clock()
    c = ProgressCoalescer(sent.append, interval=0.05, clock=clock)
    c.put(Progress("p", "verifying", 0, 0))  # a phase announcement: at once
    for done in range(64, 24576 + 1, 64):  # a ROM read-back, 384 steps, 1 ms apart
        c.put(Progress("p", "verifying", done, 24576))
        clock.now += 0.001
    c.flush()
    assert sent[0] == Progress("p", "verifying", 0, 0)
    assert sent[-1] == Progress("p", "verifying", 24576, 24576)  # the final count, once
    assert [p.done for p in sent] == sorted(p.done for p in sent)
    assert len(sent) < 20  # 384 steps over ~0.4 s at one per 50 ms, plus the ends


def test_a_new_phase_goes_at_once_and_the_held_count_is_dropped_for_it() -> None:
    sent: list[Progress] = []
    c = ProgressCoalescer(sent.append, interval=0.05, clock=Clock())
    c.put(Progress("p", "writing", 10, 100))
    c.put(Progress("p", "writing", 20, 100))  # held
    c.put(Progress("p", "verifying", 0, 0))
    c.flush()
    assert sent == [Progress("p", "writing", 10, 100), Progress("p", "verifying", 0, 0)]


def test_the_count_before_a_stall_is_sent_by_the_flusher() -> None:
    sent: list[Progress] = []
    arrived = threading.Event()

    def send(pr: Progress) -> None:
        sent.append(pr)
        if pr.done == 20:
            arrived.set()

    c = ProgressCoalescer(send, interval=0.05, clock=Clock())  # a clock that stands still
    flusher = _Flusher(interval=0.01)
    try:
        flusher.add(c)
        c.put(Progress("p", "writing", 10, 100))
        c.put(Progress("p", "writing", 20, 100))  # held; then the port stalls: no more puts
        assert arrived.wait(10.0)
    finally:
        flusher.stop()
    assert sent == [Progress("p", "writing", 10, 100), Progress("p", "writing", 20, 100)]


def test_flush_without_a_held_count_sends_nothing() -> None:
    sent: list[Progress] = []
    c = ProgressCoalescer(sent.append, interval=0.05, clock=Clock())
    c.put(Progress("p", "writing", 100, 100))
    c.flush()
    c.flush()
    assert sent == [Progress("p", "writing", 100, 100)]
