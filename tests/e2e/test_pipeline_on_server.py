"""The command of the original design, against a server and two workers on PostgreSQL:

    noetl execute playbook examples/http_duckdb_postgres --host localhost --port PORT \\
        --payload '{"pg_auth": "pg_local", ...}' --merge --wait

completes, writes the rows, and its events (read through the API) follow EVENTS.md as a local run's do.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from noetl.store import open_store
from tests.conftest import pg_fields
from tests.helpers import REPO, cli, run_file
from tests.httpd import serve
from tests.integration.test_pipeline_example import WeatherAPI
from tests.processes import SECRET_KEY, Workers, running_server

PIPELINE = REPO / "examples/http_duckdb_postgres"


@pytest.fixture
def weather_api() -> Iterator[str]:
    with serve(WeatherAPI) as url:
        yield url


def by_node(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each node's own sequence of event types: what EVENTS.md fixes, whatever the interleaving."""
    sequences: dict[str, list[str]] = defaultdict(list)
    for e in events:
        sequences[e["node_id"] or ""].append(e["event_type"])
    return dict(sequences)


def test_pipeline_through_the_server_with_two_workers(
    pg_dsn: str, tmp_path: Path, weather_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    with running_server(pg_dsn, tmp_path) as server, server.client() as api:
        workers = Workers(pg_dsn, tmp_path)
        try:
            workers.start("w1", concurrency=2)
            workers.start("w2", concurrency=2)
            created = api.post(
                "/api/credentials", json={"name": "pg_local", "type": "postgres", "data": pg_fields(pg_dsn)}
            )
            assert created.status_code in (200, 201), created.text
            payload = {"pg_auth": "pg_local", "base_url": weather_api, "output_dir": str(tmp_path / "out")}
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
                "--merge",
                "--wait",
                "--json",
            )
            assert done.returncode == 0, done.stdout + done.stderr
            answer = json.loads(done.stdout)
            assert answer["status"] == "COMPLETED" and answer["result"]["pg_rows_saved"] == 3
            remote = api.get(
                f"/api/executions/{answer['execution_id']}/events", params={"limit": 10000}
            ).json()
        finally:
            workers.stop_all()
    events = remote["events"]
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM weather_http_raw").fetchone() == (3,)
    # The API returns the log in commit order: seq is 1..N; ids are unique (workers reserve blocks).
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["event_id"] for e in events}) == len(events)
    assert events[0]["event_type"] == "execution_start" and events[-1]["event_type"] == "execution_complete"

    local_store = open_store(str(tmp_path / "local.db"))
    try:
        local_store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
        outcome, local_events = run_file(
            local_store, PIPELINE / "http_duckdb_postgres.yaml", payload, merge=True
        )
    finally:
        local_store.close()
    assert outcome.status == "COMPLETED"
    assert by_node(events) == by_node([e.to_dict() for e in local_events])
    workers_seen = {e["meta"].get("worker_id") for e in events if e["event_type"] == "step_started"}
    assert workers_seen <= {"w1", "w2", None} and workers_seen & {"w1", "w2"}
