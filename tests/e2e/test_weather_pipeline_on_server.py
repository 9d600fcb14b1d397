"""examples/weather_pipeline through `noetl execute playbook --wait` against a server with two workers:
the same figures as `noetl run` (3 rows, 2 Parquet objects on the loopback S3-compatible server,
pg_rows_saved = 3), and the same per-node event sequences."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import pg_fields
from tests.e2e.test_pipeline_on_server import by_node
from tests.helpers import REPO, cli, run_file
from tests.httpd import serve
from tests.integration.test_pipeline_example import WeatherAPI
from tests.integration.test_weather_pipeline import HMAC_SECRET, check_outcome, hmac_credential
from tests.processes import SECRET_KEY, Workers, running_server

PIPELINE = REPO / "examples/weather_pipeline"


@pytest.fixture
def weather_api() -> Iterator[str]:
    with serve(WeatherAPI) as url:
        yield url


def test_weather_pipeline_through_the_server_with_two_workers(
    pg_dsn: str,
    tmp_path: Path,
    weather_api: str,
    s3_server: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    payload = {"base_url": weather_api, "gcs_bucket": s3_bucket}
    with running_server(pg_dsn, tmp_path) as server, server.client() as api:
        workers = Workers(pg_dsn, tmp_path)
        try:
            workers.start("w1", concurrency=2)
            workers.start("w2", concurrency=2)
            for name, kind, data in (
                ("pg_local", "postgres", pg_fields(pg_dsn)),
                ("gcs_hmac_local", "gcs_hmac", hmac_credential(s3_server)),
            ):
                created = api.post("/api/credentials", json={"name": name, "type": kind, "data": data})
                assert created.status_code in (200, 201), created.text
            done = cli(
                "execute",
                "playbook",
                str(PIPELINE.relative_to(REPO)),
                "--host",
                "localhost",
                "--port",
                str(server.port),
                "--payload",
                json.dumps(payload),
                "--wait",
                "--json",
            )
            assert done.returncode == 0, done.stdout + done.stderr
            answer = json.loads(done.stdout)
            assert answer["status"] == "COMPLETED", answer
            remote = api.get(
                f"/api/executions/{answer['execution_id']}/events", params={"limit": 10000}
            ).json()
        finally:
            workers.stop_all()
    check_outcome(answer["result"], answer["execution_id"], pg_dsn, s3_server, s3_bucket)
    events = remote["events"]
    assert HMAC_SECRET not in json.dumps(events)
    prefix = events[0]["context"]["workload"]["gcs_prefix"]
    assert prefix == f"gs://{s3_bucket}/weather/{answer['execution_id']}"

    from noetl.store import open_store

    local_store = open_store(str(tmp_path / "local.db"))
    try:
        local_store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
        local_store.put_credential("gcs_hmac_local", "gcs_hmac", hmac_credential(s3_server))
        outcome, local_events = run_file(local_store, PIPELINE / "weather_pipeline.yaml", payload)
    finally:
        local_store.close()
    assert outcome.status == "COMPLETED", outcome.error
    check_outcome(outcome.result, outcome.execution_id, pg_dsn, s3_server, s3_bucket)
    assert by_node(events) == by_node([e.to_dict() for e in local_events])
