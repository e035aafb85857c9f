"""Lot inputs in mfg_gen's format: config CSV + master values CSV, validated as a whole lot.

The GUI and the orchestrator use :func:`load_mfg`, :func:`build_row_image` (one device's image in
memory), :func:`unit_id`, :func:`secret_columns` and :func:`mask`; ``station generate`` writes
every device's files the way ESP-IDF's ``mfg_gen.py`` names them.

May import station.errors, station.files and station.nvs (below it); never production or gui.
"""

from station.mfg.lot import (
    MASK,
    ConfigLine,
    MfgLot,
    Row,
    build_row_image,
    intermediate_csv,
    load_mfg,
    mask,
    row_entries,
    secret_columns,
    unit_id,
)

__all__ = [
    "MASK",
    "ConfigLine",
    "MfgLot",
    "Row",
    "build_row_image",
    "intermediate_csv",
    "load_mfg",
    "mask",
    "row_entries",
    "secret_columns",
    "unit_id",
]
