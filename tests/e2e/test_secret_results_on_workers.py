"""A `secrets` step followed by a step that sends the secret: the real value is sent, locally and on a
worker alike (before, workers rebuilt results from the masked log and sent `X-Token: ***`), and the
value never appears in the log or the API. The real result is sealed beside the log, not in it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import run_text
from tests.httpd import serve
from tests.processes import SECRET_KEY, Workers, running_server

TOKEN = "api-token-value-3141"
PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: secret_results, path: tests/secret_results}
workload: {base_url: "http://127.0.0.1:9"}
workflow:
  - step: start
    next: [{step: get_token}]
  - step: get_token
    type: secrets
    provider: env
    name: NOETL_TEST_API_TOKEN
    next: [{step: call}]
  - step: call
    type: http
    method: GET
    endpoint: "{{ workload.base_url }}/echo"
    headers: {X-Token: "{{ get_token }}"}
    next: [{step: end}]
  - step: end
"""


class Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.seen.append(self.headers.get("X-Token", ""))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NOETL_TEST_API_TOKEN", TOKEN)
    Recorder.seen = []
    with serve(Recorder) as url:
        yield url


def test_the_next_step_sends_the_real_secret_locally(store: Any, recorder: str) -> None:
    outcome, events = run_text(store, PLAYBOOK, {"base_url": recorder})
    assert outcome.status == "COMPLETED", outcome.error
    assert Recorder.seen == [TOKEN]
    assert TOKEN not in json.dumps([e.to_dict() for e in events])
    completed = next(e for e in events if e.event_type == "step_completed" and e.node_name == "get_token")
    assert completed.result == "***" and completed.meta["sealed"] is True


def test_the_next_step_sends_the_real_secret_on_a_worker(
    pg_dsn: str, tmp_path: Path, recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    with running_server(pg_dsn, tmp_path) as server, server.client() as api:
        workers = Workers(pg_dsn, tmp_path)
        try:
            workers.start("w1")
            assert api.post("/api/catalog/register", json={"content": PLAYBOOK}).status_code == 201
            started = api.post(
                "/api/executions/run",
                json={"path": "tests/secret_results", "parameters": {"base_url": recorder}},
            ).json()
            record = wait_for_end(api, started["execution_id"])
            events = api.get(f"/api/executions/{started['execution_id']}/events").json()["events"]
        finally:
            workers.stop_all()
    assert record["status"] == "COMPLETED", record
    assert Recorder.seen == [TOKEN]
    assert TOKEN not in json.dumps(events)


def wait_for_end(api: httpx.Client, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = api.get(f"/api/executions/{execution_id}").json()
        if record["status"] in ("COMPLETED", "FAILED"):
            return dict(record)
        time.sleep(0.2)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout}s")
