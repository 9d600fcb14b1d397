"""The iterator against a real PostgreSQL: per-item upserts, failing saves, the breaker, resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from noetl.dsl import parse_playbook
from noetl.runtime.local import LocalRunner
from tests.conftest import pg_fields
from tests.helpers import REPO, cli, run_text, types_of
from tests.httpd import JSONHandler, serve

HEAD = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: iterator_pg}
"""

UPSERT_LOOP = (
    HEAD
    + """
workload:
  items: %(items)s
workflow:
  - step: start
    next: [{step: make_table}]
  - step: make_table
    type: postgres
    auth: pg_local
    command: CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, value TEXT NOT NULL)
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ workload.items }}"
    element: it
    %(policy)s
    task:
      type: python
      data: {v: "{{ it }}"}
      code: |
        def main(v):
            return {"value": v}
      save:
        storage: postgres
        auth: pg_local
        table: t
        mode: upsert
        key: id
        args: {id: "item-{{ _loop.index }}", value: "{{ this.value }}"}
    next: [{step: end}]
  - step: end
"""
)


def rows(dsn: str, table: str = "t") -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


@pytest.fixture
def pg_store(store: Any, pg_dsn: str) -> Any:
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    return store


def test_three_items_upserted_with_the_events_md_sequence(pg_store: Any, pg_dsn: str) -> None:
    outcome, events = run_text(pg_store, UPSERT_LOOP % {"items": '["a", "b", "c"]', "policy": ""})
    assert outcome.status == "COMPLETED", outcome.error
    own = [e.event_type for e in events if e.node_name == "loop"]
    inner = own[own.index("action_started") + 1 : own.index("action_completed")]
    assert inner == ["iterator_started"] + [
        "iteration_started",
        "save_started",
        "save_completed",
        "iteration_completed",
    ] * 3 + ["iterator_completed"]
    # The issue calls this "the 13-event sequence"; EVENTS.md's listing has 14 (1 + 3 x 4 + 1): we follow it.
    assert len(inner) == 14
    assert rows(pg_dsn) == [("item-0", "a"), ("item-1", "b"), ("item-2", "c")]
    summary = next(e for e in events if e.event_type == "iterator_completed").meta
    assert summary["rows_saved"] == 3
    saves = [e for e in events if e.event_type == "save_completed"]
    assert [s.meta["rows"] for s in saves] == [1, 1, 1]
    assert all(s.node_id == f"loop:save_iter_{s.current_index}" for s in saves)


def test_constraint_violation_on_item_2_fails_the_run_and_keeps_items_0_and_1(
    pg_store: Any, pg_dsn: str, store_path: Path
) -> None:
    outcome, events = run_text(pg_store, UPSERT_LOOP % {"items": '["a", "b", null, "d"]', "policy": ""})
    assert outcome.status == "FAILED"
    item2 = [e.event_type for e in events if e.current_index == 2]
    assert item2 == ["iteration_started", "save_started", "save_failed", "iteration_failed"]
    assert types_of(events)[-4:] == ["iterator_failed", "action_error", "step_failed", "execution_failed"]
    failed = next(e for e in events if e.event_type == "save_failed")
    assert "23502" in (failed.error or "") or "null" in (failed.error or "").lower()
    assert rows(pg_dsn) == [("item-0", "a"), ("item-1", "b")]
    assert not [e for e in events if e.event_type == "iteration_completed" and e.current_index == 2]


def test_the_same_failure_through_the_cli_exits_1(
    pg_store: Any, pg_dsn: str, store_path: Path, tmp_path: Path
) -> None:
    playbook = tmp_path / "loop.yaml"
    playbook.write_text(UPSERT_LOOP % {"items": '["a", "b", null, "d"]', "policy": ""})
    pg_store.flush()
    done = cli("run", str(playbook), "--db", str(store_path), "--json")
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "FAILED" and "item 2" in answer["error"]


def test_continue_with_max_failures_completes_with_three_rows(pg_store: Any, pg_dsn: str) -> None:
    policy = "on_error: continue\n    max_failures: 1"
    outcome, events = run_text(pg_store, UPSERT_LOOP % {"items": '["a", "b", null, "d"]', "policy": policy})
    assert outcome.status == "COMPLETED", outcome.error
    summary = next(e for e in events if e.event_type == "iterator_completed").meta
    assert summary["failed_indexes"] == [2] and summary["rows_saved"] == 3
    assert len(rows(pg_dsn)) == 3


def test_missing_credential_is_a_save_error_and_fails_the_item(store: Any) -> None:
    outcome, events = run_text(
        store,
        HEAD
        + """
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: [1]
    task:
      type: python
      code: |
        def main():
            return 1
      save: {storage: postgres, auth: no_such_credential, table: t, args: {id: 1}}
    next: [{step: end}]
  - step: end
""",
    )
    assert outcome.status == "FAILED"
    error = next(e for e in events if e.event_type == "save_error")
    assert "no_such_credential" in (error.error or "") and "noetl credential add" in (error.error or "")
    assert [e.event_type for e in events if e.current_index == 0] == [
        "iteration_started",
        "save_started",
        "save_error",
        "iteration_failed",
    ]


class _DeadTarget:
    """A port that accepts TCP connections and drops them at once: a PostgreSQL that is down."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dead_target() -> Iterator[_DeadTarget]:
    target = _DeadTarget()
    yield target
    target.close()


def _breaker_run(store: Any, items: int) -> tuple[Any, list[Any]]:
    text = (
        HEAD
        + f"""
workflow:
  - step: start
    next: [{{step: loop}}]
  - step: loop
    type: iterator
    collection: "{{{{ range({items}) | list }}}}"
    on_error: continue
    task:
      type: python
      code: |
        def main():
            return 1
      save:
        storage: postgres
        auth: down
        table: t
        args: {{id: "{{{{ _loop.index }}}}"}}
        circuit_breaker: {{failure_threshold: 3, reset_timeout: 60}}
    next: [{{step: end}}]
  - step: end
"""
    )
    outcome = LocalRunner(store).run(parse_playbook(text))
    return outcome, store.read(outcome.execution_id)


def test_open_breaker_fails_saves_at_once_without_touching_the_target(
    store: Any, dead_target: _DeadTarget
) -> None:
    store.put_credential(
        "down",
        "postgres",
        {
            "db_host": "127.0.0.1",
            "db_port": dead_target.port,
            "db_user": "x",
            "db_password": "pw-not-shown",
            "db_name": "x",
        },
    )
    _breaker_run(store, 3)
    after_three = dead_target.accepted
    assert after_three >= 3, "the first three saves did try the target"
    outcome, events = _breaker_run(store, 10)  # a new runner: a fresh breaker, same target
    assert dead_target.accepted - after_three == after_three, "items after the third never connect"
    failures = [e for e in events if e.event_type == "save_failed"]
    reasons = [f.meta["reason"] for f in failures]
    assert len(reasons) == 10 and "circuit_open" not in reasons[:3] and set(reasons[3:]) == {"circuit_open"}
    assert outcome.status == "COMPLETED"  # on_error: continue without thresholds
    assert all("pw-not-shown" not in json.dumps(e.to_dict(), default=str) for e in events)


class _SlowAPI(JSONHandler):
    def answer(self) -> Any:
        time.sleep(0.1)
        return {"path": self.path}


@pytest.fixture
def slow_api() -> Iterator[str]:
    with serve(_SlowAPI) as url:
        yield url


def test_async_http_items_overlap_and_counts_match(pg_store: Any, pg_dsn: str, slow_api: str) -> None:
    outcome, events = run_text(
        pg_store,
        HEAD
        + """
workload:
  base_url: http://127.0.0.1:1
workflow:
  - step: start
    next: [{step: make_table}]
  - step: make_table
    type: postgres
    auth: pg_local
    command: CREATE TABLE t (id INTEGER PRIMARY KEY, path TEXT)
    next: [{step: loop}]
  - step: loop
    type: iterator
    mode: async
    concurrency: 5
    collection: "{{ range(20) | list }}"
    element: n
    task:
      type: http
      endpoint: "{{ workload.base_url }}/item"
      data: {n: "{{ n }}"}
      save:
        storage: postgres
        auth: pg_local
        table: t
        mode: upsert
        key: id
        args: {id: "{{ n }}", path: "{{ this.data.path }}"}
    next: [{step: end}]
  - step: end
""",
        {"base_url": slow_api},
    )
    assert outcome.status == "COMPLETED", outcome.error
    step = next(e for e in events if e.event_type == "step_completed" and e.node_name == "loop")
    assert step.duration is not None and step.duration < 0.5 * 20 * 0.1, "well under the sequential 2 s"
    for index in range(20):
        assert [e.event_type for e in events if e.current_index == index] == [
            "iteration_started",
            "save_started",
            "save_completed",
            "iteration_completed",
        ]
    started = next(e for e in events if e.event_type == "iterator_started")
    finished = next(e for e in events if e.event_type == "iterator_completed")
    assert (
        started.meta["count"] == 20 and finished.meta["succeeded"] == 20 and finished.meta["rows_saved"] == 20
    )
    item_events = [e for e in events if e.node_type in ("iteration", "save")]
    assert all(started.event_id < e.event_id < finished.event_id for e in item_events)
    assert len(rows(pg_dsn)) == 20


SLOW_LOOP = (
    HEAD
    + """
workload:
  n: 40
workflow:
  - step: start
    next: [{step: make_table}]
  - step: make_table
    type: postgres
    auth: pg_local
    command: CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, doubled INTEGER)
    next: [{step: loop}]
  - step: loop
    type: iterator
    collection: "{{ range(workload.n) | list }}"
    element: n
    task:
      type: python
      data: {n: "{{ n }}"}
      code: |
        import time
        def main(n):
            time.sleep(0.05)
            return n * 2
      save:
        storage: postgres
        auth: pg_local
        table: t
        mode: upsert
        key: id
        args: {id: "{{ n }}", doubled: "{{ this }}"}
    next: [{step: end}]
  - step: end
"""
)


def test_killed_run_resumes_and_saves_every_item_exactly_once(
    pg_store: Any, pg_dsn: str, store_path: Path, tmp_path: Path
) -> None:
    playbook = tmp_path / "slow.yaml"
    playbook.write_text(SLOW_LOOP)
    pg_store.flush()
    proc = subprocess.Popen(
        [sys.executable, "-m", "noetl.cli", "run", str(playbook), "--db", str(store_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            if len(rows(pg_dsn)) >= 10:
                break
        except psycopg.errors.UndefinedTable:
            continue
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    saved_before = len(rows(pg_dsn))
    assert 10 <= saved_before < 40, "killed in the middle of the loop"

    listed = cli("executions", "--db", str(store_path), "--json")
    execution_id = json.loads(listed.stdout.splitlines()[0])["execution_id"]
    resumed = cli("run", str(playbook), "--db", str(store_path), "--resume", execution_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "COMPLETED"

    assert rows(pg_dsn) == [(n, n * 2) for n in range(40)]
    events = pg_store.read(execution_id)
    completed = [e.current_index for e in events if e.event_type == "iteration_completed"]
    assert sorted(completed) == list(range(40)), "every item completed exactly once in the log"
    restarts = [e for e in events if e.event_type == "iterator_started"]
    # A row is committed before its iteration_completed is durable, so the log may trail the table by one.
    assert len(restarts) == 2 and 1 <= restarts[1].meta["resumed"] <= saved_before
    assert restarts[1].meta["count"] + restarts[1].meta["resumed"] == 40
