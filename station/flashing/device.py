"""One open connection to one device, driven through esptool's Python API in-process.

:func:`open_device` connects (ROM loader), identifies the chip, its MAC and flash size, and
returns a :class:`DeviceSession` for reading, writing, verifying and resetting. Every device
fault becomes a :class:`FlashError` whose ``reason`` is meant for the operator.

Reads and writes go through esptool's stub flasher, as esptool's own commands do, unless
``no_stub``: the stub (3.7 KB for an ESP32) reads 24 KB in a few packets where the ROM loader
needs 384 commands of 64 bytes. A stub read that fails is retried as a ROM read over a fresh
connection, and that session reads through the ROM from then on. A blank region is known by
the device's MD5 without a stub. (esptool's own stub read fails against esp32-mock-bootloader
over pyserial's ``socket://``; through this module's buffered TCP reader it reads correctly,
digest included.) Regions with ``readback=False`` (firmware) are verified by the device's MD5
instead of a read-back.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import serial
from esptool import cmds
from esptool.loader import ESPLoader
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError, NotImplementedInROMError, flash_size_bytes

from station.flashing.routing import JobSink, router
from station.flashing.types import (
    DeviceInfo,
    FaultKind,
    FlashError,
    Progress,
    WriteRegion,
)

if sys.platform != "win32":
    import fcntl
    import termios

ROM_BAUD = ESPLoader.ESP_ROM_BAUD
TABLE_OFFSET = 0x8000
TABLE_SIZE = 0xC00
CONNECT_HINT = "check the cable and the BOOT button"
# Reads of this many bytes or more ask the device's MD5 first: a blank region is not read
BLANK_FIRST = 4096


class Cancelled(serial.SerialException):
    """Raised inside esptool's I/O when the job was cancelled."""


def chip_label(chip: str) -> str:
    """esptool's display name for a chip argument: "esp32c3" -> "ESP32-C3"."""
    cls = CHIP_DEFS.get(chip.lower().replace("-", ""))
    return cls.CHIP_NAME if cls is not None else chip.upper()


def _same_chip(expected: str, actual_name: str) -> bool:
    return expected.lower().replace("-", "") == actual_name.lower().replace("-", "")


# ---- cancel: abort blocked I/O from a watchdog thread ------------------------------------
class _SocketReader:
    """Buffered reads for a TCP link (``socket://``). pyserial says at most 1 byte is waiting
    there, so esptool reads each reply in pieces, a select() and a recv() per piece; this
    takes whatever has arrived in one recv() and serves the following reads from memory.
    Same contract as pyserial's read: up to ``size`` bytes, fewer only on timeout."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.buf = bytearray()
        self._sock: socket.socket | None = None

    @property
    def sock(self) -> socket.socket:
        sock = self.port._socket
        if sock is not self._sock:  # reopened: what was buffered belongs to the old link
            self._sock = sock
            self.buf.clear()
            if sock is not None:
                # a serial line: each write goes out at once. With Nagle a stub read's
                # second ack waits for the device's delayed ACK (~40 ms per read).
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sock is None:
            raise serial.PortNotOpenError()
        return sock  # type: ignore[no-any-return]

    def waiting(self) -> int:
        if self.buf:
            return len(self.buf)
        try:
            ready, _, _ = select.select([self.sock], [], [], 0)
            if ready:
                self._fill(0)
        except (OSError, ValueError, serial.SerialException):
            return 0  # the following read reports the broken link
        return len(self.buf)

    def _fill(self, timeout: float | None) -> bool:
        """One recv() into the buffer once data arrives within ``timeout``; False on timeout."""
        sock = self.sock
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError as err:
            raise serial.SerialException(f"read failed: {err}") from err
        if not chunk:
            raise serial.SerialException("socket disconnected")
        self.buf += chunk
        return True

    def read(self, size: int = 1) -> bytes:
        if not self.port.is_open:
            raise serial.PortNotOpenError()
        _ = self.sock  # drops a stale buffer after a reopen
        timeout = serial.Timeout(self.port.timeout)
        while len(self.buf) < size:
            try:
                if not self._fill(timeout.time_left()):
                    break
            except serial.SerialException:
                raise
            except (OSError, ValueError) as err:
                raise serial.SerialException(f"read failed: {err}") from err
            if timeout.expired():
                break
        out = bytes(self.buf[:size])
        del self.buf[:size]
        return out

    def reset(self) -> None:
        self.buf.clear()


def _is_raw_tcp(port: Any) -> bool:
    """A pyserial ``socket://`` port (raw TCP). rfc2217:// ports also have a ``_socket``, but
    their bytes are telnet-encoded and read by pyserial's own thread: left alone."""
    if not isinstance(getattr(port, "_socket", None), socket.socket):
        return False
    # loaded by socket:// only (and maybe still loading on another thread: getattr)
    module = sys.modules.get("serial.urlhandler.protocol_socket")
    cls = getattr(module, "Serial", None)
    return cls is not None and isinstance(port, cls)


class _Guard:
    """Makes one pyserial port raise :class:`Cancelled` once aborted, and wakes blocked reads."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.aborted = False
        read, write, waiting = port.read, port.write, port.inWaiting
        raw_tcp = _is_raw_tcp(port)
        if raw_tcp:
            reader = _SocketReader(port)
            read, waiting = reader.read, reader.waiting
            reset_input = port.reset_input_buffer

            def reset_input_buffer() -> None:
                reader.reset()
                reset_input()

            port.reset_input_buffer = reset_input_buffer

        def guarded_read(size: int = 1) -> bytes:
            if self.aborted:
                raise Cancelled("cancelled")
            data: bytes = read(size)
            if self.aborted:
                raise Cancelled("cancelled")
            return data

        def guarded_write(data: bytes) -> int | None:
            if self.aborted:
                raise Cancelled("cancelled")
            written: int | None = write(data)
            return written

        def guarded_waiting() -> int:
            if self.aborted:
                raise Cancelled("cancelled")
            n: int = waiting()
            return n

        port.read, port.write, port.inWaiting = guarded_read, guarded_write, guarded_waiting
        close = port.close

        def closing() -> None:
            # pyserial's socket:// close() sleeps 0.3 s, and skips closing the socket when
            # shutdown() fails (peer already gone): close a TCP link directly instead
            sock = getattr(port, "_socket", None)
            if raw_tcp and isinstance(sock, socket.socket):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
                port._socket = None
                port.is_open = False
                return
            close()

        port.close = closing

    def abort(self) -> None:
        """Called from the watchdog thread: stop this port's I/O as soon as possible."""
        self.aborted = True
        sock = getattr(self.port, "_socket", None)
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a select() blocked on it
            except OSError:
                pass
        for name in ("cancel_read", "cancel_write"):
            fn = getattr(self.port, name, None)
            if fn is not None:
                try:
                    fn()
                except Exception:  # noqa: S110 - best effort; the guard raises anyway
                    pass


class _Watchdog:
    """One thread for all sessions: aborts a session's port once its cancel event is set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, tuple[threading.Event, _Guard]] = {}
        self._thread: threading.Thread | None = None

    def add(self, event: threading.Event, guard: _Guard) -> None:
        with self._lock:
            self._items[id(guard)] = (event, guard)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="station-flash-watchdog", daemon=True
                )
                self._thread.start()

    def remove(self, guard: _Guard) -> None:
        with self._lock:
            self._items.pop(id(guard), None)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._items:
                    self._thread = None
                    return
                items = list(self._items.values())
            for event, guard in items:
                if event.is_set() and not guard.aborted:
                    guard.abort()
            time.sleep(0.05)


_watchdog = _Watchdog()


# ---- errors in the operator's words -------------------------------------------------------
_PHASE_WORDS = {
    "connecting": "connecting",
    "identifying": "identifying the chip",
    "checking": "reading the device",
    "writing": "writing",
    "verifying": "reading back",
    "resetting": "resetting",
}


def _is_mismatch(err: BaseException) -> bool:
    """esptool's write check (its MD5 after a write) found other data on the device: the one
    place where esptool's text is read; everything above decides on :class:`FaultKind`."""
    low = str(err).lower()
    return "md5 of file does not match" in low or "written flash region is empty" in low


def _reason(err: BaseException, port: str, phase: str) -> str:
    """Translate an esptool/pyserial exception into one operator sentence."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    low = str(err).lower()
    doing = _PHASE_WORDS.get(phase, phase)
    if isinstance(err, Cancelled):
        return "cancelled"
    if _is_mismatch(err):
        return f"write check failed while {doing}: the device holds different data (MD5)"
    # esptool's "data stream stopped: possible serial noise" is a reply that stopped halfway:
    # garbled bytes would have set the session's garbled flag before (see DeviceSession._error)
    stopped = ("timed out", "no serial data", "no more data", "stream stopped", "transfer stopped")
    if any(w in low for w in stopped):
        return f"{port} stopped answering while {doing} — {CONNECT_HINT}"
    if "invalid head of packet" in low or "noise or corruption" in low or "corrupt" in low:
        return f"garbled data from {port} while {doing} — check the cable, or use a lower --baud"
    if (
        isinstance(err, (serial.SerialException, OSError))
        or "disconnected" in low
        or "returned no data" in low
        or "connection" in low
    ):
        return f"the connection to {port} was lost while {doing} — check the cable and the hub"
    if "invalid head of packet" in low or "checksum" in low or "corrupt" in low:
        return f"garbled data from {port} while {doing} — check the cable, or use a lower --baud"
    if "invalid response" in low or "packet" in low:
        return f"garbled data from {port} while {doing} — check the cable, or use a lower --baud"
    return f"{doing} failed on {port}: {text}"


PORT_BUSY = "port busy: in use by another program (close it, or choose another port)"


def _lock_tty(port: Any) -> None:
    """POSIX serial ports: also refuse programs that do not lock the port (TIOCEXCL: further
    opens fail with EBUSY, except for root); pyserial's ``exclusive`` only stops those that
    lock it too."""
    fd = getattr(port, "fd", None)
    if sys.platform != "win32" and isinstance(fd, int) and hasattr(termios, "TIOCEXCL"):
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCEXCL)


class DeviceSession:
    """One open connection to one device. Use as a context manager; every fault is a
    :class:`FlashError`."""

    def __init__(
        self,
        port: str,
        *,
        chip: str,
        baud: int,
        no_stub: bool,
        on_progress: Callable[[Progress], None] | None,
        cancel: threading.Event | None,
        timeout: float,
    ) -> None:
        self.port = port
        self.expected_chip = chip
        self.baud = baud
        self.no_stub = no_stub
        self.timeout = timeout
        self._on_progress = on_progress
        self.cancel = cancel if cancel is not None else threading.Event()
        self.phase = "connecting"
        self.info = DeviceInfo(port, "", "", None)
        self._serial: Any = None
        self._guard: _Guard | None = None
        self._esp: Any = None
        self._stub_read_failed = False
        self._garbled = False
        self._closed = False
        self.sink = JobSink()

    @property
    def loader(self) -> Any:
        """The connected esptool loader, for espefuse on this same connection
        (:mod:`station.security` burns the unit's eFuses through it)."""
        return self._esp

    # -- plumbing ------------------------------------------------------------------------
    def _emit(self, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(Progress(self.port, self.phase, done, total))

    def enter_phase(self, phase: str) -> None:
        """Announce a phase (a 0/0 progress event) — the GUI and the durations key off it."""
        self.phase = phase
        self._emit(0, 0)

    def _error(self, err: BaseException, phase: str | None = None) -> FlashError:
        phase = phase or self.phase
        if self.cancel.is_set():
            return FlashError("cancelled", phase=phase, port=self.port)
        if isinstance(err, FlashError):
            return err
        if self._garbled and not isinstance(err, (serial.SerialException, OSError)):
            reason = (
                f"garbled data from {self.port} while {_PHASE_WORDS.get(phase, phase)} — "
                "check the cable, or use a lower --baud"
            )
            return FlashError(reason, phase=phase, port=self.port)
        kind = FaultKind.MISMATCH if _is_mismatch(err) else FaultKind.DEVICE
        return FlashError(_reason(err, self.port, phase), phase=phase, port=self.port, kind=kind)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise FlashError("cancelled", phase=self.phase, port=self.port)

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call into esptool with this thread's output routed to this session."""
        self._check_cancel()
        try:
            with router().bound(self.sink):
                return fn(*args, **kwargs)
        except FlashError:
            raise
        except (FatalError, serial.SerialException, OSError, ValueError, TypeError) as err:
            raise self._error(err) from err
        except Exception as err:  # struct.error and friends from garbled replies
            if type(err).__module__ in ("struct", "zlib", "serial.serialutil"):
                raise self._error(err) from err
            raise

    # -- connection ----------------------------------------------------------------------
    def _open_serial(self) -> None:
        try:
            # exclusive, as esptool opens ports: a second program on the port (another station,
            # a serial monitor) is refused instead of interleaving bytes with ours
            port = serial.serial_for_url(self.port, exclusive=True, do_not_open=True)
            port.baudrate = ROM_BAUD
            port.open()
            _lock_tty(port)
        except (serial.SerialException, OSError, ValueError) as err:
            low = str(err).lower()
            if "refused" in low or "timed out" in low:
                reason = f"no device answered on {self.port} — {CONNECT_HINT}"
            elif "exclusively lock" in low or "denied" in low or "busy" in low:
                reason = PORT_BUSY
            elif "no such file" in low or "could not open" in low or "not found" in low:
                reason = f"cannot open {self.port}: no such port — is the device plugged in?"
            else:
                reason = f"cannot open {self.port}: {str(err).splitlines()[0]}"
            kind = FaultKind.PORT_BUSY if reason == PORT_BUSY else FaultKind.DEVICE
            raise FlashError(reason, phase="connecting", port=self.port, kind=kind) from err
        self._serial = port
        self._guard = _Guard(port)
        _watchdog.add(self.cancel, self._guard)

    def _close_serial(self) -> None:
        if self._guard is not None:
            _watchdog.remove(self._guard)
            self._guard = None
        if self._serial is not None:
            # socket:// ports: pyserial's close() shuts the socket down first and, when that
            # fails (a cancel already shut it down, or the peer is gone), never closes it; the
            # socket would be left to the garbage collector (ResourceWarning). Close it here.
            sock = getattr(self._serial, "_socket", None)
            try:
                self._serial.close()
            except Exception:  # noqa: S110 - closing a lost port may fail; nothing to do
                pass
            finally:
                if isinstance(sock, socket.socket):
                    sock.close()  # a no-op when close() already did it
            self._serial = None
        self._esp = None

    def _connect(self) -> None:
        """Open the port and sync with the ROM loader until it answers or time runs out."""
        self._open_serial()
        mode = "no-reset" if self.port.startswith(("socket:", "rfc2217:")) else "default-reset"
        deadline = time.monotonic() + self.timeout
        last: BaseException | None = None
        while True:
            self._check_cancel()
            try:
                if not self._serial.is_open:
                    self._serial.open()
                with router().bound(self.sink):
                    self._esp = cmds.detect_chip(
                        self._serial, ROM_BAUD, connect_mode=mode, connect_attempts=1
                    )
                break
            except (FatalError, serial.SerialException, OSError) as err:
                last = err
                if self.cancel.is_set() or time.monotonic() >= deadline:
                    break
        if self._esp is None:
            self._close_serial()
            if self.cancel.is_set():
                raise FlashError("cancelled", phase="connecting", port=self.port)
            raise FlashError(
                f"no device answered on {self.port} — {CONNECT_HINT}",
                phase="connecting",
                port=self.port,
            ) from last
        self._esp.WRITE_FLASH_ATTEMPTS = 1  # esptool's retry sleeps ~7 s; we fail and report
        self._watch_garbage()
        if self.baud != ROM_BAUD and not self._esp.IS_STUB:
            try:
                self._run(self._esp.change_baud, self.baud)
            except FlashError:
                if self.cancel.is_set():
                    raise
                # NotImplementedInROMError (ESP8266) and friends: stay at the ROM's rate

    def open(self) -> None:
        """Connect and identify (chip, MAC, flash size); refuse a chip the caller did not ask
        for."""
        self.enter_phase("connecting")
        self._connect()
        self.enter_phase("identifying")
        esp = self._esp
        name = esp.CHIP_NAME
        if self.expected_chip not in ("", "auto") and not _same_chip(self.expected_chip, name):
            raise FlashError(
                f"chip is {name}, lot expects {chip_label(self.expected_chip)}",
                phase="identifying",
                port=self.port,
            )
        mac = self._run(esp.read_mac)
        mac_text = ":".join(f"{b:02x}" for b in mac) if mac else ""
        self._run(cmds.attach_flash, esp)
        size: int | None = None
        try:
            text = self._run(cmds.detect_flash_size, esp)
            size = flash_size_bytes(text) if text else None
        except FlashError:
            if self.cancel.is_set():
                raise
        self.info = DeviceInfo(self.port, name, mac_text, size)

    def _reconnect_rom(self) -> None:
        """A fresh connection in ROM-loader mode (for the ROM's slow read); same device only."""
        self._close_serial()
        self._connect()
        self._run(cmds.attach_flash, self._esp)
        mac = self._run(self._esp.read_mac)
        mac_text = ":".join(f"{b:02x}" for b in mac) if mac else ""
        if self.info.mac and mac_text != self.info.mac:
            raise FlashError(
                f"a different device answered on {self.port} ({mac_text}, was {self.info.mac})"
                " — do not swap devices while they are being flashed",
                phase=self.phase,
                port=self.port,
            )

    def _watch_garbage(self) -> None:
        """Notice garbled bytes: esptool's packet reader reports them only through its trace
        hook and then dies, so the error the caller sees is a bland "no more data"."""
        esp = self._esp
        original = type(esp).trace
        self._garbled = False

        def trace(message: object, *args: Any, **kwargs: Any) -> None:
            if isinstance(message, str) and message.startswith("Read invalid data"):
                self._garbled = True
            if getattr(esp, "_trace_enabled", True):  # a call per packet read: only if on
                original(esp, message, *args, **kwargs)

        esp.trace = trace
        esp.flush_input()  # rebuilds the packet reader with this hook

    def _load_stub(self) -> None:
        if self._esp.IS_STUB or self.no_stub:
            return
        self._esp = self._run(cmds.run_stub, self._esp)
        self._esp.WRITE_FLASH_ATTEMPTS = 1
        self._watch_garbage()
        if self._serial.baudrate != self.baud:
            self._run(self._esp.change_baud, self.baud)
        # No attach_flash again: the stub attaches the flash itself when it starts, and for a
        # stub esptool's attach_flash only repeats what the ROM's did on this connection (the
        # XMC flash start-up and the SFDP check: ~30 register commands, ~12 % of a unit's CPU)

    # -- reading -------------------------------------------------------------------------
    def _progress_fn(self, base: int, total: int) -> Callable[[int, int, int], None]:
        def fn(done: int, _length: int, _offset: int) -> None:
            self._emit(base + done, total)

        return fn

    def _rom_read(self, offset: int, size: int, base: int, total: int) -> bytes | None:
        """The ROM loader's slow read; None when this ROM cannot do it."""
        esp = self._esp
        if type(esp).read_flash_slow is ESPLoader.read_flash_slow:
            return None
        try:
            with router().bound(self.sink):
                data = esp.read_flash_slow(offset, size, self._progress_fn(base, total))
        except NotImplementedInROMError:
            return None
        except FatalError as err:
            if getattr(err, "status", None) is None and "result was" not in str(err):
                raise self._error(err) from err
            return None  # the ROM refused the command
        except (serial.SerialException, OSError) as err:
            raise self._error(err) from err
        return bytes(data)

    def _stub_read(self, offset: int, size: int, base: int, total: int) -> bytes:
        esp = self._esp
        return bytes(self._run(esp.read_flash, offset, size, self._progress_fn(base, total)))

    def _read(self, offset: int, size: int, base: int, total: int) -> bytes:
        self._check_cancel()
        if self._esp is None:
            self._reconnect_rom()
        if not self._stub_read_failed:
            self._load_stub()
        elif self._esp.IS_STUB:
            self._reconnect_rom()  # a write loaded the stub, which cannot read here
        if not self._esp.IS_STUB:
            data = self._rom_read(offset, size, base, total)
            if data is not None:
                return data
            if self.no_stub:
                raise FlashError(
                    f"the {self.info.chip or 'chip'}'s ROM loader cannot read flash; "
                    "run without --no-stub",
                    phase=self.phase,
                    port=self.port,
                )
            self._load_stub()
        try:
            return self._stub_read(offset, size, base, total)
        except FlashError as first:
            if self.cancel.is_set():
                raise
            # retry as a ROM-mode read over a fresh connection (some stubs and simulated
            # devices cannot stream flash reads); keep the first reason if that fails too
            try:
                self._reconnect_rom()
                if self._esp.IS_STUB:
                    raise first
                data = self._rom_read(offset, size, base, total)
            except FlashError as second:
                raise (second if self.cancel.is_set() else first) from None
            if data is None:
                raise first from None
            self._stub_read_failed = True  # this device's stub cannot read: the ROM from now on
            return data

    def read(self, offset: int, size: int) -> bytes:
        """Read ``size`` bytes of flash at ``offset`` (progress in the current phase).

        A region of :data:`BLANK_FIRST` bytes or more is first asked for its MD5: a blank one
        (a new board's factory partition) is then known without reading it — one command
        instead of one per 64 bytes through the ROM loader."""
        if self.phase in ("connecting", "identifying"):
            self.enter_phase("checking")
        if size >= BLANK_FIRST and self.is_blank(offset, size):
            self._emit(size, size)
            return b"\xff" * size
        return self._read(offset, size, 0, size)

    def is_blank(self, offset: int, size: int) -> bool:
        """Whether the region is all 0xFF, by the device's MD5 when it has one, else by reading."""
        self._check_cancel()
        if self._esp is None:
            self._reconnect_rom()
        blank_md5 = hashlib.md5(b"\xff" * size).hexdigest()  # noqa: S324 - esptool's check
        try:
            with router().bound(self.sink):
                md5 = self._esp.flash_md5sum(offset, size)
        except NotImplementedInROMError:
            return self._read(offset, size, 0, size) == b"\xff" * size
        except (FatalError, serial.SerialException, OSError) as err:
            raise self._error(err) from err
        return bool(md5 == blank_md5)

    def read_partition_table(self) -> Any:
        """The device's partition table at 0x8000, or None when that sector is blank.

        Returns a :class:`station.partitions.PartitionTable`; a damaged table is a FlashError.
        """
        from station.errors import StationError
        from station.partitions import parse_binary

        if self.phase in ("connecting", "identifying"):
            self.enter_phase("checking")
        if self.is_blank(TABLE_OFFSET, TABLE_SIZE):
            return None
        data = self.read(TABLE_OFFSET, TABLE_SIZE)
        if data == b"\xff" * len(data):
            return None
        try:
            return parse_binary(data, file=f"{self.port}@0x{TABLE_OFFSET:x}")
        except StationError as err:
            first = err.problems[0].message
            raise FlashError(
                f"the device's partition table at 0x{TABLE_OFFSET:x} is damaged ({first})",
                phase=self.phase,
                port=self.port,
            ) from err

    # -- writing -------------------------------------------------------------------------
    def write(self, regions: Sequence[WriteRegion]) -> None:
        """Write each region (stub flasher unless no_stub); esptool's MD5 check runs after
        each."""
        self.enter_phase("writing")
        self._check_cancel()
        if self._esp is None:
            self._reconnect_rom()
        total = sum(len(r.data) for r in regions)
        self._load_stub()
        base = 0
        for region in regions:
            size = len(region.data)

            def on_bar(cur: int, bar_total: int, base: int = base, size: int = size) -> None:
                if bar_total > 0:
                    self._emit(base + min(size, cur * size // bar_total), total)

            self.sink.on_progress = on_bar
            try:
                self._run(
                    cmds.write_flash,
                    self._esp,
                    [(region.offset, region.data)],
                    flash_size="keep",
                )
            except FlashError as err:
                if err.kind is FaultKind.MISMATCH:
                    where = region.name or "region"
                    raise FlashError(
                        f"write check failed at 0x{region.offset:x} ({where}): the device "
                        "holds different data (MD5)",
                        phase="writing",
                        port=self.port,
                        kind=FaultKind.MISMATCH,
                    ) from err
                raise
            finally:
                self.sink.on_progress = None
            base += size
        self._emit(total, total)

    def _md5_verify(self, region: WriteRegion, base: int, total: int) -> None:
        """Compare the device's MD5 of the region with the data's; a ROM without the MD5
        command (ESP8266) reads the region back instead."""
        self._check_cancel()
        if self._esp is None:
            self._reconnect_rom()
        want = hashlib.md5(region.data).hexdigest()  # noqa: S324 - esptool's check
        try:
            with router().bound(self.sink):
                got = str(self._esp.flash_md5sum(region.offset, len(region.data))).lower()
        except NotImplementedInROMError:
            self._compare(region, self._read(region.offset, len(region.data), base, total))
            return
        except (FatalError, serial.SerialException, OSError) as err:
            raise self._error(err) from err
        if got != want:
            raise FlashError(
                f"verify failed at 0x{region.offset:x} ({region.name or 'region'}): the "
                "device holds different data (MD5)",
                phase="verifying",
                port=self.port,
                kind=FaultKind.MISMATCH,
            )

    def _compare(self, region: WriteRegion, data: bytes) -> None:
        if data != region.data:
            at = next(
                (i for i, (a, b) in enumerate(zip(data, region.data, strict=False)) if a != b),
                min(len(data), len(region.data)),
            )
            raise FlashError(
                f"verify failed at 0x{region.offset + at:x}",
                phase="verifying",
                port=self.port,
                kind=FaultKind.MISMATCH,
            )

    def verify(self, regions: Sequence[WriteRegion]) -> None:
        """Check every region: by the device's MD5 where ``readback`` is False (first, while the
        stub is still loaded), else by reading it back and comparing — the first differing
        address is the reason."""
        self.enter_phase("verifying")
        total = sum(len(r.data) for r in regions)
        base = 0
        for region in regions:
            if not region.readback:
                self._md5_verify(region, base, total)
                base += len(region.data)
                self._emit(base, total)
        for region in regions:
            if not region.readback:
                continue
            data = self._read(region.offset, len(region.data), base, total)
            self._compare(region, data)
            base += len(region.data)

    def reset(self) -> None:
        """Reset the chip so it runs its firmware, then close the connection."""
        self.enter_phase("resetting")
        try:
            # a TCP link has no reset line (esptool says so too): nothing to toggle
            if self._esp is not None and not self.port.startswith(("socket:", "rfc2217:")):
                self._run(self._esp.hard_reset)
        finally:
            self.close()

    def close(self) -> None:
        """Close the port (idempotent)."""
        if not self._closed:
            self._closed = True
            self._close_serial()

    def __enter__(self) -> DeviceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_device(
    port: str,
    *,
    chip: str = "auto",
    baud: int = 460800,
    no_stub: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    timeout: float = 10.0,
) -> DeviceSession:
    """Connect to the device on ``port`` and identify it; FlashError if it does not answer
    within ``timeout`` seconds, is another chip than ``chip``, or ``cancel`` is set."""
    session = DeviceSession(
        port,
        chip=chip,
        baud=baud,
        no_stub=no_stub,
        on_progress=on_progress,
        cancel=cancel,
        timeout=timeout,
    )
    try:
        session.open()
    except BaseException:
        session.close()
        raise
    return session
