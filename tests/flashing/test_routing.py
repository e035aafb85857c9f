"""esptool's one process-wide logger, routed per thread: no job sees another job's output."""

from __future__ import annotations

import threading

from esp_pylib.logger import EspLog, EspLogBase
from esptool.logger import log

from station.flashing.routing import JobSink, RoutingLogger, router


class Recorder(EspLogBase):
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bars: list[tuple[int, int]] = []

    def print(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.lines.append(" ".join(map(str, args)))

    def err(self, *args, suggestion=None) -> None:  # type: ignore[no-untyped-def]
        self.lines.append("E " + " ".join(map(str, args)))

    def warn(self, *args, suggestion=None) -> None:  # type: ignore[no-untyped-def]
        self.lines.append("W " + " ".join(map(str, args)))

    def note(self, *args) -> None:  # type: ignore[no-untyped-def]
        self.lines.append("N " + " ".join(map(str, args)))

    def hint(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass

    def debug(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass

    def set_verbosity(self, mode) -> None:  # type: ignore[no-untyped-def]
        pass

    def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30) -> None:  # type: ignore[no-untyped-def]
        self.bars.append((cur_iter, total_iters))


def test_router_is_installed_once_and_wraps_the_previous_logger() -> None:
    r1 = router()
    r2 = router()
    assert r1 is r2
    assert EspLog.instance is r1
    assert isinstance(r1, RoutingLogger)


def test_concurrent_threads_each_get_only_their_own_progress() -> None:
    r = router()
    n, steps = 8, 200
    sinks = [JobSink() for _ in range(n)]
    got: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for i, s in enumerate(sinks):
        s.on_progress = lambda cur, total, i=i: got[i].append((cur, total))
    start = threading.Barrier(n)

    def work(i: int) -> None:
        with r.bound(sinks[i]):
            start.wait()
            total = 1000 + i  # each thread's bar has its own total
            # exactly how esptool reports: log.progress(...) then task.update(...)
            with log.progress(total=total, unit="B") as task:
                for _ in range(steps):
                    task.update(advance=1)
            log.print(f"thread {i} done")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(n):
        assert {total for _, total in got[i]} == {1000 + i}
        assert [cur for cur, _ in got[i]][:steps] == list(range(1, steps + 1))
        assert sinks[i].messages == [f"thread {i} done"]


def test_unbound_threads_and_later_set_logger_keep_working() -> None:
    r = router()
    previous = r._fallback
    rec = Recorder()
    try:
        log.set_logger(rec)  # someone else installs a logger later: routing stays
        assert EspLog.instance is r
        log.print("to the recorder")
        with log.progress(total=10) as task:
            task.update(advance=10)
        sink = JobSink()
        with r.bound(sink):
            log.print("to the sink")
            log.warn("careful")
        assert rec.lines == ["to the recorder"]
        assert rec.bars == [(10, 10)]
        assert sink.messages == ["to the sink", "warning: careful"]
    finally:
        r._fallback = previous


def test_packet_dumps_are_skipped_on_job_threads_only() -> None:
    """esptool formats every packet for its trace; a job's thread gets a byte count instead."""
    import esptool.loader as loader

    routing = router()
    packet = b"\xc0\x00\x08\x24\x00" + b"U" * 32 + b"\xc0"
    full = f"{loader.HexFormatter(packet)}"
    assert "c000082400555555" in full.lower()  # unbound thread: esptool's own dump
    with routing.bound(JobSink()):
        assert f"Write: {loader.HexFormatter(packet)}" == f"Write: <{len(packet)} bytes>"
    assert f"{loader.HexFormatter(packet)}" == full
