"""The embedded store binds None through an adapter registered for it (noetl.store.sqlite): found at
once, where sqlite3's own path formats an AttributeError for every None it binds. Still SQL NULL."""

from __future__ import annotations

import sqlite3

import noetl.store.sqlite  # noqa: F401  (registers the adapter)


def test_the_adapter_for_none_is_registered_and_gives_none_back() -> None:
    adapter = sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)]
    assert adapter(None) is None


def test_none_is_still_stored_as_sql_null() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b TEXT, c INTEGER)")
    conn.execute("INSERT INTO t VALUES (?, ?, ?)", (None, None, None))
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(None, "x", 1), (2.5, None, None)])
    rows = conn.execute("SELECT typeof(a), typeof(b), typeof(c), a IS NULL FROM t ORDER BY rowid").fetchall()
    assert rows == [("null", "null", "null", 1), ("null", "text", "integer", 1), ("real", "null", "null", 0)]
