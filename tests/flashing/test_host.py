"""The device host: sessions in a child process behave like local ones, and its failures are
device failures (never a hang, an orphaned process or a thread left behind)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from station.flashing import FlashError, Progress, WriteRegion, open_device
from station.flashing.host import HOST_NICE, DeviceHost, RemoteSession
from station.nvs import decode_image
from tests.flashing.conftest import FACTORY_OFFSET, FACTORY_SIZE, nvs_image
from tests.flashing.proxy import FaultProxy

pytestmark = pytest.mark.slow


@pytest.fixture
def host() -> DeviceHost:
    with DeviceHost() as h:
        yield h  # type: ignore[misc]
    assert h.pid is None


def host_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "device-host-reader"]


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_write_verify_and_read_back_through_the_host(sim, host: DeviceHost, transport: str) -> None:
    if transport == "pty" and sys.platform == "win32":
        pytest.skip("no PTY on Windows")
    (dev,) = sim(1, transport=transport)
    image = nvs_image("SN-HOST-1")
    region = WriteRegion(FACTORY_OFFSET, image, "fctry")
    seen: list[Progress] = []
    with host.open_device(dev.port, chip="esp32", on_progress=seen.append) as session:
        assert isinstance(session, RemoteSession)
        assert session.info.mac == dev.mac
        assert session.info.chip == "ESP32"
        session.write([region])
        session.verify([region])
        session.reset()
    # progress came back in order, on the calling thread, phase by phase
    phases = [p.phase for p in seen if p.done == 0 and p.total == 0]
    assert phases[:2] == ["connecting", "identifying"]
    assert "writing" in phases and "verifying" in phases
    assert phases.index("writing") < phases.index("verifying")
    writing = [p.done for p in seen if p.phase == "writing" and p.total]
    assert writing == sorted(writing) and writing[-1] == len(image)
    # an independent local connection reads what the host wrote
    with open_device(dev.port, no_stub=True) as local:
        back = local.read(FACTORY_OFFSET, FACTORY_SIZE)
    assert back == image
    assert decode_image(back).as_dict()["factory"]["serial_no"] == "SN-HOST-1"


def test_device_faults_keep_their_reasons(sim, host: DeviceHost) -> None:
    (dev,) = sim(1, chip="esp32c3")
    with pytest.raises(FlashError) as remote:
        host.open_device(dev.port, chip="esp32")
    with pytest.raises(FlashError) as local:
        open_device(dev.port, chip="esp32")
    assert remote.value.reason == local.value.reason == "chip is ESP32-C3, lot expects ESP32"
    assert remote.value.phase == local.value.phase == "identifying"
    # the refused session is gone from both ends: the next one works
    (good,) = sim(1)
    with host.open_device(good.port, chip="esp32") as session:
        assert session.info.mac == good.mac


def test_a_line_cut_mid_write_is_a_flash_error(sim, host: DeviceHost) -> None:
    (dev,) = sim(1)
    proxy = FaultProxy(dev.port, "cut")
    try:
        region = WriteRegion(FACTORY_OFFSET, nvs_image("SN-CUT"), "fctry")
        seen: list[Progress] = []
        # through the ROM loader: 1 KB blocks, so progress has steps before the cut (the
        # stub sends this image in one compressed block)
        with host.open_device(proxy.port, on_progress=seen.append, no_stub=True) as session:
            proxy.after = proxy.sent_up + 8000  # the line goes 8 kB into the write
            with pytest.raises(FlashError) as err:
                session.write([region])
    finally:
        proxy.close()
    assert proxy.triggered.is_set()
    # the card shows how far the write got before the line went (no progress step is dropped)
    written = [p.done for p in seen if p.phase == "writing" and p.total]
    assert written and 0 < written[-1] < len(region.data)
    assert err.value.reason == (
        f"the connection to {proxy.port} was lost while writing — check the cable and the hub"
    )
    assert err.value.phase == "writing"


def written(host: DeviceHost, port: str) -> None:
    """Data at the end of the flash: a blank flash is known by its MD5, without reading."""
    with host.open_device(port) as session:
        session.write([WriteRegion(0x3FF000, b"\x00" * 16, "last sector")])


def test_cancel_reaches_the_session_in_the_host(sim, host: DeviceHost) -> None:
    (dev,) = sim(1)
    written(host, dev.port)
    cancel = threading.Event()

    def cancel_once_reading(p: Progress) -> None:
        if p.done > 0:
            cancel.set()  # as the orchestrator does when the operator presses Cancel

    with host.open_device(dev.port, cancel=cancel, on_progress=cancel_once_reading) as session:
        session_cancel = session.cancel
        with pytest.raises(FlashError) as err:
            session.read(0, 0x400000)  # minutes at ROM speed unless cancelled
    assert session_cancel is cancel
    assert err.value.reason == "cancelled"


def test_a_host_that_dies_fails_its_sessions_and_is_restarted(sim, host: DeviceHost) -> None:
    (dev,) = sim(1)
    written(host, dev.port)
    killed = threading.Event()

    def kill_mid_read(p: Progress) -> None:
        if p.done > 0 and not killed.is_set():
            killed.set()
            os.kill(host.pid, signal.SIGKILL)  # type: ignore[arg-type]

    with host.open_device(dev.port) as session:
        session._on_progress = kill_mid_read  # type: ignore[attr-defined]
        with pytest.raises(FlashError) as err:
            session.read(0, 0x400000)
    assert killed.is_set()
    assert err.value.reason == f"the device host stopped (exit code {-signal.SIGKILL})"
    first = host.starts
    with host.open_device(dev.port) as again:
        assert again.info.mac == dev.mac
    assert host.starts == first + 1


def test_a_session_of_a_dead_host_fails_at_once_after_the_host_restarted(
    sim, host: DeviceHost
) -> None:
    """A session opened on a host that died, used or closed after another port restarted the
    host, fails (closes) at once: its messages must not go to the new host, which does not
    know it and would never answer (a port thread that never ended, issue 18)."""
    from station.flashing import FaultKind

    a_dev, b_dev = sim(2)
    a = host.open_device(a_dev.port)
    os.kill(host.pid, signal.SIGKILL)  # type: ignore[arg-type]
    with pytest.raises(FlashError) as first:
        a.read(0, 0x1000)
    assert first.value.kind is FaultKind.HOST
    with host.open_device(b_dev.port) as b:  # another port starts a new host
        assert b.info.mac == b_dev.mac
        outcome: list[object] = []

        def use_then_close() -> None:
            try:
                a.read(0, 0x1000)
            except FlashError as err:
                outcome.append(err.kind)
            a.close()
            outcome.append("closed")

        t = threading.Thread(target=use_then_close, name="old session")
        t.start()
        t.join(60.0)
        assert not t.is_alive(), "a session of the dead host waits for the new one"
        assert outcome == [FaultKind.HOST, "closed"]
        assert b.read(0, 16)  # the new host's session is unharmed


def test_a_host_found_dead_by_a_write_is_restarted_before_its_reader_notices(
    sim, host: DeviceHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead host is found by whoever notices first: its reader (end of its output) or a
    session's write (a broken pipe). Found by the write, it was not marked dead, so the next
    open did not start a new host and failed too (a CI run: the first session's read raced the
    reader). The reader is held at the end of the dead host's output until the new host is
    being started."""
    from station.flashing import FaultKind
    from station.flashing import host as host_module

    a_dev, b_dev = sim(2)
    a = host.open_device(a_dev.port)
    at_end, let_go = threading.Event(), threading.Event()
    recv, reap = host_module._recv, DeviceHost._reap

    def recv_held_at_end(stream: object) -> object:
        try:
            return recv(stream)  # type: ignore[arg-type]
        except EOFError:
            at_end.set()
            let_go.wait(30.0)
            raise

    def reap_then_let_go(child: object) -> None:
        let_go.set()
        reap(child)  # type: ignore[arg-type]

    monkeypatch.setattr(host_module, "_recv", recv_held_at_end)
    monkeypatch.setattr(DeviceHost, "_reap", staticmethod(reap_then_let_go))
    assert a.read(0, 16)  # the reader's next look at the output goes through the hold
    first = host.starts
    os.kill(host.pid, signal.SIGKILL)  # type: ignore[arg-type]
    assert at_end.wait(30.0)
    with pytest.raises(FlashError) as err:
        a.read(0, 16)  # its write finds the pipe broken; the reader is still held
    assert err.value.kind is FaultKind.HOST and not let_go.is_set()
    with host.open_device(b_dev.port) as b:
        assert host.starts == first + 1
        assert b.read(0, 16)
    with pytest.raises(FlashError):
        a.read(0, 16)
    a.close()


def test_closing_the_host_ends_its_process_and_threads(sim) -> None:
    (dev,) = sim(1)
    before = host_threads()
    host = DeviceHost()
    session = host.open_device(dev.port)
    pid = host.pid
    assert pid is not None and host_threads() == [*before, "device-host-reader"]
    host.close()  # with a session still open: the host closes it
    assert host.pid is None
    assert host_threads() == before
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    with pytest.raises(FlashError):
        session.read(0, 16)
    session.close()  # idempotent, no error once the host is gone
    with pytest.raises(FlashError, match="closed"):
        host.open_device(dev.port)


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
def test_the_host_runs_below_the_window_s_priority(host: DeviceHost) -> None:
    host.wait_ready()
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, host.pid) == min(19, mine + HOST_NICE)  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
def test_simulated_chips_can_run_below_the_station_s_priority(sim) -> None:
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    low, normal = sim(1, nice=10)[0], sim(1)[0]
    assert os.getpriority(os.PRIO_PROCESS, low.pid) == max(10, mine)  # type: ignore[arg-type]
    assert os.getpriority(os.PRIO_PROCESS, normal.pid) == mine  # type: ignore[arg-type]
    with DeviceHost() as host, host.open_device(low.port) as session:
        assert session.info.mac == low.mac  # a low-priority chip still answers


@pytest.mark.skipif(sys.platform == "win32", reason="closes fd 2 in the child (POSIX)")
def test_the_host_starts_without_a_stderr_and_exits_at_end_of_file() -> None:
    """A windowed program on Windows has no stderr; the host must still serve (here: fd 2
    closed), and exit cleanly when the station closes its end."""
    from station.flashing import host as host_module

    proc = subprocess.Popen(
        host_module._command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=host_module._environment(),
        preexec_fn=lambda: os.close(2),
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        kind, pid = host_module._recv(proc.stdout)
        assert (kind, pid) == ("ready", proc.pid)
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == b""  # nothing but messages ever reached the stream
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
