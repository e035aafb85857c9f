"""A TCP proxy between the engine and a simulated device that injects line faults.

A fault triggers when :meth:`FaultProxy.arm` is called (e.g. from a progress callback once the
write is under way) or once the engine has sent ``after`` bytes towards the device:

- ``cut``: close both sides (a pulled cable);
- ``stall``: keep the line open but forward nothing more from the device (a hung device);
- ``corrupt``: flip bits in what the device sends back (a noisy line);
- ``hold``: hold what the device sends back until the proxy is closed — nothing is lost and
  nothing arrives, so the engine waits for as long as its own timeouts let it (``holding`` is
  set once a reply is being held).
"""

from __future__ import annotations

import socket
import threading


class FaultProxy:
    def __init__(self, target: str, fault: str | None = None, after: int | None = None) -> None:
        if fault not in (None, "cut", "stall", "corrupt", "hold"):
            raise ValueError(fault)
        host, port = target.removeprefix("socket://").rsplit(":", 1)
        self.target = (host, int(port))
        self.fault = fault
        self.after = after
        self.sent_up = 0  # bytes engine -> device, over all connections
        self.triggered = threading.Event()
        self.holding = threading.Event()  # "hold": a reply is being held now
        self._release = threading.Event()  # set by close() only
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(4)
        self.port = f"socket://127.0.0.1:{self._srv.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # a stalled line stays open however long it is quiet
            with self._lock:
                self._socks += [client, upstream]
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        while not self._stop.is_set():
            try:
                data = src.recv(4096)
            except OSError:
                break
            if not data:
                break
            if up:
                with self._lock:
                    self.sent_up += len(data)
                    if self.fault and self.after is not None and self.sent_up >= self.after:
                        self.triggered.set()
                if self.fault == "cut" and self.triggered.is_set():
                    break
            elif self.triggered.is_set():
                if self.fault == "hold":
                    self.holding.set()
                    self._release.wait()  # never released while the test runs
                    break
                if self.fault == "stall":
                    continue
                if self.fault == "corrupt":
                    data = bytes(b ^ 0x5A for b in data)
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def arm(self) -> None:
        """Trigger the fault now (e.g. from a progress callback: "mid-write")."""
        self.triggered.set()
        if self.fault == "cut":
            self._cut()

    def _cut(self) -> None:
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._release.set()
        try:
            self._srv.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() does not
        except OSError:
            pass
        self._srv.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
