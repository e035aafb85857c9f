"""Matter factory data: DAC/PAI/CD, SPAKE2+ verifier, onboarding codes (MT:, manual code).

No Qt. ``station matter`` (:mod:`station.matter.commands`) is the esp-matter-mfg-tool drop-in;
docs/matter.md describes it and where it differs from the tool.

Loaded lazily: ``station --help`` and the window build the ``station matter`` options from
:mod:`station.matter.options`, and importing this package must not import the certificate code
(cryptography's x509) for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from station.matter.factory import (
        NAMESPACE,
        ExtraKey,
        Item,
        MatterConfig,
        MatterDevice,
        device_items,
        new_device,
        nvs_entries,
        partition_image,
        secure_cert_partition,
    )
    from station.matter.payload import (
        CommissioningFlow,
        ManualCode,
        SetupPayload,
        format_manual_code,
        generate_discriminator,
        generate_passcode,
        parse_manual_code,
        parse_qr_code,
        passcode_problem,
    )
    from station.matter.spake2p import generate_verifier, verifier_matches

_WHERE = {
    **dict.fromkeys(
        (
            "NAMESPACE",
            "ExtraKey",
            "Item",
            "MatterConfig",
            "MatterDevice",
            "device_items",
            "new_device",
            "nvs_entries",
            "partition_image",
            "secure_cert_partition",
        ),
        "factory",
    ),
    **dict.fromkeys(
        (
            "CommissioningFlow",
            "ManualCode",
            "SetupPayload",
            "format_manual_code",
            "generate_discriminator",
            "generate_passcode",
            "parse_manual_code",
            "parse_qr_code",
            "passcode_problem",
        ),
        "payload",
    ),
    **dict.fromkeys(("generate_verifier", "verifier_matches"), "spake2p"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


__all__ = [
    "NAMESPACE",
    "CommissioningFlow",
    "ExtraKey",
    "Item",
    "ManualCode",
    "MatterConfig",
    "MatterDevice",
    "SetupPayload",
    "device_items",
    "format_manual_code",
    "generate_discriminator",
    "generate_passcode",
    "generate_verifier",
    "new_device",
    "nvs_entries",
    "parse_manual_code",
    "parse_qr_code",
    "partition_image",
    "passcode_problem",
    "secure_cert_partition",
    "verifier_matches",
]
