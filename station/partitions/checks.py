"""Validation, the factory-data partition, and the flash map.

:func:`validate` reports everything gen_esp32part would refuse (with a location for each), plus
what ESP-IDF refuses at run time (an NVS partition flagged ``encrypted``) and what the station
needs (the table fits the flash). Every function returns or raises *all* problems at once.
"""

from __future__ import annotations

from station.errors import Problem, StationError
from station.partitions.model import (
    APP_OFFSET_ALIGN,
    APP_SIZE_ALIGN,
    APP_TYPE,
    BOOTLOADER_OFFSETS,
    BOOTLOADER_TYPE,
    DATA_OFFSET_ALIGN,
    DATA_TYPE,
    MAX_ENTRIES,
    MAX_NAME_BYTES,
    NVS_RW_MIN_SIZE,
    OTADATA_SIZE,
    PARTITION_TABLE_TYPE,
    SUBTYPE_COREDUMP,
    SUBTYPE_NVS_KEYS,
    SUBTYPE_OTADATA,
    SUBTYPE_TEE_OTADATA,
    TABLE_SIZE,
    MapRegion,
    Partition,
    PartitionTable,
)
from station.partitions.sizes import size_text

ENCRYPTION_SCHEMES = ("flash_enc", "hmac")
HOMEKIT_PARTITION = "factory_nvs"
NVS_KEYS_SIZE = 0x1000


def _at(
    table: PartitionTable,
    part: Partition | None,
    message: str,
    key: str = "",
    column: str = "name",
) -> Problem:
    if part is None:
        return Problem(table.source, 0, 0, key or "-", message)
    return Problem(
        part.file or table.source, part.line, part.column(column), key or part.name or "-", message
    )


def _reserved(p: Partition) -> bool:
    """The primary bootloader and the primary table sit below the table end by design."""
    return p.is_primary_bootloader or p.is_primary_table


def validate(table: PartitionTable, flash_size: int | None = None) -> list[Problem]:
    """Every problem with the table, located; an empty list means gen_esp32part would accept it.

    Checks names (non-empty, unique, at most 16 bytes), types and subtypes, offset alignment
    (apps 0x10000, everything else 0x1000), app sizes (whole sectors), sizes (non-zero), overlaps
    (with each other and with the table's own sector), CSV order, otadata, read-only rules, NVS
    flagged ``encrypted``, the entry count, and - with ``flash_size`` - that every partition
    fits the flash.
    """
    out: list[Problem] = []
    parts = table.partitions
    if not parts:
        out.append(_at(table, None, "the table defines no partitions"))
        return out
    if len(parts) > MAX_ENTRIES:
        out.append(
            _at(
                table,
                parts[MAX_ENTRIES],
                f"{len(parts)} partitions: the binary table holds at most {MAX_ENTRIES}",
            )
        )

    first_line: dict[str, Partition] = {}
    for p in parts:
        raw = p.name.encode("utf-8")
        if not p.name:
            out.append(_at(table, p, "the partition has no name"))
        elif len(raw) > MAX_NAME_BYTES:
            out.append(
                _at(
                    table,
                    p,
                    f"the name is {len(raw)} bytes long; at most "
                    f"{MAX_NAME_BYTES} fit in the table (ESP-IDF would cut it "
                    f"to {raw[:MAX_NAME_BYTES].decode('utf-8', 'ignore')!r})",
                )
            )
        if p.name in first_line:
            other = first_line[p.name]
            where = f"line {other.line}" if table.format == "csv" else f"entry {other.line}"
            out.append(
                _at(
                    table,
                    p,
                    f"duplicate name: {where} already defines "
                    f"{p.name!r}; partition names must be unique",
                )
            )
        else:
            first_line[p.name] = p
        if p.type == 0xFF or p.subtype == 0xFF:
            out.append(
                _at(
                    table,
                    p,
                    "type/subtype 0xFF means 'any' and cannot be used in a table",
                    column="type",
                )
            )
        if p.is_primary_bootloader and p.offset >= table.table_offset:
            # gen_esp32part: "Primary bootloader must be below partition table"
            out.append(
                _at(
                    table,
                    p,
                    f"the primary bootloader's offset 0x{p.offset:x} is not below the partition "
                    f"table (0x{table.table_offset:x}); the bootloader must come first: check "
                    "the bootloader offset and the table offset (CONFIG_PARTITION_TABLE_OFFSET)",
                    column="offset",
                )
            )
        elif p.size < 0:
            out.append(_at(table, p, f"the size is negative (-0x{-p.size:x})", column="size"))
        elif p.size == 0:
            out.append(
                _at(table, p, "the size is 0; a partition needs at least one sector", column="size")
            )
        if not _reserved(p):
            align = APP_OFFSET_ALIGN if p.type == APP_TYPE else DATA_OFFSET_ALIGN
            if p.offset % align:
                down = p.offset - p.offset % align
                out.append(
                    _at(
                        table,
                        p,
                        f"offset 0x{p.offset:x} is not aligned to 0x{align:x} "
                        f"({'app' if p.type == APP_TYPE else 'data'} partitions"
                        f"); use 0x{down:x} or 0x{down + align:x}",
                        column="offset",
                    )
                )
        if p.type == APP_TYPE and p.size % APP_SIZE_ALIGN:
            up = p.size + APP_SIZE_ALIGN - p.size % APP_SIZE_ALIGN
            out.append(
                _at(
                    table,
                    p,
                    f"app size 0x{p.size:x} is not a multiple of 0x1000 (4 KB); use 0x{up:x}",
                    column="size",
                )
            )
        if p.type == DATA_TYPE and p.subtype in (SUBTYPE_OTADATA, SUBTYPE_COREDUMP) and p.readonly:
            out.append(
                _at(
                    table,
                    p,
                    f"a data/{p.subtype_name} partition is always written by "
                    "the firmware and cannot be flagged readonly",
                    column="flags",
                )
            )
        if p.is_nvs:
            if p.size < NVS_RW_MIN_SIZE and not p.readonly:
                out.append(
                    _at(
                        table,
                        p,
                        f"NVS partition of 0x{p.size:x} bytes: a writable NVS "
                        f"needs at least 0x{NVS_RW_MIN_SIZE:x} (3 sectors); "
                        "enlarge it or flag it readonly",
                        column="size",
                    )
                )
            if p.encrypted:
                out.append(
                    _at(
                        table,
                        p,
                        "NVS partitions cannot use flash encryption (ESP-IDF "
                        "refuses them: ESP_ERR_NVS_WRONG_ENCRYPTION); remove "
                        "the encrypted flag and use NVS encryption instead",
                        column="flags",
                    )
                )

    table_end = table.table_offset + TABLE_SIZE
    reported: set[tuple[int, int]] = set()
    # below or inside the table's own sector (gen_esp32part: "Partition offset ... is below")
    for i, p in enumerate(parts):
        if _reserved(p) or p.offset >= table_end:
            continue
        if p.end <= table.table_offset:
            where = (
                f"below the partition table (0x{table.table_offset:x}), where the bootloader lives"
            )
        else:
            where = (
                f"inside the partition table's sector (0x{table.table_offset:x}-"
                f"0x{table_end - 1:x})"
            )
        out.append(
            _at(
                table,
                p,
                f"offset 0x{p.offset:x} is {where}; use 0x{table_end:x} or higher",
                column="offset",
            )
        )
        reported.add((i, i))
    # gen_esp32part reads a CSV top to bottom and refuses an explicit offset that goes back
    if table.format == "csv":
        last: Partition | None = None
        last_i = -1
        for i, p in enumerate(parts):
            if _reserved(p) or (i, i) in reported:
                continue
            if last is not None and p.offset < last.end:
                if p.end > last.offset:
                    message = (
                        f"overlaps {last.name!r} (0x{last.offset:x}-0x{last.end - 1:x}); "
                        f"start at 0x{last.end:x} or later"
                    )
                else:
                    message = (
                        f"offset 0x{p.offset:x} goes back before the end of the previous "
                        f"partition {last.name!r} (0x{last.end:x}); list partitions in "
                        "flash order"
                    )
                out.append(_at(table, p, message, column="offset"))
                reported.add((last_i, i))
            if last is None or p.end > last.end:
                last, last_i = p, i
    # any overlap at all, in flash order (binary tables and what the CSV pass did not name)
    # (the primary bootloader and table too: gen_esp32part reports two of either as an overlap)
    indexed = sorted(enumerate(parts), key=lambda ip: (ip[1].offset, ip[0]))
    for n, (i, p) in enumerate(indexed):
        for j, q in indexed[:n]:
            if q.end <= p.offset or (j, i) in reported or (i, j) in reported:
                continue
            if q.size > 0 and p.size > 0:
                reported.add((j, i))
                out.append(
                    _at(
                        table,
                        p,
                        f"overlaps {q.name!r} (0x{q.offset:x}-0x{q.end - 1:x})",
                        column="offset",
                    )
                )

    for subtype, what in ((SUBTYPE_OTADATA, "otadata"), (SUBTYPE_TEE_OTADATA, "TEE otadata")):
        found = [p for p in parts if p.type == DATA_TYPE and p.subtype == subtype]
        for extra in found[1:]:
            out.append(
                _at(
                    table,
                    extra,
                    f"a second {what} partition (the first is "
                    f"{found[0].name!r}); only one is allowed",
                )
            )
        if len(found) == 1 and found[0].size != OTADATA_SIZE:
            out.append(
                _at(
                    table,
                    found[0],
                    f"the {what} partition must be 0x2000 bytes, not 0x{found[0].size:x}",
                    column="size",
                )
            )

    if flash_size is not None:
        for p in parts:
            if p.end > flash_size:
                out.append(
                    _at(
                        table,
                        p,
                        f"ends at 0x{p.end:x}, beyond the "
                        f"{size_text(flash_size)} flash (0x{flash_size:x})",
                        column="size",
                    )
                )
    return sorted(out, key=lambda problem: (problem.line, problem.column))


def find_factory_partition(table: PartitionTable, name: str | None = None) -> Partition:
    """The NVS partition the station writes: ``name`` if given, else the one NVS that is not
    ``nvs``. Raises :class:`StationError` naming the candidates when it is missing or ambiguous.
    """
    candidates = [p for p in table.partitions if p.is_nvs]
    listing = ", ".join(f"{p.name} (0x{p.offset:x}, line {p.line})" for p in candidates) or "none"
    if name is not None:
        part = table.find(name)
        if part is None:
            raise StationError(
                _at(
                    table,
                    None,
                    f"the table has no partition named {name!r}; its NVS partitions: {listing}",
                    key=name,
                )
            )
        if not part.is_nvs:
            raise StationError(
                _at(
                    table,
                    part,
                    f"{name!r} is {part.type_name}/"
                    f"{part.subtype_name}, not an NVS data partition; "
                    "the station writes NVS images only",
                    column="type",
                )
            )
        return part
    factory = [p for p in candidates if p.name != "nvs"]
    if len(factory) == 1:
        return factory[0]
    if not factory:
        raise StationError(
            _at(
                table,
                None,
                "no factory-data partition: the table has no NVS "
                "partition besides 'nvs' (add e.g. "
                "'fctry, data, nvs, , 0x6000')",
                key="partition",
            )
        )
    names = ", ".join(f"{p.name} (0x{p.offset:x}, line {p.line})" for p in factory)
    raise StationError(
        _at(
            table,
            None,
            f"several NVS partitions could hold the factory data: "
            f"{names}; say which one (lot.toml: partition = "
            f'"{factory[0].name}")',
            key="partition",
        )
    )


def check_image_fits(part: Partition, size: int, *, file: str = "") -> list[Problem]:
    """A problem unless an image of ``size`` bytes fills ``part`` exactly.

    A smaller image would leave old pages behind (NVS would read them); a larger one would
    overwrite the next partition.
    """
    if size == part.size:
        return []
    if size > part.size:
        why = f"it would overwrite 0x{size - part.size:x} bytes past the partition's end"
    else:
        why = "NVS images must fill the whole partition"
    return [
        Problem(
            file or part.file,
            part.line,
            1,
            part.name,
            f"the image is 0x{size:x} bytes but {part.name!r} is 0x{part.size:x}; {why}: "
            f"generate it with size 0x{part.size:x}",
        )
    ]


_TEE_APP_SUBTYPES = range(0x30, 0x32)  # tee_0, tee_1: ESP-IDF's check_sizes leaves them out
_OTA_APP_SUBTYPES = range(0x10, 0x20)


def _over(size: int, part: Partition) -> str:
    return (
        f"{part.name!r} (0x{part.size:x} bytes at 0x{part.offset:x}; 0x{size - part.size:x} bytes "
        "over)"
    )


def check_app_image(
    table: PartitionTable, size: int, *, file: str, offset: int | None = None
) -> list[Problem]:
    """A problem unless an app image of ``size`` bytes fits the app partition it goes to.

    That partition is the app partition at ``offset`` (a build's flasher_args.json says where the
    app is written), else the ``factory`` app, else the OTA slots. An app written to an OTA slot
    must fit the smallest OTA slot, since updates move it from slot to slot. ESP-IDF's
    check_sizes.py refuses an app that fits no app partition and only warns when it fits some;
    the station knows where it writes the app, so it refuses whenever that place is too small.
    """
    apps = [
        p for p in table.partitions if p.type == APP_TYPE and p.subtype not in _TEE_APP_SUBTYPES
    ]
    ota = [p for p in apps if p.subtype in _OTA_APP_SUBTYPES]

    def problem(message: str) -> list[Problem]:
        return [Problem(file, 0, 0, "app", message)]

    if not apps:
        return problem(f"the table ({table.source}) has no app partition to hold the app image")
    if offset is not None:
        target = next((p for p in apps if p.offset == offset), None)
        if target is None:
            names = ", ".join(f"{p.name} (0x{p.offset:x})" for p in apps)
            return problem(
                f"the app is written at 0x{offset:x}, where no app partition starts "
                f"(app partitions: {names})"
            )
    else:
        target = next((p for p in apps if p.subtype == 0), None) or (ota or apps)[0]
    if target in ota:
        smallest = min(ota, key=lambda p: p.size)
        if size > smallest.size:
            which = "the OTA slot" if len(ota) == 1 else "the smallest OTA slot"
            return problem(
                f"the app image is 0x{size:x} bytes, too large for {which} {_over(size, smallest)}"
                "; every OTA slot must hold the app: build a smaller app or enlarge the slots"
            )
        return []
    if size > target.size:
        return problem(
            f"the app image is 0x{size:x} bytes, too large for its app partition "
            f"{_over(size, target)}: build a smaller app or enlarge the partition"
        )
    return []


def check_bootloader_image(
    table: PartitionTable, size: int, *, file: str, bootloader_offset: int
) -> list[Problem]:
    """A problem unless a bootloader image of ``size`` bytes written at ``bootloader_offset``
    ends before the partition table (ESP-IDF's check_sizes.py ``check_bootloader``)."""
    room = table.table_offset - bootloader_offset
    if size <= room:
        return []
    return [
        Problem(
            file,
            0,
            0,
            "bootloader",
            f"the bootloader image is 0x{size:x} bytes; from 0x{bootloader_offset:x} to the "
            f"partition table at 0x{table.table_offset:x} there is room for 0x{max(room, 0):x}, "
            f"so it would overlap the table by 0x{size - max(room, 0):x} bytes: move the table "
            "up (CONFIG_PARTITION_TABLE_OFFSET) or make the bootloader smaller",
        )
    ]


def check_requirements(
    table: PartitionTable,
    factory: Partition,
    *,
    encryption: str | None = None,
    homekit: bool = False,
    homekit_partition: str = HOMEKIT_PARTITION,
) -> list[Problem]:
    """Problems with the partitions that the encryption and HomeKit settings need.

    ``encryption="flash_enc"`` (keys kept in an ``nvs_keys`` partition protected by flash
    encryption) needs a data/nvs_keys partition of at least 4 KB; ``"hmac"`` needs none.
    HomeKit firmware reads its setup data from ``factory_nvs``, so the station must write there.
    """
    out: list[Problem] = []
    if encryption is not None and encryption not in ENCRYPTION_SCHEMES:
        out.append(
            _at(
                table,
                None,
                f"unknown NVS encryption scheme {encryption!r}; use "
                f"{' or '.join(ENCRYPTION_SCHEMES)}",
                key="encryption",
            )
        )
    if encryption == "flash_enc":
        keys = [
            p for p in table.partitions if p.type == DATA_TYPE and p.subtype == SUBTYPE_NVS_KEYS
        ]
        if not keys:
            out.append(
                _at(
                    table,
                    None,
                    "NVS encryption with the flash-encryption scheme needs "
                    "an nvs_keys partition (e.g. 'nvs_key, data, nvs_keys, "
                    ", 0x1000, encrypted'); the table has none",
                    key="encryption",
                )
            )
        elif keys[0].size < NVS_KEYS_SIZE:
            out.append(
                _at(
                    table,
                    keys[0],
                    f"the nvs_keys partition is 0x{keys[0].size:x} bytes; "
                    "the key partition needs 0x1000",
                    column="size",
                )
            )
    if homekit:
        hk = table.find(homekit_partition)
        if hk is None:
            out.append(
                _at(
                    table,
                    None,
                    f"HomeKit firmware reads its setup code from a "
                    f"{homekit_partition!r} partition; the table has none "
                    f"(add '{homekit_partition}, data, nvs, , 0x6000')",
                    key="homekit",
                )
            )
        elif not hk.is_nvs:
            out.append(
                _at(
                    table,
                    hk,
                    f"{homekit_partition!r} must be data/nvs, not {hk.type_name}/{hk.subtype_name}",
                    column="subtype",
                )
            )
        elif factory.name != homekit_partition:
            out.append(
                _at(
                    table,
                    factory,
                    f"HomeKit setup data must go to {homekit_partition!r} "
                    f"(line {hk.line}), but the lot writes "
                    f"{factory.name!r}; set partition = "
                    f'"{homekit_partition}"',
                )
            )
    return out


def _kind(p: Partition) -> str:
    if p.type == BOOTLOADER_TYPE:
        return "bootloader"
    if p.type == PARTITION_TABLE_TYPE:
        return "table"
    return "app" if p.type == APP_TYPE else "data"


def flash_map(
    table: PartitionTable,
    flash_size: int | None = None,
    factory: str | None = None,
    *,
    chip: str | None = None,
) -> list[MapRegion]:
    """The flash from 0 up, in order: bootloader, table, partitions and the free gaps between.

    ``factory`` names the region the station writes (``written=True``); ``None`` guesses it
    like :func:`find_factory_partition` and marks nothing if that fails. The bootloader's offset
    comes from the table (build folder), else from ``chip``, else the whole space below the table
    is shown as the bootloader's. Raises :class:`StationError` only if ``factory`` is not in
    the table.
    """
    if factory is not None:
        written: Partition | None = find_factory_partition(table, factory)
    else:
        try:
            written = find_factory_partition(table)
        except StationError:
            written = None
    regions: list[MapRegion] = []
    if not any(p.is_primary_bootloader for p in table.partitions):
        boot = table.bootloader_offset
        if boot is None and chip is not None:
            boot = BOOTLOADER_OFFSETS.get(chip.lower())
        boot = 0 if boot is None or boot >= table.table_offset else boot
        if boot > 0:
            regions.append(MapRegion("reserved", "before the bootloader", 0, boot))
        regions.append(MapRegion("bootloader", "bootloader", boot, table.table_offset - boot))
    if not any(p.is_primary_table for p in table.partitions):
        regions.append(MapRegion("table", "partition table", table.table_offset, TABLE_SIZE))
    for p in table.partitions:
        regions.append(MapRegion(_kind(p), p.name, p.offset, p.size, p == written, p))
    regions.sort(key=lambda r: (r.offset, r.end))
    out: list[MapRegion] = []
    cursor = 0
    for r in regions:
        if r.offset > cursor:
            out.append(MapRegion("gap", "free", cursor, r.offset - cursor))
        out.append(r)
        cursor = max(cursor, r.end)
    if flash_size is not None and flash_size > cursor:
        out.append(MapRegion("gap", "free", cursor, flash_size - cursor))
    return out


def compare_tables(expected: PartitionTable, actual: PartitionTable) -> list[str]:
    """How ``actual`` (e.g. read from a device) differs from ``expected``, one line per change."""
    out: list[str] = []
    exp = {p.name: p for p in expected.partitions}
    act = {p.name: p for p in actual.partitions}
    for name, p in exp.items():
        q = act.get(name)
        if q is None:
            out.append(f"{name}: missing (expected at 0x{p.offset:x})")
            continue
        for field in ("type", "subtype", "offset", "size", "encrypted", "readonly"):
            a, b = getattr(p, field), getattr(q, field)
            if a != b:
                fmt = (lambda v: f"0x{v:x}") if field in ("offset", "size") else str
                out.append(f"{name}: {field} {fmt(b)}, expected {fmt(a)}")
    for name, q in act.items():
        if name not in exp:
            out.append(f"{name}: not expected (0x{q.offset:x}, 0x{q.size:x} bytes)")
    return out
