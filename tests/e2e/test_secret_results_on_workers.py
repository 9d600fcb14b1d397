"""A `secrets` step followed by a step that sends the secret: the real value is sent, locally and on a
worker alike (before, workers rebuilt results from the masked log and sent `X-Token: ***`), and the
value never appears in the log or the API. The real result is sealed beside the log, not in it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_text
from tests.httpd import serve
from tests.processes import SECRET_KEY, run_on_worker

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

# The secret travels in an edge payload (`next: data:`), not as a step result: the log shows the
# payload masked, and the step it starts must still send the real value.
EDGE_PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: secret_edges, path: tests/secret_edges}
workload: {base_url: "http://127.0.0.1:9"}
workflow:
  - step: start
    next: [{step: get_token}]
  - step: get_token
    type: secrets
    provider: env
    name: NOETL_TEST_API_TOKEN
    next:
      - step: call
        data: {token: "{{ get_token }}", label: plain}
  - step: call
    type: http
    method: GET
    endpoint: "{{ workload.base_url }}/echo"
    headers: {X-Token: "{{ token }}", X-Label: "{{ label }}"}
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
    record, events = run_on_worker(pg_dsn, tmp_path, PLAYBOOK, "tests/secret_results", {"base_url": recorder})
    assert record["status"] == "COMPLETED", record
    assert Recorder.seen == [TOKEN]
    assert TOKEN not in json.dumps(events)


def _edge(events: list[Any]) -> dict[str, Any]:
    completed = next(
        e for e in events if e["event_type"] == "step_completed" and e["node_name"] == "get_token"
    )
    return dict(completed["meta"]["next"][0])


def test_an_edge_payload_with_a_secret_sends_the_real_value_locally(store: Any, recorder: str) -> None:
    outcome, events = run_text(store, EDGE_PLAYBOOK, {"base_url": recorder})
    assert outcome.status == "COMPLETED", outcome.error
    assert Recorder.seen == [TOKEN]
    logged = [e.to_dict() for e in events]
    assert TOKEN not in json.dumps(logged)
    edge = _edge(logged)
    assert edge["data"] == {"token": "***", "label": "plain"}
    assert edge["sealed"].startswith("edge:")


def test_an_edge_payload_with_a_secret_sends_the_real_value_on_a_worker(
    pg_dsn: str, tmp_path: Path, recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    record, events = run_on_worker(
        pg_dsn, tmp_path, EDGE_PLAYBOOK, "tests/secret_edges", {"base_url": recorder}
    )
    assert record["status"] == "COMPLETED", record
    assert Recorder.seen == [TOKEN]
    assert TOKEN not in json.dumps(events)
    assert _edge(events)["data"] == {"token": "***", "label": "plain"}
