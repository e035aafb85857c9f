"""Per-port routing of esptool's process-wide logger.

esptool writes all output, progress bars included, through one logger per process
(``esptool.logger.log``), and its progress calls carry no device identity (esptool issue
#1102). :class:`RoutingLogger` replaces that logger once per process: a call made on a thread
that is flashing a port goes to that port's :class:`JobSink`; any other call goes to the logger
that was installed before (so esptool used elsewhere in the process keeps working).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from esp_pylib.logger import EspLog, EspLogBase

from station.flashing import slip


class JobSink:
    """Receives what esptool says on one job's thread: progress and the last few messages."""

    def __init__(self, on_progress: Callable[[int, int], None] | None = None) -> None:
        self.on_progress = on_progress
        self.messages: list[str] = []

    def progress(self, current: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(current, total)

    def message(self, level: str, text: str) -> None:
        text = text.strip()
        if text:
            self.messages.append(f"{level}: {text}" if level != "info" else text)
            del self.messages[:-50]  # bounded: a long job keeps only the tail


class RoutingLogger(EspLogBase):
    """An esptool logger that sends each thread's output to the sink bound on that thread."""

    def __init__(self, fallback: EspLogBase) -> None:
        self._fallback = fallback
        self._local = threading.local()

    # -- routing -------------------------------------------------------------------------
    def sink(self) -> JobSink | None:
        return getattr(self._local, "sink", None)

    @contextmanager
    def bound(self, sink: JobSink) -> Iterator[JobSink]:
        """Route this thread's esptool output to ``sink`` while the block runs."""
        previous = self.sink()
        self._local.sink = sink
        try:
            yield sink
        finally:
            self._local.sink = previous

    def _say(self, level: str, args: tuple[Any, ...]) -> bool:
        sink = self.sink()
        if sink is None:
            return False
        sink.message(level, " ".join(str(a) for a in args))
        return True

    # -- EspLogBase ----------------------------------------------------------------------
    def print(self, *args: Any, **kwargs: Any) -> None:
        if not self._say("info", args):
            self._fallback.print(*args, **kwargs)

    def err(self, *args: Any, suggestion: str | None = None) -> None:
        if not self._say("error", args):
            self._fallback.err(*args, suggestion=suggestion)

    def warn(self, *args: Any, suggestion: str | None = None) -> None:
        if not self._say("warning", args):
            self._fallback.warn(*args, suggestion=suggestion)

    # esptool still calls the old names in places
    def error(self, message: str, suggestion: str | None = None) -> None:
        self.err(message, suggestion=suggestion)

    def warning(self, message: str, suggestion: str | None = None) -> None:
        self.warn(message, suggestion=suggestion)

    def note(self, *args: Any) -> None:
        if not self._say("note", args):
            self._fallback.note(*args)

    def hint(self, *args: Any) -> None:
        if not self._say("hint", args):
            self._fallback.hint(*args)

    def debug(self, *args: Any) -> None:
        if self.sink() is None:
            self._fallback.debug(*args)

    def stage(self, finish: bool = False) -> None:
        if self.sink() is None:
            self._fallback.stage(finish=finish)

    def set_verbosity(self, mode: int | str) -> None:
        self._fallback.set_verbosity(mode)

    def set_info_stream(self, stream: Any) -> None:
        self._fallback.set_info_stream(stream)

    def progress_bar(
        self,
        cur_iter: int,
        total_iters: int,
        prefix: str = "",
        suffix: str = "",
        bar_length: int = 30,
    ) -> None:
        sink = self.sink()
        if sink is None:
            self._fallback.progress_bar(cur_iter, total_iters, prefix, suffix, bar_length)
        else:
            sink.progress(cur_iter, total_iters)

    def counter_line(self, prefix: str, suffix: str, *, final: bool = False) -> None:
        if self.sink() is None:
            self._fallback.counter_line(prefix, suffix, final=final)

    def set_logger(self, new_logger: Any) -> None:
        """Someone installs their own logger later: it becomes our fallback, routing stays."""
        from esptool.logger import TemplateLogger, _LegacyLoggerAdapter

        if isinstance(new_logger, TemplateLogger):
            new_logger = _LegacyLoggerAdapter(new_logger)
        if not isinstance(new_logger, EspLogBase):
            raise TypeError(f"not an esptool logger: {type(new_logger).__name__}")
        if new_logger is not self:
            self._fallback = new_logger

    def __getattr__(self, name: str) -> Any:
        # esptool's own logger has extras (e.g. _smart_features); pass them through
        if name.startswith("__") or name in ("_fallback", "_local"):
            raise AttributeError(name)
        return getattr(self._fallback, name)


_install_lock = threading.Lock()


def _quiet_hex_on_job_threads(routing: RoutingLogger) -> None:
    """esptool formats a hex dump of every packet it sends and receives for its trace, even
    when tracing is off (``f"... {HexFormatter(buf)}"`` is built before ``trace()`` looks at
    the flag): about four dumps per command, half the engine's CPU on 32 ports. On a job's
    thread (a sink is bound; our sessions never enable tracing) the dump becomes a byte count;
    anywhere else esptool formats as before."""
    import esptool.loader as loader

    original = getattr(loader, "HexFormatter", None)
    if original is None or getattr(original, "_station_quiet", False):
        return

    class QuietHexFormatter(original):  # type: ignore[misc,valid-type]
        _station_quiet = True

        def __str__(self) -> str:
            if routing.sink() is not None:
                return f"<{len(self._s)} bytes>"
            text: str = super().__str__()
            return text

    loader.HexFormatter = QuietHexFormatter


def router() -> RoutingLogger:
    """The process's routing logger, installed on first use (thread-safe, idempotent)."""
    import esptool.logger  # noqa: F401 - installs esptool's logger as the default first

    with _install_lock:
        current = EspLog.instance
        if isinstance(current, RoutingLogger):
            return current
        if current is None:
            current = EspLog()
        routing = RoutingLogger(current)
        EspLog.instance = routing
        _quiet_hex_on_job_threads(routing)
        slip.install()  # esptool's packet reader, in slices instead of byte by byte
        return routing
