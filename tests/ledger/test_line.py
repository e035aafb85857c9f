"""A line of three `station run` processes on one lot, on a real PostgreSQL server of the test's
own (initdb + pg_ctl in a temporary folder, so it can be restarted safely).

Each station drives four simulated boards, each behind a jig (a fixed port whose traffic the
test sees). What happens, triggered by what the boards see, never by time:

- station A is killed with SIGKILL while one of its boards is being written; its claims are
  recovered by the others once its lease ran out (each station's run is made to look as if
  on a PC of its own), before A is started again (the boards stay);
- the server is restarted once one of station B's boards was being written and A was killed
  (every station starts its first boards together);
- station C reaches the server through a TCP proxy of the test, which is cut (every connection
  dropped, new ones refused) while one of C's boards is being written, then restored;
- station B has a fifth slot, empty until A's claims were recovered: a station waiting for its
  next board is still part of the line (its lease renewals take back a dead station's claims).
  Without it B could finish its four boards and end before A's lease ran out, with C cut off:
  nobody was left to take A's claims back, and the test timed out about one run in ten.

At the end every row is done exactly once, every board holds exactly its row's image (read
back), and no MAC has two rows.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from station.flashing import SimulatedDevice, open_device, start_simulated_devices
from station.ledger import Ledger
from station.production import open_lot
from tests.production.conftest import make_small_lot
from tests.production.jig import Jig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LEASE = 3.0  # seconds: short, so that the dead station's claims come back quickly
PER_STATION = 4
WRITING = 6500  # bytes towards a board on one connection: it is being written (test_crash.py)


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A PostgreSQL cluster in a temporary folder (run as ``postgres`` when the test is root,
    as the server refuses to run as root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="station-pg-"))
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]
            self.dir.chmod(0o755)
            shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "station", "-N")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-w", "-l", str(self.dir / "log"),
                  "start")  # fmt: skip
        self.url = f"postgresql://station@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(self.bindir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """A TCP proxy to the server: :meth:`cut` drops every connection and refuses new ones (a
    network cut) until :meth:`restore`."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._srv.getsockname()[1])
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self.down = False
        self.refused = threading.Event()  # a connection was refused while cut
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                if self.down:
                    client.close()
                    self.refused.set()
                    continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            self.down = True
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._conns.clear()

    def restore(self) -> None:
        with self._lock:
            self.down = False

    def close(self) -> None:
        self.cut()
        self._srv.close()


class Station:
    """One `station run` process; its output lines are kept (and watched)."""

    def __init__(self, lot: Path, url: str, jigs: list[Jig]) -> None:
        cmd = [sys.executable, "-m", "station", "run", str(lot), "--db", url, "--no-stub"]
        cmd += ["--poll", "0.05", "--lease", str(LEASE), "--retries", "3"]
        for j in jigs:
            cmd += ["--port", j.port]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def wait_until(what: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting: {why}"
        pause.wait(0.05)


def once(fn: Callable[[], None]) -> Callable[[Jig], None]:
    """A jig callback that runs ``fn`` (in a thread of its own) the first time a board of
    that jig group is being written."""
    fired = threading.Lock()

    def hook(j: Jig) -> None:
        if j.up >= WRITING and fired.acquire(blocking=False):
            threading.Thread(target=fn, daemon=True).start()

    return hook


@pytest.fixture
def server() -> Iterator[Server]:
    pytest.importorskip("psycopg")
    bindir = _pg_bin()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    try:
        srv = Server(bindir)
    except (OSError, subprocess.CalledProcessError, LookupError) as err:
        pytest.skip(f"cannot start a PostgreSQL server here: {err}")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def boards() -> Iterator[list[SimulatedDevice]]:
    devs: list[SimulatedDevice] = []
    try:
        for _ in range(3):  # a batch per station: starting many at once is slow
            devs += start_simulated_devices(PER_STATION)
        devs += start_simulated_devices(1)  # for B's fifth slot, once A's claims came back
        yield devs
    finally:
        for d in devs:
            d.stop()


def test_a_line_survives_a_dead_station_a_server_restart_and_a_network_cut(
    tmp_path: Path, server: Server, boards: list[SimulatedDevice]
) -> None:
    n = len(boards)
    lot = make_small_lot(tmp_path / "lot", n, name="LINE")
    with open_lot(lot, db_url=server.url):
        pass  # imported (and the lot bound to this ledger) once, before the line starts
    jigs = [Jig(b.port) for b in boards[:-1]]
    groups = [jigs[i : i + PER_STATION] for i in range(0, n - 1, PER_STATION)]
    spare = Jig()  # B's fifth slot, empty for now
    jigs.append(spare)
    proxy = Proxy(server.port)
    via_proxy = f"postgresql://station@127.0.0.1:{proxy.port}/postgres"
    events: dict[str, float] = {}
    stations: list[Station] = []
    try:
        a_killed = threading.Event()

        def kill_a() -> None:
            import psycopg

            # each station as if on a PC of its own: only its lease tells the others whether
            # it is alive (on one PC its death is seen at once, from its process)
            with psycopg.connect(server.url, autocommit=True) as admin:
                admin.execute("UPDATE runs SET host = 'pc-' || pid WHERE ended_at IS NULL")
            stations[0].proc.send_signal(signal.SIGKILL)
            events["killed"] = time.time()
            a_killed.set()

        restarted = threading.Event()

        def restart_server() -> None:
            a_killed.wait(60)  # one thing at a time
            server.restart()
            restarted.set()

        cut = threading.Event()

        def cut_c() -> None:
            proxy.cut()
            cut.set()

        for group, action in zip(groups, (kill_a, restart_server, cut_c), strict=True):
            hook = once(action)  # the first board of the group being written
            for j in group:
                j.on_bytes = hook
        stations = [
            Station(lot, server.url, groups[0]),
            Station(lot, server.url, [*groups[1], spare]),
            Station(lot, via_proxy, groups[2]),
        ]
        wait_until(a_killed.is_set, 60, "station A writing a board")
        assert stations[0].wait(10) == -signal.SIGKILL
        wait_until(restarted.is_set, 60, "the server restarted while B was writing")
        dead_pid = stations[0].proc.pid
        with Ledger(server.url, station_id="test") as watch:
            watch.attach("LINE")
            # A's claims come back to the line through the others (A is not running)
            wait_until(
                lambda: _ledger_call(watch, lambda: not _claims_of(watch, dead_pid)),
                60,
                "the dead station's claims recovered",
            )
            ended = [
                a.ended_at or 0.0
                for a in watch.attempts()
                if watch.run_host(a.run_id)[1] == dead_pid
            ]
            events["recovered"] = max(ended)
        spare.insert(boards[-1].port)  # B's next board
        wait_until(cut.is_set, 60, "C's network cut while it was writing")
        wait_until(lambda: proxy.refused.is_set(), 60, "station C trying to reconnect")
        wait_until(lambda: stations[2].said("ledger offline"), 30, "C saying ledger offline")
        proxy.restore()
        for j in jigs:
            j.on_bytes = None
        stations[0] = Station(lot, server.url, groups[0])  # A again, with the same boards
        for s in stations:
            s.wait(120)
        assert any(s.said("ledger offline") for s in stations[1:])
        assert stations[2].said("ledger back online")  # C said when it could go on
        for name, s in zip("ABC", stations, strict=True):
            offline = sum("ledger offline" in line for line in s.lines)
            print(f"station {name}: {offline} 'ledger offline' lines")
        check_line(lot, server.url, boards)
        # the dead station's claims were recovered by the others (A was not running), within
        # its lease plus one renewal tick of theirs (and the server's restart meanwhile)
        delay = events["recovered"] - events["killed"]
        print(f"the dead station's claims were recovered {delay:.1f} s after the kill")
        assert delay < LEASE * 4
    finally:
        for s in stations:
            if s.proc.poll() is None:
                s.proc.kill()
                s.wait(10)
        if sys.exc_info()[0] is not None:  # what each station said, for the failure's report
            for name, s in zip("ABC", stations, strict=False):
                print(f"--- station {name} (pid {s.proc.pid}), last lines:")
                print("\n".join(s.lines[-40:]))
        proxy.close()
        for j in jigs:
            j.close()


def _ledger_call(led: Ledger, fn: Callable[[], bool]) -> bool:
    """``fn()``, False while the ledger is offline (the server restarting)."""
    from station.ledger import LedgerOffline

    try:
        return fn()
    except LedgerOffline:
        return False


def _claims_of(led: Ledger, pid: int) -> bool:
    """Whether an attempt of the station with this PID is still active."""
    for a in led.active_attempts():
        if led.run_host(a.run_id)[1] == pid:
            return True
    return False


def check_line(lot: Path, url: str, boards: list[SimulatedDevice]) -> None:
    with open_lot(lot, db_url=url) as opened:
        led = opened.ledger
        rows = led.rows(0, 100)
        assert [r.state for r in rows] == ["done"] * len(boards)
        macs = Counter(r.mac for r in rows)
        assert set(macs) == {b.mac for b in boards} and max(macs.values()) == 1
        # every row done exactly once: one attempt put it on its board; any later "done" is
        # a rework of that same board (a restarted station re-checks a board it had finished
        # before it was killed, or whose completion it could not confirm while offline)
        firsts = Counter(
            a.row_index for a in led.attempts() if a.result == "done" and a.kind != "rework"
        )
        assert firsts == Counter(range(len(boards)))
        for a in led.attempts():
            if a.result == "done":
                assert a.mac == led.row(a.row_index).mac
        assert led.active_attempts() == []
        results = Counter(a.result for a in led.attempts())
        print("attempts:", dict(Counter((a.kind, a.result) for a in led.attempts())))
        assert results["interrupted"] >= 1  # the kill and the cuts did land mid-unit
        for r in rows:
            board = next(b for b in boards if b.mac == r.mac)
            with open_device(board.port, no_stub=True) as s:
                got = s.read(opened.factory.offset, opened.factory.size)
            assert got == opened.image_for(opened.row(r.index)), f"{r.mac} row {r.index}"
