"""Shared fixtures: a throwaway PostgreSQL for the session, a fresh database per test, a temp store."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noetl.store import open_store
from tests.pg import ThrowawayPostgres

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The DSN of a PostgreSQL server: NOETL_TEST_PG_DSN, or one started (and stopped) for this session."""
    given = os.environ.get("NOETL_TEST_PG_DSN")
    if given:
        yield given
        return
    server = ThrowawayPostgres()
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = pg_server.rpartition("/")
    dsn = f"{base}/{name}"
    yield dsn
    try:
        _nothing_after_the_end(dsn)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Every event stored after its execution's execution_complete / execution_failed (in commit order),
# unless an execution_retry (noetl retry) opened the execution again in between.
AFTER_THE_END = """
SELECT execution_id, seq, event_type, node_name FROM (
  SELECT execution_id, seq, event_type, node_name,
         max(CASE WHEN event_type IN ('execution_complete', 'execution_failed') THEN seq END) OVER w AS last_end,
         max(CASE WHEN event_type = 'execution_retry' THEN seq END) OVER w AS last_retry
  FROM {events}
  WINDOW w AS (PARTITION BY execution_id ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
) x
WHERE last_end IS NOT NULL AND event_type <> 'execution_retry' AND (last_retry IS NULL OR last_retry < last_end)
ORDER BY execution_id, seq LIMIT 20
"""


def _nothing_after_the_end(dsn: str) -> None:
    """Cancel is final, and every end is the end: checked on every database a test used."""
    import psycopg

    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError:
        return  # the test dropped its database on purpose (the health test)
    with conn:
        exists = conn.execute("SELECT to_regclass('noetl_events') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return
        rows = conn.execute(AFTER_THE_END.format(events="noetl_events")).fetchall()
    assert not rows, f"events stored after their execution ended: {rows}"


def _nothing_after_the_end_in_sqlite(path: Path) -> None:
    import sqlite3

    if not path.exists():
        return
    with sqlite3.connect(path) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone():
            return
        rows = conn.execute(AFTER_THE_END.format(events="events")).fetchall()
    assert not rows, f"events stored after their execution ended: {rows}"


def pg_fields(dsn: str) -> dict[str, Any]:
    """A postgres credential's fields for a DSN."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    return {
        "db_host": info.get("host", "127.0.0.1"),
        "db_port": int(info.get("port", 5432)),
        "db_user": info.get("user", "postgres"),
        "db_password": info.get("password", ""),
        "db_name": info.get("dbname", "postgres"),
    }


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "noetl.db"


@pytest.fixture
def store(store_path: Path) -> Iterator[Any]:
    s = open_store(str(store_path))
    yield s
    s.close()
    _nothing_after_the_end_in_sqlite(store_path)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint `127.0.0.1:PORT` of a real S3-compatible server (moto), started on first use."""
    from tests.s3server import ThrowawayS3

    server = ThrowawayS3()
    endpoint = server.start()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new, empty bucket on the S3 server for one test; its name."""
    from tests.s3server import create_bucket

    name = f"t-{uuid.uuid4().hex[:12]}"
    create_bucket(s3_server, name)
    return name


@pytest.fixture(autouse=True)
def _no_template_leaves_the_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The rendering guarantee, in every test that runs a playbook in this process: no template text of
    the playbook reaches an action or a save (tests/leak_guard.py). Real actions still run."""
    from noetl.runtime import local
    from tests.leak_guard import LeakGuard

    guard = LeakGuard()
    monkeypatch.setattr(local, "default_actions", guard.actions)
    monkeypatch.setattr(local, "default_storages", guard.storages)
    yield
    assert not guard.leaks, "template text left the engine unrendered:\n" + "\n".join(guard.leaks)
