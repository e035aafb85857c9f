"""The engine against simulated devices: concurrent jobs, each read back with esptool."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from esptool import cmds
from esptool.util import FatalError

from station import cli
from station.flashing import (
    FlashJob,
    Progress,
    WriteRegion,
    open_device,
    run_job,
    run_jobs,
)
from station.flashing.routing import router
from station.partitions import Partition, PartitionTable, to_binary
from tests.flashing.conftest import FACTORY_OFFSET, FACTORY_SIZE, nvs_image

pytestmark = pytest.mark.slow


def esptool_read(port: str, offset: int, size: int) -> bytes:
    """Read flash with esptool itself, independent of our engine: through the ROM loader, or
    through the stub when it still runs (a simulated chip on a PTY cannot be reset by RTS)."""
    with (
        cmds.detect_chip(
            port, connect_mode="no-reset" if port.startswith("socket") else "default-reset"
        ) as esp,
        router().bound(_Quiet()),
    ):
        if esp.sync_stub_detected:
            return bytes(esp.run_stub().read_flash(offset, size, None))
        return bytes(esp.read_flash_slow(offset, size, None))


class _Quiet:
    def progress(self, cur: int, total: int) -> None:
        pass

    def message(self, level: str, text: str) -> None:
        pass


def job(port: str, image: bytes, **kw: object) -> FlashJob:
    return FlashJob(
        port=port,
        regions=(WriteRegion(FACTORY_OFFSET, image, "fctry"),),
        factory_offset=FACTORY_OFFSET,
        factory_size=FACTORY_SIZE,
        **kw,  # type: ignore[arg-type]
    )


def test_concurrent_jobs_on_tcp_and_pty_each_verified_with_esptool(sim) -> None:
    devs = sim(3)
    if sys.platform.startswith("linux"):
        devs += sim(1, transport="pty")
    images = {d.port: nvs_image(f"SN{i:04d}") for i, d in enumerate(devs)}
    events: dict[str, list[Progress]] = {d.port: [] for d in devs}
    lock = threading.Lock()

    def on_progress(p: Progress) -> None:
        with lock:
            events[p.port].append(p)

    results = run_jobs([job(d.port, images[d.port]) for d in devs], on_progress)
    assert [r.ok for r in results] == [True] * len(devs), [r.reason for r in results]
    assert len({r.mac for r in results}) == len(devs)  # each device its own MAC
    assert {r.mac for r in results} == {d.mac for d in devs}
    for r in results:
        assert r.chip == "ESP32"
        assert set(r.durations) >= {
            "connecting",
            "identifying",
            "checking",
            "writing",
            "verifying",
            "resetting",
        }
        assert r.existing is None
        writing = [p for p in events[r.port] if p.phase == "writing" and p.total]
        assert writing[-1].done == writing[-1].total == FACTORY_SIZE
    for d in devs:
        assert esptool_read(d.port, FACTORY_OFFSET, FACTORY_SIZE) == images[d.port]


def test_progress_never_crosses_ports(sim) -> None:
    """Each job has its own callback; esptool's one logger must not leak between them."""
    devs = sim(3)
    seen: dict[str, list[Progress]] = {d.port: [] for d in devs}
    results: dict[str, bool] = {}

    def work(port: str) -> None:
        r = run_job(job(port, nvs_image(port[-5:])), seen[port].append)
        results[port] = r.ok

    threads = [threading.Thread(target=work, args=(d.port,)) for d in devs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results.values())
    for port, events in seen.items():
        assert {p.port for p in events} == {port}
        # esptool's own progress bar (routed through the logger) reached this job only
        assert any(p.phase == "writing" and 0 < p.done < p.total for p in events) or any(
            p.phase == "writing" and p.done == p.total > 0 for p in events
        )


def test_already_provisioned_region_is_refused_and_reported(sim) -> None:
    (dev,) = sim(1)
    first = run_job(job(dev.port, nvs_image("SN0042")))
    assert first.ok, first.reason
    again = run_job(job(dev.port, nvs_image("SN0043")))
    assert not again.ok
    assert again.phase == "checking"
    assert "already holds data (serial_no=SN0042" in again.reason
    assert again.existing == {"factory": {"serial_no": "SN0042", "batch": 7}}
    # nothing was written: the device still holds the first unit's data
    assert esptool_read(dev.port, FACTORY_OFFSET, FACTORY_SIZE) == nvs_image("SN0042")
    forced = run_job(job(dev.port, nvs_image("SN0043"), allow_overwrite=True))
    assert forced.ok, forced.reason
    assert forced.existing == {"factory": {"serial_no": "SN0042", "batch": 7}}


def _table(fctry_offset: int) -> PartitionTable:
    parts = (
        Partition("nvs", 1, 2, 0x10000, 0x6000, False, False, 1),
        Partition("fctry", 1, 2, fctry_offset, FACTORY_SIZE, False, False, 2),
        Partition("factory", 0, 0, 0x20000, 0x100000, False, False, 3),
    )
    return PartitionTable(parts, "test")


def test_partition_table_on_device_must_put_factory_where_the_lot_says(sim) -> None:
    devs = sim(2)
    lot_table = _table(FACTORY_OFFSET)
    # device 0 carries the lot's table, device 1 an older layout with fctry elsewhere
    with open_device(devs[0].port, no_stub=True) as s:
        s.write([WriteRegion(0x8000, to_binary(lot_table))])
    with open_device(devs[1].port, no_stub=True) as s:
        s.write([WriteRegion(0x8000, to_binary(_table(0x16000)))])
    results = run_jobs([job(d.port, nvs_image("SN1"), expected_table=lot_table) for d in devs])
    assert results[0].ok, results[0].reason
    assert not results[1].ok
    assert "puts 'fctry' at 0x16000" in results[1].reason
    assert "expects 0x9000" in results[1].reason


def test_session_reads_and_partition_table(sim) -> None:
    (dev,) = sim(1)
    with open_device(dev.port) as s:
        assert s.info.mac == dev.mac
        assert s.info.flash_size == 4 * 1024 * 1024
        assert s.read_partition_table() is None  # blank sector: no table
        assert s.is_blank(FACTORY_OFFSET, FACTORY_SIZE)
        region = WriteRegion(FACTORY_OFFSET, nvs_image("SNX"))
        s.write([region])
        s.verify([region])
        assert not s.is_blank(FACTORY_OFFSET, FACTORY_SIZE)


def test_a_blank_region_is_known_by_its_md5_without_reading_it(sim, monkeypatch) -> None:
    """A new board's factory partition costs one MD5 command, not 384 slow reads; a region
    with one written byte is read in full (and equals what esptool itself reads)."""
    (dev,) = sim(1)
    with open_device(dev.port) as s:
        reads: list[tuple[int, int]] = []
        real_read = s._read

        def counted(offset: int, size: int, base: int, total: int) -> bytes:
            reads.append((offset, size))
            return real_read(offset, size, base, total)

        monkeypatch.setattr(s, "_read", counted)
        assert s.read(FACTORY_OFFSET, FACTORY_SIZE) == b"\xff" * FACTORY_SIZE
        assert reads == []
        s.write([WriteRegion(FACTORY_OFFSET + FACTORY_SIZE - 0x1000, b"\x00" + b"\xff" * 0xFFF)])
        got = s.read(FACTORY_OFFSET, FACTORY_SIZE)
        assert reads == [(FACTORY_OFFSET, FACTORY_SIZE)]
        assert got == b"\xff" * (FACTORY_SIZE - 0x1000) + b"\x00" + b"\xff" * 0xFFF
    assert esptool_read(dev.port, FACTORY_OFFSET, FACTORY_SIZE) == got


def test_stub_writes_and_reads_back_and_a_failed_stub_read_is_retried_as_rom_read(
    sim, monkeypatch
) -> None:
    """A factory image is written and read back by the stub, as esptool would; a stub read
    that fails (as esptool's own does against the simulated stub, and as some real stubs do)
    is retried as a ROM read over a fresh connection, and the session stays with the ROM."""
    (dev,) = sim(1)
    image = nvs_image("SNSTUB")
    with open_device(dev.port) as s:
        s.write([WriteRegion(FACTORY_OFFSET, image)])
        assert s._esp.IS_STUB
        s.verify([WriteRegion(FACTORY_OFFSET, image)])
        assert s._esp.IS_STUB  # read back by the stub itself: no reconnect
    with open_device(dev.port) as s:
        s.write([WriteRegion(0x20000, b"\x11" * 0x1000)])
        stub_class = type(s._esp)
        failures = []

        def broken_read(self, offset, length, progress_fn=None):  # type: ignore[no-untyped-def]
            failures.append(offset)
            raise FatalError("No more data to read from the serial port.")

        monkeypatch.setattr(stub_class, "read_flash", broken_read)
        assert s.read(0x20000, 0x1000) == b"\x11" * 0x1000
        assert failures == [0x20000]
        assert not s._esp.IS_STUB  # read by the ROM loader after all
        s.write([WriteRegion(0x21000, b"\x22" * 0x1000)])  # the stub writes again
        assert s.read(0x21000, 0x1000) == b"\x22" * 0x1000
        assert failures == [0x20000]  # and the ROM reads: the stub is not asked again
        assert not s._esp.IS_STUB


def test_no_stub_reads_and_writes_through_the_rom_loader(sim) -> None:
    (dev,) = sim(1)
    image = nvs_image("SNROM")
    with open_device(dev.port, no_stub=True) as s:
        s.write([WriteRegion(FACTORY_OFFSET, image)])
        s.verify([WriteRegion(FACTORY_OFFSET, image)])
        assert not s._esp.IS_STUB
    assert esptool_read(dev.port, FACTORY_OFFSET, len(image)) == image


def test_a_serial_line_over_tcp_sends_each_write_at_once(sim) -> None:
    """socket:// links carry esptool's small writes (a stub read's acks) without Nagle's
    wait for the peer's delayed ACK."""
    (dev,) = sim(1)
    with open_device(dev.port) as s:
        s.read(FACTORY_OFFSET, FACTORY_SIZE)
        sock = s._serial._socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_station_flash_command_in_process(sim, tmp_path: Path, capsys) -> None:
    devs = sim(2)
    f = tmp_path / "fctry.bin"
    f.write_bytes(nvs_image("SN-CLI"))
    argv = ["flash"]
    for d in devs:
        argv += ["--port", d.port]
    assert cli.main([*argv, hex(FACTORY_OFFSET), str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert all(" ok " in line and "verified" in line for line in out)
    for d in devs:
        assert d.mac in "\n".join(out)
        assert esptool_read(d.port, FACTORY_OFFSET, FACTORY_SIZE) == f.read_bytes()


def test_station_flash_as_a_process_then_esptool_cli_reads_back(sim, tmp_path: Path) -> None:
    devs = sim(2)
    f = tmp_path / "fctry.bin"
    f.write_bytes(nvs_image("SN-PROC"))
    cmd = [sys.executable, "-m", "station", "flash"]
    for d in devs:
        cmd += ["--port", d.port]
    proc = subprocess.run([*cmd, "0x9000", str(f)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for d in devs:
        out = tmp_path / f"{d.mac.replace(':', '')}.bin"
        read = subprocess.run(
            [
                sys.executable,
                "-m",
                "esptool",
                "--port",
                d.port,
                "--no-stub",
                "read-flash",
                "0x9000",
                hex(FACTORY_SIZE),
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert read.returncode == 0, read.stdout + read.stderr
        assert out.read_bytes() == f.read_bytes()


def test_station_flash_exit_code_1_when_a_port_fails(sim, tmp_path: Path, capsys) -> None:
    (dev,) = sim(1)
    dead = sim(1)[0]
    dead_port = dead.port
    dead.stop()
    f = tmp_path / "a.bin"
    f.write_bytes(b"\x00" * 0x1000)
    code = cli.main(["flash", "--port", dev.port, "--port", dead_port, "0x20000", str(f)])
    assert code == 1
    out = capsys.readouterr().out
    assert f"{dev.port}" in out and "verified" in out
    assert f"no device answered on {dead_port} — check the cable and the BOOT button" in out


def test_encrypted_image_verifies_with_the_lots_keys_and_not_without(sim) -> None:
    from station.nvs import NvsEntry, encode_image, generate_keys

    keys = generate_keys()
    image = encode_image(
        [NvsEntry("factory", "namespace", "", ""), NvsEntry("serial_no", "data", "string", "E1")],
        FACTORY_SIZE,
        keys=keys,
    )
    ok_dev, bad_dev = sim(2)
    good = run_job(job(ok_dev.port, image, nvs_keys=keys))
    assert good.ok, good.reason
    # the same bytes judged without the key do not decode: the check really uses the key
    bad = run_job(job(bad_dev.port, image))
    assert not bad.ok
    assert "does not decode as NVS" in bad.reason
