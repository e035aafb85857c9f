"""The lot file's ``[security]`` table: which recipes, which keys, which mode — checked at once.

Every problem is located (``lot.toml:LINE:COL: security.KEY: message``) and all are reported in
one pass, before anything is burned: a chip without the feature, a key of the wrong size, a
Secure Boot v2 key of a scheme the chip does not verify, firmware not signed by the lot's keys.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.errors import Problem, ProblemList, StationError
from station.security.chips import UNSUPPORTED, ChipCaps, chip_caps, supported_chips

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TABLE = "security"
# the documented order: keys that need read protection before secure boot write-protects
# RD_DIS; the final lock last (after it there is no read-back)
RECIPES = ("nvs_hmac", "flash_encryption", "secure_boot", "final_lock")
MODES = ("development", "release")
FINAL_LOCKS = ("security_download", "disable_download")
HMAC_KEY_SOURCES = ("lot", "per-unit")
KNOWN = (
    "recipes",
    "mode",
    "chip",
    "hmac_key_id",
    "hmac_key",
    "hmac_keyfile",
    "xts_aes",
    "secure_boot_keys",
    "final_lock",
    "delete_keys_after_verify",
)
KEY_FOLDER = Path("keys") / "security"  # beside the lot file, next to per-device NVS keys


@dataclass(frozen=True)
class SecureBootKey:
    """One Secure Boot v2 key of the lot: its file and the digest burned for it."""

    path: Path
    scheme: str  # "rsa" | "ecdsa"
    digest: bytes  # SHA-256 of the public key block, as espsecure computes it
    pem: bytes  # the file's contents (a public key, or a private key the public one comes from)


@dataclass(frozen=True)
class SecuritySettings:
    """A lot's security recipes, validated. Paths are absolute."""

    lot_file: Path
    chip: str
    recipes: tuple[str, ...]  # a subset of RECIPES, in RECIPES order
    mode: str = "release"
    hmac_key_id: int | None = None  # nvs_hmac: BLOCK_KEY<n>
    hmac_key_source: str = "lot"
    hmac_keyfile: Path | None = None
    xts_aes: int = 128  # flash_encryption: 128 (one key block) or 256 (two)
    secure_boot_keys: tuple[SecureBootKey, ...] = ()
    final_lock: str = "security_download"
    delete_keys_after_verify: bool = False

    @property
    def key_folder(self) -> Path:
        return self.lot_file.parent / KEY_FOLDER

    def has(self, recipe: str) -> bool:
        return recipe in self.recipes


class TableLocator:
    """Line and column of a key inside the ``[security]`` table of a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def find(self, key: str | None = None) -> tuple[int, int]:
        table_at = (0, 0)
        inside = False
        for n, line in enumerate(self.lines, 1):
            header = re.match(r"^\s*\[\s*([A-Za-z0-9_.\"-]+)\s*\]", line)
            if header:
                inside = header.group(1).strip('"') == TABLE
                if inside:
                    table_at = (n, header.start(1) + 1)
                continue
            if re.match(rf"^\s*{TABLE}\s*=", line):
                table_at = table_at if table_at != (0, 0) else (n, 1)
                if key:
                    m = re.search(rf"[{{,]\s*({re.escape(key)})\s*=", line)
                    if m:
                        return n, m.start(1) + 1
                continue
            if inside and key:
                m = re.match(rf"^(\s*)(?:\"{re.escape(key)}\"|{re.escape(key)})\s*=", line)
                if m:
                    return n, len(m.group(1)) + 1
        return table_at


def parse_security(
    lot_file: str | Path, *, chip: str | None = None
) -> tuple[SecuritySettings | None, list[Problem]]:
    """The lot file's ``[security]`` table and its problems (None when it has no table).

    ``chip`` overrides the chip the table and the lot name (``station security plan --chip``).
    """
    path = Path(lot_file)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise StationError.at(file, f"cannot read the lot file: {err}") from None
    table = data.get(TABLE)
    if table is None:
        return None, []
    where = TableLocator(text)
    problems = ProblemList()

    def bad(key: str | None, message: str) -> None:
        line, col = where.find(key)
        problems.add(file, line, col, f"{TABLE}.{key}" if key else TABLE, message)

    if not isinstance(table, dict):
        bad(None, "must be a table: [security]")
        return None, problems.items
    for key in table:
        if key not in KNOWN:
            bad(key, f"unknown key (known: {', '.join(KNOWN)})")
    folder = path.resolve().parent

    recipes_raw = table.get("recipes")
    recipes: list[str] = []
    if not isinstance(recipes_raw, list) or not recipes_raw:
        bad("recipes", f"must be a list of recipes, some of: {', '.join(RECIPES)}")
    else:
        for r in recipes_raw:
            if r not in RECIPES:
                bad("recipes", f"unknown recipe {r!r} (one of: {', '.join(RECIPES)})")
            elif r in recipes:
                bad("recipes", f"{r!r} is listed twice")
            else:
                recipes.append(r)
    recipes = [r for r in RECIPES if r in recipes]
    if recipes == ["final_lock"]:
        bad(
            "recipes",
            "final_lock alone locks a chip without protecting anything: "
            "add flash_encryption and/or secure_boot",
        )

    mode = table.get("mode", "release")
    if mode not in MODES:
        bad("mode", f"must be one of: {', '.join(MODES)}")
        mode = "release"

    lot_chip = data.get("chip", "esp32")
    chip_given = table.get("chip")
    if chip_given is not None and lot_chip not in ("auto", chip_given) and chip is None:
        bad("chip", f"the table says {chip_given!r}, the lot says {lot_chip!r}")
    the_chip = chip or chip_given or lot_chip
    caps: ChipCaps | None = None
    if not isinstance(the_chip, str) or the_chip == "auto":
        bad(
            "chip",
            "name the chip (esp32c3, esp32s3, …): eFuse layouts differ per chip, and "
            "the lot says 'auto'",
        )
        the_chip = "auto"
    else:
        caps = chip_caps(the_chip)
        if caps is None:
            why = UNSUPPORTED.get(the_chip, "espefuse does not know this chip")
            bad(
                "chip",
                f"{the_chip}: no security recipes for this chip: {why} "
                f"(supported: {', '.join(supported_chips())})",
            )

    hmac_key_id: int | None = None
    hmac_source = table.get("hmac_key", "lot")
    hmac_file: Path | None = None
    if "nvs_hmac" in recipes:
        raw_id = table.get("hmac_key_id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, int) or not 0 <= raw_id <= 5:
            bad(
                "hmac_key_id",
                "required for nvs_hmac: the key block 0..5 the firmware reads "
                "(its CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID)",
            )
        else:
            hmac_key_id = raw_id
        if caps is not None and not caps.hmac:
            bad(
                "recipes",
                f"nvs_hmac: the {the_chip} has no HMAC peripheral (no HMAC_UP key purpose)",
            )
        if hmac_source not in HMAC_KEY_SOURCES:
            bad("hmac_key", f"must be one of: {', '.join(HMAC_KEY_SOURCES)}")
            hmac_source = "lot"
        if hmac_source == "lot":
            name = table.get("hmac_keyfile")
            key = "hmac_keyfile"
            if name is None:
                enc = data.get("encryption")
                name = enc.get("hmac_keyfile") if isinstance(enc, Mapping) else None
            if not isinstance(name, str) or not name:
                bad(
                    key,
                    "nvs_hmac with hmac_key = 'lot' needs the lot's 32-byte HMAC key: "
                    "hmac_keyfile here or in [encryption]",
                )
            else:
                p = (folder / name).resolve()
                try:
                    size = len(p.read_bytes())
                except OSError:
                    bad(key, f"{name}: no such file")
                else:
                    if size != 32:
                        bad(key, f"{name}: an HMAC key is 32 bytes, this file has {size}")
                    else:
                        hmac_file = p
    elif "hmac_key_id" in table or "hmac_keyfile" in table:
        bad(
            "hmac_key_id" if "hmac_key_id" in table else "hmac_keyfile",
            "only used by the nvs_hmac recipe, which is not chosen",
        )

    xts = table.get("xts_aes", 128)
    if xts not in (128, 256) or isinstance(xts, bool):
        bad("xts_aes", "must be 128 (XTS-AES-128, a 256-bit key) or 256 (XTS-AES-256, 512-bit)")
        xts = 128
    if "flash_encryption" in recipes and caps is not None:
        if not caps.xts_aes_128:
            bad("recipes", f"flash_encryption: the {the_chip} has no XTS-AES key purpose")
        elif xts == 256 and not caps.xts_aes_256:
            bad("xts_aes", f"the {the_chip} has no XTS-AES-256 (only XTS-AES-128): use 128")

    sb_keys: list[SecureBootKey] = []
    raw_keys = table.get("secure_boot_keys")
    if "secure_boot" in recipes:
        limit = caps.sbv2_digests if caps is not None else 3
        if caps is not None and limit == 0:
            bad("recipes", f"secure_boot: the {the_chip} has no Secure Boot v2 digest purposes")
        elif (
            not isinstance(raw_keys, list)
            or not raw_keys
            or not all(isinstance(k, str) and k for k in raw_keys)
        ):
            bad(
                "secure_boot_keys",
                'secure_boot needs 1-3 key files (PEM, public or private): e.g. ["sb_key0.pem"]',
            )
        elif len(raw_keys) > limit:
            bad(
                "secure_boot_keys",
                f"the {the_chip} holds {limit} key digests, {len(raw_keys)} keys given",
            )
        else:
            for name in raw_keys:
                key = _secure_boot_key(folder / name, name, caps, bad)
                if key is not None:
                    if any(k.digest == key.digest for k in sb_keys):
                        bad("secure_boot_keys", f"{name}: the same key is listed twice")
                    else:
                        sb_keys.append(key)
    elif raw_keys is not None:
        bad("secure_boot_keys", "only used by the secure_boot recipe, which is not chosen")

    lock = table.get("final_lock", "security_download")
    if lock not in FINAL_LOCKS:
        bad("final_lock", f"must be one of: {', '.join(FINAL_LOCKS)}")
        lock = "security_download"
    if "final_lock" in recipes and caps is not None:
        name = "ENABLE_SECURITY_DOWNLOAD" if lock == "security_download" else "DIS_DOWNLOAD_MODE"
        if not caps.has(name):
            bad("final_lock", f"the {the_chip} has no {name} eFuse")
    delete = table.get("delete_keys_after_verify", False)
    if not isinstance(delete, bool):
        bad("delete_keys_after_verify", "must be true or false")
        delete = False

    problems.items.sort(key=lambda p: (p.line == 0, p.line, p.column))
    if problems:
        return None, problems.items
    return SecuritySettings(
        lot_file=path.resolve(),
        chip=the_chip,
        recipes=tuple(recipes),
        mode=mode,
        hmac_key_id=hmac_key_id,
        hmac_key_source=hmac_source,
        hmac_keyfile=hmac_file,
        xts_aes=int(xts),
        secure_boot_keys=tuple(sb_keys),
        final_lock=lock,
        delete_keys_after_verify=delete,
    ), []


def requested_recipes(lot_file: str | Path) -> tuple[str, ...]:
    """The known recipes a lot file's table asks for, even when the table has problems."""
    try:
        table = tomllib.loads(Path(lot_file).read_text(encoding="utf-8")).get(TABLE)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ()
    raw = table.get("recipes") if isinstance(table, dict) else None
    return tuple(r for r in RECIPES if isinstance(raw, list) and r in raw)


def _secure_boot_key(
    path: Path, name: str, caps: ChipCaps | None, bad: Any
) -> SecureBootKey | None:
    import espsecure
    import esptool
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        pem = path.read_bytes()
    except OSError:
        bad("secure_boot_keys", f"{name}: no such file")
        return None
    try:
        # espsecure's own loader: RSA-3072 or ECDSA P-192/P-256/P-384, public or private PEM
        public = espsecure._get_sbv2_pub_key(io.BytesIO(pem))
        digest = espsecure._digest_sbv2_public_key(io.BytesIO(pem))
    except (esptool.FatalError, ValueError) as err:
        bad("secure_boot_keys", f"{name}: not a Secure Boot v2 key: {err}")
        return None
    scheme = "rsa" if isinstance(public, rsa.RSAPublicKey) else "ecdsa"
    if caps is not None and scheme not in caps.sbv2_schemes:
        bad(
            "secure_boot_keys",
            f"{name}: an {scheme.upper()} key, the {caps.chip} verifies "
            f"{' or '.join(s.upper() for s in sorted(caps.sbv2_schemes))} signatures only",
        )
        return None
    return SecureBootKey(path.resolve(), scheme, digest, pem)


def check_signatures(
    settings: SecuritySettings, images: Sequence[tuple[str, str, bytes]]
) -> list[Problem]:
    """Secure Boot v2: each image ``(name, file, data)`` (the bootloader and the apps the lot
    writes) must carry a signature block that verifies with one of the lot's keys."""
    import espsecure
    import esptool

    from station.security.quiet import quiet

    if not settings.has("secure_boot"):
        return []
    out: list[Problem] = []
    names = ", ".join(k.path.name for k in settings.secure_boot_keys)
    for name, file, data in images:
        ok = seen_valid = False
        reason = "no signature block verifies with the lot's keys"
        for key in settings.secure_boot_keys:
            try:
                with quiet() as sink:
                    espsecure.verify_signature_v2(
                        False, None, io.BytesIO(key.pem), io.BytesIO(data)
                    )
            except esptool.FatalError as err:
                text = str(err)
                if "multiple of 4096" in text or "too small" in text:
                    reason = "not signed (no Secure Boot v2 signature sector)"
                elif "digest does not match" in text:
                    reason = "its signature block does not match the image (modified after signing)"
                seen_valid = seen_valid or any("is valid" in m for m in sink.messages)
                continue
            ok = True
            break
        if not ok:
            if reason.startswith("no signature") and not seen_valid:
                reason = "not signed (no valid Secure Boot v2 signature block)"
            out.append(Problem(file, 0, 0, "secure_boot", f"{name}: {reason} ({names})"))
    return out


def hmac_warning(
    lot_encryption: Mapping[str, Any], settings: SecuritySettings | None
) -> str | None:
    """The warning for a lot that encrypts NVS with the HMAC scheme but does not burn the key.

    ``lot_encryption`` is the lot's ``[encryption]`` table. Returns the text to show when the
    lot opens, or None when there is nothing to warn about.
    """
    if "hmac_keyfile" not in lot_encryption:
        return None
    if settings is not None and settings.has("nvs_hmac"):
        return None
    return (
        "this lot encrypts its factory data with the HMAC scheme, but its [security] table does "
        "not burn the HMAC key (recipe nvs_hmac). If the key block is still empty when the "
        "firmware first calls nvs_flash_init, the firmware generates a random HMAC key of its "
        "own, burns it read-protected, and derives different NVS keys: the factory data the "
        "station wrote can then never be read on that unit. Add nvs_hmac to [security] "
        "recipes, or burn the lot's key with espefuse before the first boot."
    )


def key_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
