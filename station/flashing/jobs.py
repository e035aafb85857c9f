"""Flash jobs: one port, start to finish, and many ports at once.

:func:`run_job` never raises for a device fault: it returns a :class:`JobResult` with a reason
an operator understands, the chip, the MAC and how long each phase took. :func:`run_jobs` runs
one thread per port; a slow, hung or unplugged port never holds the others up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from station.flashing.device import TABLE_OFFSET, open_device
from station.flashing.types import FlashError, Progress, WriteRegion
from station.partitions.sizes import size_text

if TYPE_CHECKING:
    from station.nvs import XtsKeys
    from station.partitions import PartitionTable


@dataclass(frozen=True)
class FlashJob:
    """What to do on one port. ``factory_offset``/``factory_size`` name the region that must
    not be silently overwritten when it already holds data (``allow_overwrite``)."""

    port: str
    regions: tuple[WriteRegion, ...]
    chip: str = "auto"
    baud: int = 460800
    verify: bool = True
    no_stub: bool = False
    expected_table: PartitionTable | None = None
    factory_offset: int | None = None
    factory_size: int | None = None
    allow_overwrite: bool = False
    timeout: float = 10.0  # seconds to wait for the device to answer
    nvs_keys: XtsKeys | None = None  # an encrypted lot's keys, to decode what is read back


@dataclass(frozen=True)
class JobResult:
    """How one job ended. ``existing`` is what the factory region held before (decoded NVS:
    ``{namespace: {key: value}}``), None when it was blank or not checked."""

    port: str
    ok: bool
    reason: str
    chip: str = ""
    mac: str = ""
    durations: Mapping[str, float] = field(default_factory=dict)
    existing: Mapping[str, Mapping[str, object]] | None = None
    phase: str = ""  # where it failed ("" when ok)


def describe_existing(existing: Mapping[str, Mapping[str, object]]) -> str:
    """A short operator summary of found NVS data, e.g. "serial_no=SN0042, 7 keys"."""
    if "" in existing:
        return "not NVS data"
    keys = [(ns, k, v) for ns, d in existing.items() for k, v in d.items()]
    if not keys:
        return "an empty NVS"
    preferred = ("serial_no", "serial", "sn", "fileid", "unit_id", "device_id", "mac")
    named = [f"{k}={v}" for ns, k, v in keys if k.lower() in preferred and isinstance(v, str)]
    head = named[0] + ", " if named else ""
    return f"{head}{len(keys)} keys"


def _decode(data: bytes, keys: XtsKeys | None = None) -> dict[str, dict[str, object]]:
    """Decode an NVS region for the report; foreign bytes become ``{"": {"raw": ...}}``."""
    try:
        from station.nvs import decode_image
    except ImportError:  # the decoder is optional for the engine
        return {"": {"raw": f"{len(data)} bytes, not all 0xFF"}}
    try:
        image = decode_image(data, keys)
    except Exception:
        return {"": {"raw": f"{len(data)} bytes, not NVS"}}
    if not image.items:
        return {"": {"raw": f"{len(data)} bytes, not NVS"}} if image.errors else {}
    return {ns: dict(values) for ns, values in image.as_dict().items()}


def _check_fits(flash_size: int | None, job: FlashJob) -> None:
    """Refuse before writing anything when a region ends beyond the device's flash."""
    if not flash_size:
        return
    for r in job.regions:
        end = r.offset + len(r.data)
        if end > flash_size:
            raise FlashError(
                f"{r.name or 'the region'} at 0x{r.offset:x} ends at 0x{end:x}, beyond the "
                f"device's {size_text(flash_size)} flash — wrong device or "
                "wrong build",
                phase="identifying",
                port=job.port,
            )


def _written_table(job: FlashJob) -> PartitionTable | None:
    """The partition table this job writes (a region at the table's offset), parsed; None
    when the job writes none. An unreadable one is a FlashError before anything is written."""
    offset = getattr(job.expected_table, "table_offset", None) or TABLE_OFFSET
    region = next((r for r in job.regions if r.offset == offset), None)
    if region is None:
        return None
    from station.errors import StationError
    from station.partitions import parse_binary

    try:
        return parse_binary(region.data, file=region.name or "partition table")
    except StationError as err:
        raise FlashError(
            f"the partition table to write at 0x{offset:x} is damaged ({err.problems[0].message})",
            phase="checking",
            port=job.port,
        ) from err


def _check_placement(
    device_table: PartitionTable | None,
    job: FlashJob,
    port: str,
    source: str = "the device's partition table",
) -> None:
    """Refuse when the device's own partition table (or the one being written) puts the
    factory partition elsewhere."""
    if device_table is None or job.factory_offset is None:
        return
    advice = (
        " — flash the lot's partition table first"
        if source.startswith("the device")
        else " — the firmware does not belong to this lot"
    )
    off, size = job.factory_offset, job.factory_size
    name = None
    if job.expected_table is not None:
        name = next((p.name for p in job.expected_table.partitions if p.offset == off), None)
    parts = device_table.partitions
    if name is not None:
        found = [p for p in parts if p.name == name]
        if not found:
            raise FlashError(
                f"{source} has no '{name}' partition (the lot puts it at 0x{off:x}){advice}",
                phase="checking",
                port=port,
            )
        p = found[0]
        if p.offset != off or (size is not None and p.size != size):
            want = f"0x{off:x}" + (f" (0x{size:x} bytes)" if size is not None else "")
            raise FlashError(
                f"{source} puts '{name}' at 0x{p.offset:x} (0x{p.size:x} bytes), the lot "
                f"expects {want}{advice}",
                phase="checking",
                port=port,
            )
        return
    if not any(p.offset == off and (size is None or p.size == size) for p in parts):
        raise FlashError(
            f"{source} has no partition at 0x{off:x}{advice}",
            phase="checking",
            port=port,
        )


class _Clock:
    """Per-phase durations, from the 0/0 progress event each phase starts with."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self.on_progress = on_progress
        self.durations: dict[str, float] = {}
        self.phase = ""
        self.since = time.monotonic()

    def __call__(self, p: Progress) -> None:
        if p.phase != self.phase:
            self.stop()
            self.phase = p.phase
        if self.on_progress is not None:
            self.on_progress(p)

    def stop(self) -> None:
        now = time.monotonic()
        if self.phase:
            self.durations[self.phase] = self.durations.get(self.phase, 0.0) + now - self.since
        self.since = now
        self.phase = ""


def run_job(
    job: FlashJob,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> JobResult:
    """Connect, identify, check, write, verify and reset one device; never raises for a
    device fault."""
    clock = _Clock(on_progress)
    chip = mac = ""
    existing: dict[str, dict[str, object]] | None = None
    try:
        with open_device(
            job.port,
            chip=job.chip,
            baud=job.baud,
            no_stub=job.no_stub,
            on_progress=clock,
            cancel=cancel,
            timeout=job.timeout,
        ) as session:
            chip, mac = session.info.chip, session.info.mac
            _check_fits(session.info.flash_size, job)
            if job.factory_offset is not None:
                session.enter_phase("checking")
                written = _written_table(job)
                if written is not None:  # the job writes the table: that one must agree
                    _check_placement(written, job, job.port, source="the table being written")
                else:
                    _check_placement(session.read_partition_table(), job, job.port)
                size = job.factory_size or sum(
                    len(r.data) for r in job.regions if r.offset == job.factory_offset
                )
                if size and not session.is_blank(job.factory_offset, size):
                    existing = _decode(session.read(job.factory_offset, size), job.nvs_keys)
                    if not job.allow_overwrite:
                        raise FlashError(
                            f"the factory region at 0x{job.factory_offset:x} already holds "
                            f"data ({describe_existing(existing)}) — not overwritten",
                            phase="checking",
                            port=job.port,
                        )
            session.write(job.regions)
            if job.verify:
                session.verify(job.regions)
                _check_decodes(job)
            session.reset()
    except FlashError as err:
        clock.stop()
        return JobResult(
            job.port,
            False,
            err.reason,
            chip,
            mac,
            clock.durations,
            existing,
            phase=err.phase,
        )
    except Exception as err:  # a bug must not take the other ports down
        clock.stop()
        return JobResult(
            job.port,
            False,
            f"internal error: {err!r}",
            chip,
            mac,
            clock.durations,
            existing,
            phase=clock.phase,
        )
    clock.stop()
    return JobResult(
        job.port,
        True,
        "verified" if job.verify else "written (MD5 checked)",
        chip,
        mac,
        clock.durations,
        existing,
    )


def _check_decodes(job: FlashJob) -> None:
    """The factory image read back equals what was meant (compared above) — and decodes."""
    if job.factory_offset is None:
        return
    for r in job.regions:
        if r.offset == job.factory_offset:
            try:
                from station.nvs import decode_image
            except ImportError:
                return
            image = decode_image(r.data, job.nvs_keys)
            if image.errors:
                raise FlashError(
                    f"the factory data read back does not decode as NVS ({image.errors[0]})",
                    phase="verifying",
                    port=job.port,
                )


def run_jobs(
    jobs: Sequence[FlashJob],
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[JobResult]:
    """Run every job at once, one thread per port; results in the order of ``jobs``."""
    ports = [j.port for j in jobs]
    if len(set(ports)) != len(ports):
        raise ValueError("a port appears twice in one run")
    results: list[JobResult | None] = [None] * len(jobs)

    def work(i: int) -> None:
        results[i] = run_job(jobs[i], on_progress, cancel)

    threads = [
        threading.Thread(target=work, args=(i,), name=f"flash {j.port}", daemon=True)
        for i, j in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [
        r if r is not None else JobResult(j.port, False, "internal error: no result")
        for r, j in zip(results, jobs, strict=False)
    ]
