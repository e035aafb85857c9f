"""The security checks of a lot as a whole, for lot opening and ``station security plan``.

:func:`check_lot` takes what the lot already loaded (its ``[encryption]`` table, its firmware
regions and partition table) and returns the validated settings, every problem (located, for
exit code 2) and the HMAC-scheme warning. Nothing is burned or written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.errors import Problem
from station.security.settings import (
    SecuritySettings,
    check_signatures,
    hmac_warning,
    parse_security,
    requested_recipes,
)


@dataclass(frozen=True)
class LotSecurity:
    settings: SecuritySettings | None  # None: no [security] table, or problems
    problems: list[Problem] = field(default_factory=list)
    warning: str | None = None  # show when the lot opens (HMAC scheme without nvs_hmac)


def signed_images(
    regions: Sequence[Any], partitions: Sequence[Any], bootloader: int | None
) -> list[tuple[str, str, bytes]]:
    """The images Secure Boot v2 verifies among the regions the lot writes: the bootloader and
    every app (``(name, name, data)``)."""
    out = []
    for r in regions:
        in_app = any(p.type_name == "app" and p.offset <= r.offset < p.end for p in partitions)
        if r.offset == bootloader or in_app:
            out.append((r.name or f"0x{r.offset:x}", r.name or f"0x{r.offset:x}", r.data))
    return out


def check_lot(
    lot_file: str | Path,
    *,
    encryption: Mapping[str, Any] | None = None,
    firmware: Sequence[Any] | None = None,
    firmware_source: str = "",
    partitions: Sequence[Any] = (),
    bootloader: int | None = None,
    chip: str | None = None,
) -> LotSecurity:
    """Check the lot's ``[security]`` table against its chip, its keys and its firmware.

    ``firmware``: the lot's firmware write regions (None when the lot names no firmware).
    """
    settings, problems = parse_security(lot_file, chip=chip)
    warning = hmac_warning(encryption or {}, settings if not problems else None)
    requested = requested_recipes(lot_file)
    needs_fw = [r for r in ("flash_encryption", "secure_boot") if r in requested]
    if needs_fw and firmware is None:
        problems.append(
            Problem(
                str(lot_file),
                0,
                0,
                "firmware",
                f'{" and ".join(needs_fw)} need the lot\'s firmware (firmware = "build/…"): '
                "the station writes the bootloader and apps "
                + ("encrypted" if "flash_encryption" in needs_fw else "checked against the keys"),
            )
        )
    if settings is None:
        return LotSecurity(None, problems, warning if not requested else None)
    if firmware is not None and settings.has("secure_boot"):
        images = signed_images(firmware, partitions, bootloader)
        if not images:
            problems.append(
                Problem(
                    firmware_source or str(settings.lot_file),
                    0,
                    0,
                    "secure_boot",
                    "the firmware has no bootloader or app to check the signatures of",
                )
            )
        found = check_signatures(settings, images)
        problems.extend(
            Problem(firmware_source or p.file, p.line, p.column, p.key, p.message) for p in found
        )
    if firmware_source:
        problems.extend(check_build_config(settings, Path(firmware_source).parent))
    if problems:
        return LotSecurity(None, problems, warning)
    return LotSecurity(settings, [], warning)


def check_build_config(settings: SecuritySettings, build_dir: Path) -> list[Problem]:
    """The firmware's own configuration (ESP-IDF writes ``config/sdkconfig.json`` into its
    build folder) against the recipe: the key block its NVS reads the HMAC key from must be the
    one the lot burns (else the firmware finds an empty block at first boot, and burns a key of
    its own there). Nothing to check without the file."""
    import json

    from station.security.settings import TableLocator

    path = build_dir / "config" / "sdkconfig.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    theirs = config.get("NVS_SEC_HMAC_EFUSE_KEY_ID") if isinstance(config, dict) else None
    if settings.has("nvs_hmac") and isinstance(theirs, int) and theirs != settings.hmac_key_id:
        line, col = TableLocator(settings.lot_file.read_text(encoding="utf-8")).find("hmac_key_id")
        out.append(
            Problem(
                str(settings.lot_file),
                line,
                col,
                "security.hmac_key_id",
                f"key block conflict: the lot burns the HMAC key into BLOCK_KEY"
                f"{settings.hmac_key_id}, the firmware reads it from BLOCK_KEY{theirs} "
                f"(CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID in {path}): make them the same",
            )
        )
    return out
