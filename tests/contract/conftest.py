"""Every contract test runs once per store: SQLite in a temp folder, PostgreSQL in a fresh database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl.store.crypto import KEY_ENV
from noetl.store.ports import Store
from tests.contract.backends import Backend, PostgresBackend, SQLiteBackend


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    b: Backend
    if request.param == "sqlite":
        monkeypatch.delenv(KEY_ENV, raising=False)  # SQLite keeps its key in a file beside the database
        b = SQLiteBackend(tmp_path / "noetl.db")
    else:
        monkeypatch.setenv(KEY_ENV, "contract-test-passphrase")  # PostgreSQL requires the shared key
        b = PostgresBackend(request.getfixturevalue("pg_dsn"))
    yield b
    b.close_all()


@pytest.fixture
def store(backend: Backend) -> Store:
    """The store under contract (shadows the SQLite-only `store` of tests/conftest.py here)."""
    return backend.open()
