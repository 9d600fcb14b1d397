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
    yield f"{base}/{name}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
