"""Workload templates on a server with a worker: rendered once by the server when the execution starts,
a secret environment value masked in the log yet used for real by the steps on the worker (its sealed
form), and an undefined name refused with HTTP 400 before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.processes import SECRET_KEY, Workers, running_server, wait_for_record

SECRET = "workload-secret-value-8812"
PLAYBOOK = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: workload_on_workers, path: tests/workload_on_workers}
workload:
  region: eu
  label: "{{ region }}-{{ job.uuid }}"
  password: "{{ env.NOETL_TEST_WORKLOAD_PASSWORD }}"
workflow:
  - step: start
    type: python
    data:
      label: "{{ workload.label }}"
      password: "{{ workload.password }}"
      run: "{{ execution_id }}"
    code: |
      import hashlib
      def main(label, password, run):
          return {"label": label, "same_run": label.endswith(run),
                  "password_sha": hashlib.sha256(password.encode()).hexdigest()}
    next: [{step: end}]
  - step: end
    result: {start: "{{ start }}"}
"""
BROKEN = PLAYBOOK.replace("path: tests/workload_on_workers", "path: tests/workload_broken").replace(
    '"{{ region }}-{{ job.uuid }}"', '"{{ regoin }}"'
)


def test_workload_rendered_once_by_the_server_and_sealed_for_the_worker(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("NOETL_TEST_WORKLOAD_PASSWORD", SECRET)
    with running_server(pg_dsn, tmp_path) as server, server.client() as api:
        workers = Workers(pg_dsn, tmp_path)
        try:
            workers.start("w1", concurrency=2)
            for text in (PLAYBOOK, BROKEN):
                assert api.post("/api/catalog/register", json={"content": text}).status_code in (200, 201)
            started = api.post("/api/executions/run", json={"path": "tests/workload_on_workers"})
            assert started.status_code == 202, started.text
            execution_id = started.json()["execution_id"]
            record = wait_for_record(api, execution_id)
            events = api.get(f"/api/executions/{execution_id}/events", params={"limit": 1000}).json()[
                "events"
            ]
            refused = api.post("/api/executions/run", json={"path": "tests/workload_broken"})
            listed = api.get("/api/executions").json()
        finally:
            workers.stop_all()
    assert record["status"] == "COMPLETED", record
    result = record["result"]["start"]
    assert result["label"] == f"eu-{execution_id}" and result["same_run"] is True
    assert result["password_sha"] == hashlib.sha256(SECRET.encode()).hexdigest()  # the real value ran
    start = events[0]
    assert start["context"]["workload"]["password"] == "***"
    assert start["context"]["workload"]["label"] == f"eu-{execution_id}"
    assert start["context"]["workload_sealed"] is True  # the real workload is beside the log, not in it
    assert SECRET not in json.dumps(events)
    assert refused.status_code == 400, refused.text
    message = refused.json()["error"]
    assert "workload key 'label'" in message and "regoin" in message and "available names" in message
    assert [e["execution_id"] for e in listed] == [execution_id], "nothing was started for the refusal"
