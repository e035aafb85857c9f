"""Partition tables: CSV and binary, validation, the factory-data partition, the flash map.

No Qt here. Every user-caused problem is a located :class:`~station.errors.Problem`. Modules:
``model`` (records), ``csvtable`` and ``binary`` (the two formats), ``loader`` (a file or a build
folder), ``checks`` (validation, the factory partition, the flash map), ``sizes``, ``commands``.

May import station.errors and station.files only (a bottom layer beside station.nvs).
"""

from station.partitions.binary import parse_binary, to_binary
from station.partitions.checks import (
    ENCRYPTION_SCHEMES,
    HOMEKIT_PARTITION,
    check_app_image,
    check_bootloader_image,
    check_image_fits,
    check_requirements,
    compare_tables,
    find_factory_partition,
    flash_map,
    validate,
)
from station.partitions.csvtable import parse_csv_text, parse_number, to_csv
from station.partitions.loader import (
    flash_size_of,
    load_table,
    parse_flash_size,
    read_flasher_args,
)
from station.partitions.model import (
    APP_TYPE,
    BOOTLOADER_OFFSETS,
    DATA_TYPE,
    SUBTYPES,
    TYPES,
    FlasherArgs,
    MapRegion,
    Partition,
    PartitionTable,
)

__all__ = [
    "APP_TYPE",
    "BOOTLOADER_OFFSETS",
    "DATA_TYPE",
    "ENCRYPTION_SCHEMES",
    "HOMEKIT_PARTITION",
    "SUBTYPES",
    "TYPES",
    "FlasherArgs",
    "MapRegion",
    "Partition",
    "PartitionTable",
    "check_app_image",
    "check_bootloader_image",
    "check_image_fits",
    "check_requirements",
    "compare_tables",
    "find_factory_partition",
    "flash_map",
    "flash_size_of",
    "load_table",
    "parse_binary",
    "parse_csv_text",
    "parse_flash_size",
    "parse_number",
    "read_flasher_args",
    "to_binary",
    "to_csv",
    "validate",
]
