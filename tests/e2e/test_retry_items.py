"""`noetl retry`: a loop's failed items run again inside the same execution, the others keep their results,
locally and on workers, against a real HTTP server on 127.0.0.1 and a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import pg_fields
from tests.httpd import serve
from tests.processes import REPO, SECRET_KEY, Workers, running_server, wait_for_record

ITEMS = 200
FLAKY = {3, 47, 99, 150, 198}  # these answer 500 the first time they are asked, 200 afterwards

PLAYBOOK = """\
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: flaky_fetch, path: tests/flaky_fetch}
workload:
  base: http://127.0.0.1:1
  items: 200
workflow:
  - step: start
    next: [{step: make_table}]
  - step: make_table
    type: postgres
    auth: pg_local
    command: CREATE TABLE IF NOT EXISTS fetched (id INTEGER PRIMARY KEY, value TEXT NOT NULL)
    next: [{step: fetch}]
  - step: fetch
    type: iterator
    collection: "{{ range(0, workload.items) | list }}"
    element: n
    mode: async
    concurrency: 4
    on_error: continue
    task:
      type: http
      method: GET
      endpoint: "{{ workload.base }}/item/{{ n }}"
      save:
        storage: postgres
        auth: pg_local
        table: fetched
        mode: upsert
        key: id
        args: {id: "{{ n }}", value: "{{ this.data.value }}"}
    next: [{step: count}]
  - step: count
    type: python
    data: {rows: "{{ fetch }}"}
    code: |
      def main(rows):
          return {"results": len(rows), "failed": sum(1 for r in rows if r.get("failed"))}
    next: [{step: end}]
  - step: end
"""


class Stub:
    """Counts requests per item; a flaky item fails its first request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: Counter[int] = Counter()


@pytest.fixture
def stub() -> Iterator[tuple[str, Stub]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            n = int(self.path.rsplit("/", 1)[-1])
            with state.lock:
                state.seen[n] += 1
                first = state.seen[n] == 1
            ok = not (first and n in FLAKY)
            body = json.dumps({"value": f"v{n}"} if ok else {"error": "try again"}).encode()
            self.send_response(200 if ok else 500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serve(Handler) as url:
        yield url, state


def _cli(*args: str, db: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"NOETL_SECRET_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "noetl.cli", *args, "--db", db],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def _rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, value FROM fetched ORDER BY id").fetchall()


def _per_item(events: list[dict[str, Any]]) -> dict[int, list[tuple[str, str]]]:
    """Each item's events after the retry, as (type, status), in order."""
    retry_at = max(e["seq"] for e in events if e["event_type"] == "execution_retry")
    out: dict[int, list[tuple[str, str]]] = {}
    for e in sorted(events, key=lambda e: e["seq"]):
        if e["seq"] > retry_at and e["current_index"] is not None:
            out.setdefault(e["current_index"], []).append((e["event_type"], e["status"]))
    return out


def _check_retried(events: list[dict[str, Any]], result: dict[str, Any]) -> None:
    assert result == {"results": ITEMS, "failed": 0}
    retried = _per_item(events)
    assert set(retried) == FLAKY  # only the failed items ran again
    for index, sequence in retried.items():
        assert [t for t, _ in sequence] == [
            "iteration_started",
            "save_started",
            "save_completed",
            "iteration_completed",
        ], (index, sequence)
    [retry] = [e for e in events if e["event_type"] == "execution_retry"]
    assert retry["meta"]["items"] == sorted(FLAKY) and retry["meta"]["kept"] == ITEMS - len(FLAKY)
    ends = [e for e in events if e["event_type"] == "iterator_completed"]
    assert ends[-1]["meta"]["count"] == len(FLAKY)
    assert ends[-1]["meta"]["succeeded_total"] == ITEMS and ends[-1]["meta"]["kept"] == ITEMS - len(FLAKY)
    finals = [e["event_type"] for e in events if e["event_type"].startswith("execution_")]
    assert finals == ["execution_start", "execution_complete", "execution_retry", "execution_complete"]


def test_retry_runs_only_the_failed_items_and_the_steps_after(
    stub: tuple[str, Stub], pg_dsn: str, tmp_path: Path
) -> None:
    url, state = stub
    db = str(tmp_path / "noetl.db")
    fields = json.dumps(pg_fields(pg_dsn))
    assert (
        _cli(
            "credential", "add", "pg_local", "--type", "postgres", "--data", fields, db=db, cwd=tmp_path
        ).returncode
        == 0
    )
    playbook = tmp_path / "flaky_fetch.yaml"
    playbook.write_text(PLAYBOOK)
    first = _cli(
        "run", str(playbook), "--payload", json.dumps({"base": url}), "--json", "--quiet", db=db, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    outcome = json.loads(first.stdout)
    assert outcome["status"] == "COMPLETED" and outcome["result"] == {"results": ITEMS, "failed": len(FLAKY)}
    assert len(_rows(pg_dsn)) == ITEMS - len(FLAKY)

    again = _cli("retry", outcome["execution_id"], "--json", "--quiet", db=db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    retried = json.loads(again.stdout)
    assert retried["status"] == "COMPLETED"
    assert sum(state.seen.values()) == ITEMS + len(FLAKY)  # 205: nothing that succeeded was asked again
    assert _rows(pg_dsn) == [(n, f"v{n}") for n in range(ITEMS)]  # 200 rows, each saved once

    from noetl.store import open_store

    store = open_store(db)
    try:
        events = [e.to_dict() for e in store.read(outcome["execution_id"])]
        record = store.execution(outcome["execution_id"])
    finally:
        store.close()
    _check_retried(events, retried["result"])
    assert record is not None and record.status == "COMPLETED"
    fetch = [e for e in events if e["event_type"] == "step_completed" and e["node_name"] == "fetch"][-1]
    assert [r["data"]["value"] for r in fetch["result"]] == [f"v{n}" for n in range(ITEMS)]  # in order

    summary = _cli("events", outcome["execution_id"], "--summary", db=db, cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert (
        f"iterator fetch run 1: {ITEMS} items, {ITEMS - 5} completed, 5 failed (COMPLETED)" in summary.stdout
    )
    assert (
        f"iterator fetch run 2: 5 items ({ITEMS - 5} kept from before), 5 completed, 0 failed"
        in summary.stdout
    )

    # Local parity: the same events per retried item through the API and two workers.
    local_items = _per_item(events)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE fetched")
    state.seen.clear()
    worker_items, worker_events = _on_workers(url, pg_dsn, tmp_path)
    assert worker_items == local_items
    assert sum(state.seen.values()) == ITEMS + len(FLAKY)
    assert _rows(pg_dsn) == [(n, f"v{n}") for n in range(ITEMS)]
    assert [e["event_type"] for e in worker_events if e["event_type"].startswith("execution_")] == [
        "execution_start",
        "execution_complete",
        "execution_retry",
        "execution_complete",
    ]


def _on_workers(
    url: str, dsn: str, tmp_path: Path
) -> tuple[dict[int, list[tuple[str, str]]], list[dict[str, Any]]]:
    with running_server(dsn, tmp_path) as server, server.client() as api:
        workers = Workers(dsn, tmp_path)
        try:
            workers.start("w1")
            workers.start("w2")
            created = api.post(
                "/api/credentials", json={"name": "pg_local", "type": "postgres", "data": pg_fields(dsn)}
            )
            assert created.status_code == 201, created.text
            assert api.post("/api/catalog/register", json={"content": PLAYBOOK}).status_code == 201
            started = api.post(
                "/api/executions/run", json={"path": "tests/flaky_fetch", "parameters": {"base": url}}
            )
            execution_id = started.json()["execution_id"]
            assert wait_for_record(api, execution_id)["status"] == "COMPLETED"
            answer = api.post(f"/api/executions/{execution_id}/retry", json={})
            assert answer.status_code == 202, answer.text
            assert answer.json()["items"] == sorted(FLAKY)
            record = wait_for_record(api, execution_id)
            assert record["status"] == "COMPLETED", record
            events = api.get(f"/api/executions/{execution_id}/events", params={"limit": 100000}).json()[
                "events"
            ]
        finally:
            workers.stop_all()
    _check_retried(events, record["result"])
    # The web UI's view of it, summed up by a server on PostgreSQL.
    with running_server(dsn, tmp_path) as server, server.client() as api:
        view = api.get(f"/api/views/executions/{execution_id}").json()
    fetch = view["iterators"]["fetch"]
    assert (fetch["done"], fetch["failed"], fetch["kept"], fetch["total"]) == (5, 0, ITEMS - 5, ITEMS)
    [lane] = [lane for lane in view["lanes"] if lane["step"] == "fetch"]
    assert len(lane["runs"]) == 2 and view["status"] == "COMPLETED" and view["headline"] is None
    return _per_item(events), events


def test_retry_refuses_what_it_cannot_do(stub: tuple[str, Stub], pg_dsn: str, tmp_path: Path) -> None:
    url, _ = stub
    db = str(tmp_path / "noetl.db")
    fields = json.dumps(pg_fields(pg_dsn))
    _cli("credential", "add", "pg_local", "--type", "postgres", "--data", fields, db=db, cwd=tmp_path)
    playbook = tmp_path / "flaky_fetch.yaml"
    playbook.write_text(PLAYBOOK)
    payload = json.dumps({"base": url, "items": 10})
    run = json.loads(
        _cli("run", str(playbook), "--payload", payload, "--json", "--quiet", db=db, cwd=tmp_path).stdout
    )
    x = run["execution_id"]
    cases = {
        ("--step", "count"): "is not an iterator",
        ("--step", "fetch", "--items", "10"): "item 10 of step 'fetch' does not exist",
        ("--items", "2-x"): "not an index or a range",
    }
    for args, message in cases.items():
        refused = _cli("retry", x, *args, db=db, cwd=tmp_path)
        assert refused.returncode == 2, (args, refused.stderr)
        assert message in refused.stderr, (args, refused.stderr)
    nothing = _cli("retry", x, db=db, cwd=tmp_path)  # item 3 failed: that retry works; a second has nothing
    assert nothing.returncode == 0, nothing.stderr
    again = _cli("retry", x, db=db, cwd=tmp_path)
    assert again.returncode == 2 and "has no iterator step with failed items" in again.stderr
    unknown = _cli("retry", "no-such-execution", db=db, cwd=tmp_path)
    assert unknown.returncode == 2 and "not found" in unknown.stderr


def test_a_running_execution_cannot_be_retried(tmp_path: Path) -> None:
    from noetl.dsl import parse_playbook
    from noetl.engine.retry import RetryRequest, retry_target
    from noetl.errors import InputError
    from noetl.store import open_store

    db = str(tmp_path / "noetl.db")
    playbook = tmp_path / "slow.yaml"
    playbook.write_text((REPO / "tests" / "ui" / "playbooks" / "slow_loop.yaml").read_text())
    env = {"NOETL_SECRET_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-m", "noetl.cli", "run", str(playbook), "--db", db, "--quiet"]
    proc = subprocess.Popen(
        [*args, "--payload", '{"items": 80, "delay": 0.3}'], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL
    )
    try:
        import time

        store = open_store(db)
        try:
            deadline = time.monotonic() + 30
            while not store.executions(1) and time.monotonic() < deadline:
                time.sleep(0.1)
            x = store.executions(1)[0].execution_id
            refused = _cli("retry", x, db=db, cwd=tmp_path)
            assert refused.returncode == 2 and "is still running" in refused.stderr, refused.stderr
            with pytest.raises(InputError, match="still running"):
                retry_target(store.read(x), parse_playbook(playbook.read_text()), RetryRequest())
        finally:
            store.close()
    finally:
        proc.wait(timeout=60)


def test_a_retry_killed_midway_resumes_and_saves_each_row_once(pg_dsn: str, tmp_path: Path) -> None:
    """A crash during the retried run: `noetl run --resume` finishes it; the kept items stay kept."""
    import os
    import signal
    import time

    state = Stub()
    slow = set(range(0, ITEMS, 4))  # 50 items fail once; the second time they answer slowly

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            n = int(self.path.rsplit("/", 1)[-1])
            with state.lock:
                state.seen[n] += 1
                first = state.seen[n] == 1
            if n in slow and not first:
                time.sleep(0.1)
            ok = not (first and n in slow)
            body = json.dumps({"value": f"v{n}"} if ok else {"error": "try again"}).encode()
            self.send_response(200 if ok else 500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    db = str(tmp_path / "noetl.db")
    fields = json.dumps(pg_fields(pg_dsn))
    _cli("credential", "add", "pg_local", "--type", "postgres", "--data", fields, db=db, cwd=tmp_path)
    playbook = tmp_path / "flaky_fetch.yaml"
    playbook.write_text(PLAYBOOK.replace("concurrency: 4", "concurrency: 2"))
    with serve(Handler) as url:
        payload = json.dumps({"base": url})
        first = _cli("run", str(playbook), "--payload", payload, "--json", "--quiet", db=db, cwd=tmp_path)
        execution_id = json.loads(first.stdout)["execution_id"]
        env = {"NOETL_SECRET_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"}
        args = [sys.executable, "-m", "noetl.cli", "retry", execution_id, "--db", db, "--quiet"]
        proc = subprocess.Popen(
            args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(1 for n in slow if state.seen[n] > 1) < 10:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        asked_before = sum(state.seen.values())
        assert asked_before < ITEMS + len(slow), "the retry ended before it could be killed"
        resumed = _cli(
            "run", str(playbook), "--resume", execution_id, "--json", "--quiet", db=db, cwd=tmp_path
        )
        assert resumed.returncode == 0, resumed.stderr
        outcome = json.loads(resumed.stdout)
    assert outcome["status"] == "COMPLETED" and outcome["result"] == {"results": ITEMS, "failed": 0}
    assert _rows(pg_dsn) == [(n, f"v{n}") for n in range(ITEMS)]  # one row each, whoever wrote it
    # Nothing that had succeeded before the retry was asked again. A retried item is asked a second
    # time, and a third only if the kill came before its iteration_completed was stored (in flight, or
    # done but still in the event writer's batch): never more.
    assert all(state.seen[n] == 1 for n in range(ITEMS) if n not in slow)
    assert all(2 <= state.seen[n] <= 3 for n in slow), {n: state.seen[n] for n in slow}


def test_a_failed_execution_is_retried_to_completion(tmp_path: Path) -> None:
    """on_error: fail stopped the loop at item 3 (items after it were not run): a retry runs item 3 and
    the ones never run, keeps 0-2, and the execution ends COMPLETED with every result in order."""
    flag = tmp_path / "flag"
    flag.touch()
    playbook = tmp_path / "stops.yaml"
    playbook.write_text(
        (REPO / "tests" / "ui" / "playbooks" / "flaky_items.yaml")
        .read_text()
        .replace("on_error: continue", "on_error: fail")
        .replace("flaky: [2, 5]", "flaky: [3]")
    )
    db = str(tmp_path / "noetl.db")
    first = _cli(
        "run",
        str(playbook),
        "--payload",
        json.dumps({"flag": str(flag)}),
        "--json",
        "--quiet",
        db=db,
        cwd=tmp_path,
    )
    outcome = json.loads(first.stdout)
    assert first.returncode == 1 and outcome["status"] == "FAILED"
    flag.unlink()
    again = _cli("retry", outcome["execution_id"], "--json", "--quiet", db=db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["result"] == [{"n": n} for n in range(8)]
    from noetl.store import open_store

    store = open_store(db)
    try:
        events = store.read(outcome["execution_id"])
    finally:
        store.close()
    [retry] = [e for e in events if e.event_type == "execution_retry"]
    assert retry.meta["items"] == [3, 4, 5, 6, 7] and retry.meta["kept"] == 3
    assert retry.meta["previous_status"] == "FAILED"
