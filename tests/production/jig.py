"""A test jig: one fixed port (TCP) in front of whichever simulated board is put into it.

A factory port stays the same while boards are swapped; :meth:`Jig.insert` puts the next board
in (dropping any open connection, like unplugging). ``on_bytes`` sees the traffic of the current
connection (``up``, ``down``; ``total`` counts the jig's whole life), so a test can act at a
precise moment (mid-write, mid-read) without sleeping, and :meth:`Jig.cut_after` pulls the cable
once after a number of bytes towards the board, and :meth:`Jig.garble_after` flips the bits of
the board's answers from then on, for that connection.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class Jig:
    def __init__(self, target: str | None = None) -> None:
        self._lock = threading.Lock()
        self._target: tuple[str, int] | None = None
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._cut_at: int | None = None
        self._garble_at: int | None = None
        self._garbling = False
        self.up = 0  # bytes towards the board on the current connection
        self.down = 0
        self.total = 0  # bytes forwarded both ways over the jig's life (never reset)
        self.on_bytes: Callable[[Jig], None] | None = None
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(4)
        self.port = f"socket://127.0.0.1:{self._srv.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)
        if target:
            self.insert(target)

    def _spawn(self, fn: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def insert(self, target: str | None) -> None:
        """Put a board (its simulated port) into the jig; None leaves it empty."""
        with self._lock:
            if target is None:
                self._target = None
            else:
                host, port = target.removeprefix("socket://").rsplit(":", 1)
                self._target = (host, int(port))
            self._drop()

    def cut_after(self, up_bytes: int) -> None:
        """Pull the cable once, after this many bytes towards the board (on one connection)."""
        with self._lock:
            self._cut_at = up_bytes

    def garble_after(self, up_bytes: int) -> None:
        """Corrupt the board's answers once this many bytes went towards it (one connection)."""
        with self._lock:
            self._garble_at = up_bytes

    def _drop(self) -> None:
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._conns.clear()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                target = self._target
            if target is None:
                client.close()
                continue
            try:
                board = socket.create_connection(target, timeout=5)
                board.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._drop()  # one connection at a time, like a serial port
                self._conns += [client, board]
                self.up = self.down = 0
                self._garbling = False
            self._spawn(self._pump, client, board, True)
            self._spawn(self._pump, board, client, False)

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        while True:
            try:
                data = src.recv(4096)
            except OSError:
                break
            if not data:
                break
            cut = False
            with self._lock:
                self.total += len(data)
                if up:
                    self.up += len(data)
                    if self._cut_at is not None and self.up >= self._cut_at:
                        self._cut_at = None
                        cut = True
                    if self._garble_at is not None and self.up >= self._garble_at:
                        self._garble_at = None
                        self._garbling = True
                else:
                    self.down += len(data)
                    if self._garbling:
                        data = bytes(b ^ 0x5A for b in data)
            if cut:
                with self._lock:
                    self._drop()
                break
            try:
                dst.sendall(data)
            except OSError:
                break
            if self.on_bytes is not None:
                self.on_bytes(self)
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        try:
            self._srv.shutdown(socket.SHUT_RDWR)  # wakes the accept() below on Linux
        except OSError:
            pass
        self._srv.close()
        with self._lock:
            self._drop()
        for t in self._threads:
            t.join(5)
