"""Line and device faults: each ends as a failed job with the right reason; other ports finish."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from esptool.loader import MAX_TIMEOUT, ESPLoader

from station.flashing import (
    FlashJob,
    JobResult,
    Progress,
    WriteRegion,
    open_device,
    run_job,
    run_jobs,
)
from tests.flashing.conftest import FACTORY_OFFSET, FACTORY_SIZE, nvs_image
from tests.flashing.proxy import FaultProxy

pytestmark = pytest.mark.slow


def job(port: str, serial: str = "SN1", **kw: object) -> FlashJob:
    return FlashJob(
        port=port,
        regions=(WriteRegion(FACTORY_OFFSET, nvs_image(serial), "fctry"),),
        factory_offset=FACTORY_OFFSET,
        factory_size=FACTORY_SIZE,
        **kw,  # type: ignore[arg-type]
    )


def test_cut_stall_and_corruption_mid_write_fail_alone(sim) -> None:
    devs = sim(4)
    proxies = {
        fault: FaultProxy(dev.port, fault)
        for fault, dev in zip(("cut", "stall", "corrupt"), devs, strict=False)
    }
    by_port = {p.port: p for p in proxies.values()}
    healthy = devs[3]
    try:

        def on_progress(p: Progress) -> None:
            # the fault strikes once the write is under way
            if p.phase == "writing" and p.done > 0 and p.port in by_port:
                by_port[p.port].arm()

        ports = [proxies["cut"].port, proxies["stall"].port, proxies["corrupt"].port, healthy.port]
        results = run_jobs([job(port, f"SN{i}") for i, port in enumerate(ports)], on_progress)
    finally:
        for p in proxies.values():
            p.close()
    cut, stall, corrupt, ok = results
    assert ok.ok, ok.reason
    for r in (cut, stall, corrupt):
        assert not r.ok
        assert r.phase == "writing", r
        assert r.mac  # identified before the fault
    assert cut.reason == (
        f"the connection to {cut.port} was lost while writing — check the cable and the hub"
    )
    assert stall.reason == (
        f"{stall.port} stopped answering while writing — check the cable and the BOOT button"
    )
    assert corrupt.reason.startswith(f"garbled data from {corrupt.port} while writing")


def test_wrong_chip_type_is_refused_before_writing(sim) -> None:
    (c3,) = sim(1, chip="esp32c3")
    (good,) = sim(1)
    r_c3, r_good = run_jobs([job(c3.port, chip="esp32"), job(good.port, chip="esp32")])
    assert not r_c3.ok
    assert r_c3.reason == "chip is ESP32-C3, lot expects ESP32"
    assert r_c3.phase == "identifying"
    assert r_good.ok, r_good.reason
    # nothing was written on the refused chip
    with open_device(c3.port, no_stub=True) as s:
        assert s.is_blank(FACTORY_OFFSET, FACTORY_SIZE)


def test_hung_and_missing_ports_fail_by_timeout_without_holding_others(sim) -> None:
    (dev,) = sim(1)
    (hung_dev,) = sim(1)
    hung = FaultProxy(hung_dev.port, "stall")
    hung.arm()  # answers nothing at all
    missing = "/dev/ttyNOSUCHPORT" if sys.platform != "win32" else "COM199"
    try:
        results = run_jobs([job(hung.port, timeout=1.0), job(missing), job(dev.port)])
    finally:
        hung.close()
    r_hung, r_missing, r_ok = results
    assert r_ok.ok, r_ok.reason
    assert r_hung.reason == (
        f"no device answered on {hung.port} — check the cable and the BOOT button"
    )
    assert r_hung.phase == "connecting"
    assert r_missing.reason.startswith(f"cannot open {missing}")
    assert not r_missing.ok


def _run_in_thread(j: FlashJob, on_progress=None, cancel=None):  # type: ignore[no-untyped-def]
    out: dict[str, JobResult] = {}
    t = threading.Thread(target=lambda: out.update(r=run_job(j, on_progress, cancel)), daemon=True)
    t.start()
    return t, out


def test_cancel_ends_a_write_that_nothing_else_would_end(sim, monkeypatch) -> None:
    """The device's reply is held forever and esptool's timeouts are stretched to their 240 s
    ceiling: only cancel can end this job within the join below. The other port finishes."""
    devs = sim(2)
    held = FaultProxy(devs[0].port, "hold")
    cancel = threading.Event()
    command = ESPLoader.command

    def patient(self, op=None, data=b"", chk=0, wait_response=True, timeout=3.0):  # type: ignore[no-untyped-def]
        return command(self, op, data, chk, wait_response, timeout=MAX_TIMEOUT)

    def on_progress(p: Progress) -> None:
        if (
            p.port == held.port
            and p.phase == "writing"
            and p.done > 0
            and not held.triggered.is_set()
        ):
            monkeypatch.setattr(ESPLoader, "command", patient)  # from the next block on
            held.arm()

    try:
        t, out = _run_in_thread(job(held.port), on_progress, cancel)
        other = run_job(job(devs[1].port))
        assert held.holding.wait(60), "the write never reached the held reply"
        start = time.perf_counter()
        cancel.set()  # the operator presses Stop while the device hangs
        t.join(60)  # far below esptool's 240 s: only the cancel ends it
        took = time.perf_counter() - start
        assert not t.is_alive(), "cancel did not end the job"
    finally:
        held.close()
    print(f"cancelled write returned {took:.3f} s after cancel.set()")
    r = out["r"]
    assert (r.ok, r.reason, r.phase) == (False, "cancelled", "writing")
    assert other.ok, other.reason


def test_cancel_ends_a_connection_attempt_that_would_last_an_hour(sim) -> None:
    """Every reply is held and the job may try to connect for an hour: only cancel ends it."""
    (dev,) = sim(1)
    held = FaultProxy(dev.port, "hold")
    held.arm()
    cancel = threading.Event()
    try:
        t, out = _run_in_thread(job(held.port, timeout=3600.0), cancel=cancel)
        assert held.holding.wait(60), "the engine never sent a sync"
        start = time.perf_counter()
        cancel.set()
        t.join(60)
        took = time.perf_counter() - start
        assert not t.is_alive(), "cancel did not end the job"
    finally:
        held.close()
    print(f"cancelled connect returned {took:.3f} s after cancel.set()")
    r = out["r"]
    assert (r.ok, r.reason, r.phase, r.mac) == (False, "cancelled", "connecting", "")


def test_cancel_before_start_touches_nothing(sim) -> None:
    (dev,) = sim(1)
    cancel = threading.Event()
    cancel.set()
    r = run_job(job(dev.port), cancel=cancel)
    assert (r.ok, r.reason, r.phase) == (False, "cancelled", "connecting")
    with open_device(dev.port, no_stub=True) as s:
        assert s.is_blank(FACTORY_OFFSET, FACTORY_SIZE)


def test_verify_reports_the_first_differing_address(sim) -> None:
    (dev,) = sim(1)
    image = nvs_image("SNV")
    with open_device(dev.port, no_stub=True) as s:
        s.write([WriteRegion(FACTORY_OFFSET, image)])
        wrong = bytearray(image)
        wrong[0x2000 + 5] ^= 0xFF
        with pytest.raises(Exception) as info:
            s.verify([WriteRegion(FACTORY_OFFSET, bytes(wrong))])
    assert getattr(info.value, "reason", "") == f"verify failed at 0x{FACTORY_OFFSET + 0x2005:x}"


def test_an_md5_mismatch_is_a_mismatch_by_kind_and_a_dead_link_is_not() -> None:
    """The orchestrator decides on FlashError.kind; the text is for the operator."""
    from esptool.util import FatalError

    from station.flashing import FaultKind
    from station.flashing.device import DeviceSession

    s = DeviceSession(
        "socket://127.0.0.1:9",
        chip="auto",
        baud=115200,
        no_stub=True,
        on_progress=None,
        cancel=None,
        timeout=1.0,
    )
    s.phase = "writing"
    md5 = s._error(FatalError("MD5 of file does not match data in flash!"))
    assert md5.kind is FaultKind.MISMATCH and md5.reason.startswith("write check failed")
    lost = s._error(OSError("connection reset"))
    assert lost.kind is FaultKind.DEVICE
