"""examples/weather_pipeline, the design document's pipeline in the NoETL 0.x style, run offline:
the loopback forecast stub, the test PostgreSQL, and a loopback S3-compatible server (moto) standing in
for Google Cloud Storage, reached through an HMAC credential."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from noetl.actions.duckdb_extensions import configure
from tests.conftest import pg_fields
from tests.helpers import REPO, cli, run_file
from tests.httpd import serve
from tests.integration.test_pipeline_example import WeatherAPI

PIPELINE = REPO / "examples/weather_pipeline/weather_pipeline.yaml"
HMAC_KEY_ID = "GOOG1EWEATHERPIPELINE"
HMAC_SECRET = "weather-hmac-secret-5521"


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-execution DuckDB file goes to this test's folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def weather_api() -> Iterator[str]:
    with serve(WeatherAPI) as url:
        yield url


def hmac_credential(endpoint: str) -> dict[str, Any]:
    """A gcs_hmac credential pointed at the loopback server (for Google, only key_id and secret_key)."""
    return {
        "key_id": HMAC_KEY_ID,
        "secret_key": HMAC_SECRET,
        "endpoint": endpoint,
        "url_style": "path",
        "use_ssl": False,
    }


def read_parquet(endpoint: str, bucket: str, url: str) -> list[tuple[Any, ...]]:
    """The rows of a parquet object on the server, read back by a fresh DuckDB."""
    with duckdb.connect() as con:
        configure(con)
        con.execute(
            f"CREATE SECRET reader (TYPE gcs, KEY_ID 'reader', SECRET 'reader', ENDPOINT '{endpoint}', "
            f"URL_STYLE 'path', USE_SSL false, SCOPE 'gs://{bucket}')"
        )
        return con.execute("SELECT * FROM read_parquet(?) ORDER BY 1", [url]).fetchall()


def check_outcome(result: dict[str, Any], execution_id: str, pg_dsn: str, endpoint: str, bucket: str) -> None:
    """3 rows in PostgreSQL, 2 Parquet objects readable back, pg_rows_saved = 3."""
    assert result["pg_rows_saved"] == 3
    prefix = f"gs://{bucket}/weather/{execution_id}"
    assert result["parquet"] == [f"{prefix}/readings.parquet", f"{prefix}/city_stats.parquet"]
    expected = {
        city: round(lat / 2, 2) for city, lat in (("Berlin", 52.52), ("London", 51.51), ("Paris", 48.85))
    }
    readings = read_parquet(endpoint, bucket, f"{prefix}/readings.parquet")
    assert readings == sorted(expected.items())
    stats = read_parquet(endpoint, bucket, f"{prefix}/city_stats.parquet")
    assert [(city, n) for city, n, _ in stats] == [("Berlin", 1), ("London", 1), ("Paris", 1)]
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT city, temperature_c FROM weather_http_raw WHERE execution_id = %s ORDER BY city",
            (execution_id,),
        ).fetchall()
        saved = conn.execute(
            "SELECT pg_rows_saved FROM weather_pipeline_metrics WHERE execution_id = %s", (execution_id,)
        ).fetchone()
    assert rows == sorted(expected.items())
    assert saved == (3,)


def test_weather_pipeline_runs_offline_with_three_rows_and_two_parquet_objects(
    store: Any, pg_dsn: str, weather_api: str, s3_server: str, s3_bucket: str
) -> None:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    store.put_credential("gcs_hmac_local", "gcs_hmac", hmac_credential(s3_server))
    outcome, events = run_file(store, PIPELINE, {"base_url": weather_api, "gcs_bucket": s3_bucket})
    assert outcome.status == "COMPLETED", outcome.error
    check_outcome(outcome.result, outcome.execution_id, pg_dsn, s3_server, s3_bucket)
    # The workload's template was rendered once, at the start, into the value every step used.
    start = events[0]
    assert start.context["workload"]["gcs_prefix"] == f"gs://{s3_bucket}/weather/{outcome.execution_id}"
    # Every item's answer passed its nested assert and its upsert; no secret reached the log.
    loop = [e for e in events if e.node_name == "http_loop"]
    assert sorted(e.current_index for e in loop if e.event_type == "iteration_completed") == [0, 1, 2]
    assert sum(1 for e in loop if e.event_type == "save_completed") == 3
    log = json.dumps([e.to_dict() for e in events])
    assert HMAC_SECRET not in log and "{{" not in log


def test_a_forecast_without_the_asserted_field_fails_its_item_naming_the_path(
    store: Any, pg_dsn: str, s3_server: str, s3_bucket: str
) -> None:
    class NoCurrent(WeatherAPI):
        def answer(self) -> Any:
            return {"latitude": 1.0, "hourly": {}}

    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    store.put_credential("gcs_hmac_local", "gcs_hmac", hmac_credential(s3_server))
    with serve(NoCurrent) as url:
        outcome, events = run_file(store, PIPELINE, {"base_url": url, "gcs_bucket": s3_bucket})
    assert outcome.status == "FAILED"
    failed = [e for e in events if e.event_type == "iteration_failed" and e.status == "FAILED"]
    assert failed, [e.event_type for e in events]
    assert "data.current.temperature_2m" in (failed[0].error or "")
    assert "hourly" in (failed[0].error or "")  # what is there instead
    assert not [e for e in events if e.event_type == "save_completed"], "nothing saved for a failed assert"


def test_weather_pipeline_from_the_cli(
    store_path: Path, pg_dsn: str, weather_api: str, s3_server: str, s3_bucket: str
) -> None:
    db = str(store_path)
    for name, kind, data in (
        ("pg_local", "postgres", pg_fields(pg_dsn)),
        ("gcs_hmac_local", "gcs_hmac", hmac_credential(s3_server)),
    ):
        added = cli("credential", "add", name, "--type", kind, "--data", json.dumps(data), "--db", db)
        assert added.returncode == 0, added.stderr
    payload = json.dumps({"base_url": weather_api, "gcs_bucket": s3_bucket})
    done = cli("run", str(PIPELINE), "--db", db, "--payload", payload, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    check_outcome(answer["result"], answer["execution_id"], pg_dsn, s3_server, s3_bucket)
