"""`storage: http` against a real HTTP server on 127.0.0.1: rows sent, refusals and errors as save events."""

from __future__ import annotations

import json
import socket
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.helpers import one, run_text, types_of

TOKEN = "s4ve-token-value"

ROWS_PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: http_save}
workload: {url: "http://127.0.0.1:8000/ingest"}
workflow:
  - step: start
    type: python
    code: |
      def main():
          return {"rows": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]}
    save:
      storage: http
      endpoint: "{{ workload.url }}"
      headers: {X-Batch: "{{ execution_id }}"}
      args: "{{ this.rows }}"
    next: [{step: end}]
  - step: end
    result: {count: "{{ start.rows | length }}"}
"""


def test_each_row_is_posted_as_json(store: Any, server: HTTPServer) -> None:
    server.expect_request("/ingest", method="POST").respond_with_json({"stored": True}, status=201)
    outcome, events = run_text(store, ROWS_PLAYBOOK, {"url": server.url_for("/ingest")})
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"count": 3}
    bodies = [json.loads(request.get_data()) for request, _ in server.log]
    assert bodies == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    assert {request.headers["X-Batch"] for request, _ in server.log} == {outcome.execution_id}
    assert {request.headers["Content-Type"] for request, _ in server.log} == {"application/json"}
    assert one(events, "save_completed", "start").meta["rows"] == 3


def test_a_mapping_is_sent_once_with_method_and_credential(store: Any, server: HTTPServer) -> None:
    store.put_credential("sink_api", "bearer", {"token": TOKEN})
    server.expect_request("/doc/7", method="PUT").respond_with_data("", status=204)
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_save_put}
        workflow:
          - step: start
            type: python
            code: |
              def main():
                  return {"id": 7, "total": 12.5}
            save:
              storage: {type: http, url: "{{ workload.base }}/doc/{{ this.id }}", method: put, timeout: 5}
              auth: sink_api
              args: {total: "{{ this.total }}", source: noetl}
        """,
        {"base": server.url_for("").rstrip("/")},
    )
    assert outcome.status == "COMPLETED", outcome.error
    [(request, _)] = server.log
    assert json.loads(request.get_data()) == {"total": 12.5, "source": "noetl"}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert one(events, "save_completed", "start").meta["rows"] == 1
    for event in events:
        assert TOKEN not in json.dumps(event.to_dict(), default=str)


def test_a_500_answer_is_save_failed_and_fails_the_step(store: Any, server: HTTPServer) -> None:
    server.expect_request("/ingest").respond_with_data("database is down", status=500)
    outcome, events = run_text(store, ROWS_PLAYBOOK, {"url": server.url_for("/ingest")})
    assert outcome.status == "FAILED"
    failed = one(events, "save_failed", "start")
    assert failed.meta["reason"] == "http_500"
    assert "HTTP 500 Internal Server Error" in (failed.error or "")
    assert "database is down" in (failed.error or "")
    assert "save_completed" not in types_of(events, "start")
    assert "500" in (one(events, "step_failed", "start").error or "")
    assert len(server.log) == 1  # the first refusal stops the save: no row is sent after it
    assert "step_started" not in types_of(events, "end")


def test_a_refusal_midway_says_which_rows_were_sent(store: Any, server: HTTPServer) -> None:
    answers = iter([Response("ok"), Response("bad row", status=422)])

    def handler(request: Request) -> Response:
        return next(answers)

    server.expect_request("/ingest").respond_with_handler(handler)
    outcome, events = run_text(store, ROWS_PLAYBOOK, {"url": server.url_for("/ingest")})
    assert outcome.status == "FAILED"
    failed = one(events, "save_failed", "start")
    assert failed.meta["reason"] == "http_422"
    assert "(row 2 of 3; 1 sent before it)" in (failed.error or "")
    assert len(server.log) == 2


def test_connection_refused_is_save_failed_connection_error(store: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ingest"
    outcome, events = run_text(store, ROWS_PLAYBOOK, {"url": url})
    assert outcome.status == "FAILED"
    failed = one(events, "save_failed", "start")
    assert failed.meta["reason"] == "connection_error"
    assert f"POST {url} could not connect" in (failed.error or "")


def test_a_save_without_endpoint_is_save_error(store: Any) -> None:
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_save_no_endpoint}
        workflow:
          - step: start
            type: python
            code: |
              def main():
                  return {"x": 1}
            save: {storage: http, method: POST}
        """,
    )
    assert outcome.status == "FAILED"
    error = one(events, "save_error", "start").error or ""
    assert "an http save needs `endpoint` (or `url`)" in error
    assert "save_failed" not in types_of(events, "start")
