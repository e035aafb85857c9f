"""The lot's counters for the front ends, recounted at most twice a second.

Recounting is a query over the whole lot (a count per state, the units of the last hour):
~5 ms on a 20,000-row lot, more on a line's PostgreSQL, and it ran after every unit, on the
port's thread. With 32 ports finishing together that was 32 recounts in a moment, each sent to
a window that shows one of them. :class:`CountersFeed` recounts at once when the last recount
is older than ``interval``, else once when the interval ends: every change is counted within
``interval``, and the last counts are always sent.

Imports station.production.events only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from station.production.events import CountersUpdate, counter_seq

COUNTERS_INTERVAL = 0.5  # seconds between recounts, at most


class CountersFeed:
    """Sends ``CountersUpdate`` events made from ``count()`` (a ledger's ``counters``) after
    each :meth:`changed`, coalesced to one per ``interval``.

    A recount that is due at once runs on the caller's thread; a later one on the feed's own
    thread (one for its life: a ledger keeps a connection per thread that used it)."""

    def __init__(
        self,
        count: Callable[[], Any],
        emit: Callable[[CountersUpdate], None],
        interval: float = COUNTERS_INTERVAL,
    ) -> None:
        self._count = count
        self._emit = emit
        self.interval = interval
        self._cond = threading.Condition()
        self._last = -float("inf")  # when the last recount started
        self._due: float | None = None  # when the recount the feed's thread waits for is due
        self._thread: threading.Thread | None = None
        self._closed = False

    def changed(self) -> None:
        """The ledger changed (the caller's commit is done): recount now or soon."""
        with self._cond:
            if self._closed or self._due is not None:
                return  # the recount already due will see this change
            now = time.monotonic()
            if now < self._last + self.interval:
                self._due = self._last + self.interval
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="counters", daemon=True)
                    self._thread.start()
                self._cond.notify()
                return
            self._last = now
        self._recount()

    def close(self) -> None:
        """No more recounts; one that was due runs now (the last counts are sent)."""
        with self._cond:
            due, self._due = self._due, None
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if due is not None:
            self._recount_quietly()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._due is None:
                    self._cond.wait()
                    continue
                wait = self._due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._due = None
                self._last = time.monotonic()
                self._cond.release()
                try:
                    self._recount_quietly()
                finally:
                    self._cond.acquire()

    def _recount_quietly(self) -> None:
        try:
            self._recount()
        except Exception:
            return

    def _recount(self) -> None:
        # the seq is taken before the ledger is read (see events.counter_seq)
        seq = next(counter_seq)
        c = self._count()
        self._emit(CountersUpdate(c.done, c.failed, c.remaining, c.units_per_hour, seq))
