"""The engineer PIN: stored only as a salted scrypt hash, compared in constant time, kept
machine-wide where an operator account cannot change it, wrong tries delayed more and more.

Qt-free, so that ``station engineer-pin`` and ``station security enable`` work without the
window; imports nothing of the station."""

from __future__ import annotations

import argparse
import contextlib
import hmac
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_N, _R, _P = 2**14, 8, 1
_PREFIX = "scrypt"
_MAX_MEMORY = 32 * 1024 * 1024  # scrypt's 128·r·n bytes, as hashlib's default limit


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # cryptography's scrypt: hashlib's needs Python's own OpenSSL, which the Linux bundle
    # leaves to the system (imported here, to keep `station engineer-pin` quick to start)
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=length, n=n, r=r, p=p).derive(pin.encode("utf-8"))


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """A storable hash of ``pin``: ``scrypt$N$r$p$salt$hash`` (hex), with a fresh random salt."""
    if not pin:
        raise ValueError("the PIN is empty")
    salt = os.urandom(16) if salt is None else salt
    digest = _scrypt(pin, salt, _N, _R, _P, 32)
    return f"{_PREFIX}${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, stored: str) -> bool:
    """True if ``pin`` matches a hash made by :func:`hash_pin`; False for anything malformed."""
    try:
        prefix, n, r, p, salt_hex, digest_hex = stored.split("$")
        if prefix != _PREFIX:
            return False
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
        n_i, r_i, p_i = int(n), int(r), int(p)
    except ValueError:
        return False
    if not pin or not 1 < n_i <= 2**20 or n_i & (n_i - 1) or not 0 < r_i <= 32:
        return False
    if not 0 < p_i <= 16 or 128 * r_i * n_i > _MAX_MEMORY or not expected:
        return False
    digest = _scrypt(pin, salt, n_i, r_i, p_i, len(expected))
    return hmac.compare_digest(digest, expected)


# --- where the PIN is kept, and how often it may be tried ----------------------------------------
PIN_FILE_ENV = "STATION_PIN_FILE"  # another place for the PIN hash (tests, unusual installs)
MIN_PIN_DIGITS = 6
FREE_TRIES = 3  # wrong PINs before the delays start
MAX_DELAY = 300.0


class PinError(ValueError):
    """A PIN that cannot be set: too short, or a PIN file this account cannot write."""


def machine_pin_file() -> Path:
    """Where the engineer PIN's hash is kept for every account of this machine: a folder an
    operator account can read but not change (``%ProgramData%\\station`` on Windows,
    ``/etc/station`` on Linux, ``/Library/Application Support/station`` on macOS);
    ``$STATION_PIN_FILE`` if set."""
    override = os.environ.get(PIN_FILE_ENV)
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "station" / "engineer-pin"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/station/engineer-pin")
    return Path("/etc/station/engineer-pin")


def pin_problem(pin: str) -> str | None:
    """Why a new PIN is refused, or None."""
    if len(pin) < MIN_PIN_DIGITS or not (pin.isascii() and pin.isdigit()):
        return f"The engineer PIN needs at least {MIN_PIN_DIGITS} digits (0-9 only)."
    return None


class PinStore:
    """The engineer PIN's hash in one file, machine-wide (not in a user's settings, where
    deleting a line let anyone choose a new PIN). Wrong tries are delayed more and more."""

    def __init__(self, path: Path | str | None = None, *, clock: Any = time.monotonic) -> None:
        self.path = Path(path) if path is not None else machine_pin_file()
        self._clock = clock
        self._failures = 0
        self._not_before = 0.0

    @property
    def has_pin(self) -> bool:
        """A PIN file exists (even one this account cannot read: then no new PIN is chosen)."""
        return os.path.lexists(self.path)

    def set(self, pin: str) -> None:
        """Store a salted hash of a new PIN; PinError if it is too short or the file cannot be
        written by this account (then an administrator sets it: ``station engineer-pin``)."""
        problem = pin_problem(pin)
        if problem:
            raise PinError(problem)
        text = hash_pin(pin) + "\n"
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".engineer-pin.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o644)  # every account reads it; only its owner changes it
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as err:
            raise PinError(
                f"The engineer PIN is kept in {self.path}, which this account cannot change "
                f"({err.strerror or err}); an administrator sets it with: station engineer-pin"
            ) from None

    def wait(self) -> float:
        """Seconds before the next try is checked (0: now)."""
        return max(0.0, self._not_before - self._clock())

    def check(self, pin: str) -> bool:
        """True for the right PIN. While a delay runs every try is wrong, unchecked; each
        wrong PIN after the first FREE_TRIES doubles the delay (2 s, 4 s, … 5 minutes)."""
        if self.wait() > 0:
            return False
        try:
            stored = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            stored = ""
        if stored and check_pin(pin, stored):
            self._failures = 0
            return True
        self._failures += 1
        if self._failures >= FREE_TRIES:
            delay = min(MAX_DELAY, 2.0 ** (self._failures - FREE_TRIES + 1))
            self._not_before = self._clock() + delay
        return False


def set_pin_command(args: argparse.Namespace) -> int:
    """``station engineer-pin``: set the engineer PIN of this machine (run as administrator)."""
    import getpass

    store = PinStore()
    pin = getpass.getpass(f"New engineer PIN for this machine ({MIN_PIN_DIGITS}+ digits): ")
    problem = pin_problem(pin)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if getpass.getpass("Type it again: ") != pin:
        print("The PINs differ; nothing changed.", file=sys.stderr)
        return 2
    try:
        store.set(pin)
    except PinError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"Engineer PIN set in {store.path}")
    return 0
