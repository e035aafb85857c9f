"""Matter in a lot: the ``[matter]`` table of ``lot.toml`` and each unit's Matter data.

A unit's Matter data (passcode, discriminator, salt, UUID, serial number, DAC key and
certificate) is made the first time its image is built and kept in ``matter/<unit>.json`` beside
the lot (mode 0600, created once, never rewritten), so the image is the same bytes every time
after: a board is recognised and verified without rewriting, a reprinted label matches. Values
the values CSV gives (passcode, discriminator, serial number columns) are used as they are.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from station.errors import ProblemList, StationError
from station.matter import certs
from station.matter.factory import (
    MatterConfig,
    MatterDevice,
    device_items,
    new_device,
    nvs_entries,
)
from station.matter.payload import (
    DISCRIMINATOR_MAX,
    CommissioningFlow,
    discovery_problem,
    format_manual_code,
    passcode_problem,
)
from station.nvs import NvsEntry

if TYPE_CHECKING:
    from station.errors import Problem
    from station.mfg import MfgLot, Row
    from station.nvs import XtsKeys
    from station.partitions import Partition, PartitionTable

KEYS = (
    "vendor_id",
    "product_id",
    "vendor_name",
    "product_name",
    "hw_ver",
    "hw_ver_str",
    "pai_cert",
    "pai_key",
    "paa_cert",
    "cd",
    "flow",
    "discovery",
    "iteration_count",
    "valid_from",
    "lifetime_days",
    "rotating_id",
    "passcode_column",
    "discriminator_column",
    "serial_column",
    "secure_cert",
)
SECURE_CERT_PARTITION = "esp_secure_cert"
FLOWS = {"standard": 0, "user_intent": 1, "custom": 2}
STORE = "matter"  # folder beside the lot file


@dataclass(frozen=True)
class MatterLotSettings:
    """The lot's ``[matter]`` table, checked."""

    config: MatterConfig
    passcode_column: str | None = None
    discriminator_column: str | None = None
    serial_column: str | None = None

    @property
    def secret_columns(self) -> tuple[str, ...]:
        return (self.passcode_column,) if self.passcode_column else ()


def _where(text: str, key: str) -> tuple[int, int]:
    """(line, column) of ``key =`` in the lot file's matter table, else of the table."""
    table_at = (0, 0)
    in_matter = False
    for n, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\s*([A-Za-z0-9_.\"-]+)\s*\]", line)
        if header:
            in_matter = header.group(1) == "matter"
            if in_matter:
                table_at = (n, header.start(1) + 1)
            continue
        if re.match(r"^\s*matter\s*=", line):
            table_at = (n, 1)
            in_matter = True
        if in_matter and (m := re.search(rf"(?:^|[{{,\s]){re.escape(key)}\s*=", line)):
            return n, m.start() + 1 + (m.group(0)[0] in "{, \t")
    return table_at


def settings_from_dict(
    table: Mapping[str, Any], lot_file: Path, now: dt.datetime | None = None
) -> MatterLotSettings:
    """The ``[matter]`` table; StationError with every problem, each located in the lot file."""
    now = now or dt.datetime.now(dt.timezone.utc)
    folder = lot_file.parent
    try:
        text = lot_file.read_text(encoding="utf-8")
    except OSError:
        text = ""
    problems = ProblemList()

    def bad(key: str, message: str) -> None:
        line, col = _where(text, key)
        problems.add(str(lot_file), line, col, f"matter.{key}", message)

    for key in table:
        if key not in KEYS:
            bad(str(key), f"unknown key; known keys: {', '.join(KEYS)}")

    def integer(key: str, lo: int, hi: int, default: int | None = None) -> int | None:
        v = table.get(key, default)
        if v is None:
            return None
        if isinstance(v, str):
            try:
                v = int(v, 0)
            except ValueError:
                bad(key, f"{v!r} is not a number")
                return None
        if isinstance(v, bool) or not isinstance(v, int):
            bad(key, "must be a number")
            return None
        if not lo <= v <= hi:
            bad(key, f"{v} is out of range ({lo}..{hi:#x})")
            return None
        return v

    def text_value(key: str, hi: int) -> str | None:
        v = table.get(key)
        if v is None:
            return None
        if not isinstance(v, str) or not 1 <= len(v) <= hi:
            bad(key, f"must be text of 1 to {hi} characters")
            return None
        return v

    def read(key: str) -> bytes | None:
        v = table.get(key)
        if v is None:
            return None
        if not isinstance(v, str):
            bad(key, "must be a file name in quotes")
            return None
        try:
            return (folder / v).read_bytes()
        except OSError as err:
            bad(key, f"{v}: {err.strerror or 'cannot read'}")
            return None

    vid = integer("vendor_id", 0, 0xFFFF)
    pid = integer("product_id", 0, 0xFFFF)
    if "vendor_id" not in table:
        bad("vendor_id", "missing; the vendor ID, e.g. vendor_id = 0xFFF2")
    if "product_id" not in table:
        bad("product_id", "missing; the product ID, e.g. product_id = 0x8001")
    hw_ver = integer("hw_ver", 0, 0xFFFF)
    iterations = integer("iteration_count", 1000, 100000, 10000) or 10000
    discovery = integer("discovery", 0, 0xFF, 2)
    if discovery is not None and (msg := discovery_problem(discovery)):
        bad("discovery", msg)
    flow_raw = table.get("flow", "standard")
    flow = FLOWS.get(str(flow_raw).lower().replace("-", "_"), flow_raw)
    if flow not in (0, 1, 2):
        bad("flow", "standard, user_intent or custom (0, 1, 2)")
        flow = 0
    secure_cert = table.get("secure_cert", False)
    if not isinstance(secure_cert, bool):
        bad("secure_cert", "must be true or false")
        secure_cert = False
    rotating = table.get("rotating_id", False)
    if not isinstance(rotating, bool):
        bad("rotating_id", "must be true or false")
        rotating = False
    columns = {}
    for key in ("passcode_column", "discriminator_column", "serial_column"):
        columns[key] = text_value(key, 64)

    pai_data, key_data = read("pai_cert"), read("pai_key")
    if "pai_cert" not in table or "pai_key" not in table:
        bad("pai_cert" if "pai_cert" not in table else "pai_key",
            "the PAI certificate and its key sign each unit's DAC: give both")  # fmt: skip
    cd = read("cd")
    paa_data = read("paa_cert")
    issuer = None
    if pai_data is not None and key_data is not None:
        try:
            pai = certs.load_certificate(pai_data)
            pai_key = certs.load_private_key(key_data)
        except (ValueError, TypeError) as err:
            bad("pai_cert", f"cannot load the PAI certificate or key: {err}")
        else:
            for msg in certs.pai_problems(pai):
                bad("pai_cert", msg)
            if msg := certs.not_valid_now(pai, now):
                bad("pai_cert", f"PAI certificate is {msg}")
            if not certs.key_matches(pai, pai_key):
                bad("pai_key", "is not the private key of the PAI certificate")
            if vid is not None and pid is not None:
                for msg in certs.vid_pid_problems(pai, vid, pid):
                    bad("pai_cert", msg)
            if paa_data is not None:
                try:
                    paa = certs.load_certificate(paa_data)
                except ValueError:
                    bad("paa_cert", "is not a certificate")
                else:
                    for msg in certs.paa_problems(paa) + certs.chain_problems(pai, paa, "PAI"):
                        bad("paa_cert", msg)
            issuer = certs.Issuer(pai, pai_key)
    if cd is not None and (msg := certs.cd_problem(cd)):
        bad("cd", msg)
    # a unit's DAC must be the same every time: its validity comes from the lot, not the clock
    start = None
    if "valid_from" in table:
        try:
            start = dt.datetime.strptime(str(table["valid_from"]), "%Y-%m-%d").replace(
                tzinfo=dt.timezone.utc
            )
        except ValueError:
            bad("valid_from", "write the date as YYYY-MM-DD")
    elif issuer is not None:
        start = issuer.cert.not_valid_before_utc
    lifetime = integer("lifetime_days", 1, 36500 * 2)
    if issuer is not None and start is not None:
        end = start + dt.timedelta(days=lifetime) if lifetime else issuer.cert.not_valid_after_utc
        lifetime = lifetime or max(1, (end - start).days)
        end = start + dt.timedelta(days=lifetime)
        if msg := certs.covers(issuer.cert, start, end):
            bad("lifetime_days" if "lifetime_days" in table else "valid_from", msg)
        elif end < now:
            bad("lifetime_days", f"the DACs would have expired on {end:%Y-%m-%d}")
    problems.items.sort(key=lambda p: (p.line == 0, p.line, p.column))
    problems.raise_if_any()
    assert vid is not None and pid is not None and issuer is not None
    config = MatterConfig(
        vendor_id=vid,
        product_id=pid,
        vendor_name=text_value("vendor_name", 32),
        product_name=text_value("product_name", 32),
        hw_ver=hw_ver,
        hw_ver_str=text_value("hw_ver_str", 64),
        rotating_id=rotating,
        iteration_count=iterations,
        flow=CommissioningFlow(int(flow)),
        discovery=discovery or 2,
        pai=issuer,
        pai_der=certs.der(issuer.cert),
        cd=cd,
        not_before=start,
        lifetime_days=lifetime or certs.DEFAULT_LIFETIME_DAYS,
        dac_in_secure_cert=secure_cert,
    )
    return MatterLotSettings(config, **columns)


def check_row(
    settings: MatterLotSettings,
    values: Mapping[str, str],
    file: str,
    line: int,
    problems: ProblemList,
) -> None:
    """The row's passcode/discriminator/serial columns, if the lot names them and they are set."""
    for column, check in (
        (settings.passcode_column, lambda v: passcode_problem(int(v))),
        (settings.discriminator_column,
         lambda v: None if 0 <= int(v, 0) <= DISCRIMINATOR_MAX else "out of range (0..0xfff)"),
        (settings.serial_column,
         lambda v: None if 1 <= len(v) <= 32 else "must be 1 to 32 characters"),
    ):  # fmt: skip
        if not column or not (value := (values.get(column) or "").strip()):
            continue
        try:
            msg = check(value)
        except ValueError:
            msg = f"{value!r} is not a number"
        if msg:
            problems.add(file, line, 0, column, msg)


# ---- each unit's data, made once ---------------------------------------------------------

_lock = threading.Lock()


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _to_json(device: MatterDevice) -> bytes:
    record = {
        "uuid": device.uuid,
        "passcode": device.passcode,
        "discriminator": device.discriminator,
        "salt": _b64(device.salt),
        "iteration_count": device.iteration_count,
        "verifier": _b64(device.verifier),
        "serial_num": device.serial_num,
        "rd_id_uid": _b64(device.rd_id_uid),
        "dac_cert": _b64(device.dac_der),
        "dac_key": _b64(device.dac_key_der),
    }
    return json.dumps(record, indent=1).encode()


def _from_json(data: bytes) -> MatterDevice:
    r = json.loads(data)
    return MatterDevice(
        uuid=r["uuid"],
        discriminator=int(r["discriminator"]),
        salt=_unb64(r["salt"]) or b"",
        iteration_count=int(r["iteration_count"]),
        serial_num=r["serial_num"],
        passcode=r["passcode"],
        verifier=_unb64(r["verifier"]),
        rd_id_uid=_unb64(r["rd_id_uid"]),
        dac_der=_unb64(r["dac_cert"]),
        dac_key_der=_unb64(r["dac_key"]),
    )


def store_path(lot_file: Path, unit: str) -> Path:
    return lot_file.parent / STORE / f"{unit}.json"


def traceability(device: MatterDevice, record: bytes) -> str:
    """What the ledger keeps of a unit's Matter data: hashes and public facts, no secret."""
    import hashlib

    cert = certs.load_certificate(device.dac_der or b"")
    names = {certs.VENDOR_ID_OID: "VID", certs.PRODUCT_ID_OID: "PID"}
    return (
        f"record sha256 {hashlib.sha256(record).hexdigest()}, "
        f"DAC serial {cert.serial_number:x}, subject {cert.subject.rfc4514_string(names)}, "
        f"DAC sha256 {hashlib.sha256(device.dac_der or b'').hexdigest()}"
    )


def unit_device(
    settings: MatterLotSettings,
    lot_file: Path,
    unit: str,
    values: Mapping[str, str],
    on_create: Callable[[MatterDevice, bytes], None] | None = None,
    on_read: Callable[[bytes], None] | None = None,
) -> MatterDevice:
    """The unit's Matter data: read from its file, or made now and kept (0600, created once).

    ``on_create(device, record)`` runs once, when the record is made (the ledger's note);
    ``on_read(record)`` when a kept record is read (to compare it with the ledger's hash)."""
    path = store_path(lot_file, unit)
    with _lock:
        try:
            data = path.read_bytes()
            if on_read is not None:
                on_read(data)
            return _from_json(data)
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as err:
            raise StationError.at(
                str(path), f"damaged Matter record of unit {unit}: {err}"
            ) from None

        def column(name: str | None) -> str | None:
            return ((values.get(name) or "").strip() or None) if name else None

        passcode = column(settings.passcode_column)
        disc = column(settings.discriminator_column)
        device = new_device(
            settings.config,
            passcode=int(passcode) if passcode else None,
            discriminator=int(disc, 0) if disc else None,
            serial_num=column(settings.serial_column) or unit,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        record = _to_json(device)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
        try:
            os.write(fd, record)
            os.fsync(fd)  # the only copy of the unit's DAC key
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never over a record another station made meanwhile
        except FileExistsError:
            return _from_json(path.read_bytes())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if on_create is not None:
            on_create(device, record)
        return device


def unit_entries(settings: MatterLotSettings, device: MatterDevice) -> list[NvsEntry]:
    return nvs_entries(device_items(settings.config, device))


def label_facts(settings: MatterLotSettings, device: MatterDevice) -> dict[str, str]:
    """``matter_qr`` and ``matter_manual_code`` for the unit's label."""
    payload = device.setup_payload(settings.config)
    return {
        "matter_qr": payload.qr_code(),
        "matter_manual_code": format_manual_code(payload.manual_code()),
    }


def lot_image(
    settings: MatterLotSettings,
    lot_file: Path,
    unit: str,
    values: Mapping[str, str],
    entries: list[NvsEntry],
    size: int,
    *,
    version: int = 2,
    keys: XtsKeys | None = None,
    base_dir: Path | None = None,
    stand_in: bool = False,
    on_create: Callable[[MatterDevice, bytes], None] | None = None,
    on_read: Callable[[bytes], None] | None = None,
) -> bytes:
    """A Matter lot's unit image: the row's own entries plus its ``chip-factory`` namespace.

    ``stand_in``: a device made in memory and not kept (to check a lot when it is opened).
    """
    from station.nvs import encode_image

    if stand_in:
        device = new_device(settings.config)
    else:
        device = unit_device(settings, lot_file, unit, values, on_create, on_read)
    own = list(entries)
    if any(e.type == "namespace" and e.key == "chip-factory" for e in own):
        raise StationError.at(
            str(lot_file), "the lot's config opens chip-factory, which [matter] writes",
            key="matter",
        )  # fmt: skip
    return encode_image(
        own + unit_entries(settings, device), size, version=version, keys=keys, base_dir=base_dir
    )


def secure_cert_data(
    settings: MatterLotSettings, lot_file: Path, unit: str, values: Mapping[str, str], size: int
) -> bytes:
    """The unit's ``esp_secure_cert`` partition contents (DAC, PAI, key), 0xFF to ``size``."""
    from station.matter.factory import secure_cert_partition

    data = secure_cert_partition(settings.config, unit_device(settings, lot_file, unit, values))
    if len(data) > size:
        raise StationError.at(
            str(lot_file), f"esp_secure_cert data is {len(data)} bytes; the partition {size}",
            key="matter.secure_cert",
        )  # fmt: skip
    return data + b"\xff" * (size - len(data))


def check_lot(
    table: Mapping[str, Any],
    lot_file: Path,
    rows: list[tuple[Mapping[str, str], int]],
    values_file: str,
    problems: ProblemList,
    partition_names: tuple[str, ...] = (),
) -> MatterLotSettings | None:
    """The ``[matter]`` table and every row's Matter columns, problems added to ``problems``."""
    try:
        settings = settings_from_dict(table, lot_file)
    except StationError as err:
        problems.extend(err.problems)
        return None
    if settings.config.dac_in_secure_cert and SECURE_CERT_PARTITION not in partition_names:
        line, col = _where(lot_file.read_text(encoding="utf-8"), "secure_cert")
        problems.add(
            str(lot_file), line, col, "matter.secure_cert",
            f"the partition table has no {SECURE_CERT_PARTITION} partition for the DAC",
        )  # fmt: skip
    for values, line in rows:
        check_row(settings, values, values_file, line, problems)
    return settings


class MatterUnits:
    """A Matter lot's side of production: each unit's image, extra region and label facts.

    The station's ``Lot`` holds one (made on first use) and asks it; ``audit`` is the ledger's
    audit-log writer, for the note kept when a unit's data is made.
    """

    def __init__(
        self,
        table: Mapping[str, Any],
        lot_file: Path,
        mfg: MfgLot,
        partition_table: PartitionTable,
        factory_size: int,
        nvs_version: int,
        audit: Callable[[str, str], None],
        audit_log: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings_from_dict(table, lot_file)
        self.lot_file = lot_file
        self.mfg = mfg
        self.table = partition_table
        self.size = factory_size
        self.version = nvs_version
        self.audit = audit
        self.audit_log = audit_log
        self._hashes: dict[str, str] | None = None

    def _unit(self, row: Row) -> str:
        from station.mfg import unit_id

        return str(unit_id(self.mfg, row))

    def image(self, row: Row, keys: XtsKeys | None) -> bytes:
        """The unit's factory image: the row's entries plus its chip-factory namespace."""
        from station.mfg import row_entries

        unit = self._unit(row)

        def made(device: MatterDevice, record: bytes) -> None:
            self.audit("matter-data", f"unit {unit}: {traceability(device, record)}")

        def read(record: bytes) -> None:
            self.check_record(unit, record)

        return lot_image(
            self.settings, self.lot_file, unit, row.values, row_entries(self.mfg, row), self.size,
            version=self.version, keys=keys, base_dir=self.mfg.base_dir, on_create=made,
            on_read=read,
        )  # fmt: skip

    def check_record(self, unit: str, record: bytes) -> None:
        """A kept record must be the one the ledger noted when it was made (same SHA-256)."""
        import hashlib

        if self.audit_log is None:
            return
        if self._hashes is None or unit not in self._hashes:
            self._hashes = {}
            for note in self.audit_log():
                m = re.match(r"unit (.+?): record sha256 ([0-9a-f]{64})", note.detail)
                if note.action == "matter-data" and m:
                    self._hashes.setdefault(m.group(1), m.group(2))
        want = self._hashes.get(unit)
        if want is not None and hashlib.sha256(record).hexdigest() != want:
            raise StationError.at(
                str(store_path(self.lot_file, unit)),
                f"unit {unit}'s Matter record changed since it was made (the ledger has SHA-256 "
                f"{want[:16]}…); restore it from a backup: a new one would not match the "
                "label or the device",
                key="matter",
            )

    def regions(self, row: Row) -> list[tuple[int, bytes, str]]:
        """(offset, data, name) of the unit's other regions: its esp_secure_cert, if asked."""
        if not self.settings.config.secure_cert:
            return []
        part = self.table.find(SECURE_CERT_PARTITION)
        assert part is not None  # checked when the lot opened
        data = secure_cert_data(
            self.settings, self.lot_file, self._unit(row), row.values, part.size
        )
        return [(part.offset, data, part.name)]

    def label_facts(self, row: Row) -> dict[str, str]:
        """``matter_qr`` and ``matter_manual_code``; empty before the unit's data is made."""
        unit = self._unit(row)
        if not store_path(self.lot_file, unit).exists():
            return {}  # not built yet: a label is printed after the unit is written
        return label_facts(
            self.settings, unit_device(self.settings, self.lot_file, unit, row.values)
        )


def check_matter_lot(
    table: Mapping[str, Any],
    lot_file: Path,
    values_file: Path,
    homekit: bool,
    mfg: MfgLot,
    factory: Partition | None,
    partition_table: PartitionTable | None,
    nvs_version: int,
) -> list[Problem]:
    """The [matter] table, the rows' Matter columns, a stand-in unit fitting the partition."""
    from station.mfg import row_entries
    from station.partitions import check_image_fits

    problems = ProblemList()
    if homekit:
        problems.add(str(lot_file), 0, 0, "matter", "a lot is HomeKit or Matter, not both")
    rows = [(r.values, r.line) for r in mfg.rows]
    names = tuple(p.name for p in partition_table.partitions) if partition_table else ()
    matter = check_lot(table, lot_file, rows, str(values_file), problems, names)
    if matter is None or problems or factory is None or not mfg.rows:
        return list(problems.items)
    row = mfg.rows[0]
    try:
        image = lot_image(
            matter, lot_file, "", row.values, row_entries(mfg, row), factory.size,
            version=nvs_version, base_dir=mfg.base_dir, stand_in=True,
        )  # fmt: skip
    except StationError as err:
        return list(err.problems)
    return list(check_image_fits(factory, len(image)))
