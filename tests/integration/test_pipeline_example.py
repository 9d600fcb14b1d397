"""examples/http_duckdb_postgres: HTTP per city -> PostgreSQL upserts -> DuckDB over PostgreSQL -> Parquet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb
import psycopg
import pytest

from tests.conftest import pg_fields
from tests.helpers import REPO, cli, run_file
from tests.httpd import JSONHandler, serve

PIPELINE = REPO / "examples/http_duckdb_postgres/http_duckdb_postgres.yaml"


class WeatherAPI(JSONHandler):
    """A stand-in for a forecast API: temperature derived from the latitude, so results are checkable."""

    def answer(self) -> Any:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        assert url.path == "/forecast" and "latitude" in query, self.path
        lat = float(query["latitude"][0])
        return {"latitude": lat, "current": {"temperature_2m": round(lat / 2, 2)}}


@pytest.fixture
def weather_api() -> Iterator[str]:
    with serve(WeatherAPI) as url:
        yield url


def test_pipeline_saves_three_rows_and_writes_parquet(
    store: Any, pg_dsn: str, weather_api: str, tmp_path: Path
) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    outcome, events = run_file(
        store, PIPELINE, {"base_url": weather_api, "output_dir": str(tmp_path / "out")}
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result["pg_rows_saved"] == 3
    stats = {row["city"]: row for row in outcome.result["city_stats"]}
    assert set(stats) == {"London", "Paris", "Berlin"}
    assert stats["London"]["avg_temperature_c"] == pytest.approx(round(51.51 / 2, 2))

    parquet = Path(outcome.result["parquet"])
    assert parquet.is_file()
    from_parquet = duckdb.sql(f"SELECT city, readings FROM '{parquet}' ORDER BY city").fetchall()
    assert from_parquet == [("Berlin", 1), ("London", 1), ("Paris", 1)]

    with psycopg.connect(pg_dsn) as conn:
        saved = conn.execute(
            "SELECT pg_rows_saved FROM weather_pipeline_metrics WHERE execution_id = %s",
            (outcome.execution_id,),
        ).fetchone()
        raw = conn.execute(
            "SELECT city, payload->'current'->>'temperature_2m' FROM weather_http_raw ORDER BY city"
        ).fetchall()
    assert saved == (3,)
    assert raw == [
        (city, str(round(lat / 2, 2)))
        for city, lat in (("Berlin", 52.52), ("London", 51.51), ("Paris", 48.85))
    ]

    loop = [e for e in events if e.node_name == "http_loop"]
    started = next(e for e in loop if e.event_type == "iterator_started")
    assert started.meta["mode"] == "async" and started.meta["count"] == 3
    assert next(e for e in loop if e.event_type == "iterator_completed").meta["rows_saved"] == 3


def test_pipeline_runs_from_the_cli_twice_without_duplicates(
    store_path: Path, pg_dsn: str, weather_api: str, tmp_path: Path
) -> None:
    db = str(store_path)
    added = cli(
        "credential",
        "add",
        "pg_local",
        "--type",
        "postgres",
        "--data",
        json.dumps(pg_fields(pg_dsn)),
        "--db",
        db,
    )
    assert added.returncode == 0, added.stderr
    payload = json.dumps({"base_url": weather_api, "output_dir": str(tmp_path / "out")})
    for _ in range(2):
        done = cli("run", str(PIPELINE), "--db", db, "--payload", payload, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"]["pg_rows_saved"] == 3
    with psycopg.connect(pg_dsn) as conn:
        count = conn.execute("SELECT count(*), count(DISTINCT execution_id) FROM weather_http_raw").fetchone()
    assert count == (6, 2), "each run upserts its own three rows"
