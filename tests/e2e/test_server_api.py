"""The API as a user runs it: `noetl server start` in a subprocess, real HTTP, real PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.store import open_store
from tests.processes import ServerProcess, running_server

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-api-token"
TINY = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata:
  name: tiny
  path: tests/tiny
workload:
  n: 3
  fail: false
workflow:
  - step: start
    next:
      - step: square
  - step: square
    type: python
    data:
      n: "{{ workload.n }}"
      fail: "{{ workload.fail }}"
    code: |
      def main(n, fail):
          if fail:
              raise ValueError("asked to fail")
          return {"squared": n * n}
    next:
      - step: end
  - step: end
    result:
      squared: "{{ square.squared }}"
"""


YAML = {"Content-Type": "application/x-yaml"}


def wait_for_end(api: httpx.Client, execution_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Poll the events endpoint with after= until the execution's final event; returns every event."""
    seen: list[dict[str, Any]] = []
    after, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = api.get(f"/api/executions/{execution_id}/events", params={"after": after}).json()
        seen += page["events"]
        after = page["last_seq"]
        if any(e["event_type"] in (T.EXECUTION_COMPLETE, T.EXECUTION_FAILED) for e in page["events"]):
            return seen
        time.sleep(0.1)
    raise AssertionError(
        f"execution {execution_id} did not finish in {timeout}s: {[e['event_type'] for e in seen]}"
    )


@pytest.fixture
def server(pg_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(pg_dsn, tmp_path) as started:
        yield started


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def token_server(pg_dsn: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(pg_dsn, tmp_path, {"NOETL_API_TOKEN": TOKEN}) as started:
        yield started


def register(api: httpx.Client, text: str = TINY) -> dict[str, Any]:
    response = api.post("/api/catalog/register", content=text, headers={"Content-Type": "application/x-yaml"})
    assert response.status_code == 201, response.text
    return dict(response.json())


# ---- catalog ----------------------------------------------------------------------------------------


def test_registering_twice_gives_versions_1_and_2_and_both_stay_readable(api: httpx.Client) -> None:
    first = register(api)
    second_text = TINY.replace("n: 3", "n: 4")
    second = api.post("/api/catalog/register", json={"content": second_text})  # the JSON form of the body
    assert first == {"path": "tests/tiny", "name": "tiny", "version": 1}
    assert second.status_code == 201 and second.json()["version"] == 2

    latest = api.get("/api/catalog/tests/tiny").json()
    assert latest["version"] == 2 and latest["content"] == second_text
    v1 = api.get("/api/catalog/tests/tiny", params={"version": 1}).json()
    assert v1["version"] == 1 and v1["content"] == TINY
    listed = api.get("/api/catalog").json()
    assert [(e["path"], e["name"], e["version"]) for e in listed] == [("tests/tiny", "tiny", 2)]


def test_an_invalid_playbook_is_refused_with_every_problem_and_its_line(api: httpx.Client) -> None:
    bad_yaml = api.post(
        "/api/catalog/register",
        content="apiVersion: noetl.io/v1\nkind: Playbook: x\nmetadata: {name: a}\n",
        headers=YAML,
    )
    assert bad_yaml.status_code == 422
    assert bad_yaml.json()["problems"][0]["line"] == 2
    assert "YAML" in bad_yaml.json()["problems"][0]["message"]

    broken = TINY.replace("      - step: end\n  - step: end", "      - step: nowhere\n  - step: end")
    invalid = api.post("/api/catalog/register", content=broken, headers=YAML)
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["error"].startswith("the playbook is not valid")
    [problem] = body["problems"]
    assert problem["step"] == "square" and "nowhere" in problem["message"]
    assert problem["line"] == broken.splitlines().index("      - step: nowhere") + 1

    assert api.post("/api/catalog/register", content=" \n", headers=YAML).status_code == 400
    assert api.post("/api/catalog/register", json={"yaml": TINY}).status_code == 400
    assert api.get("/api/catalog").json() == []  # nothing invalid was stored


def test_unknown_things_answer_404_and_bad_input_400_as_json_without_a_traceback(api: httpx.Client) -> None:
    register(api)
    answers = {
        "execution": api.get("/api/executions/no-such-id"),
        "events": api.get("/api/executions/no-such-id/events"),
        "summary": api.get("/api/events/summary/no-such-id"),
        "cancel": api.post("/api/executions/no-such-id/cancel"),
        "path": api.get("/api/catalog/no/such/path"),
        "version": api.get("/api/catalog/tests/tiny", params={"version": 9}),
        "run": api.post("/api/executions/run", json={"path": "no/such/path"}),
        "run version": api.post("/api/execute", json={"path": "tests/tiny", "version": 9}),
        "endpoint": api.get("/api/no-such-endpoint"),
    }
    for what, response in answers.items():
        assert response.status_code == 404, (what, response.text)
        assert set(response.json()) == {"error"}, what
        assert "not found" in response.json()["error"] or what == "endpoint", what
    assert "register it first" in answers["run"].json()["error"]

    bad = {
        "no path": api.post("/api/executions/run", json={"parameters": {}}),
        "parameters not an object": api.post(
            "/api/executions/run", json={"path": "tests/tiny", "parameters": [1]}
        ),
        "not JSON": api.post(
            "/api/executions/run", content=b"{", headers={"Content-Type": "application/json"}
        ),
        "version 0": api.get("/api/catalog/tests/tiny", params={"version": 0}),
        "after -1": api.get("/api/executions/x/events", params={"after": -1}),
    }
    for what, response in bad.items():
        assert response.status_code == 400, (what, response.text)
        assert response.json()["error"].startswith("bad request"), what
    for response in [*answers.values(), *bad.values()]:
        assert "Traceback" not in response.text


# ---- events, summary, executions ---------------------------------------------------------------------


def _iterator_events(execution_id: str) -> list[Event]:
    """An execution with an iterator of two items, one of which failed, as the runtime would log it."""
    specs: list[dict[str, Any]] = [
        {
            "event_type": T.EXECUTION_START,
            "node_name": "loop",
            "node_type": "playbook",
            "context": {"path": "tests/loop", "workload": {}},
        },
        {"event_type": T.STEP_STARTED, "node_name": "fetch", "node_type": "step"},
        {"event_type": T.ACTION_STARTED, "node_name": "fetch", "node_type": "iterator", "attempt": 1},
        {
            "event_type": T.ITERATOR_STARTED,
            "node_name": "fetch",
            "node_type": "iterator",
            "meta": {"count": 2, "mode": "sequential", "concurrency": 1},
        },
        {
            "event_type": T.ITERATION_STARTED,
            "node_name": "fetch",
            "node_type": "iteration",
            "current_index": 0,
        },
        {"event_type": T.SAVE_STARTED, "node_name": "fetch", "node_type": "save", "current_index": 0},
        {
            "event_type": T.SAVE_COMPLETED,
            "node_name": "fetch",
            "node_type": "save",
            "current_index": 0,
            "duration": 0.02,
            "meta": {"rows": 1},
        },
        {
            "event_type": T.ITERATION_COMPLETED,
            "node_name": "fetch",
            "node_type": "iteration",
            "current_index": 0,
            "duration": 0.05,
        },
        {
            "event_type": T.ITERATION_STARTED,
            "node_name": "fetch",
            "node_type": "iteration",
            "current_index": 1,
        },
        {
            "event_type": T.ITERATION_FAILED,
            "node_name": "fetch",
            "node_type": "iteration",
            "current_index": 1,
            "duration": 0.3,
            "error": "HTTP 500",
        },
        {
            "event_type": T.ITERATOR_COMPLETED,
            "node_name": "fetch",
            "node_type": "iterator",
            "duration": 0.4,
            "meta": {"count": 2, "succeeded": 1, "failed": 1, "failed_indexes": [1], "p50": 0.05, "p95": 0.3},
        },
        {"event_type": T.ACTION_COMPLETED, "node_name": "fetch", "node_type": "iterator", "duration": 0.41},
        {"event_type": T.STEP_COMPLETED, "node_name": "fetch", "node_type": "step", "duration": 0.42},
        {
            "event_type": T.EXECUTION_COMPLETE,
            "node_name": "loop",
            "node_type": "playbook",
            "duration": 0.5,
            "result": {"ok": 1},
        },
    ]
    return [
        Event(execution_id=execution_id, event_id=i, created_at=f"2026-01-01T00:00:{i:02d}+00:00", **spec)
        for i, spec in enumerate(specs, start=1)
    ]


def test_events_page_by_seq_and_the_summary_counts_steps_and_items(pg_dsn: str, api: httpx.Client) -> None:
    store = open_store(pg_dsn)
    try:
        store.append(_iterator_events("exec-1"))
        store.flush()
    finally:
        store.close()

    everything = api.get("/api/executions/exec-1/events").json()
    assert [e["seq"] for e in everything["events"]] == list(range(1, 15))
    assert (
        everything["last_seq"] == 14
        and everything["last_event_id"] == 14
        and everything["more"] is False
        and everything["status"] == "COMPLETED"
    )
    page = api.get("/api/executions/exec-1/events", params={"after": 10, "limit": 2}).json()
    assert [e["event_type"] for e in page["events"]] == [T.ITERATOR_COMPLETED, T.ACTION_COMPLETED]
    assert page["last_seq"] == 12 and page["more"] is True
    tail = api.get("/api/executions/exec-1/events", params={"after": 14}).json()
    assert tail["events"] == [] and tail["last_seq"] == 14 and tail["last_event_id"] is None

    summary = api.get("/api/events/summary/exec-1").json()
    assert summary["events"] == 14
    assert summary["by_type"][T.ITERATION_STARTED] == 2 and summary["by_status"]["FAILED"] == 1
    assert summary["execution"]["status"] == "COMPLETED" and summary["execution"]["duration"] == 0.5
    assert summary["steps"]["fetch"]["status"] == "COMPLETED"
    assert summary["steps"]["fetch"]["duration"] == 0.42 and summary["steps"]["fetch"]["attempts"] == 1
    fetch = summary["iterators"]["fetch"]
    assert (fetch["count"], fetch["completed"], fetch["failed"], fetch["failed_indexes"]) == (2, 1, 1, [1])
    assert (fetch["status"], fetch["p95"], fetch["mode"]) == ("COMPLETED", 0.3, "sequential")

    record = api.get("/api/executions/exec-1").json()
    assert (record["status"], record["playbook_path"], record["result"]) == (
        "COMPLETED",
        "tests/loop",
        {"ok": 1},
    )
    assert [r["execution_id"] for r in api.get("/api/executions").json()] == ["exec-1"]
    finished = api.post("/api/executions/exec-1/cancel")
    assert finished.status_code == 409 and "already finished" in finished.json()["error"]


def test_metrics_are_prometheus_text_built_from_the_events(pg_dsn: str, api: httpx.Client) -> None:
    store = open_store(pg_dsn)
    try:
        store.append(_iterator_events("exec-m"))
        store.flush()
    finally:
        store.close()
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for line in text.splitlines():  # every line is a comment or `name{labels} value`
        assert re.fullmatch(r"# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[\d.e+-]+", line), line
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert samples["noetl_store_up"] == "1"
    assert samples['noetl_executions_total{status="COMPLETED"}'] == "1"
    assert samples["noetl_executions_running"] == "0"
    assert samples['noetl_steps_total{status="COMPLETED"}'] == "1"
    assert samples['noetl_items_total{status="COMPLETED"}'] == "1"
    assert samples['noetl_items_total{status="FAILED"}'] == "1"
    assert samples['noetl_saves_total{status="COMPLETED"}'] == "1"
    assert samples['noetl_events_total{event_type="iteration_started",status="RUNNING"}'] == "2"
    assert samples['noetl_item_duration_seconds_bucket{status="FAILED",le="0.25"}'] == "0"
    assert samples['noetl_item_duration_seconds_bucket{status="FAILED",le="0.5"}'] == "1"
    assert samples['noetl_item_duration_seconds_count{status="COMPLETED"}'] == "1"
    assert float(samples['noetl_execution_duration_seconds_sum{status="COMPLETED"}']) == 0.5
    assert "# TYPE noetl_step_duration_seconds histogram" in text
    assert "# TYPE noetl_save_duration_seconds histogram" in text


def test_docs_serve_the_openapi_description(api: httpx.Client) -> None:
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/catalog/register",
        "/api/catalog",
        "/api/executions/run",
        "/api/execute",
        "/api/executions/{execution_id}/events",
        "/api/events/summary/{execution_id}",
        "/api/executions/{execution_id}/cancel",
        "/api/credentials",
        "/health",
        "/metrics",
    ):
        assert path in paths, path


def test_health_says_when_the_database_stops_answering(
    pg_server: str, pg_dsn: str, api: httpx.Client
) -> None:
    import psycopg

    healthy = api.get("/health").json()
    assert healthy["status"] == "ok" and healthy["database"] == "ok"
    assert healthy["store"].startswith("postgresql://") and "postgres@" not in healthy["store"]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{pg_dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    sick = api.get("/health")
    assert sick.status_code == 503
    assert sick.json()["status"] == "degraded" and sick.json()["database"].startswith("not answering")
    metrics = api.get("/metrics")
    assert metrics.status_code == 200 and "noetl_store_up 0" in metrics.text


# ---- the token and credentials -----------------------------------------------------------------------

GUARDED = [
    ("GET", "/api/catalog"),
    ("POST", "/api/catalog/register"),
    ("GET", "/api/catalog/tests/tiny"),
    ("GET", "/api/executions"),
    ("POST", "/api/executions/run"),
    ("POST", "/api/execute"),
    ("GET", "/api/executions/x"),
    ("POST", "/api/executions/x/cancel"),
    ("GET", "/api/executions/x/events"),
    ("GET", "/api/events/summary/x"),
    ("GET", "/api/credentials"),
    ("POST", "/api/credentials"),
    ("GET", "/api/credentials/pg"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/api/no-such-endpoint"),
]


def test_with_a_token_every_endpoint_but_health_answers_401_without_it(token_server: ServerProcess) -> None:
    with token_server.client() as anonymous, token_server.client("wrong-token") as wrong:
        for method, path in GUARDED:
            for client in (anonymous, wrong):
                response = client.request(method, path)
                assert response.status_code == 401, (method, path)
                assert (
                    "Bearer" in response.json()["error"] and response.headers["www-authenticate"] == "Bearer"
                )
        assert anonymous.get("/health").status_code == 200
    with token_server.client(TOKEN) as api:
        assert register(api)["version"] == 1
        assert api.get("/api/catalog").status_code == 200
        assert api.get("/metrics").status_code == 200 and api.get("/docs").status_code == 200
        assert api.get("/api/executions/x").status_code == 404  # past the guard: the route answers
        saved = api.post(
            "/api/credentials", json={"name": "pg", "type": "postgres", "data": {"db_password": "pw1"}}
        )
        assert saved.status_code == 201
        # Only a caller holding the token sees a credential's values.
        assert api.get("/api/credentials/pg").json() == {
            "name": "pg",
            "type": "postgres",
            "data": {"db_password": "pw1"},
        }
        assert api.get("/api/credentials/nope").status_code == 404


def test_credential_values_never_leave_the_server_without_the_token(
    server: ServerProcess, api: httpx.Client
) -> None:
    secret = "hunter2-very-secret"
    created = api.post(
        "/api/credentials",
        json={"name": "pg_local", "type": "postgres", "data": {"db_user": "me", "db_password": secret}},
    )
    assert created.status_code == 201
    assert created.json() == {"name": "pg_local", "type": "postgres", "fields": 2}
    listed = api.get("/api/credentials")
    assert listed.json() == [{"name": "pg_local", "type": "postgres"}]
    one = api.get("/api/credentials/pg_local")
    assert one.status_code == 403 and "NOETL_API_TOKEN" in one.json()["error"]
    refused = api.post("/api/credentials", json={"name": "x", "type": "secret", "data": secret})
    assert refused.status_code == 400  # the error says where, never echoes the value
    for response in (created, listed, one, refused):
        assert secret not in response.text
    server.stop()
    assert secret not in server.output()
    assert "POST /api/credentials" in server.output()  # the log is there, just without the value


def test_cancel_fails_a_queued_execution_and_a_second_cancel_is_refused(api: httpx.Client) -> None:
    register(api)
    # No worker runs here: the execution waits in the queue until it is cancelled.
    started = api.post("/api/executions/run", json={"path": "tests/tiny"}).json()
    assert started["status"] == "RUNNING"
    cancelled = api.post(f"/api/executions/{started['execution_id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {
        "execution_id": started["execution_id"],
        "cancelled": True,
        "status": "FAILED",
    }
    events = wait_for_end(api, started["execution_id"])
    assert events[-1]["event_type"] == T.EXECUTION_FAILED and "cancel" in events[-1]["error"]
    again = api.post(f"/api/executions/{started['execution_id']}/cancel")
    assert again.status_code == 409


# ---- running executions ------------------------------------------------------------------------------


def test_a_sqlite_server_runs_executions_in_its_own_process(tmp_path: Path) -> None:
    with running_server(str(tmp_path / "noetl.db"), tmp_path) as server, server.client() as api:
        assert api.get("/health").json()["runner"] == "in-process"
        register(api)
        started = api.post("/api/executions/run", json={"path": "tests/tiny", "parameters": {"n": 5}})
        assert started.status_code == 202
        execution_id = started.json()["execution_id"]
        events = wait_for_end(api, execution_id)
        assert (
            events[0]["event_type"] == T.EXECUTION_START and events[-1]["event_type"] == T.EXECUTION_COMPLETE
        )
        assert api.get(f"/api/executions/{execution_id}").json()["result"] == {"squared": 25}
        failed = api.post("/api/execute", json={"path": "tests/tiny", "parameters": {"fail": True}}).json()
        assert wait_for_end(api, failed["execution_id"])[-1]["event_type"] == T.EXECUTION_FAILED
        summary = api.get(f"/api/events/summary/{failed['execution_id']}").json()
        assert summary["steps"]["square"]["status"] == "FAILED"
        assert "asked to fail" in summary["steps"]["square"]["error"]


def test_full_run_on_postgresql_with_a_worker(
    pg_dsn: str, server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    register(api)
    worker = subprocess.Popen(
        [sys.executable, "-m", "noetl.cli", "worker", "start", "--db", pg_dsn],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=server.env,
        cwd=REPO,
    )
    try:
        started = api.post("/api/executions/run", json={"path": "tests/tiny", "parameters": {"n": 6}})
        assert started.status_code == 202, started.text
        events = wait_for_end(api, started.json()["execution_id"])
        assert events[-1]["event_type"] == T.EXECUTION_COMPLETE and events[-1]["result"] == {"squared": 36}
    finally:
        worker.terminate()
        worker.wait(timeout=15)
