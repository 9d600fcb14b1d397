"""Open a store with its schema up to date (server start, `noetl db init`), and name it safely."""

from __future__ import annotations

from typing import Any


def open_migrated(db: str | None) -> Any:
    """The store at `db`, after its migrations (PostgreSQL); SQLite creates its schema when opened."""
    from noetl.store import open_store

    store = open_store(db)
    try:
        migrate = getattr(store, "migrate", None)
        if migrate is not None:  # idempotent: a store that migrated on open finds nothing left to apply
            migrate()
    except BaseException:
        store.close()
        raise
    return store


def store_label(store: Any) -> str:
    """Where the store is, fit for logs and /health: PostgreSQL's `location` holds no user or password."""
    return str(getattr(store, "location", None) or store.url)
