"""Device sessions in a child process: the device host.

esptool is pure Python. A port that flashes keeps a Python thread busy (SLIP framing byte by
byte, one command per 64 bytes read through the ROM loader), and in the station window's
process those threads compete with the GUI thread for the GIL. Qt calls Python for every cell
it paints, and each call waits for the GIL again. With 8 ports flashing, one repaint of the row
table waited 100-400 ms (``tests/bench/bench_gui_stall.py``). The device host runs the esptool
sessions in a child process (``python -m station.flashing.host``; in the frozen program
``station -m station.flashing.host``). The orchestrator gets :class:`RemoteSession` objects with
the methods of :class:`~station.flashing.device.DeviceSession`, so the window's process only
waits on a pipe.

- One host serves every port, with one thread per open session inside it.
- Progress events arrive on the thread that made the call, in order, before its result, as with
  a local session. They are coalesced per session before they cross the pipe
  (:class:`ProgressCoalescer`): a new phase, a 0/0 announcement and a finished count go at once,
  counts in between at most every ``PROGRESS_INTERVAL``, and the newest count held back is sent
  within one interval even if the port then stalls (trailing edge), and always before the
  call's result. A ROM read-back (``--no-stub``) of a 24 KB image reports 384 steps (64 bytes each);
  at 32 ports each crossing cost the host a pickle and the window an unpickle, an orchestrator
  event and a bridge fold.
- A cancel event set by the caller reaches the session in the host within about 50 ms.
- If the host dies, every open session fails with a :class:`FlashError` that gives the exit
  code, and the next open starts a new host. If the station dies, the host sees end-of-file on
  its input and exits: no orphaned processes.

Protocol: length-prefixed pickles over the child's stdin and stdout. The child first moves its
own stdout to stderr, so a stray print cannot corrupt the stream. Both ends are this module
from the same installation.
"""

from __future__ import annotations

import itertools
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from station.flashing.types import DeviceInfo, FaultKind, FlashError, Progress, WriteRegion
from station.native import child_environment

MODULE = "station.flashing.host"
_HEADER = struct.Struct("<I")
# The host runs below the window's priority: on a machine short of cores, the window (mostly
# idle, but it must paint at once) wins the CPU, and flashing loses nothing while it is idle.
# Nice 15, not 5: at 32 ports on one core the window's longest gaps while flashing were
# 86-159 ms at nice 5, with the GUI thread running a third of them (it waited for the host),
# and 43-71 ms at nice 15, with the same CPU per unit and throughput (bench_gui_stall, five
# interleaved pairs). It is what Windows' BELOW_NORMAL class does: the host runs when the
# window does not want the core. The host's waits are I/O, its timeouts seconds.
HOST_NICE = 15
_CANCEL_POLL = 0.05  # seconds between looks at the caller's cancel event while waiting
# seconds between progress messages of one session (counts in between are coalesced; the
# window repaints at 4 Hz, so 50 ms loses nothing it would show)
PROGRESS_INTERVAL = 0.05
# what a RemoteSession may ask of the DeviceSession in the host
_METHODS = frozenset({"read", "is_blank", "read_partition_table", "write", "verify", "reset"})


class DeviceHostError(Exception):
    """An unexpected error inside the device host (a bug, not a device fault)."""


# -- framing ------------------------------------------------------------------------------------
def _send(stream: IO[bytes], lock: threading.Lock, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    with lock:
        stream.write(_HEADER.pack(len(data)) + data)
        stream.flush()


def _recv(stream: IO[bytes]) -> Any:
    """The next message; EOFError when the other end closed."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    # both ends are this module, same installation: the stream is a pipe between our processes
    return pickle.loads(data)  # noqa: S301


def _wire_error(err: BaseException) -> tuple[str, ...]:
    if isinstance(err, FlashError):
        return ("flash", err.reason, err.phase, err.port, err.kind.value)
    return ("other", f"{type(err).__name__}: {err}")


def _raise_wire_error(wire: tuple[str, ...]) -> None:
    if wire[0] == "flash":
        raise FlashError(wire[1], phase=wire[2], port=wire[3], kind=FaultKind(wire[4]))
    raise DeviceHostError(wire[1])


# -- progress coalescing ------------------------------------------------------------------------
class ProgressCoalescer:
    """One session's progress, at most one count per ``interval`` in the same phase.

    Sent at once: a new phase, a 0/0 phase announcement, a count that reached its total, and
    any count when ``interval`` has passed since the last one sent. A count in between is held
    (only the newest) until :meth:`flush` — which the host's flusher calls every ``interval``
    (so the last count before a stall still arrives within about ``interval``) and the session
    calls before it sends a result (so the final count comes first). Thread-safe; sends are in
    order: a held count is always newer than every count sent before it."""

    def __init__(
        self,
        send: Callable[[Progress], None],
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._held: Progress | None = None
        self._phase: str | None = None
        self._sent_at = float("-inf")

    def put(self, pr: Progress) -> None:
        with self._lock:
            now = self._clock()
            if (
                pr.phase != self._phase
                or pr.total == 0
                or pr.done >= pr.total
                or now - self._sent_at >= self.interval
            ):
                self._held = None
                self._emit(pr, now)
            else:
                self._held = pr

    def flush(self) -> None:
        """Send the count held back, if any."""
        with self._lock:
            if self._held is not None:
                pr, self._held = self._held, None
                self._emit(pr, self._clock())

    def _emit(self, pr: Progress, now: float) -> None:
        self._phase = pr.phase
        self._sent_at = now
        self._send(pr)


class _Flusher:
    """One thread of the host that flushes every session's held progress each interval."""

    def __init__(self, interval: float = PROGRESS_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._coalescers: set[ProgressCoalescer] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host-progress", daemon=True)
        self._thread.start()

    def add(self, c: ProgressCoalescer) -> None:
        with self._lock:
            self._coalescers.add(c)

    def remove(self, c: ProgressCoalescer) -> None:
        with self._lock:
            self._coalescers.discard(c)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                coalescers = list(self._coalescers)
            for c in coalescers:
                c.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


# -- the child: python -m station.flashing.host ------------------------------------------------
class _Served:
    """One session inside the host: its thread, its calls and its cancel event."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None


def _serve_session(
    sid: int,
    port: str,
    options: dict[str, Any],
    served: _Served,
    send: Callable[[object], None],
    flusher: _Flusher | None = None,
) -> None:
    from station.flashing.device import open_device

    # coalesced, never dropped: a plain throttle once left a port that stalled mid-write
    # showing the progress of before the stall; the flusher sends the held count (see
    # ProgressCoalescer), and every result is preceded by a flush
    coalescer = ProgressCoalescer(lambda pr: send(("progress", sid, pr)))
    if flusher is not None:
        flusher.add(coalescer)

    def reply(message: object) -> None:  # a result: the progress before it goes first
        coalescer.flush()
        send(message)

    try:
        try:
            session = open_device(port, on_progress=coalescer.put, cancel=served.cancel, **options)
        except BaseException as err:  # the caller gets it; this thread ends
            reply(("err", sid, _wire_error(err)))
            return
        _serve_calls(sid, session, served, reply)
    finally:
        if flusher is not None:
            flusher.remove(coalescer)


def _serve_calls(sid: int, session: Any, served: _Served, send: Callable[[object], None]) -> None:
    send(("ok", sid, session.info))
    try:
        while True:
            call = served.calls.get()
            if call is None:  # close
                try:
                    session.close()
                except BaseException as err:
                    send(("err", sid, _wire_error(err)))
                else:
                    send(("ok", sid, None))
                return
            name, args = call
            try:
                if name not in _METHODS:
                    raise DeviceHostError(f"no such session method: {name}")
                value = getattr(session, name)(*args)
            except BaseException as err:
                send(("err", sid, _wire_error(err)))
            else:
                send(("ok", sid, value))
    finally:
        session.close()


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Serve sessions until ``quit`` or end-of-file on ``inp``."""
    lock = threading.Lock()
    sessions: dict[int, _Served] = {}

    def send(message: object) -> None:
        try:
            _send(out, lock, message)
        except (OSError, ValueError):
            pass  # the station is gone; reading will see end-of-file

    send(("ready", os.getpid()))
    flusher = _Flusher()
    try:
        while True:
            try:
                message = _recv(inp)
            except EOFError:
                break
            kind, sid = message[0], message[1] if len(message) > 1 else 0
            if kind == "quit":
                break
            if kind == "open":
                started = _Served()
                sessions[sid] = started
                started.thread = threading.Thread(
                    target=_serve_session,
                    args=(sid, message[2], message[3], started, send, flusher),
                    name=f"host-session-{sid}",
                    daemon=True,
                )
                started.thread.start()
                continue
            # a message for a session the host no longer has (its open failed) is dropped
            served = sessions.pop(sid, None) if kind == "close" else sessions.get(sid)
            if served is None:
                continue
            if kind == "call":
                served.calls.put((message[2], tuple(message[3])))
            elif kind == "cancel":
                served.cancel.set()
            elif kind == "close":
                served.calls.put(None)
    finally:
        for served in sessions.values():
            served.cancel.set()
            served.calls.put(None)
        for served in sessions.values():
            if served.thread is not None:
                served.thread.join(timeout=5.0)
        flusher.stop()


def main() -> None:
    if hasattr(os, "nice"):
        os.nice(HOST_NICE)  # Windows: BELOW_NORMAL_PRIORITY_CLASS, set by DeviceHost.start()
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    # anything printed from here on goes to stderr, never into the message stream (a windowed
    # program on Windows may have no stderr: then nowhere)
    try:
        os.dup2(2, 1)
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    sys.stdout = sys.stderr if sys.stderr is not None else open(os.devnull, "w")
    # esptool before "ready": imported by the first sessions instead, 32 threads wait on the
    # import lock while the host's one core unmarshals modules
    import station.flashing.device  # noqa: F401

    serve(inp, out)


# -- the station's side -------------------------------------------------------------------------
class _Child:
    """One host process: its reader thread and the sessions opened in it. A session belongs to
    the process it was opened in; when that process dies, only its own sessions fail (a reader
    that notices late must not fail the sessions of the host started after it)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.reader: threading.Thread | None = None
        self.ready = threading.Event()
        self.send_lock = threading.Lock()
        self.dead: str | None = None  # why the process is gone (set under the host's lock)
        self.waiting: dict[int, queue.SimpleQueue[tuple[Any, ...]]] = {}

    def fail_sessions(self, why: str) -> None:
        """Mark the process dead and wake its sessions with the reason (host's lock held)."""
        if self.dead is None:
            self.dead = why
        for inbox in self.waiting.values():
            inbox.put(("dead", 0, self.dead))
        self.waiting.clear()


class DeviceHost:
    """The station's handle on one device-host process; :meth:`open_device` is an opener for
    :class:`~station.production.Orchestrator`. Thread-safe. Close it when done."""

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._ids = itertools.count(1)
        self._closed = False
        self.starts = 0  # hosts started so far (a restart after a crash counts)

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.proc.pid if child is not None else None

    def start(self) -> None:
        """Start the host process unless it runs (does not wait for it to be ready)."""
        with self._lock:
            if self._closed:
                raise FlashError("the device host is closed", kind=FaultKind.HOST)
            old = self._child
            if old is not None and old.dead is None:
                return
            try:
                proc = subprocess.Popen(
                    _command(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=_environment(),
                    close_fds=True,
                    creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0)
                    | getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0),
                )
            except OSError as err:
                raise FlashError(
                    f"cannot start the device host: {err}", kind=FaultKind.HOST
                ) from err
            child = self._child = _Child(proc)
            self.starts += 1
            child.reader = threading.Thread(
                target=self._read, args=(child,), name="device-host-reader", daemon=True
            )
            child.reader.start()
        if old is not None:
            self._reap(old)  # outside the lock: its reader takes the lock as it ends

    def wait_ready(self) -> None:
        """Start the host unless it runs and wait until it answers; FlashError if it does not
        within ``start_timeout`` seconds or exits first."""
        self.start()
        child = self._child
        if child is None:  # closed meanwhile
            raise FlashError("the device host is closed", kind=FaultKind.HOST)
        if not child.ready.wait(self.start_timeout):
            raise FlashError(
                f"the device host did not start within {self.start_timeout:g} s",
                kind=FaultKind.HOST,
            )
        with self._lock:
            if child.dead is not None:
                raise FlashError(child.dead, kind=FaultKind.HOST)

    @staticmethod
    def _reap(child: _Child) -> None:
        """Wait for a host process that is gone or told to go, and for its reader (call
        without the host's lock: the reader takes it as it ends)."""
        proc = child.proc
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # end-of-file: the host closes its sessions and exits
        except OSError:
            pass
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader = child.reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=5.0)
        if proc.stdout is not None:
            proc.stdout.close()

    def _read(self, child: _Child) -> None:
        proc = child.proc
        assert proc.stdout is not None
        try:
            while True:
                message = _recv(proc.stdout)
                if message[0] == "ready":
                    child.ready.set()
                    continue
                with self._lock:
                    waiting = child.waiting.get(message[1])
                if waiting is not None:
                    waiting.put(message)
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):
            pass
        code = proc.poll()
        if code is None:
            try:
                code = proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
        why = (
            "the device host stopped"
            if code in (0, None)
            else f"the device host stopped (exit code {code})"
        )
        with self._lock:
            child.fail_sessions(why)
        child.ready.set()  # wake anyone waiting for a host that will never be ready

    def _post(self, child: _Child, message: tuple[Any, ...]) -> None:
        """Send a message to a host process; FlashError when it is gone. A write that fails
        marks it dead at once, so the next open starts a new host even if its reader has not
        seen the end of its output yet."""
        proc = child.proc
        if child.dead is not None or proc.stdin is None:
            raise FlashError(child.dead or "the device host is not running", kind=FaultKind.HOST)
        try:
            _send(proc.stdin, child.send_lock, message)
        except (OSError, ValueError) as err:
            why = f"the device host stopped ({err})"
            with self._lock:
                child.fail_sessions(why)
            raise FlashError(child.dead or why, kind=FaultKind.HOST) from err

    def _post_session(self, child: _Child, sid: int, message: tuple[Any, ...]) -> None:
        """Post a message of session ``sid``; a FlashError when its host is gone. A session
        outlives its host only as a name: a new host does not know it and would never answer,
        and its caller would wait forever (a port thread that never ended)."""
        with self._lock:
            if sid not in child.waiting:
                raise FlashError(
                    child.dead or "the device host stopped; connect again", kind=FaultKind.HOST
                )
        self._post(child, message)

    def _wait(
        self,
        child: _Child,
        sid: int,
        inbox: queue.SimpleQueue[tuple[Any, ...]],
        on_progress: Callable[[Progress], None] | None,
        cancel: threading.Event | None,
        port: str,
        *,
        dead_ok: bool = False,
    ) -> Any:
        """The reply to the last request of session ``sid``; progress on the way goes to
        ``on_progress``; a set ``cancel`` is passed on to the host."""
        watch = cancel is not None
        while True:
            if watch and cancel is not None and cancel.is_set():
                watch = False
                try:
                    self._post(child, ("cancel", sid))
                except FlashError:
                    pass  # the reader wakes us with the reason
            try:
                message = inbox.get(timeout=_CANCEL_POLL if watch else None)
            except queue.Empty:
                continue
            kind = message[0]
            if kind == "progress":
                if on_progress is not None:
                    on_progress(message[2])
            elif kind == "ok":
                return message[2]
            elif kind == "err":
                _raise_wire_error(message[2])
            elif dead_ok:
                return None
            else:  # dead
                raise FlashError(message[2], port=port, kind=FaultKind.HOST)

    def open_device(
        self,
        port: str,
        *,
        chip: str = "auto",
        baud: int = 460800,
        no_stub: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        timeout: float = 10.0,
    ) -> RemoteSession:
        """Like :func:`~station.flashing.open_device`, with the session in the host."""
        self.wait_ready()
        sid = next(self._ids)
        inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        with self._lock:
            child = self._child
            if child is None:
                raise FlashError("the device host is closed", port=port, kind=FaultKind.HOST)
            if child.dead is not None:
                raise FlashError(child.dead, port=port, kind=FaultKind.HOST)
            child.waiting[sid] = inbox
        options = {"chip": chip, "baud": baud, "no_stub": no_stub, "timeout": timeout}
        try:
            self._post(child, ("open", sid, port, options))
            info = self._wait(child, sid, inbox, on_progress, cancel, port)
        except BaseException:
            self._forget(child, sid)
            try:
                self._post(child, ("close", sid))  # the host forgets the failed session too
            except FlashError:
                pass
            raise
        return RemoteSession(self, child, sid, port, info, inbox, on_progress, cancel)

    def _forget(self, child: _Child, sid: int) -> None:
        with self._lock:
            child.waiting.pop(sid, None)

    def close(self) -> None:
        """Stop the host: open sessions are cancelled and closed there (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            child, self._child = self._child, None
        if child is None:
            return
        try:
            self._post(child, ("quit", 0))
        except FlashError:
            pass
        self._reap(child)

    def __enter__(self) -> DeviceHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteSession:
    """A :class:`~station.flashing.device.DeviceSession` that lives in the device host."""

    def __init__(
        self,
        host: DeviceHost,
        child: _Child,
        sid: int,
        port: str,
        info: DeviceInfo,
        inbox: queue.SimpleQueue[tuple[Any, ...]],
        on_progress: Callable[[Progress], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self.port = port
        self.info = info
        self._host = host
        self._child = child  # the host process the session lives in
        self._sid = sid
        self._inbox = inbox
        self._on_progress = on_progress
        self.cancel = cancel if cancel is not None else threading.Event()
        self._closed = False

    def _call(self, name: str, *args: Any) -> Any:
        if self._closed:
            raise FlashError("the connection is closed", port=self.port)
        self._host._post_session(self._child, self._sid, ("call", self._sid, name, args))
        return self._host._wait(
            self._child, self._sid, self._inbox, self._on_progress, self.cancel, self.port
        )

    def read(self, offset: int, size: int) -> bytes:
        data: bytes = self._call("read", offset, size)
        return data

    def is_blank(self, offset: int, size: int) -> bool:
        return bool(self._call("is_blank", offset, size))

    def read_partition_table(self) -> Any:
        return self._call("read_partition_table")

    def write(self, regions: Sequence[WriteRegion]) -> None:
        self._call("write", list(regions))

    def verify(self, regions: Sequence[WriteRegion]) -> None:
        self._call("verify", list(regions))

    def reset(self) -> None:
        """Reset the chip so it runs its firmware, then close the connection."""
        try:
            self._call("reset")
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection in the host (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            try:
                self._host._post_session(self._child, self._sid, ("close", self._sid))
            except FlashError:
                return  # a host that is gone closed everything already
            self._host._wait(
                self._child, self._sid, self._inbox, None, None, self.port, dead_ok=True
            )
        finally:
            self._host._forget(self._child, self._sid)

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _command() -> list[str]:
    """How to start the host: this interpreter, or the frozen program (``station -m``)."""
    return [sys.executable, "-m", MODULE]


def _environment() -> dict[str, str]:
    """The station's environment, with glibc's malloc arenas capped; run from a source
    checkout, the checkout goes first on the module path so the host finds the same
    ``station`` (an installed station finds itself, and site-packages must not go ahead of the
    standard library)."""
    env = child_environment(dict(os.environ))  # glibc: two malloc arenas (station.native)
    root = Path(__file__).resolve().parents[2]
    if not getattr(sys, "frozen", False) and (root / "pyproject.toml").is_file():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


if __name__ == "__main__":
    main()
