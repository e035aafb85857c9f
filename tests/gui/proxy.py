"""A TCP proxy in front of a simulated device that can cut the line (a pulled USB cable)."""

from __future__ import annotations

import selectors
import socket
import threading
from urllib.parse import urlparse

# The start of a SLIP command frame that carries flash data: FLASH_DATA (the ROM loader) and
# FLASH_DEFL_DATA (the stub). A 0xC0 inside a frame is escaped, so this marks a frame's start.
WRITE_COMMANDS = (b"\xc0\x00\x03", b"\xc0\x00\x11")


class CuttableProxy:
    """Forwards ``socket://127.0.0.1:PORT`` to a device; ``cut_at_write()`` drops every
    connection when the next block of flash data goes towards the device (and refuses new ones)
    until ``restore()``; ``stall_at_write()`` instead keeps the line open but passes nothing more
    from then on (a hung device). A block, not a byte count: the stub sends a factory image as
    one compressed block of a few hundred bytes.

    One thread serves everything (tests/flashing's FaultProxy leaves its accept thread blocked
    after close, which the GUI tests' thread check would report); ``close()`` joins it."""

    def __init__(self, target: str) -> None:
        url = urlparse(target)
        self.target = (url.hostname or "127.0.0.1", int(url.port or 0))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._armed: str | None = None  # "cut" or "stall" at the next write; None: no fault
        self._cut = False
        self._stall = False
        self.cuts = 0
        self.stalled = threading.Event()
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, tuple[socket.socket, bool]] = {}
        self._thread = threading.Thread(target=self._run, name="cuttable proxy", daemon=True)
        self._thread.start()

    def cut_at_write(self) -> None:
        with self._lock:
            self._armed = "cut"

    def stall_at_write(self) -> None:
        with self._lock:
            self._armed = "stall"

    def restore(self) -> None:
        with self._lock:
            self._armed = None
            self._cut = self._stall = False
            self.stalled.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in list(self._peers):
            s.close()
        self.listener.close()
        self._sel.close()

    def _drop_all(self) -> None:
        for s in list(self._peers):
            self._sel.unregister(s)
            s.close()
        self._peers.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(0.05):
                sock = key.fileobj
                if sock is self.listener:
                    self._accept()
                    continue
                assert isinstance(sock, socket.socket)
                if sock not in self._peers:
                    continue
                other, to_device = self._peers[sock]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._close_pair(sock)
                    continue
                with self._lock:
                    if to_device and self._armed and any(c in data for c in WRITE_COMMANDS):
                        if self._armed == "stall":
                            self._stall = True
                            self.stalled.set()
                        else:
                            self._cut = True
                            self.cuts += 1
                        self._armed = None
                    cut, stall = self._cut, self._stall
                if cut:
                    self._drop_all()
                    continue
                if stall:
                    continue  # swallowed: the device seems to hang
                try:
                    other.sendall(data)
                except OSError:
                    self._close_pair(sock)

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        with self._lock:
            cut = self._cut
        if cut:
            client.close()
            return
        try:
            device = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for s in (client, device):
            s.setblocking(True)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._peers[client] = (device, True)
        self._peers[device] = (client, False)
        self._sel.register(client, selectors.EVENT_READ, None)
        self._sel.register(device, selectors.EVENT_READ, None)

    def _close_pair(self, sock: socket.socket) -> None:
        other, _ = self._peers.pop(sock, (None, False))
        for s in (sock, other):
            if s is None:
                continue
            self._peers.pop(s, None)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
