"""Fixtures of the tests that run real worker processes on the throwaway PostgreSQL: a store with the
credential key the workers use, and a group of workers stopped after the test. A test module that
needs more (registered playbooks, credentials) defines its own of the same name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl.store.postgres import PostgresStore
from tests.processes import SECRET_KEY, Workers


@pytest.fixture
def pg_store(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStore]:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    store = PostgresStore(pg_dsn, pool_size=8)
    yield store
    store.close()


@pytest.fixture
def workers(pg_dsn: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(pg_dsn, tmp_path)
    yield group
    group.stop_all()
