"""The options of ``station matter``, as esp-matter-mfg-tool 1.0.29 lists them in its --help.

Kept apart from the work (no cryptography imported) so that building the command line is cheap.
"""

from __future__ import annotations

import os
from typing import Any

# esp-matter-mfg-tool's enums (values stored as u32)
PRODUCT_FINISHES = ("other", "matte", "satin", "polished", "rugged", "fabric")
PRODUCT_COLORS = (
    "black navy green teal maroon purple olive gray blue lime aqua red fuchsia yellow white "
    "nickel chrome brass copper silver gold"
).split()
CALENDAR_TYPES = (
    "Buddhist Chinese Coptic Ethiopian Gregorian Hebrew Indian Islamic Japanese Korean "
    "Persian Taiwanese"
).split()


def add_parser(sub: Any) -> None:
    """The ``matter`` command with esp-matter-mfg-tool's options (its --help, version 1.0.29)."""
    p = sub.add_parser(
        "matter",
        help="esp-matter-mfg-tool drop-in: per-device Matter factory partitions",
        description="Matter factory data: one chip-factory NVS partition per device, onboarding "
        "codes and QR codes; options as esp-matter-mfg-tool 1.0.29 takes them.",
        allow_abbrev=False,
    )
    g = p.add_argument_group("general options")
    g.add_argument("-n", "--count", default="1", help="number of devices (default 1)")
    g.add_argument("--target", default="esp32", help="chip type (esp32, esp32c3, …)")
    g.add_argument("-s", "--size", default="0x6000", help="partition size (default 0x6000)")
    g.add_argument("-e", "--encrypt", action="store_true", help="encrypt the partition (new key)")
    g.add_argument("--log-level", choices=("debug", "info", "error"), default="info")
    g.add_argument("--outdir", default=os.path.join(os.getcwd(), "out"), help="output folder")
    g.add_argument("--no-bin", dest="generate_bin", action="store_false", help="no partition")
    g.add_argument("--no-secure-cert-bin", action="store_true", help="no esp_secure_cert")
    g = p.add_argument_group("commissioning options")
    g.add_argument("--passcode", help="setup passcode (default: random)")
    g.add_argument("--discriminator", help="12-bit discriminator (default: random)")
    g.add_argument(
        "-cf", "--commissioning-flow", default="0", help="0 standard, 1 user intent, 2 custom"
    )
    g.add_argument("-dm", "--discovery-mode", default="2", help="2 BLE, 4 on-network, … (sum)")
    g.add_argument("--enable-dynamic-passcode", action="store_true", help="no verifier stored")
    g.add_argument("--salt", help="SPAKE2+ salt, base64 (with --verifier and --passcode)")
    g.add_argument("--verifier", help="SPAKE2+ verifier, base64 (with --salt and --passcode)")
    g.add_argument("--iteration-count", default="10000", help="PBKDF2 iterations (1000-100000)")
    g.add_argument("--commissionable-data-in-secure-cert", action="store_true")
    g = p.add_argument_group("device attestation credential options")
    g.add_argument("--dac-in-secure-cert", action="store_true")
    g.add_argument("-lt", "--lifetime", default="36500", help="DAC/PAI lifetime in days")
    g.add_argument("-vf", "--valid-from", help="validity start, YYYY-MM-DD[THH:MM:SS] (UTC)")
    g.add_argument("-cn", "--cn-prefix", default="ESP32", help="CN prefix of a generated PAI")
    g.add_argument("-c", "--cert", help="PAA or PAI certificate (PEM or DER)")
    g.add_argument("-k", "--key", help="its private key (PEM or DER)")
    g.add_argument("-cd", "--cert-dclrn", help="certification declaration (DER)")
    g.add_argument("--dac-cert", help="a given DAC certificate")
    g.add_argument("--dac-key", help="the given DAC's private key")
    g.add_argument("-ds", "--ds-peripheral", action="store_true", help="(not supported)")
    g.add_argument("--efuse-key-id", default="-1", help="(with -ds; not supported)")
    g.add_argument("--port", help="(with -ds; not supported)")
    g.add_argument("--pwd", "--password", dest="priv_key_pass", help="password of the key")
    g.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="station only: worker processes (default: one per core for big runs)",
    )
    g.add_argument(
        "--paa-cert",
        help="station only: with --pai, check that the PAI chains to this PAA certificate",
    )
    x = g.add_mutually_exclusive_group()
    x.add_argument("--paa", action="store_true", help="-c/-k are a PAA (a PAI is made)")
    x.add_argument("--pai", action="store_true", help="-c/-k are a PAI (DACs are made)")
    g = p.add_argument_group("device instance information options")
    g.add_argument("-v", "--vendor-id", required=True, help="vendor ID")
    g.add_argument("--vendor-name")
    g.add_argument("-p", "--product-id", required=True, help="product ID")
    g.add_argument("--product-name")
    g.add_argument("--hw-ver", help="hardware version")
    g.add_argument("--hw-ver-str", help="hardware version string")
    g.add_argument("--mfg-date", help="YYYY-MM-DD or YYYYMMDD (plus up to 8 characters)")
    g.add_argument("--serial-num", help="serial number (default: random)")
    g.add_argument("--enable-rotating-device-id", action="store_true")
    g.add_argument("--rd-id-uid", help="rotating device ID unique ID, 32 hex digits")
    g.add_argument("--product-finish", choices=PRODUCT_FINISHES)
    g.add_argument("--rd-id-uid-in-secure-cert", action="store_true")
    g.add_argument("--product-color", choices=PRODUCT_COLORS)
    g.add_argument("--part-number")
    g = p.add_argument_group("device instance options")
    g.add_argument("--calendar-types", nargs="+", choices=CALENDAR_TYPES)
    g.add_argument("--locales", nargs="+")
    g.add_argument("--fixed-labels", nargs="+", help='e.g. "0/orientation/up"')
    g.add_argument("--supported-modes", nargs="+")
    g = p.add_argument_group("basic cluster options")
    g.add_argument("--product-label")
    g.add_argument("--product-url")
    g = p.add_argument_group("extra keys from CSV files")
    g.add_argument("--mqtt-host", help="RainMaker MQTT host")
    g.add_argument("--csv", help="config CSV of extra keys (key,type,encoding; namespaces)")
    g.add_argument("--mcsv", help="values CSV of the extra keys, one row per device")
