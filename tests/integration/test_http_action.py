"""The http action against a real HTTP server on 127.0.0.1: requests sent, results, failures, retry, auth."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from noetl.actions import http_action, http_client
from noetl.actions.base import ActionContext
from noetl.dsl.models import Task
from noetl.errors import ActionError
from noetl.runtime.credentials import CredentialResolver
from noetl.runtime.redact import Redactor
from tests.helpers import one, run_text, types_of

TOKEN = "s3cr3t-token"


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def counting(answers: list[Response]) -> Any:
    """A handler giving the answers in turn, then the last one for ever."""
    calls = iter(answers)

    def handler(request: Request) -> Response:
        return next(calls, answers[-1])

    return handler


def test_get_sends_inputs_as_query_and_headers_and_next_step_reads_data(
    store: Any, server: HTTPServer
) -> None:
    server.expect_request("/search", method="GET").respond_with_json({"x": 21, "city": "London"})
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_get}
        workload: {base_url: "http://127.0.0.1:8000"}
        workflow:
          - step: start
            next: [{step: fetch}]
          - step: fetch
            type: http
            endpoint: "{{ workload.base_url }}/search"
            headers: {X-Trace: trace-1, Accept: application/json}
            data: {city: London, limit: 3, tags: [a, b]}
            next: [{step: double}]
          - step: double
            type: python
            data: {x: "{{ fetch.data.x }}", status: "{{ fetch.status_code }}"}
            code: |
              def main(x, status):
                  return {"doubled": x * 2, "status": status}
            next: [{step: end}]
          - step: end
            result: {doubled: "{{ double.doubled }}", status: "{{ double.status }}"}
        """,
        {"base_url": server.url_for("").rstrip("/")},
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"doubled": 42, "status": 200}
    [(request, _)] = server.log
    assert request.args.to_dict(flat=False) == {"city": ["London"], "limit": ["3"], "tags": ["a", "b"]}
    assert request.headers["X-Trace"] == "trace-1"
    assert request.headers["Accept"] == "application/json"
    assert request.get_data() == b""
    result = one(events, "action_completed", "fetch").result
    assert result["status_code"] == 200
    assert result["data"] == {"x": 21, "city": "London"}
    assert result["url"].endswith("/search?city=London&limit=3&tags=a&tags=b")
    assert result["headers"]["content-type"] == "application/json"
    assert isinstance(result["elapsed"], float)


def test_post_sends_inputs_as_json_body(store: Any, server: HTTPServer) -> None:
    server.expect_request("/items", method="POST").respond_with_json({"id": 7}, status=201)
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_post}
        workload: {base_url: "http://127.0.0.1:8000", name: widget}
        workflow:
          - step: start
            type: http
            method: post
            endpoint: "{{ workload.base_url }}/items"
            data: {name: "{{ workload.name }}", sizes: [1, 2], spec: {color: red}}
            next: [{step: end}]
          - step: end
            result: {id: "{{ start.data.id }}"}
        """,
        {"base_url": server.url_for("").rstrip("/")},
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"id": 7}
    [(request, _)] = server.log
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == {"name": "widget", "sizes": [1, 2], "spec": {"color": "red"}}
    assert request.query_string == b""
    assert one(events, "action_completed", "start").result["status_code"] == 201


def test_explicit_query_and_body_send_a_text_body_as_is(store: Any, server: HTTPServer) -> None:
    server.expect_request("/upload", method="PUT").respond_with_data("stored", content_type="text/plain")
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_explicit}
        workflow:
          - step: start
            type: http
            method: PUT
            url: "{{ workload.url }}"
            headers: {Content-Type: text/csv}
            timeout: "5"
            data:
              query: {page: 2, filter: {kind: a}}
              body: "a,b\\n1,2"
        """,
        {"url": server.url_for("/upload")},
    )
    assert outcome.status == "COMPLETED", outcome.error
    [(request, _)] = server.log
    assert request.args.to_dict() == {"page": "2", "filter": '{"kind": "a"}'}
    assert request.get_data() == b"a,b\n1,2"
    assert request.headers["Content-Type"] == "text/csv"
    assert one(events, "action_completed", "start").result["data"] == "stored"


def test_a_503_fails_the_step_with_status_and_body_excerpt(store: Any, server: HTTPServer) -> None:
    server.expect_request("/busy").respond_with_data("overloaded, try later" + "x" * 500, status=503)
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_503}
        workflow:
          - step: start
            type: http
            endpoint: "{{ workload.url }}"
            next: [{step: end}]
          - step: end
        """,
        {"url": server.url_for("/busy")},
    )
    assert outcome.status == "FAILED"
    failed = one(events, "step_failed", "start")
    assert failed.error is not None
    assert "HTTP 503 Service Unavailable from GET http://127.0.0.1" in failed.error
    # Only the first 200 characters of the body are quoted.
    assert failed.error.endswith(": overloaded, try later" + "x" * 179)
    error = one(events, "action_error", "start")
    assert error.meta["status_code"] == 503
    assert error.meta["error_type"] == "HTTPStatusError"
    assert error.result["status_code"] == 503
    assert "step_started" not in types_of(events, "end")


def test_retry_when_5xx_retries_then_the_workflow_continues(store: Any, server: HTTPServer) -> None:
    busy = Response("busy", status=503)
    ok = Response('{"ok": true}', status=200, content_type="application/json")
    server.expect_request("/flaky").respond_with_handler(counting([busy, busy, ok]))
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_retry}
        workflow:
          - step: start
            type: http
            endpoint: "{{ workload.url }}"
            retry: {max_attempts: 3, initial_delay: 0.01, retry_when: "{{ status_code >= 500 }}"}
            next: [{step: after}]
          - step: after
            type: python
            data: {ok: "{{ start.data.ok }}"}
            code: |
              def main(ok):
                  return {"seen": ok}
            next: [{step: end}]
          - step: end
            result: {seen: "{{ after.seen }}"}
        """,
        {"url": server.url_for("/flaky")},
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.result == {"seen": True}
    assert types_of(events, "start").count("action_retry") == 2
    assert types_of(events, "start").count("action_error") == 2
    assert len(server.log) == 3
    assert "step_completed" in types_of(events, "after")


def test_stop_when_404_stops_at_once(store: Any, server: HTTPServer) -> None:
    server.expect_request("/gone").respond_with_data("no such thing", status=404)
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_stop}
        workflow:
          - step: start
            type: http
            endpoint: "{{ workload.url }}"
            retry: {max_attempts: 5, initial_delay: 0.01, stop_when: "{{ status_code == 404 }}"}
        """,
        {"url": server.url_for("/gone")},
    )
    assert outcome.status == "FAILED"
    assert "action_retry" not in types_of(events, "start")
    assert len(server.log) == 1
    failed = one(events, "step_failed", "start")
    assert failed.meta["reason"] == "stop_when matched"
    assert "404" in (failed.error or "")


def test_bearer_credential_is_sent_and_never_stored(store: Any, server: HTTPServer) -> None:
    store.put_credential("api", "bearer", {"token": TOKEN})
    server.expect_request("/me", headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_json({"me": 1})
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_bearer}
        workload: {api_auth: api}
        workflow:
          - step: start
            type: http
            endpoint: "{{ workload.url }}"
            auth: "{{ workload.api_auth }}"
        """,
        {"url": server.url_for("/me")},
    )
    assert outcome.status == "COMPLETED", outcome.error
    [(request, _)] = server.log
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert one(events, "action_completed", "start").result["data"] == {"me": 1}
    for event in events:
        assert TOKEN not in json.dumps(event.to_dict(), default=str)


@pytest.mark.parametrize(
    ("kind", "fields", "header", "expected"),
    [
        (
            "basic",
            {"username": "ann", "password": "pa55word"},
            "Authorization",
            "Basic " + base64.b64encode(b"ann:pa55word").decode(),
        ),
        ("api_key", {"name": "X-API-Key", "value": "k3y-value"}, "X-API-Key", "k3y-value"),
        ("header", {"name": "X-Custom", "value": "h3ader"}, "X-Custom", "h3ader"),
        ("token", {"token": "t0ken"}, "Authorization", "Bearer t0ken"),
    ],
)
def test_credential_types_become_headers(
    store: Any, server: HTTPServer, kind: str, fields: dict[str, str], header: str, expected: str
) -> None:
    server.expect_request("/auth").respond_with_json({})
    outcome, _ = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_auth}
        workflow:
          - step: start
            type: http
            endpoint: "{{ workload.url }}"
            auth: {source: inline, type: "{{ workload.kind }}", fields: "{{ workload.fields }}"}
        """,
        {"url": server.url_for("/auth"), "kind": kind, "fields": fields},
    )
    assert outcome.status == "COMPLETED", outcome.error
    [(request, _)] = server.log
    assert request.headers[header] == expected


def test_an_unknown_credential_type_fails_without_retry(store: Any, server: HTTPServer) -> None:
    store.put_credential("pg", "postgres", {"db_password": "pgpass99"})
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_bad_auth}
        workflow:
          - step: start
            type: http
            endpoint: "{{ workload.url }}"
            auth: pg
            retry: {max_attempts: 3, initial_delay: 0.01}
        """,
        {"url": server.url_for("/x")},
    )
    assert outcome.status == "FAILED"
    error = one(events, "step_failed", "start").error or ""
    assert "'postgres'" in error
    assert "bearer, token, basic, header, api_key" in error
    assert "action_retry" not in types_of(events, "start")
    assert server.log == []


def test_connection_refused_fails_with_a_clear_message(store: Any) -> None:
    url = f"http://127.0.0.1:{closed_port()}/nothing"
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_refused}
        workflow:
          - step: start
            type: http
            endpoint: "{{ workload.url }}"
            timeout: 2
        """,
        {"url": url},
    )
    assert outcome.status == "FAILED"
    error = one(events, "step_failed", "start").error or ""
    assert f"GET {url} could not connect" in error
    assert "timeout 2s" in error
    action_error = one(events, "action_error", "start")
    assert "status_code" not in action_error.meta
    assert action_error.meta["error_type"] == "ConnectError"


def test_a_slow_server_times_out_naming_the_timeout(store: Any, server: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    server.expect_request("/slow").respond_with_handler(slow)
    outcome, events = run_text(
        store,
        """
        apiVersion: noetl.io/v1
        kind: Playbook
        metadata: {name: http_timeout}
        workflow:
          - step: start
            type: http
            endpoint: "{{ workload.url }}"
            timeout: 0.2
        """,
        {"url": server.url_for("/slow")},
    )
    assert outcome.status == "FAILED"
    error = one(events, "step_failed", "start").error or ""
    assert f"GET {server.url_for('/slow')} got no answer within the timeout of 0.2s" in error


# --- the action called directly: what it returns and raises, before the event redactor masks anything


def direct_context(store: Any, url: str, auth: Any = None, **config: Any) -> ActionContext:
    services = SimpleNamespace(credentials=CredentialResolver(store, Redactor()), workdir=Path.cwd())
    return ActionContext(
        execution_id="e1",
        step="call",
        task=Task(type="http", auth=auth),
        config={"endpoint": url, **config},
        inputs=None,
        scope={},
        services=services,
    )


def test_credential_values_stay_out_of_results_and_error_messages(store: Any, server: HTTPServer) -> None:
    store.put_credential("api", "bearer", {"token": TOKEN})

    def echo(request: Request) -> Response:  # a careless server quoting the request back
        return Response(f"denied for {request.headers['Authorization']}", status=401)

    server.expect_request("/echo").respond_with_handler(echo)
    with pytest.raises(ActionError) as failure:
        http_action.run(direct_context(store, server.url_for("/echo"), auth="api"))
    assert failure.value.status_code == 401
    assert "denied for Bearer ***" in str(failure.value)
    assert TOKEN not in str(failure.value)

    server.clear()
    server.expect_request("/ok").respond_with_json({"fine": True})
    result = http_action.run(direct_context(store, server.url_for("/ok"), auth="api"))
    assert TOKEN not in json.dumps(result)
    assert "authorization" not in {k.lower() for k in result["headers"]}


def test_bad_timeout_and_unknown_method_are_not_retried(store: Any) -> None:
    with pytest.raises(ActionError, match="`timeout` must be a number of seconds") as bad_timeout:
        http_action.run(direct_context(store, "http://127.0.0.1:1/", timeout="soon"))
    assert bad_timeout.value.non_retryable
    with pytest.raises(ActionError, match="unknown HTTP method 'FETCH'") as bad_method:
        http_action.run(direct_context(store, "http://127.0.0.1:1/", method="fetch"))
    assert bad_method.value.non_retryable
    with pytest.raises(ActionError, match="the URL is not valid") as bad_url:
        http_action.run(direct_context(store, "localhost/no-scheme"))
    assert bad_url.value.non_retryable


# --- the shared client: connections are pooled, and nothing is carried from one request to the next


class _PortRecorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so that a client that pools can reuse the connection
    ports: list[int] = []

    def do_GET(self) -> None:
        type(self).ports.append(self.client_address[1])
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def port_recorder() -> Iterator[tuple[str, list[int]]]:
    class Recorder(_PortRecorder):
        ports: list[int] = []  # a fresh list for each server

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", Recorder.ports
    http_client.close()  # drop pooled connections to this server before it goes
    server.shutdown()
    server.server_close()
    thread.join()


def test_sequential_calls_reuse_one_connection(store: Any, port_recorder: tuple[str, list[int]]) -> None:
    url, ports = port_recorder
    http_client.close()
    for _ in range(30):
        assert http_action.run(direct_context(store, url))["data"] == {"ok": True}
    assert len(ports) == 30
    assert len(set(ports)) == 1


def test_the_client_is_shared_by_threads(store: Any, port_recorder: tuple[str, list[int]]) -> None:
    url, ports = port_recorder
    http_client.close()
    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = set(pool.map(lambda _: id(http_client.client()), range(32)))
        results = list(pool.map(lambda _: http_action.run(direct_context(store, url)), range(200)))
    assert len(clients) == 1
    assert all(r["status_code"] == 200 for r in results)
    assert len(ports) == 200
    assert len(set(ports)) <= 8  # at most one connection per concurrent caller, each reused


def test_cookies_set_by_one_answer_are_not_sent_with_the_next(store: Any, server: HTTPServer) -> None:
    server.expect_request("/login").respond_with_response(Response("in", headers={"Set-Cookie": "sid=abc"}))
    server.expect_request("/other").respond_with_data("out")
    http_action.run(direct_context(store, server.url_for("/login")))
    http_action.run(direct_context(store, server.url_for("/other")))
    assert [r.headers.get("Cookie") for r, _ in server.log] == [None, None]
