"""What is a secret in a lot, and what is shown instead: the one mask of the station.

Logs, the window, labels and exports show :data:`MASK` for a secret value (:func:`mask`);
:func:`secret_columns` says which columns of a lot hold secrets. Imports only ``re``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from station.mfg.lot import MfgLot

# column names that hold secrets: long words anywhere (wifiPassword), short ones as a word (dev_key)
SECRET_NAME_RE = re.compile(
    r"password|passwd|passphrase|secret|token|setup_?code|priv_?key|private"
    r"|(?:^|[^a-z])(?:key|keys|pin|pass|pswd|psk)(?:$|[^a-z])"
)
# secrets that are one device's own (a Wi-Fi password is often shared on purpose)
UNIQUE_SECRET_RE = re.compile(
    r"secret|token|setup_?code|priv_?key|private|(?:^|[^a-z])(?:key|keys|pin)(?:$|[^a-z])"
)
SECRET_ENCODINGS = ("hex2bin", "base64", "binary")
MASK = "••••••"


def secret_columns(lot: MfgLot, extra: Iterable[str] = ()) -> frozenset[str]:
    """Columns that logs, the UI and exports must mask (see :func:`mask`).

    Keys with binary-like encodings or type file, columns named like a key, secret, password,
    token, PIN or setup code, and ``extra``.
    """
    found = set(extra)
    for c in lot.config:
        if c.type == "file" or c.encoding in SECRET_ENCODINGS:
            found.add(c.key)
    for name in lot.columns:
        if SECRET_NAME_RE.search(name.lower()):
            found.add(name)
    return frozenset(found)


def mask(value: str) -> str:
    """What logs, the UI and exports show instead of a secret value."""
    return MASK if value else ""
