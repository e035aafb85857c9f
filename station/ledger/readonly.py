"""A ledger opened for reading only: a supervisor's view of a line that must never change it.

The database itself refuses writes, not only our code: a SQLite file is opened with
``mode=ro`` and ``query_only``; a PostgreSQL session runs with
``default_transaction_read_only`` on, so any INSERT/UPDATE/DDL fails at the server. A watcher
outlives the server: a read on a connection the server dropped fails, and the next one connects
again.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from station.errors import StationError
from station.ledger import sql
from station.ledger.ledger import Ledger, display_url


class ReadOnlyLedger(Ledger):
    """:class:`Ledger` whose connections cannot write; attach it to a lot with :meth:`attach`."""

    lost_is_offline = False  # a watcher shows the driver's own words, and reads again later

    def __init__(self, url: str | os.PathLike[str], *, station_id: str | None = None) -> None:
        try:
            super().__init__(url, station_id=station_id or "watch")
        except BaseException:
            self.close()  # the connection that found no ledger
            raise

    def _create_schema(self, create: bool = False) -> None:
        if self._con().execute(self.dialect.schema_exists).fetchone() is None:
            raise StationError.at(
                display_url(self.url) if self.dialect is sql.POSTGRESQL else str(self.path),
                "no station ledger in this database (start a station on the lot first)",
                key="db",
            )

    def _connect(self) -> Any:
        if self.dialect is sql.POSTGRESQL:
            con = super()._connect()
            con.execute("SET default_transaction_read_only = on")
            return con
        if not self.path.is_file():
            raise StationError.at(str(self.path), "no ledger database here", key="db")
        uri = "file:" + quote(str(self.path.resolve())) + "?mode=ro"
        try:
            con = sqlite3.connect(
                uri, uri=True, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA query_only=ON")
            con.execute("PRAGMA busy_timeout=60000")
        except sqlite3.Error as err:
            raise StationError.at(
                str(self.path), f"cannot open the ledger for reading: {err}", key="db"
            ) from None
        return con

    def _q(self, statement: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return super()._q(statement, args)
        except self._db_error:
            con = getattr(self._local, "con", None)
            if con is not None and (getattr(con, "broken", False) or getattr(con, "closed", 0)):
                self.release_thread()  # the server went away: the next read connects again
            raise

    @contextmanager
    def _write(self) -> Iterator[Any]:
        raise StationError.at(
            display_url(self.url), "this ledger is opened read-only (watching)", key="db"
        )
        yield  # pragma: no cover - makes this a generator


def open_read_only(url: str | os.PathLike[str], lot_name: str) -> ReadOnlyLedger:
    """The ledger at ``url`` attached to lot ``lot_name``, for reading only."""
    ledger = ReadOnlyLedger(url)
    try:
        ledger.attach(lot_name)
    except BaseException:
        ledger.close()
        raise
    return ledger
