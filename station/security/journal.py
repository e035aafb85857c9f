"""Where the steps of each unit are recorded before and after they are burned.

:class:`StepJournal` is the hook the ledger implements: every step is recorded as begun before
its eFuses are touched and as done after they read back right, and every per-device key's
SHA-256 is on record before the key is burned. The eFuses themselves are the truth about what
is burned; the journal tells *our* read-protected key (begun by this station for this device)
from a foreign one. :class:`JsonlJournal` is a durable per-lot JSON-lines file, for the command
line and the tests until the ledger carries these records.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class StepJournal(Protocol):
    """The persistence hook of the security layer (the ledger implements it)."""

    def record_key(self, unit: str, name: str, sha256: str) -> str:
        """Record a key's SHA-256 for a unit (first record wins); return the recorded hash."""
        ...

    def begin(self, unit: str, device: str, step: str) -> None:
        """Durably note that ``step`` is about to be burned on ``device`` (a MAC)."""
        ...

    def done(self, unit: str, device: str, step: str) -> None:
        """Durably note that ``step`` is burned and read back on ``device``."""
        ...

    def steps(self, device: str) -> Mapping[str, str]:
        """What was recorded for ``device``: step id -> ``"begun"`` or ``"done"``."""
        ...


class JsonlJournal:
    """A :class:`StepJournal` in one append-only JSON-lines file (fsync'd per record)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], str] = {}
        self._steps: dict[str, dict[str, str]] = {}
        self._units: dict[str, str] = {}  # device -> unit
        if self.path.exists():
            text = self.path.read_bytes().decode("utf-8", errors="replace")
            if text and not text.endswith("\n"):  # a torn last record: later ones start afresh
                with self.path.open("a", encoding="utf-8") as f:
                    f.write("\n")
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a crash: the record did not happen
                self._apply(rec)

    def _apply(self, rec: Mapping[str, str]) -> None:
        if rec.get("event") == "key":
            self._keys.setdefault((rec["unit"], rec["name"]), rec["sha256"])
        elif rec.get("event") in ("begun", "done"):
            states = self._steps.setdefault(rec["device"], {})
            if states.get(rec["step"]) != "done":
                states[rec["step"]] = rec["event"]
            self._units[rec["device"]] = rec["unit"]

    def _append(self, rec: dict[str, str]) -> None:
        rec = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **rec}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (json.dumps(rec, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self._apply(rec)

    def record_key(self, unit: str, name: str, sha256: str) -> str:
        with self._lock:
            known = self._keys.get((unit, name))
            if known is None:
                self._append({"event": "key", "unit": unit, "name": name, "sha256": sha256})
                return sha256
            return known

    def begin(self, unit: str, device: str, step: str) -> None:
        with self._lock:
            self._append({"event": "begun", "unit": unit, "device": device, "step": step})

    def done(self, unit: str, device: str, step: str) -> None:
        with self._lock:
            self._append({"event": "done", "unit": unit, "device": device, "step": step})

    def steps(self, device: str) -> Mapping[str, str]:
        with self._lock:
            return dict(self._steps.get(device, {}))

    def keys(self) -> dict[tuple[str, str], str]:
        """Every recorded key hash: (unit, name) -> SHA-256 (for the escrow manifest)."""
        with self._lock:
            return dict(self._keys)

    def devices(self) -> dict[str, str]:
        """device -> unit, for every device a step was recorded on."""
        with self._lock:
            return dict(self._units)
