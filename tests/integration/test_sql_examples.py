"""The SQL example playbooks run as shipped: postgres against the test server, duckdb fully offline."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import EXAMPLES, pg_fields
from tests.helpers import run_file


def test_postgres_upsert_example(store: Any, pg_dsn: str) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    outcome, _ = run_file(store, EXAMPLES / "postgres" / "postgres_upsert.yaml")
    assert outcome.status == "COMPLETED", outcome.error
    tricky = "x'); DROP TABLE t; --"
    assert outcome.result == {"rows_for_city": 1, "note": tricky, "version": "2", "t_still_exists": True}
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT city, note, details FROM weather_notes").fetchall() == [
            ("London", tricky, {"version": 2})
        ]
    again, _ = run_file(store, EXAMPLES / "postgres" / "postgres_upsert.yaml")  # idempotent by key
    assert again.status == "COMPLETED" and again.result["rows_for_city"] == 1


def test_duckdb_step_example(store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # keep the per-execution file in this test
    outcome, _ = run_file(store, EXAMPLES / "duckdb" / "duckdb_step.yaml")
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"cities": 3, "warm": ["Paris"], "readings": 5}
    assert not (tmp_path / "noetl-duckdb" / f"{outcome.execution_id}.duckdb").exists()  # removed at the end
