"""Logs that stay readable: a worker running an http loop does not log a line per request (httpx's
`HTTP Request: GET ...` at INFO) unless --verbose / NOETL_VERBOSE asks; the server logs each request
once, but a client's polling (`execute --wait` reads the events five times a second) once a minute, and
never the API token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli
from tests.httpd import JSONHandler, serve
from tests.processes import Workers, run_on_worker, running_server

ITEMS = 12
PLAYBOOK = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: http_items, path: tests/http_items}
workload: {base: BASE}
workflow:
  - step: start
    next: [{step: fetch}]
  - step: fetch
    type: iterator
    collection: "{{ range(ITEMS) | list }}"
    element: n
    task:
      type: http
      method: GET
      endpoint: "{{ workload.base }}/item/{{ n }}"
    next: [{step: end}]
  - step: end
    result: {fetched: "{{ fetch | length }}"}
""".replace("ITEMS", str(ITEMS))
TOKEN = "a-token-that-must-never-be-logged"


class Items(JSONHandler):
    def answer(self) -> Any:
        return {"path": self.path}


def test_a_worker_does_not_log_each_http_request(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "quiet").mkdir()
    (tmp_path / "verbose").mkdir()
    with serve(Items) as base:
        playbook = PLAYBOOK.replace("BASE", base)
        record, _ = run_on_worker(pg_dsn, tmp_path / "quiet", playbook, "tests/http_items")
        assert record["status"] == "COMPLETED", record["error"]
        log = (tmp_path / "quiet" / "w1.log").read_text()
        assert "worker w1" in log  # the worker's own lines are there
        assert "HTTP Request:" not in log and "/item/" not in log, log

        monkeypatch.setenv("NOETL_VERBOSE", "1")  # asked for: one line per request
        record, _ = run_on_worker(pg_dsn, tmp_path / "verbose", playbook, "tests/http_items")
        assert record["status"] == "COMPLETED", record["error"]
        verbose = (tmp_path / "verbose" / "w1.log").read_text()
        assert verbose.count("HTTP Request: GET") == ITEMS, verbose


def test_the_server_logs_requests_but_not_each_poll_nor_the_token(pg_dsn: str, tmp_path: Path) -> None:
    token = {"NOETL_API_TOKEN": TOKEN}
    playbook = tmp_path / "items.yaml"
    with serve(Items) as base, running_server(pg_dsn, tmp_path, token) as server:
        playbook.write_text(PLAYBOOK.replace("BASE", base))
        workers = Workers(pg_dsn, tmp_path)
        try:
            workers.start("w1")
            done = cli("execute", "playbook", str(playbook), "--port", str(server.port), "--wait", env=token)
            assert done.returncode == 0, done.stderr
            missing = cli("status", "nope", "--port", str(server.port), env=token)
            assert missing.returncode == 2
        finally:
            workers.stop_all()
        log = server.output()
    lines = [line for line in log.splitlines() if '" 2' in line or '" 4' in line]
    assert any("POST /api/catalog/register?if_changed=true" in line for line in lines), log
    assert any("POST /api/executions/run" in line for line in lines), log
    polls = [line for line in lines if "/events?" in line]
    assert 1 <= len(polls) <= 2, log  # the first poll of the events, not the next ones
    assert any("GET /api/executions/nope" in line and "404" in line for line in lines), log
    assert TOKEN not in log
