"""The lot's counters reach the front ends coalesced, and the last counts always arrive."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from station.production.counters import CountersFeed
from station.production.events import CountersUpdate


@dataclass
class Counts:
    done: int = 0
    failed: int = 0
    remaining: int = 100
    units_per_hour: float = 0.0


class Ledger:
    """Counts that change as units finish; counts how often it was asked."""

    def __init__(self) -> None:
        self.now = Counts()
        self.asked = 0
        self.fail = False
        self.failed = threading.Event()

    def counters(self) -> Counts:
        self.asked += 1
        if self.fail:
            self.failed.set()
            raise OSError("the ledger's database is away")
        return Counts(self.now.done, self.now.failed, self.now.remaining)


class Sent:
    def __init__(self) -> None:
        self.events: list[CountersUpdate] = []
        self.arrived = threading.Condition()

    def __call__(self, event: CountersUpdate) -> None:
        with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()

    def wait_for(self, n: int) -> list[CountersUpdate]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.events) >= n, timeout=30)
            return list(self.events)


def test_32_units_finishing_together_are_counted_twice_and_the_last_counts_arrive() -> None:
    ledger, sent = Ledger(), Sent()
    feed = CountersFeed(ledger.counters, sent, interval=0.2)
    for _ in range(32):
        ledger.now.done += 1
        ledger.now.remaining -= 1
        feed.changed()
    first, last = sent.wait_for(2)
    assert first.done == 1  # the first unit at once
    assert (last.done, last.remaining) == (32, 68)  # the rest in one recount, soon after
    assert last.seq > first.seq
    feed.close()
    assert ledger.asked == 2 and len(sent.events) == 2


def test_close_sends_a_recount_that_was_due_and_nothing_after() -> None:
    ledger, sent = Ledger(), Sent()
    feed = CountersFeed(ledger.counters, sent, interval=3600.0)
    feed.changed()
    ledger.now.done = 5
    feed.changed()  # due in an hour
    feed.close()
    assert [e.done for e in sent.events] == [0, 5]
    feed.changed()
    assert ledger.asked == 2


def test_a_recount_while_the_ledger_is_away_waits_for_the_next_change() -> None:
    ledger, sent = Ledger(), Sent()
    feed = CountersFeed(ledger.counters, sent, interval=0.05)
    feed.changed()
    ledger.fail = True
    feed.changed()  # due soon: it fails on the timer's thread, quietly
    assert ledger.failed.wait(30)
    ledger.fail = False
    ledger.now.done = 3
    feed.changed()
    events = sent.wait_for(2)
    assert events[-1].done == 3
    feed.close()
