"""Stores behind small ports; `open_store(url)` picks the backend from the URL."""

from __future__ import annotations

import os
from pathlib import Path

from noetl.errors import InputError
from noetl.store.ports import Store

DEFAULT_DB = ".noetl/noetl.db"
DB_ENV = "NOETL_DB"


def resolve_url(url: str | None) -> str:
    return url or os.environ.get(DB_ENV) or DEFAULT_DB


def open_store(url: str | None = None) -> Store:
    """`sqlite:///path`, a plain file path (SQLite), or `postgresql://...`."""
    target = resolve_url(url)
    if target.startswith(("postgresql://", "postgres://")):
        try:
            from noetl.store.postgres import PostgresStore
        except ImportError as exc:  # the message must not echo the URL: it may hold a password
            raise InputError(
                f"a PostgreSQL store needs the psycopg driver ({exc.name} is missing); "
                "install it with: pip install 'noetl[postgres]'"
            ) from None
        return PostgresStore(target)
    if "://" in target and not target.startswith("sqlite:///"):
        scheme = target.split("://", 1)[0]  # only the scheme: the rest may hold a password
        raise InputError(
            f"unknown store URL scheme {scheme}://; use a file path, sqlite:///path or postgresql://..."
        )
    from noetl.store.sqlite import SQLiteStore

    return SQLiteStore(Path(target.removeprefix("sqlite:///")))


__all__ = ["DB_ENV", "DEFAULT_DB", "Store", "open_store", "resolve_url"]
