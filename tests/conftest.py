"""Shared fixtures. Qt-specific fixtures live in tests/gui/conftest.py."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Qt must never try to open a real screen in tests (no display on CI machines).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _own_engineer_pin_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes this machine's engineer PIN (/etc/station, ProgramData)."""
    monkeypatch.setenv("STATION_PIN_FILE", str(tmp_path / "machine-engineer-pin"))


PG_URL = os.environ.get("STATION_TEST_POSTGRES", "")


@contextmanager
def pg_schema() -> Iterator[tuple[str, str, Any]]:
    """(ledger URL, schema, admin connection) for a PostgreSQL schema of its own, dropped at
    the end; skips where no server is given (``STATION_TEST_POSTGRES``, started by
    ``.ci/postgres.sh`` in CI)."""
    if not PG_URL:
        pytest.skip("STATION_TEST_POSTGRES is not set")
    psycopg = pytest.importorskip("psycopg")
    schema = f"station_test_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        url = PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"
        yield url, schema, admin
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL ledger URL in a schema of its own (see :func:`pg_schema`)."""
    with pg_schema() as (url, _schema, _admin):
        yield url


class TellingLock:
    """A lock that says when the thread named ``asker`` asks for it (before it waits), so a
    test can release another thread once this one is sure to be waiting, without sleeping."""

    def __init__(self, asker: str) -> None:
        self._lock = threading.Lock()
        self._asker = asker
        self.asked = threading.Event()

    def __enter__(self) -> TellingLock:
        if threading.current_thread().name == self._asker:
            self.asked.set()
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
