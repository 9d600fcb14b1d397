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
        raise InputError(
            f"a PostgreSQL store ({target.split('@')[-1]}) is for the server and workers, which this "
            "version does not have yet; use a SQLite path such as .noetl/noetl.db"
        )
    if "://" in target and not target.startswith("sqlite:///"):
        raise InputError(f"unknown store URL {target!r}; use a file path, sqlite:///path or postgresql://...")
    from noetl.store.sqlite import SQLiteStore

    return SQLiteStore(Path(target.removeprefix("sqlite:///")))


__all__ = ["DB_ENV", "DEFAULT_DB", "Store", "open_store", "resolve_url"]
