"""HomeKit accessory setup data: setup code, setup ID, SRP salt + verifier, X-HM:// payload.

What esp-homekit-sdk's ``factory_nvs_gen`` writes into the ``hap_setup`` namespace, made per
device in memory. The accessory never stores the setup code itself, only a salt and the SRP-6a
verifier derived from it; the code reaches the user on the label (and in the QR code's payload).
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from station.errors import Problem, ProblemList, StationError
from station.homekit.srp import RFC5054_3072, compute_verifier, to_bytes
from station.nvs import NvsEntry

SRP_USER = b"Pair-Setup"
SRP_HASH = "sha512"
SRP_GROUP = RFC5054_3072
SALT_SIZE = 16
VERIFIER_SIZE = SRP_GROUP.size  # 384 bytes
NAMESPACE = "hap_setup"
KEYS = ("setup_id", "setup_salt", "setup_verifier")

# Apple refuses these setup codes (HAP specification, "Setup Code").
DISALLOWED_CODES = frozenset({str(d) * 8 for d in range(10)} | {"12345678", "87654321"})

_CODE_RE = re.compile(r"^(\d{3})-?(\d{2})-?(\d{3})$")
_ID_RE = re.compile(r"^[0-9A-Z]{4}$")
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# HAP accessory categories (HAP specification, "Accessory Categories"), for lot.toml by name.
CATEGORIES: Mapping[str, int] = {
    "other": 1,
    "bridge": 2,
    "fan": 3,
    "garage_door_opener": 4,
    "lightbulb": 5,
    "door_lock": 6,
    "outlet": 7,
    "switch": 8,
    "thermostat": 9,
    "sensor": 10,
    "security_system": 11,
    "door": 12,
    "window": 13,
    "window_covering": 14,
    "programmable_switch": 15,
    "range_extender": 16,
    "ip_camera": 17,
    "video_doorbell": 18,
    "air_purifier": 19,
    "heater": 20,
    "air_conditioner": 21,
    "humidifier": 22,
    "dehumidifier": 23,
    "sprinkler": 28,
    "faucet": 29,
    "shower_system": 30,
    "television": 31,
    "remote": 32,
    "router": 33,
}

# Setup payload flag bits (bits 27..30 of the payload number).
FLAG_IP = 0x2
FLAG_BLE = 0x4
FLAG_WAC = 0x8  # IP accessory that supports Wireless Accessory Configuration
_FLAGS = {"ip": FLAG_IP, "ble": FLAG_BLE, "wac": FLAG_WAC}


def validate_setup_code(code: str) -> str | None:
    """Why ``code`` is not a usable setup code (``XXX-XX-XXX`` or 8 digits), or None if it is."""
    m = _CODE_RE.match(code.strip()) if isinstance(code, str) else None
    if m is None:
        shape = f"{len(code)} characters" if isinstance(code, str) else type(code).__name__
        # the code itself is never shown: it is the accessory's pairing secret
        return f"setup code must be 8 digits, written XXX-XX-XXX or XXXXXXXX (not {shape})"
    digits = "".join(m.groups())
    if digits in DISALLOWED_CODES:
        return "setup code is one Apple disallows (all digits the same, 12345678 or 87654321)"
    return None


def normalize_setup_code(code: str) -> str:
    """``code`` as ``XXX-XX-XXX``; ValueError if it is not valid."""
    error = validate_setup_code(code)
    if error:
        raise ValueError(error)
    m = _CODE_RE.match(code.strip())
    assert m is not None
    return "-".join(m.groups())


def validate_setup_id(setup_id: str) -> str | None:
    """Why ``setup_id`` is not a setup ID (4 characters 0-9, A-Z), or None if it is."""
    if not isinstance(setup_id, str) or not _ID_RE.match(setup_id):
        return f"setup ID {setup_id!r} must be 4 characters, digits or capital letters A-Z"
    return None


def generate_setup_code() -> str:
    """A fresh random setup code ``XXX-XX-XXX`` from :mod:`secrets`, never a disallowed one."""
    while True:
        digits = f"{secrets.randbelow(10**8):08d}"
        if digits not in DISALLOWED_CODES:
            return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


def generate_setup_id() -> str:
    """A fresh random setup ID: 4 characters from 0-9 A-Z, from :mod:`secrets`."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(4))


def srp_salt_verifier(code: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """The 16-byte salt and the 384-byte SRP-6a verifier for ``code``.

    The salt is random unless given. All 16 salt bytes go into ``x``, leading zero bytes too (the
    official tool drops them and then stores a salt that does not match its verifier); the
    verifier is left-padded to the group size.
    """
    code = normalize_setup_code(code)
    if salt is None:
        salt = secrets.token_bytes(SALT_SIZE)
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes, not {len(salt)}")
    v = compute_verifier(SRP_GROUP, SRP_HASH, salt, SRP_USER, code.encode("ascii"))
    return salt, to_bytes(v, VERIFIER_SIZE)


def _base36(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _ID_ALPHABET[r] + out
    return out.rjust(width, "0")


def setup_payload(
    code: str,
    setup_id: str,
    category: int,
    *,
    ip: bool = True,
    ble: bool = False,
    wac: bool = False,
) -> str:
    """The ``X-HM://`` setup payload that goes into the label's QR code.

    9 base-36 digits of (version 0, category << 31, flags << 27, setup code), then the setup ID.
    """
    digits = int(normalize_setup_code(code).replace("-", ""))
    error = validate_setup_id(setup_id)
    if error:
        raise ValueError(error)
    if not 1 <= category <= 255:
        raise ValueError(f"category {category} must be 1..255")
    flags = (FLAG_IP if ip else 0) | (FLAG_BLE if ble else 0) | (FLAG_WAC if wac else 0)
    number = (category << 31) | (flags << 27) | digits
    return "X-HM://" + _base36(number, 9) + setup_id


@dataclass(frozen=True)
class SetupPayload:
    """A decoded ``X-HM://`` payload (for checks and the inspector)."""

    version: int
    category: int
    flags: int
    code: str = field(repr=False)
    setup_id: str


def parse_setup_payload(payload: str) -> SetupPayload:
    """Decode an ``X-HM://`` payload; ValueError if it is not one."""
    m = re.fullmatch(r"X-HM://([0-9A-Z]{9})([0-9A-Z]{4})", payload)
    if m is None:
        raise ValueError(f"{payload!r} is not an X-HM:// setup payload")
    number = int(m.group(1), 36)
    digits = f"{number & ((1 << 27) - 1):08d}"
    return SetupPayload(
        version=(number >> 43) & 0x7,
        category=(number >> 31) & 0xFF,
        flags=(number >> 27) & 0xF,
        code=f"{digits[:3]}-{digits[3:5]}-{digits[5:]}",
        setup_id=m.group(2),
    )


def homekit_entries(code: str, setup_id: str, salt: bytes, verifier: bytes) -> list[NvsEntry]:
    """The ``hap_setup`` namespace as factory_nvs_gen writes it: setup_id, setup_salt, verifier.

    Checks that ``verifier`` really belongs to ``code`` and ``salt`` (a mismatched pair would
    flash a device that can never be paired); ValueError otherwise.
    """
    error = validate_setup_id(setup_id)
    if error:
        raise ValueError(error)
    if len(salt) != SALT_SIZE or len(verifier) != VERIFIER_SIZE:
        raise ValueError(f"salt/verifier must be {SALT_SIZE}/{VERIFIER_SIZE} bytes")
    if srp_salt_verifier(code, salt)[1] != verifier:
        raise ValueError("the SRP verifier does not belong to this setup code and salt")
    return [
        NvsEntry(NAMESPACE, "namespace", "", ""),
        NvsEntry("setup_id", "data", "binary", setup_id),
        NvsEntry("setup_salt", "data", "hex2bin", salt.hex()),
        NvsEntry("setup_verifier", "data", "hex2bin", verifier.hex()),
    ]


def merge_entries(entries: Sequence[NvsEntry], homekit: Sequence[NvsEntry]) -> list[NvsEntry]:
    """The lot's own entries plus the HomeKit ones, without a second ``hap_setup`` namespace.

    If the lot already opens ``hap_setup`` (for example for a software-authentication token), the
    HomeKit keys go at the end of that namespace's block; a lot that sets one of the HomeKit keys
    itself is refused (StationError), since the device would read two values.
    """
    out = list(entries)
    ns_positions = [i for i, e in enumerate(out) if e.type == "namespace"]
    starts = [i for i in ns_positions if out[i].key == NAMESPACE]
    body = [e for e in homekit if e.type != "namespace"]
    if not starts:
        return out + list(homekit)
    problems = ProblemList()
    insert_at = len(out)
    for start in starts:
        following = [i for i in ns_positions if i > start]
        end = following[0] if following else len(out)
        for e in out[start + 1 : end]:
            if e.key in KEYS:
                problems.add(
                    e.file or "-",
                    e.line,
                    0,
                    e.key,
                    f"{NAMESPACE}.{e.key} is written by the HomeKit settings; "
                    "remove it from the lot or turn HomeKit off",
                )
        insert_at = end
    problems.raise_if_any()
    return out[:insert_at] + body + out[insert_at:]


@dataclass(frozen=True)
class HomeKitSettings:
    """The lot's ``homekit = {...}`` table.

    ``code_column``/``id_column`` name the values-CSV columns holding each row's setup code and
    setup ID; with ``generate`` a row whose cell is empty (or a lot without the column) gets a
    fresh one, which the caller must record before flashing so that labels can be reprinted.
    """

    category: int
    ip: bool = True
    ble: bool = False
    wac: bool = False
    code_column: str = "setup_code"
    id_column: str = "setup_id"
    generate: bool = False
    file: str = "lot.toml"


_SETTINGS_KEYS = ("category", "flags", "code_column", "id_column", "generate")


def homekit_settings_from_dict(d: Mapping[str, object], file: str = "lot.toml") -> HomeKitSettings:
    """Parse the lot's ``homekit`` table; StationError listing every bad key.

    ``category`` is 1..255 or a name (``"outlet"``, ``"lightbulb"``, ...); ``flags`` a list of
    ``"ip"``, ``"ble"``, ``"wac"`` (default ``["ip"]``).
    """
    problems = ProblemList()

    def bad(key: str, message: str) -> None:
        problems.add(file, 0, 0, f"homekit.{key}", message)

    if not isinstance(d, Mapping):
        raise StationError.at(
            file, "must be a table, e.g. homekit = { category = 7 }", key="homekit"
        )
    for key in d:
        if key not in _SETTINGS_KEYS:
            bad(str(key), f"unknown key; known keys: {', '.join(_SETTINGS_KEYS)}")
    category = 0
    raw = d.get("category")
    if raw is None:
        bad("category", 'missing; the accessory category, 1..255 or a name such as "outlet"')
    elif isinstance(raw, bool):
        bad("category", "must be a number 1..255 or a category name")
    elif isinstance(raw, int):
        if 1 <= raw <= 255:
            category = raw
        else:
            bad("category", f"{raw} is out of range 1..255")
    elif isinstance(raw, str) and raw.strip().isdigit():
        bad("category", f"write the number without quotes: category = {raw.strip()}")
    elif isinstance(raw, str):
        name = raw.strip().lower().replace(" ", "_").replace("-", "_")
        if name in CATEGORIES:
            category = CATEGORIES[name]
        else:
            bad(
                "category",
                f"unknown category {raw!r}; use 1..255 or one of: " + ", ".join(CATEGORIES),
            )
    else:
        bad("category", "must be a number 1..255 or a category name")
    flags = d.get("flags", ["ip"])
    chosen: set[str] = set()
    if not isinstance(flags, list | tuple):
        bad("flags", 'must be a list such as ["ip"], ["ble"] or ["ip", "wac"]')
    else:
        for f in flags:
            if not isinstance(f, str) or f.lower() not in _FLAGS:
                bad("flags", f"unknown flag {f!r}; use ip, ble, wac")
            else:
                chosen.add(f.lower())
        if not chosen and not problems:
            bad("flags", "needs at least one of ip, ble")
        if "wac" in chosen and "ip" not in chosen:
            bad("flags", 'wac is for IP accessories: use ["ip", "wac"]')
    columns: dict[str, str] = {}
    for key, default in (("code_column", "setup_code"), ("id_column", "setup_id")):
        value = d.get(key, default)
        if not isinstance(value, str) or not value.strip():
            bad(key, "must be the name of a column of the values CSV")
        else:
            columns[key] = value.strip()
    generate = d.get("generate", False)
    if not isinstance(generate, bool):
        bad("generate", "must be true or false")
    if columns.get("code_column") and columns.get("code_column") == columns.get("id_column"):
        bad("id_column", "must differ from code_column")
    problems.raise_if_any()
    return HomeKitSettings(
        category=category,
        ip="ip" in chosen,
        ble="ble" in chosen,
        wac="wac" in chosen,
        code_column=columns["code_column"],
        id_column=columns["id_column"],
        generate=bool(generate),
        file=file,
    )


@dataclass(frozen=True)
class HomeKitSetup:
    """One device's setup data. The code and salt never appear in ``repr`` (logs)."""

    code: str = field(repr=False)
    setup_id: str
    salt: bytes = field(repr=False)
    verifier: bytes = field(repr=False)
    payload: str = field(repr=False)
    generated: bool = False  # True if code or ID were made here, not read from the values CSV

    def entries(self) -> list[NvsEntry]:
        """The ``hap_setup`` NVS entries for this device."""
        return homekit_entries(self.code, self.setup_id, self.salt, self.verifier)


def check_row(
    settings: HomeKitSettings,
    values: Mapping[str, str],
    *,
    file: str = "",
    line: int = 0,
    columns: Sequence[str] | None = None,
) -> list[Problem]:
    """Problems with one row's setup code and ID (for whole-lot validation)."""
    problems: list[Problem] = []
    cols = list(columns) if columns is not None else list(values)
    for key, validate in (
        (settings.code_column, validate_setup_code),
        (settings.id_column, validate_setup_id),
    ):
        value = (values.get(key) or "").strip()
        column = cols.index(key) + 1 if key in cols else 0
        if not value:
            if not settings.generate:
                where = "is empty" if key in values else "is not a column of the values CSV"
                problems.append(
                    Problem(
                        file,
                        line,
                        column,
                        key,
                        f"{where}; fill it in or set homekit.generate = true",
                    )
                )
            continue
        error = validate(value)
        if error:
            problems.append(Problem(file, line, column, key, error))
    return problems


def check_rows(
    settings: HomeKitSettings,
    rows: Iterable[tuple[int, Mapping[str, str]]],
    *,
    file: str = "",
    columns: Sequence[str] | None = None,
) -> list[Problem]:
    """Problems in all rows, given as ``(line, values)`` pairs."""
    out: list[Problem] = []
    for line, values in rows:
        out.extend(check_row(settings, values, file=file, line=line, columns=columns))
    return out


def setup_for_row(
    settings: HomeKitSettings,
    values: Mapping[str, str],
    *,
    file: str = "",
    line: int = 0,
    salt: bytes | None = None,
) -> HomeKitSetup:
    """This row's setup data: code and ID from the row (or generated), a fresh salt, verifier.

    StationError (with the row's location) if the row's code or ID is missing or invalid.
    """
    problems = check_row(settings, values, file=file, line=line)
    if problems:
        raise StationError(problems)
    code = (values.get(settings.code_column) or "").strip()
    setup_id = (values.get(settings.id_column) or "").strip()
    generated = not code or not setup_id
    code = normalize_setup_code(code) if code else generate_setup_code()
    setup_id = setup_id or generate_setup_id()
    salt, verifier = srp_salt_verifier(code, salt)
    payload = setup_payload(
        code, setup_id, settings.category, ip=settings.ip, ble=settings.ble, wac=settings.wac
    )
    return HomeKitSetup(code, setup_id, salt, verifier, payload, generated)


def fill_values_csv(
    values_path: str | os.PathLike[str],
    settings: HomeKitSettings,
    out_path: str | os.PathLike[str] | None = None,
) -> int:
    """Give every row of a values CSV a setup code and setup ID; returns how many rows got one.

    Run once when a lot is prepared (before its rows are imported into the ledger), so that
    what is flashed and what is printed, now and on any reprint, come from the same file.
    Missing columns are added, empty cells filled with fresh values, existing ones kept; an
    invalid existing value is a StationError (every one located) and nothing is written. The
    file is replaced atomically (``out_path`` defaults to ``values_path``).
    """
    src = Path(values_path)
    dst = Path(out_path) if out_path is not None else src
    try:
        with src.open(encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise StationError.at(str(src), f"cannot read the values CSV: {e}") from None
    newline = "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[list[str]] = []
    lines: list[int] = []
    for record in reader:
        records.append(record)
        lines.append(reader.line_num)  # a quoted field may span lines
    if not records or not any(records[0]):
        raise StationError.at(str(src), "the values CSV is empty; it needs a header line")
    header = list(records[0])
    for name in (settings.code_column, settings.id_column):
        if name not in header:
            header.append(name)
    code_i, id_i = header.index(settings.code_column), header.index(settings.id_column)
    problems = ProblemList()
    filled = 0
    rows: list[list[str]] = []
    for line, record in zip(lines[1:], records[1:], strict=True):
        if not any(cell.strip() for cell in record):
            rows.append(record)
            continue
        row = record + [""] * (len(header) - len(record))
        changed = False
        for i, validate, make in (
            (code_i, validate_setup_code, generate_setup_code),
            (id_i, validate_setup_id, generate_setup_id),
        ):
            value = row[i].strip()
            if not value:
                row[i] = make()
                changed = True
            else:
                error = validate(value)
                if error:
                    problems.add(str(src), line, i + 1, header[i], error)
        filled += changed
        rows.append(row)
    problems.raise_if_any()
    if not filled and header == records[0] and dst.resolve() == src.resolve():
        return 0  # nothing to do: leave the file (and its timestamp) alone
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    fd, tmp = tempfile.mkstemp(prefix=".values-", suffix=".csv", dir=dst.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return filled


def label_facts(settings: HomeKitSettings, values: Mapping[str, str]) -> dict[str, str]:
    """``setup_code``, ``setup_id`` and ``homekit_payload`` of a row, for its label.

    Cheap (no SRP): for previews and reprints. Empty if the row has no valid code and ID (a
    generated one must have been stored first, see :func:`fill_values_csv`).
    """
    code = (values.get(settings.code_column) or "").strip()
    setup_id = (values.get(settings.id_column) or "").strip()
    if validate_setup_code(code) or validate_setup_id(setup_id):
        return {}
    code = normalize_setup_code(code)
    payload = setup_payload(
        code, setup_id, settings.category, ip=settings.ip, ble=settings.ble, wac=settings.wac
    )
    return {"setup_code": code, "setup_id": setup_id, "homekit_payload": payload}
