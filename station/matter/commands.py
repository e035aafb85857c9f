"""``station matter``: a drop-in for esp-matter-mfg-tool 1.0.29.

Same option names (short forms too), the same combinations accepted and refused, the same output
layout: ``OUTDIR/<vid>_<pid>/<uuid>/<uuid>-partition.bin``, ``<uuid>-onb_codes.csv``,
``<uuid>-qrcode.png``, ``<uuid>_esp_secure_cert.bin``, ``internal/`` (DAC, PAI, the partition's
CSV) and ``summary-<time>.csv``. Unlike the tool, every problem is reported at once with its
place, and nothing is written unless all is well (docs/matter.md lists the differences).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import datetime as dt
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.errors import Problem, ProblemList, StationError
from station.matter import certs
from station.matter.factory import (
    MatterDevice,
    device_items,
    new_device,
    nvs_entries,
    secure_cert_partition,
)
from station.matter.payload import (
    CommissioningFlow,
    format_manual_code,
)
from station.matter.plan import CLI as CLI
from station.matter.plan import SERIAL_MAX as SERIAL_MAX
from station.matter.plan import Plan as Plan
from station.matter.plan import check as check

# ---- checking the command line ---------------------------------------------------------------


# ---- writing ---------------------------------------------------------------------------------


def _csv_text(rows: Sequence[Sequence[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


def _png(text: str) -> bytes:
    import segno

    out = io.BytesIO()
    segno.make_qr(text, version=2, error="m").save(out, kind="png", scale=6, border=4)
    return out.getvalue()


def _pem_key(der_key: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return certs.load_private_key(der_key).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class _Output:
    device: MatterDevice
    folder: Path
    files: dict[str, tuple[bytes, bool]]  # name -> (data, secret)
    master: list[str]


def _device_files(plan: Plan, device: MatterDevice, top: Path) -> _Output:
    from cryptography.hazmat.primitives import serialization

    from station.nvs import encode_image, generate_keys, key_partition_image

    config = plan.config
    folder = top / device.uuid
    internal = folder / "internal"
    files: dict[str, tuple[bytes, bool]] = {}
    items = device_items(config, device)
    paths = {
        "dac-cert": str((internal / "DAC_cert.der").absolute()),
        "dac-key": str((internal / "DAC_private_key.bin").absolute()),
        "dac-pub-key": str((internal / "DAC_public_key.bin").absolute()),
        "pai-cert": str((internal / "PAI_cert.der").absolute()),
        "cert-dclrn": config.cd_path or "",
    }
    csv_rows = [["key", "type", "encoding", "value"]]
    master = []
    ns = None
    for item in items:
        if item.namespace != ns:
            ns = item.namespace
            csv_rows.append([ns, "namespace", "", ""])
        value = paths.get(item.key, "") if isinstance(item.value, bytes) else item.value
        csv_rows.append([item.key, item.type, item.encoding, value])
        master.append(value)
    entries = nvs_entries(items, plan.mcsv or "", 0)
    if plan.generate_bin:
        keys = generate_keys() if plan.encrypt else None
        files[f"{device.uuid}-partition.bin"] = (encode_image(entries, plan.size, keys=keys), True)
        if keys is not None:
            files[f"{device.uuid}-keys-partition.bin"] = (key_partition_image(keys), True)
    files["internal/partition.csv"] = (_csv_text(csv_rows), True)
    if config.attestation and device.dac_der is not None and device.dac_key_der is not None:
        key = certs.load_private_key(device.dac_key_der)
        files["internal/DAC_cert.der"] = (device.dac_der, False)
        files["internal/DAC_key.der"] = (device.dac_key_der, True)
        files["internal/DAC_private_key.bin"] = (certs.raw_private_key(key), True)
        files["internal/DAC_public_key.bin"] = (certs.raw_public_key(key), False)
        files["internal/PAI_cert.der"] = (config.pai_der or b"", False)
        if plan.dac is None:
            cert = certs.load_certificate(device.dac_der)
            files["internal/DAC_cert.pem"] = (cert.public_bytes(serialization.Encoding.PEM), False)
            files["internal/DAC_key.pem"] = (_pem_key(device.dac_key_der), True)
        if plan.secure_cert:
            files[f"{device.uuid}_esp_secure_cert.bin"] = (
                secure_cert_partition(config, device),
                True,
            )
    if device.passcode is not None:
        payload = device.setup_payload(config)
        qr = payload.qr_code()
        manual = format_manual_code(payload.manual_code())
        if config.flow != CommissioningFlow.STANDARD:
            manual = f'"{manual}"'
        onb = (
            "qrcode,manualcode,discriminator,passcode\n"
            f"{qr},{manual},{device.discriminator},{device.passcode}\n"
        )
        files[f"{device.uuid}-onb_codes.csv"] = (onb.encode(), True)
        files[f"{device.uuid}-qrcode.png"] = (_png(qr), False)
    return _Output(device, folder, files, master)


def _device(plan: Plan, index: int, now: dt.datetime) -> MatterDevice:
    return new_device(
        plan.config,
        passcode=plan.passcode,
        discriminator=plan.discriminator,
        salt=plan.salt,
        verifier=plan.verifier,
        serial_num=plan.serial_num,
        rd_id_uid=plan.rd_id_uid,
        dac=plan.dac,
        device_uuid=plan.dac_uuid,
        extra=plan.extra_rows[index] if plan.extra_rows else (),
        now=now,
    )


_worker: dict[str, Any] = {}


def _init_worker(
    args: argparse.Namespace, now: dt.datetime, pai: tuple[bytes, bytes] | None
) -> None:
    """A worker process rebuilds the plan (keys do not pickle); a PAI made from a PAA comes in."""
    from dataclasses import replace

    plan = check(args, now)
    if pai is not None:
        issuer = certs.Issuer(certs.load_certificate(pai[0]), certs.load_private_key(pai[1]))
        plan = replace(plan, config=replace(plan.config, pai=issuer, pai_der=pai[0]))
    _worker.update(plan=plan, now=now, top=_top(plan))


def _work(indexes: range) -> list[_Output]:
    plan, now, top = _worker["plan"], _worker["now"], _worker["top"]
    return [_device_files(plan, _device(plan, i, now), top) for i in indexes]


def _top(plan: Plan) -> Path:
    return plan.outdir / f"{plan.config.vendor_id:x}_{plan.config.product_id:x}"


def auto_jobs(count: int) -> int:
    """Worker processes for ``count`` devices: one per core once there are enough devices."""
    return max(1, min(os.cpu_count() or 1, count // 32))


def _outputs(args: argparse.Namespace, plan: Plan, now: dt.datetime, jobs: int) -> list[_Output]:
    """Every device's files, made in ``jobs`` processes (PBKDF2 and signing are CPU-bound)."""
    if jobs <= 1:
        return [_device_files(plan, _device(plan, i, now), _top(plan)) for i in range(plan.count)]
    import concurrent.futures
    import multiprocessing

    pai = None
    if plan.paa_pai is not None:
        pai = (certs.der(plan.paa_pai[0]), _sec1(plan.paa_pai[1]))
    step = max(1, -(-plan.count // (jobs * 4)))
    chunks = [range(i, min(i + step, plan.count)) for i in range(0, plan.count, step)]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with concurrent.futures.ProcessPoolExecutor(
        jobs, multiprocessing.get_context(method), initializer=_init_worker,
        initargs=(args, now, pai),
    ) as pool:  # fmt: skip
        return [out for part in pool.map(_work, chunks) for out in part]


_O_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class _Files:
    """New files only (O_EXCL), secrets 0600; one flush to disk at the end, not one per file."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.folders: list[Path] = []

    def folder(self, path: Path) -> None:
        if not path.exists():
            path.mkdir(parents=True)
            self.folders.append(path)

    def write(self, path: Path, data: bytes, secret: bool = False) -> None:
        try:
            fd = os.open(path, _O_FLAGS, 0o600 if secret else 0o666)
        except FileExistsError:
            raise StationError.at(str(path), "already exists; nothing is overwritten") from None
        except OSError as err:
            raise StationError.at(str(path), f"cannot write: {err.strerror or err}") from None
        self.written.append(str(path))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def flush(self) -> None:
        if hasattr(os, "sync"):
            os.sync()
            return
        for path in self.written:  # Windows: no sync(); flush each file
            fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def rollback(self) -> None:
        for path in reversed(self.written):
            with contextlib.suppress(OSError):
                os.unlink(path)
        for folder in sorted(self.folders, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    sub.rmdir()
                folder.rmdir()


def _check_extra_values(plan: Plan) -> None:
    """The --mcsv values of every device, through the NVS encoder's checks, located in --mcsv.

    Before any device is made: a stand-in device carries each row's values (the generated values
    are always valid, and a DAC differs from the stand-in's by a byte or two at most).
    """
    if not plan.config.extra_keys or plan.mcsv is None:
        return
    from dataclasses import replace

    from station.nvs import check_entries

    problems: list[Problem] = []
    columns = {k: i for i, (k, _v) in enumerate(plan.extra_rows[0], 1)} if plan.extra_rows else {}
    stand_in = _device(plan, 0, dt.datetime.now(dt.timezone.utc))
    for row, line in zip(plan.extra_rows, plan.extra_lines, strict=True):
        items = device_items(plan.config, replace(stand_in, extra=row))
        for p in check_entries(nvs_entries(items, plan.mcsv, line), plan.size):
            problems.append(Problem(plan.mcsv, line, columns.get(p.key, 0), p.key, p.message))
    if problems:
        raise StationError(problems)


def matter(args: argparse.Namespace) -> int:
    """The command: check everything, make every device, then write the files."""
    problems = ProblemList()
    try:
        import segno  # noqa: F401  (the QR code PNGs)
    except ImportError:
        if not args.enable_dynamic_passcode:
            problems.add(
                CLI,
                0,
                0,
                "qrcode.png",
                "writing the QR code PNGs needs the segno package: pip install segno "
                "(or install the station with its gui extra)",
            )
    now = dt.datetime.now(dt.timezone.utc)
    try:
        plan = check(args, now)
    except StationError as err:
        problems.extend(err.problems)
        raise StationError(problems.items) from None
    problems.raise_if_any()
    jobs = args.jobs if args.jobs is not None else auto_jobs(plan.count)
    _check_extra_values(plan)
    outputs = _outputs(args, plan, now, jobs)
    top = _top(plan)
    existing = [o.folder for o in outputs if o.folder.exists()]
    if existing:
        raise StationError(
            [
                Problem(str(f), 0, 0, "--outdir", "already exists; nothing is overwritten")
                for f in existing
            ]
        )
    stamp = dt.datetime.now()
    from cryptography.hazmat.primitives import serialization

    files = _Files()
    try:
        for out in outputs:
            files.folder(out.folder / "internal")
            for name, (data, secret) in out.files.items():
                files.write(out.folder / name, data, secret)
        if plan.paa_pai is not None:
            files.folder(top / "staging")
            pai_cert, pai_key = plan.paa_pai
            files.write(
                top / "staging" / f"pai_cert-{stamp:%Y-%m-%d-%H-%M-%S-%f}.pem",
                pai_cert.public_bytes(serialization.Encoding.PEM),
            )
            files.write(
                top / "staging" / f"pai_key-{stamp:%Y-%m-%d-%H-%M-%S-%f}.pem",
                _pem_key(_sec1(pai_key)),
                secret=True,
            )
        if plan.config.attestation:
            rows = [["CN", "certs"]]
            for out in outputs:
                cert = certs.load_certificate(out.device.dac_der or b"")
                cn = certs.common_name_of(cert.subject)
                if cn:
                    rows.append([cn, cert.public_bytes(serialization.Encoding.PEM).decode()])
            files.write(top / f"cn_dacs-{stamp:%Y-%m-%d-%H-%M-%S-%f}.csv", _csv_text(rows))
        files.write(
            top / f"summary-{stamp:%Y-%m-%d-%H-%M-%S}.csv", _summary(plan, outputs), secret=True
        )
        files.flush()
    except BaseException:
        files.rollback()
        raise
    for out in outputs:
        print(f"Generated output files at: {out.folder}")
    print(f"{len(outputs)} Matter devices in {top}")
    return 0


def _sec1(key: Any) -> bytes:
    from station.matter.factory import sec1_der

    return sec1_der(key)


def _summary(plan: Plan, outputs: Sequence[_Output]) -> bytes:
    config = plan.config
    header = [i.key for i in device_items(config, outputs[0].device)] if outputs else []
    if not config.dynamic_passcode:
        header += ["pincode", "qrcode", "manualcode"]
    if config.commissionable_in_secure_cert:
        header += ["discriminator", "iteration-count", "salt"]
    if config.rd_id_uid_in_secure_cert:
        header += ["rd-id-uid"]
    rows = [header]
    for out in outputs:
        d = out.device
        row = list(out.master)
        if d.passcode is not None:
            payload = d.setup_payload(config)
            row += [str(d.passcode), payload.qr_code(), format_manual_code(payload.manual_code())]
        if config.commissionable_in_secure_cert:
            row += [str(d.discriminator), str(d.iteration_count), base64.b64encode(d.salt).decode()]
        if config.rd_id_uid_in_secure_cert:
            row += [(d.rd_id_uid or b"").hex()]
        rows.append(row)
    return _csv_text(rows)
