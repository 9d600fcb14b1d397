"""The stores under contract: how to open one on fresh storage, reopen it, and read its raw bytes."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

from noetl.errors import StoreError
from noetl.store import open_store
from noetl.store.ports import Store


class Backend:
    """One store's storage; `open()` may be called again to get a second object on the same data."""

    name = ""

    def __init__(self, url: str) -> None:
        self.url = url
        self._opened: list[Store] = []

    def open(self) -> Store:
        store = open_store(self.url)
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            with suppress(StoreError):  # a test may leave a failed write behind on purpose
                store.close()

    def raw_credential_bytes(self, name: str) -> bytes:
        """Everything stored for a credential row, as the database holds it."""
        raise NotImplementedError


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def raw_credential_bytes(self, name: str) -> bytes:
        import sqlite3

        with sqlite3.connect(self.path) as conn:
            row = conn.execute("SELECT name, type, data FROM credentials WHERE name = ?", (name,)).fetchone()
        conn.close()
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        on_disk = b"".join(f.read_bytes() for f in files if f.exists())
        return repr(row).encode() + bytes(row[2]) + on_disk


class PostgresBackend(Backend):
    name = "postgres"

    def raw_credential_bytes(self, name: str) -> bytes:
        import psycopg

        with psycopg.connect(self.url) as conn:
            row: Any = conn.execute(
                "SELECT c::text, data FROM noetl_credentials c WHERE name = %s", (name,)
            ).fetchone()
        return row[0].encode() + bytes(row[1])
