"""A lot: the lot file (``lot.toml``), its validated inputs, and its ledger.

:func:`read_lot_file` checks the lot file alone (every problem located as
``lot.toml:LINE:COL: key: message``); :func:`open_lot` validates everything the lot names (the
values against the config, the partition table, the columns the lot refers to) and imports the
rows into the ledger once. Nothing is written to a device or a file when validation fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from station.errors import Problem, ProblemList, StationError
from station.ledger import ImportSummary, Ledger, LedgerRow
from station.production.lotfile import ENCRYPTION_KEYS as ENCRYPTION_KEYS
from station.production.lotfile import KNOWN_KEYS as KNOWN_KEYS
from station.production.lotfile import NAME_RE as NAME_RE
from station.production.lotfile import Locator, parse_lot_file
from station.production.lotfile import LotSettings as LotSettings
from station.production.lotfile import read_lot_file as read_lot_file
from station.production.lotfile import write_lot_file as write_lot_file

if TYPE_CHECKING:
    from station.flashing import WriteRegion
    from station.homekit import HomeKitSettings
    from station.matter.unit import MatterUnits
    from station.mfg import MfgLot, Row
    from station.nvs import XtsKeys
    from station.partitions import FlasherArgs, Partition, PartitionTable
    from station.production.ledgerlink import LotLink
    from station.security.lotcheck import LotSecurity
    from station.security.settings import SecuritySettings

KEYS_FOLDER = "keys"  # per-device key files, beside the lot file


class Lot:
    """An open lot: validated inputs, the factory partition, encryption keys and the ledger."""

    def __init__(
        self,
        settings: LotSettings,
        mfg: MfgLot,
        table: PartitionTable,
        factory: Partition,
        secret_columns: frozenset[str],
        ledger: Ledger,
        keys: XtsKeys | None,
        imported: ImportSummary,
        homekit: HomeKitSettings | None = None,
        firmware: Firmware | None = None,
        key_partition: Partition | None = None,
    ) -> None:
        self.settings = settings
        self.firmware = firmware
        self.key_partition = key_partition  # set for the flash-encryption scheme
        self.per_device_keys = bool(settings.encryption.get("keygen"))
        self._key_lock = threading.Lock()
        self._keys_on_record: set[tuple[int, str]] = set()
        self.homekit = homekit
        self.mfg = mfg
        self.table = table
        self.factory = factory
        self.secret_columns = secret_columns
        self.ledger = ledger
        self.keys = keys
        self.imported = imported
        self.link: LotLink | None = None  # the lot's marker, journal and backups
        # the [security] recipe (station.security), None without one; its open-time warning
        self.security: SecuritySettings | None = None
        self.security_warning: str | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def chip(self) -> str:
        """The chip to expect: the lot's, or its firmware's when the lot says ``auto``."""
        if self.settings.chip == "auto" and self.firmware is not None and self.firmware.args.chip:
            return self.firmware.args.chip.replace("-", "").lower()
        return self.settings.chip

    def row(self, index: int) -> Row:
        """The mfg row with this 0-based index."""
        return self.mfg.rows[index]

    def image_for(self, row: Row) -> bytes:
        """The NVS image of one row for the factory partition, built in memory.

        The same row always gives the same bytes, so a device can be recognised by its image
        and verified without rewriting; for HomeKit lots the SRP salt of each unit is derived
        from a random per-lot key kept in the ledger.
        """
        keys = self.keys_for(row)
        if self.settings.matter:
            return self._matter_units().image(row, keys)  # type: ignore[no-any-return]
        if self.homekit is None:
            from station.mfg import build_row_image

            return build_row_image(
                self.mfg, row, self.factory.size, version=self.settings.nvs_version, keys=keys
            )
        salt = self.ledger.derive("hap-salt", self.unit_id(row), 16)
        return _homekit_image(
            self.mfg, row, self.homekit, self.factory.size, self.settings, keys, salt
        )

    def _matter_units(self) -> MatterUnits:
        """The lot's Matter side (station/matter/unit.py), made on first use."""
        from station.matter.unit import MatterUnits

        if getattr(self, "_matter", None) is None:
            self._matter: MatterUnits | None = MatterUnits(
                self.settings.matter, self.settings.path, self.mfg, self.table,
                self.factory.size, self.settings.nvs_version, self.ledger.audit,
                self.ledger.audit_log,
            )  # fmt: skip
        assert self._matter is not None
        return self._matter

    def matter_label_facts(self, row: Row) -> dict[str, str]:
        """``matter_qr`` and ``matter_manual_code`` of a Matter lot's unit (for its label)."""
        return self._matter_units().label_facts(row) if self.settings.matter else {}

    def keys_for(self, row: Row) -> XtsKeys | None:
        """The NVS keys of one unit: the lot's, or (``keygen = true``) the unit's own.

        A unit's own keys are made once, on first use, and kept as a key partition image in
        ``keys/keys-<unit>.bin`` beside the lot (mode 0600, written before any device gets
        them); the ledger records only their SHA-256 and refuses a key file that differs.
        """
        if not self.per_device_keys:
            return self.keys
        from station import nvs

        path = self.key_file(row)
        with self._key_lock:
            self._adopt_legacy_key_file(row, path)
            data = _read_or_create_key_file(path)
        keys = nvs.parse_key_partition(data, file=str(path))
        digest = hashlib.sha256(keys.data_key + keys.tweak_key).hexdigest()
        if (row.index, digest) in self._keys_on_record:
            return keys
        if self.ledger.record_key_hash(row.index, digest) != digest:
            raise StationError.at(
                str(path),
                f"not the key unit {self.unit_id(row)} was given (its SHA-256 differs from the "
                "ledger's): restore the original key file; a device flashed with it cannot be "
                "read with another key",
                key="keygen",
            )
        with self._key_lock:
            self._keys_on_record.add((row.index, digest))  # hashes only, no keys kept
        return keys

    def key_file(self, row: Row) -> Path:
        """Where a unit's own key partition image is kept: ``keys/keys-<unit id>.bin``; a unit
        id that is not a safe file name gets a name of its own (see :func:`key_file_stem`)."""
        return self.settings.folder / KEYS_FOLDER / f"keys-{key_file_stem(self.unit_id(row))}.bin"

    def _adopt_legacy_key_file(self, row: Row, path: Path) -> None:
        """Up to 0.x a unit id that was not a safe name had ``keys-row<N>.bin``, a name another
        unit could have too; a unit flashed with such a file (its SHA-256 is the ledger's)
        keeps its key under the new name."""
        legacy = path.with_name(f"keys-row{row.index + 1}.bin")
        if legacy == path or path.exists() or not legacy.is_file():
            return
        from station import nvs

        try:
            keys = nvs.parse_key_partition(legacy.read_bytes(), file=str(legacy))
        except (OSError, StationError):
            return
        digest = hashlib.sha256(keys.data_key + keys.tweak_key).hexdigest()
        if self.ledger.key_hash(row.index) == digest:
            _read_or_create_key_file(path, legacy.read_bytes())

    def regions_for(self, row: Row, image: bytes | None = None) -> tuple[WriteRegion, ...]:
        """Everything one unit gets, in one connection: the lot's firmware (MD5-verified), the
        NVS key partition (flash-encryption scheme) and the row's factory image (read back)."""
        from station.flashing import WriteRegion

        out: list[WriteRegion] = list(self.firmware.regions) if self.firmware else []
        if self.key_partition is not None:
            out.append(self.key_region(row))
        if image is None:
            image = self.image_for(row)
        if self.settings.matter:  # esp_secure_cert; before the factory image, which is last
            out.extend(WriteRegion(*r) for r in self._matter_units().regions(row))
        out.append(WriteRegion(self.factory.offset, image, self.factory.name))
        return tuple(out)

    def key_region(self, row: Row) -> WriteRegion:
        """The ``nvs_keys`` partition's contents: the unit's keys, 0xFF to the partition's end."""
        from station.flashing import WriteRegion
        from station.nvs import key_partition_image

        part = self.key_partition
        keys = self.keys_for(row)
        assert part is not None and keys is not None
        data = key_partition_image(keys)
        return WriteRegion(part.offset, data + b"\xff" * (part.size - len(data)), part.name)

    def unit_id(self, row: Row) -> str:
        from station.mfg import unit_id

        return unit_id(self.mfg, row)

    def masked_values(self, row: Row) -> dict[str, str]:
        """The row's values with secret columns masked (for logs, reports and the window)."""
        from station.mfg import mask

        return {k: (mask(v) if k in self.secret_columns else v) for k, v in row.values.items()}

    def backup(self) -> Path | None:
        """A rolling backup of the ledger (SQLite), e.g. at the end of a run."""
        return self.link.backup(self.ledger) if self.link is not None else None

    def close(self) -> None:
        self.ledger.close()
        if self.link is not None:
            self.link.journal.close()

    def __enter__(self) -> Lot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def key_file_stem(unit_id: str) -> str:
    """The unit id as a file name: a safe id as it is (mfg_gen's name), any other one
    percent-encoded behind a ``%`` (``SN 77 2`` -> ``%SN%2077%202``): no safe id starts with
    ``%`` and the encoding is one-to-one, so two units never share a name. A very long id
    gets ``%%`` and its SHA-256."""
    if SAFE_NAME_RE.match(unit_id):
        return unit_id
    from urllib.parse import quote

    encoded = "%" + quote(unit_id, safe="")
    if len(encoded) <= 128:
        return encoded
    return "%%" + hashlib.sha256(unit_id.encode("utf-8")).hexdigest()


def _read_or_create_key_file(path: Path, new: bytes | None = None) -> bytes:
    """A unit's key partition image: the existing file, else ``new`` (default: fresh keys)
    written durably with mode 0600 (never replacing a file another process created
    meanwhile)."""
    from station.nvs import generate_keys, key_partition_image

    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
    except OSError as err:
        raise StationError.at(str(path.parent), f"cannot make the key folder: {err}") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, new if new is not None else key_partition_image(generate_keys()))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if the file appeared meanwhile: theirs stays
        except FileExistsError:
            pass
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return path.read_bytes()
    except OSError as err:
        raise StationError.at(str(path), f"cannot write the unit's key file: {err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _load_keys(settings: LotSettings) -> XtsKeys | None:
    from station import nvs

    enc = settings.encryption
    if "keyfile" in enc:
        p = Path(enc["keyfile"])
        return nvs.parse_key_partition(p.read_bytes(), file=str(p))
    if "hmac_keyfile" in enc:
        p = Path(enc["hmac_keyfile"])
        data = p.read_bytes()
        if len(data) != 32:
            raise StationError.at(
                str(p), f"an HMAC key is 32 bytes, this file has {len(data)}", key="hmac_keyfile"
            )
        return nvs.hmac_derive_keys(data)
    return None


def _homekit_image(
    mfg: MfgLot,
    row: Row,
    hk: HomeKitSettings,
    size: int,
    settings: LotSettings,
    keys: XtsKeys | None,
    salt: bytes,
) -> bytes:
    """A HomeKit lot's image: the row's own entries plus its hap_setup namespace."""
    from station.homekit import merge_entries, setup_for_row
    from station.mfg import row_entries
    from station.nvs import encode_image

    setup = setup_for_row(hk, row.values, file=str(settings.values), line=row.line, salt=salt)
    entries = merge_entries(row_entries(mfg, row), setup.entries())
    return encode_image(
        entries, size, version=settings.nvs_version, keys=keys, base_dir=mfg.base_dir
    )


def _check_homekit(
    settings: LotSettings, mfg: MfgLot, size: int | None, problems: ProblemList
) -> HomeKitSettings | None:
    """The lot's homekit table, every row's setup code/ID, and the biggest row still fitting."""
    from station.homekit import check_rows, homekit_settings_from_dict

    try:
        hk = homekit_settings_from_dict(settings.homekit, str(settings.path))
    except StationError as err:
        problems.extend(err.problems)
        return None
    found = check_rows(
        hk, ((r.line, r.values) for r in mfg.rows), file=str(settings.values), columns=mfg.columns
    )
    problems.extend(found[:50])
    if not found and size is not None and mfg.rows:
        biggest = max(mfg.rows, key=lambda r: sum(len(v) for v in r.values.values()))
        try:
            _homekit_image(mfg, biggest, hk, size, settings, None, bytes(16))
        except StationError as err:
            problems.extend(err.problems)
    return hk


def _needs_codes(hk: HomeKitSettings, mfg: MfgLot) -> bool:
    cols = set(mfg.columns)
    if hk.code_column not in cols or hk.id_column not in cols:
        return True
    return any(
        not r.values[hk.code_column].strip() or not r.values[hk.id_column].strip() for r in mfg.rows
    )


def recipe_hash(settings: LotSettings, factory: Partition, keys: XtsKeys | None) -> str:
    """What makes the images of a lot: config file, partition place and size, version, keys."""
    h = hashlib.sha256()
    h.update(settings.config.read_bytes())
    h.update(f"|{factory.offset}|{factory.size}|{settings.nvs_version}|".encode())
    if keys is not None:
        h.update(hashlib.sha256(keys.data_key + keys.tweak_key).digest())
    elif settings.encryption.get("keygen"):
        h.update(b"|keygen")
    if settings.homekit:  # only when present: lots without HomeKit keep their hash
        h.update(repr(sorted((k, repr(v)) for k, v in settings.homekit.items())).encode())
    if settings.matter:
        h.update(repr(sorted((k, repr(v)) for k, v in settings.matter.items())).encode())
    return h.hexdigest()


def ledger_rows(lot: MfgLot, settings: LotSettings) -> list[LedgerRow]:
    """The rows as the ledger imports them (values only go into a keyed fingerprint)."""
    from station.mfg import unit_id

    columns = lot.columns
    file_columns = {c.key for c in lot.config if c.type == "file"}
    scan = settings.scan_column
    out = []
    for row in lot.rows:
        vals = row.values
        values: Sequence[str] = [vals[c] for c in columns]
        if file_columns:
            values = list(values)
            for i, c in enumerate(columns):
                if c in file_columns and vals.get(c):
                    p = Path(lot.resolve(vals[c]))
                    try:
                        values[i] += "#" + hashlib.sha256(p.read_bytes()).hexdigest()
                    except OSError:
                        pass
        out.append(
            LedgerRow(
                index=row.index,
                line=row.line,
                unit_id=unit_id(lot, row),
                scan_value=vals.get(scan) if scan else None,
                values=values,
            )
        )
    return out


def _check_columns(settings: LotSettings, lot: MfgLot, problems: ProblemList) -> None:
    text = settings.path.read_text(encoding="utf-8")
    loc = Locator(text)
    file = str(settings.path)
    cols = set(lot.columns)
    for key, value in (("fileid", settings.fileid), ("scan_column", settings.scan_column)):
        if value is not None and value not in cols:
            line, col = loc.find(key)
            problems.add(file, line, col, key, f"no column {value!r} in {settings.values.name}")
    for name in settings.secret_columns:
        if name not in cols:
            line, col = loc.find("secret_columns")
            problems.add(
                file, line, col, "secret_columns", f"no column {name!r} in {settings.values.name}"
            )
    if settings.scan_column in cols:
        seen: dict[str, int] = {}
        for row in lot.rows:
            v = row.values.get(settings.scan_column, "")
            if not v:
                problems.add(
                    str(settings.values),
                    row.line,
                    0,
                    settings.scan_column,
                    "empty scan value: every unit needs one to be found by a scan",
                )
            elif v in seen:
                problems.add(
                    str(settings.values),
                    row.line,
                    0,
                    settings.scan_column,
                    f"{v!r} is also on line {seen[v]}: scan values must be unique",
                )
            else:
                seen[v] = row.line
            if len(problems) > 50:
                break


def encryption_scheme(settings: LotSettings) -> str | None:
    """``"flash_enc"`` (keys in an ``nvs_keys`` partition), ``"hmac"`` (keys derived from an
    eFuse HMAC key) or None, from the lot's ``encryption`` table."""
    if "keyfile" in settings.encryption or settings.encryption.get("keygen"):
        return "flash_enc"
    if "hmac_keyfile" in settings.encryption:
        return "hmac"
    return None


def key_partition(table: PartitionTable) -> Partition | None:
    """The table's first data/nvs_keys partition (where ESP-IDF looks for the NVS keys)."""
    return next(
        (p for p in table.partitions if p.type_name == "data" and p.subtype_name == "nvs_keys"),
        None,
    )


def _check_table_needs(
    settings: LotSettings, table: PartitionTable, factory: Partition
) -> list[Problem]:
    """What the lot's encryption and HomeKit settings need from the partition table."""
    from station.partitions import check_requirements

    scheme = encryption_scheme(settings)
    out = list(
        check_requirements(table, factory, encryption=scheme, homekit=bool(settings.homekit))
    )
    keys_part = key_partition(table) if scheme == "flash_enc" else None
    if keys_part is not None and not out:
        where = (keys_part.file or table.source, keys_part.line)
        if not keys_part.encrypted:
            out.append(
                Problem(
                    where[0],
                    where[1],
                    keys_part.column("flags") or 1,
                    keys_part.name,
                    "the nvs_keys partition must be flagged 'encrypted': ESP-IDF reads the keys "
                    "through flash encryption, and without the flag the keys stay in plain text",
                )
            )
        if keys_part.offset < factory.end and factory.offset < keys_part.end:
            out.append(
                Problem(
                    where[0],
                    where[1],
                    keys_part.column("offset") or 1,
                    keys_part.name,
                    f"overlaps the factory partition {factory.name!r}",
                )
            )
    return out


def _check_first_image(
    settings: LotSettings,
    mfg: MfgLot,
    factory: Partition,
    hk: HomeKitSettings | None,
    keys: XtsKeys | None,
) -> list[Problem]:
    """Build the first row's image as production will, and check it fills the partition."""
    from station.mfg import build_row_image
    from station.partitions import check_image_fits

    row = mfg.rows[0]
    try:
        if hk is None:
            image = build_row_image(mfg, row, factory.size, version=settings.nvs_version, keys=keys)
        else:
            image = _homekit_image(mfg, row, hk, factory.size, settings, keys, bytes(16))
    except StationError as err:
        return list(err.problems)
    return check_image_fits(factory, len(image))


@dataclass(frozen=True)
class Firmware:
    """An ESP-IDF build named by the lot (``firmware = ...``): its files as write regions,
    read and hashed once when the lot opens, written with every unit's factory image."""

    path: Path  # flasher_args.json
    args: FlasherArgs
    regions: tuple[WriteRegion, ...]  # by offset; readback=False (verified by the chip's MD5)
    sha256: str  # over every (offset, file contents)

    @property
    def writes_table(self) -> bool:
        """True when the build writes a partition table (it then replaces the device's)."""
        offset = self.args.table_offset or 0x8000
        return any(r.offset == offset for r in self.regions)

    def describe(self) -> str:
        """``"bootloader@0x1000, partition table@0x8000, app@0x10000"``."""
        return ", ".join(f"{r.name or 'region'}@0x{r.offset:x}" for r in self.regions)


def _read_firmware(settings: LotSettings, problems: ProblemList) -> Firmware | None:
    """Read the lot's build (flasher_args.json and every file it names) once; problems located."""
    if settings.firmware is None:
        return None
    from station.flashing.firmware import find_flasher_args, firmware_regions
    from station.partitions import read_flasher_args

    try:
        args = read_flasher_args(find_flasher_args(settings.firmware))
        regions = firmware_regions(args)
    except StationError as err:
        problems.extend(err.problems)
        return None
    h = hashlib.sha256()
    for r in regions:
        h.update(f"{r.offset:x}:{len(r.data)}:".encode())
        h.update(r.data)
    return Firmware(args.path, args, regions, h.hexdigest())


def _check_firmware(
    settings: LotSettings,
    fw: Firmware,
    table: PartitionTable,
    factory: Partition | None,
    keys_part: Partition | None,
) -> list[Problem]:
    """The build must be for the lot's chip, carry the lot's partition table (if it has one),
    fit the partitions it writes, and leave the partitions the station writes alone."""
    from station.partitions import (
        check_app_image,
        check_bootloader_image,
        compare_tables,
        parse_binary,
    )

    out: list[Problem] = []
    source = str(fw.path)
    loc = Locator(settings.path.read_text(encoding="utf-8"))
    chip = fw.args.chip.replace("-", "").lower()
    if settings.chip != "auto" and chip and chip != settings.chip:
        line, col = loc.find("chip")
        out.append(
            Problem(
                str(settings.path),
                line,
                col,
                "chip",
                f"the lot says {settings.chip}, its firmware ({source}) is built for {chip}",
            )
        )
    table_offset = fw.args.table_offset or table.table_offset
    for r in fw.regions:
        if r.offset == table_offset:
            try:
                theirs = parse_binary(r.data, file=source, table_offset=table_offset)
            except StationError as err:
                out.extend(err.problems)
                continue
            for diff in compare_tables(table, theirs):
                out.append(
                    Problem(
                        source,
                        0,
                        0,
                        "partition-table",
                        f"the build's partition table differs from the lot's "
                        f"({table.source}): {diff}",
                    )
                )
            continue
        end = r.offset + len(r.data)
        for ours in (factory, keys_part):
            if ours is not None and r.offset < ours.end and ours.offset < end:
                out.append(
                    Problem(
                        source,
                        0,
                        0,
                        "flash_files",
                        f"{r.name} (0x{r.offset:x}..0x{end:x}) overlaps {ours.name!r}, which "
                        "the station writes for every unit",
                    )
                )
        part = next((p for p in table.partitions if p.offset == r.offset), None)
        if r.offset == fw.args.app_offset:  # its app partition, or the smallest OTA slot
            out.extend(check_app_image(table, len(r.data), file=source, offset=r.offset))
        elif r.offset == fw.args.bootloader_offset and r.offset < table.table_offset:
            out.extend(
                check_bootloader_image(table, len(r.data), file=source, bootloader_offset=r.offset)
            )
        elif part is not None and len(r.data) > part.size:
            out.append(
                Problem(
                    source,
                    0,
                    0,
                    "flash_files",
                    f"{r.name} is 0x{len(r.data):x} bytes, its partition {part.name!r} "
                    f"0x{part.size:x}",
                )
            )
    return out


def open_lot(
    path: str | Path,
    *,
    db_url: str | None = None,
    station_id: str | None = None,
    notify: Callable[[str], None] | None = None,
    mode: str = "run",
) -> Lot:
    """Open a lot: validate every input, open its ledger and import the rows (once).

    Raises StationError with all problems found (in the lot file, the partition table, the
    config and values CSVs); the ledger is only touched when everything is valid, and only
    if it is the ledger the lot was started with (see :mod:`station.production.ledgerlink`).
    ``notify``: told when the station waits for a ledger another program locks. ``mode``:
    ``run``; ``report`` (``db_url`` is a private copy: no marker, no backup, no file
    written); ``rebuild`` (a new ledger, filled from the journal by the caller).
    """
    from station.mfg import load_mfg, secret_columns
    from station.partitions import find_factory_partition, flash_size_of, load_table, validate

    parsed, problems = parse_lot_file(path)  # its problems are reported with the inputs'
    if parsed is None:
        problems.raise_if_any()
        raise StationError.at(str(path), "the lot file names no usable inputs")
    settings = parsed
    factory = table = mfg = keys = None
    firmware = _read_firmware(settings, problems)
    try:
        table = load_table(settings.partition_table)
        problems.extend(validate(table, flash_size_of(firmware.args if firmware else None)))
        factory = find_factory_partition(table, settings.partition)
    except StationError as err:
        problems.extend(err.problems)
    if factory is not None and (factory.size % 4096 or factory.size < 3 * 4096):
        problems.add(
            str(settings.partition_table),
            factory.line,
            0,
            factory.name,
            f"size 0x{factory.size:x}: an NVS partition is a multiple of 4 KiB "
            "(0x1000), at least 0x3000",
        )
        factory = None
    try:
        keys = _load_keys(settings)
    except StationError as err:
        problems.extend(err.problems)
    try:
        mfg = load_mfg(  # without a usable partition size, the rows are checked all the same
            settings.config,
            settings.values,
            size=factory.size if factory is not None else None,
            version=settings.nvs_version,
            fileid=settings.fileid,
            base_dir=settings.values.parent,
        )
    except StationError as err:
        problems.extend(err.problems)
    if table is not None and factory is not None:
        problems.extend(_check_table_needs(settings, table, factory))
    if table is not None and firmware is not None:
        keys_part = key_partition(table) if encryption_scheme(settings) == "flash_enc" else None
        problems.extend(_check_firmware(settings, firmware, table, factory, keys_part))
    hk = None
    if mfg is not None:
        _check_columns(settings, mfg, problems)
        if not mfg.rows:
            problems.add(str(settings.values), 0, 0, "rows", "the values file has no rows")
        if settings.homekit and not problems:
            hk = _check_homekit(settings, mfg, factory.size if factory else None, problems)
        if settings.matter and not problems:
            from station.matter.unit import check_matter_lot

            found = check_matter_lot(
                settings.matter, settings.path, settings.values, bool(settings.homekit),
                mfg, factory, table, settings.nvs_version,
            )  # fmt: skip
            problems.extend(found)
        if not problems and factory is not None and mfg.rows:
            check_keys = keys
            if settings.encryption.get("keygen"):  # any keys: the size is what is checked
                from station.nvs import generate_keys

                check_keys = generate_keys()
            problems.extend(_check_first_image(settings, mfg, factory, hk, check_keys))
    security = _check_security(settings, firmware, table, problems)
    problems.raise_if_any()
    assert mfg is not None and factory is not None and table is not None
    if hk is not None and hk.generate and _needs_codes(hk, mfg) and mode != "report":
        # generated setup codes must be on record before any device gets one (labels, reprints)
        from station.homekit import fill_values_csv

        fill_values_csv(settings.values, hk)
        mfg = load_mfg(
            settings.config,
            settings.values,
            size=factory.size,
            version=settings.nvs_version,
            fileid=settings.fileid,
            base_dir=settings.values.parent,
        )
    matter_pin = settings.matter.get("passcode_column")  # a Matter passcode is a secret
    secrets_ = secret_columns(
        mfg, (*settings.secret_columns, *([matter_pin] if matter_pin else []))
    )
    from station.production import ledgerlink

    ledger, link = ledgerlink.open_ledger(
        settings,
        db_url,
        station_id=station_id,
        notify=notify,
        read_only=mode == "report",
        rebuild=mode == "rebuild",
    )
    ledger.lease = settings.lease  # a run's claims are held under it (``--lease`` overrides)
    try:
        if mode == "run":
            ledgerlink.health_check(ledger, settings)
            link.backup(ledger)
        summary = ledger.import_lot(
            settings.name,
            recipe_hash(settings, factory, keys),
            ledger_rows(mfg, settings),
            values_file=str(settings.values),
            lot_file=str(settings.path),
            key=link.marker.key,
        )
        if mode == "run":
            ledgerlink.resync(ledger, link)
        if firmware is not None and mode != "report":
            _audit_firmware(ledger, firmware)
    except BaseException:
        ledger.close()
        raise
    keys_part = key_partition(table) if encryption_scheme(settings) == "flash_enc" else None
    lot = Lot(
        settings, mfg, table, factory, secrets_, ledger, keys, summary, hk, firmware, keys_part
    )
    lot.link = link
    lot.security, lot.security_warning = security.settings, security.warning
    return lot


def _check_security(
    settings: LotSettings,
    firmware: Firmware | None,
    table: PartitionTable | None,
    problems: ProblemList,
) -> LotSecurity:
    """The ``[security]`` table checked against the lot's chip, keys and firmware (signatures):
    its problems join the lot's (exit code 2, nothing burned)."""
    from station.security.lotcheck import check_lot

    bootloader = table.bootloader_offset if table is not None else None
    if firmware is not None and firmware.args.bootloader_offset is not None:
        bootloader = firmware.args.bootloader_offset
    checked = check_lot(
        settings.path,
        encryption=settings.encryption,
        firmware=firmware.regions if firmware is not None else None,
        firmware_source=str(firmware.path) if firmware is not None else "",
        partitions=tuple(table.partitions) if table is not None else (),
        bootloader=bootloader,
        chip=(
            firmware.args.chip.replace("-", "").lower()
            if settings.chip == "auto" and firmware is not None and firmware.args.chip
            else None
        ),
    )
    problems.extend(checked.problems)
    return checked


def _audit_firmware(ledger: Ledger, fw: Firmware) -> None:
    """Record which build this lot flashes, once per change (the audit log keeps the history)."""
    detail = f"{fw.path} sha256 {fw.sha256}: {fw.describe()}"
    last = next((a for a in reversed(ledger.audit_log()) if a.action == "firmware"), None)
    if last is None or last.detail != detail:
        ledger.audit("firmware", detail)


def problems_text(problems: Sequence[Problem]) -> str:
    return "\n".join(str(p) for p in problems)
