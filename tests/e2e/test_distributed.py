"""Workers on PostgreSQL: real worker processes, a real PostgreSQL, HTTP on 127.0.0.1.

The broker loop (reaping expired leases) runs in this test process, as the same code the server runs.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from noetl.engine.events import Event
from noetl.runtime.broker import schedule
from noetl.runtime.control import cancel_execution, start_execution
from noetl.store.postgres import PostgresStore
from tests.conftest import pg_fields
from tests.httpd import JSONHandler, serve
from tests.processes import SECRET_KEY, Workers, broker_loop, finished_record, running_server


@pytest.fixture
def pg_store(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStore]:
    monkeypatch.setenv("NOETL_SECRET_KEY", SECRET_KEY)
    store = PostgresStore(pg_dsn, pool_size=16)
    store.put_credential("pg_local", "postgres", pg_fields(pg_dsn))
    yield store
    store.close()


@pytest.fixture
def broker(pg_store: PostgresStore) -> Iterator[None]:
    with broker_loop(pg_store, 0.5):
        yield


def wait_finished(store: PostgresStore, execution_id: str, timeout: float = 90) -> str:
    return str(finished_record(store, execution_id, timeout).status)


class _SlowAPI(JSONHandler):
    def answer(self) -> Any:
        time.sleep(0.05)
        return {"ok": True}


@pytest.fixture
def slow_api() -> Iterator[str]:
    with serve(_SlowAPI) as url:
        yield url


ASYNC_HTTP = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: async_http}
workload: {base_url: "http://127.0.0.1:1", n: 200}
workflow:
  - step: start
    next: [{step: calls}]
  - step: calls
    type: iterator
    mode: async
    concurrency: 8
    collection: "{{ range(workload.n) | list }}"
    element: i
    task:
      type: http
      endpoint: "{{ workload.base_url }}/item"
      data: {i: "{{ i }}"}
    next: [{step: end}]
  - step: end
"""


def _iterator_seconds(events: list[Event]) -> float:
    done = next(e for e in events if e.event_type == "iterator_completed")
    assert done.duration is not None
    return done.duration


def test_two_workers_share_an_async_iterator(
    pg_store: PostgresStore, workers: Workers, slow_api: str
) -> None:
    pg_store.register("async_http", "async_http", ASYNC_HTTP)
    workers.start("solo", concurrency=2)
    alone = start_execution(pg_store, "async_http", {"base_url": slow_api})
    assert wait_finished(pg_store, alone) == "COMPLETED"
    workers.start("helper", concurrency=2)
    time.sleep(1.0)  # let the second worker connect and LISTEN
    shared = start_execution(pg_store, "async_http", {"base_url": slow_api})
    assert wait_finished(pg_store, shared) == "COMPLETED"

    events = pg_store.read(shared)
    items = [e for e in events if e.event_type == "iteration_completed"]
    assert len(items) == 200
    assert {e.meta["worker_id"] for e in items} == {"solo", "helper"}, "both workers ran items"
    t_one, t_two = _iterator_seconds(pg_store.read(alone)), _iterator_seconds(events)
    assert t_two < 0.75 * t_one, f"two workers took {t_two:.2f} s, one took {t_one:.2f} s"
    summary = next(e for e in events if e.event_type == "iterator_completed").meta
    assert summary["succeeded"] == 200 and summary["count"] == 200


KILL_LOOP = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: kill_loop}
workload: {n: 1000}
workflow:
  - step: start
    next: [{step: make_table}]
  - step: make_table
    type: postgres
    auth: pg_local
    command: CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, squared INTEGER)
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
            time.sleep(0.002)
            return n * n
      save:
        storage: postgres
        auth: pg_local
        table: items
        mode: upsert
        key: id
        args: {id: "{{ n }}", squared: "{{ this }}"}
    next: [{step: end}]
  - step: end
"""


def _rows(dsn: str) -> int:
    try:
        with psycopg.connect(dsn) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])  # type: ignore[index]
    except psycopg.errors.UndefinedTable:
        return 0


def test_sigkilled_worker_loses_its_lease_and_another_finishes(
    pg_store: PostgresStore, pg_dsn: str, workers: Workers, broker: None
) -> None:
    pg_store.register("kill_loop", "kill_loop", KILL_LOOP)
    workers.start("doomed", concurrency=1, lease=3)
    execution_id = start_execution(pg_store, "kill_loop")
    deadline = time.monotonic() + 60
    while _rows(pg_dsn) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers.kill("doomed")
    rows_at_kill = _rows(pg_dsn)
    assert 200 <= rows_at_kill < 1000, "killed in the middle of the loop"
    workers.start("rescuer", concurrency=1, lease=3)
    assert wait_finished(pg_store, execution_id, timeout=120) == "COMPLETED"

    with psycopg.connect(pg_dsn) as conn:
        count, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM items").fetchone()  # type: ignore[misc]
        wrong = conn.execute("SELECT count(*) FROM items WHERE squared <> id * id").fetchone()
    assert (count, distinct) == (1000, 1000) and wrong == (0,)

    events = pg_store.read(execution_id)
    loop = [e for e in events if e.node_name == "loop"]
    abandoned = [e for e in loop if e.event_type == "action_error"]
    assert len(abandoned) == 1 and abandoned[0].meta["reason"] == "lease_expired"
    assert abandoned[0].meta["worker_id"] == "doomed"
    attempts = [(e.attempt, e.meta.get("worker_id")) for e in loop if e.event_type == "action_started"]
    assert attempts == [(1, "doomed"), (2, "rescuer")]
    assert [e.event_type for e in loop][-3:] == ["iterator_completed", "action_completed", "step_completed"]
    completed = [e.current_index for e in loop if e.event_type == "iteration_completed"]
    assert sorted(completed) == list(range(1000)), "every item completed exactly once in the log"
    second = [e for e in loop if e.event_type == "iterator_started"][1]
    # Rows commit a little ahead of their items' events (the event writer batches): an item saved just
    # before the kill but not yet logged as completed runs again, an upsert without a duplicate.
    assert second.meta["resumed"] >= 100 and second.meta["count"] + second.meta["resumed"] == 1000


FAN_OUT = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: fan_out}
workflow:
  - step: start
    next: [{step: a}, {step: b}, {step: c}]
  - step: a
    type: python
    code: |
      def main():
          return 1
    next: [{step: end}]
  - step: b
    type: python
    code: |
      def main():
          return 2
    next: [{step: end}]
  - step: c
    type: python
    code: |
      def main():
          return 3
    next: [{step: end}]
  - step: end
    type: python
    data: {total: "{{ a.result + b.result + c.result }}"}
    code: |
      def main(total):
          return {"total": total}
"""


def test_concurrent_brokers_never_schedule_a_step_twice(
    pg_store: PostgresStore, pg_dsn: str, workers: Workers, tmp_path: Path
) -> None:
    """Two server processes (each with its broker loop, each starting executions) plus four threads
    deciding on every running execution as fast as they can: every step still runs exactly once."""
    pg_store.register("fan_out", "fan_out", FAN_OUT)
    other = PostgresStore(pg_dsn, pool_size=16)
    stop = threading.Event()

    def hammer(store: PostgresStore) -> None:
        while not stop.is_set():
            with store.connection() as conn:
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT execution_id FROM noetl_executions WHERE status = 'RUNNING'"
                    ).fetchall()
                ]
            for execution_id in ids:
                schedule(store, execution_id)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in (pg_store, other, pg_store, other)]
    for t in threads:
        t.start()
    try:
        with running_server(pg_dsn, tmp_path) as one, running_server(pg_dsn, tmp_path) as two:
            workers.start("w1", concurrency=3)
            workers.start("w2", concurrency=3)
            ids = [start_execution(pg_store, "fan_out") for _ in range(2)]
            for server in (one, two, one):
                with server.client() as api:
                    answer = api.post("/api/executions/run", json={"path": "fan_out", "parameters": {}})
                    assert answer.status_code == 202, answer.text
                    ids.append(answer.json()["execution_id"])
            for execution_id in ids:
                assert wait_finished(pg_store, execution_id) == "COMPLETED"
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        other.close()
    for execution_id in ids:
        events = pg_store.read(execution_id)
        started = [e.node_name for e in events if e.event_type == "step_started"]
        assert sorted(started) == ["a", "b", "c", "end", "start"], "every step ran exactly once"
        assert [e.event_type for e in events].count("execution_complete") == 1
        assert events[-1].result == {"total": 6}
    with psycopg.connect(pg_dsn) as conn:
        duplicates = conn.execute(
            "SELECT execution_id, step, count(*) FROM noetl_jobs GROUP BY 1, 2, run, attempt, "
            "chunk HAVING count(*) > 1"
        ).fetchall()
    assert duplicates == []


NAP = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: napper}
workload: {seconds: 1.5}
workflow:
  - step: start
    next: [{step: nap}]
  - step: nap
    type: python
    data: {seconds: "{{ workload.seconds }}"}
    code: |
      import time
      def main(seconds):
          time.sleep(seconds)
          return "rested"
"""


def start_nap_and_wait_until_it_runs(store: PostgresStore, seconds: float) -> str:
    store.register("nap", "nap", NAP)
    execution_id = start_execution(store, "nap", {"seconds": seconds})
    deadline = time.monotonic() + 30
    while not [e for e in store.read(execution_id) if e.event_type == "action_started"]:
        assert time.monotonic() < deadline, "no worker started the step"
        time.sleep(0.05)
    return execution_id


def test_sigterm_lets_a_worker_finish_its_job(pg_store: PostgresStore, workers: Workers) -> None:
    workers.start("polite", concurrency=1)
    execution_id = start_nap_and_wait_until_it_runs(pg_store, 2.0)
    workers.procs["polite"].send_signal(signal.SIGTERM)
    assert workers.procs["polite"].wait(30) == 0
    events = pg_store.read(execution_id)
    assert [e.event_type for e in events if e.node_name == "nap"][-1] == "step_completed"
    assert events[-1].event_type == "execution_complete" and events[-1].result == "rested"


def test_a_stopping_worker_leaves_a_job_that_does_not_return_to_its_lease(
    pg_store: PostgresStore, pg_dsn: str, workers: Workers, broker: None
) -> None:
    """Issue 9: a worker told to stop exits within its grace period even when user code does not
    return, names what it abandoned, and the job's lease then runs out as after a crash."""
    workers.start("impatient", concurrency=1, lease=3, grace=1)
    execution_id = start_nap_and_wait_until_it_runs(pg_store, 600)
    t0 = time.monotonic()
    workers.procs["impatient"].send_signal(signal.SIGTERM)
    assert workers.procs["impatient"].wait(30) == 1
    assert time.monotonic() - t0 < 15
    log = (workers.tmp / "impatient.log").read_text()
    assert f"execution {execution_id}, step nap" in log and "abandons job" in log, log
    workers.start("next", concurrency=1, grace=1)  # it takes up the nap: let it go at teardown too
    deadline = time.monotonic() + 30
    taken = None
    while time.monotonic() < deadline and taken is None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            taken = conn.execute(
                "SELECT worker_id FROM noetl_jobs WHERE execution_id = %s AND step = 'nap' "
                "AND status = 'leased' AND worker_id = 'next'",
                (execution_id,),
            ).fetchone()
        time.sleep(0.2)
    assert taken is not None, "the abandoned job's lease did not run out for another worker"
    cancel_execution(pg_store, execution_id)


HANG = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: hang}
workflow:
  - step: start
    type: python
    timeout: 1
    code: |
      import time
      def main():
          time.sleep(600)
"""


def test_a_step_past_its_timeout_frees_its_worker_slot_for_other_executions(
    pg_store: PostgresStore, workers: Workers, broker: None
) -> None:
    """Issue 9: one worker with one slot; a hanging step with `timeout: 1` fails, and the next
    execution runs on the same worker right after, with the step's thread left behind."""
    workers.start("single", concurrency=1, grace=1)
    pg_store.register("hang", "hang", HANG)
    hung = start_execution(pg_store, "hang")
    assert wait_finished(pg_store, hung, 30) == "FAILED"
    [failed] = [e for e in pg_store.read(hung) if e.event_type == "step_failed"]
    assert failed.meta["reason"] == "timeout"
    execution_id = start_nap_and_wait_until_it_runs(pg_store, 0.2)
    assert wait_finished(pg_store, execution_id, 30) == "COMPLETED"


def test_a_worker_that_cannot_write_events_stops_with_exit_1(
    pg_store: PostgresStore, pg_dsn: str, workers: Workers
) -> None:
    workers.start("fragile", concurrency=1)
    start_nap_and_wait_until_it_runs(pg_store, 1.5)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE noetl_events RENAME TO noetl_events_away")
    try:
        assert workers.procs["fragile"].wait(30) == 1, "the worker stops, loudly"
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE noetl_events_away RENAME TO noetl_events")
    log = (workers.tmp / "fragile.log").read_text()
    assert "StoreError" in log or "writing events" in log


def test_a_job_given_up_on_fails_its_step_and_the_execution(pg_store: PostgresStore, pg_dsn: str) -> None:
    pg_store.register("fan_out", "fan_out", FAN_OUT)
    execution_id = start_execution(pg_store, "fan_out")  # no worker: the first job waits in the queue
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE noetl_jobs SET status = 'dead', tries = 5, last_error = 'OSError: disk full' "
            "WHERE execution_id = %s",
            (execution_id,),
        )
    schedule(pg_store, execution_id)
    events = pg_store.read(execution_id)
    failed = next(e for e in events if e.event_type == "step_failed")
    assert failed.node_name == "start" and failed.meta["reason"] == "job_dead"
    assert "5 times" in (failed.error or "") and "disk full" in (failed.error or "")
    assert events[-1].event_type == "execution_failed" and "start" in (events[-1].error or "")


ASYNC_KILL_LOOP = KILL_LOOP.replace("name: kill_loop", "name: async_kill_loop").replace(
    "    type: iterator\n", "    type: iterator\n    mode: async\n    concurrency: 2\n"
)


def test_sigkilled_worker_in_an_async_iterator_leaves_every_row_and_item_once(
    pg_store: PostgresStore, pg_dsn: str, workers: Workers, broker: None
) -> None:
    """The chunks the dead worker held go back to the queue when their leases expire; whoever leases them
    skips the items the log already has, so each item is completed once (its upsert may run twice)."""
    pg_store.register("async_kill_loop", "async_kill_loop", ASYNC_KILL_LOOP)
    workers.start("doomed", concurrency=2, lease=3)
    execution_id = start_execution(pg_store, "async_kill_loop")
    deadline = time.monotonic() + 60
    while _rows(pg_dsn) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers.kill("doomed")
    assert 200 <= _rows(pg_dsn) < 1000, "killed in the middle of the loop"
    workers.start("rescuer", concurrency=2, lease=3)
    assert wait_finished(pg_store, execution_id, timeout=120) == "COMPLETED"

    with psycopg.connect(pg_dsn) as conn:
        count, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM items").fetchone()  # type: ignore[misc]
    assert (count, distinct) == (1000, 1000)
    loop = [e for e in pg_store.read(execution_id) if e.node_name == "loop"]
    completed = [e.current_index for e in loop if e.event_type == "iteration_completed"]
    assert sorted(completed) == list(range(1000)), "every item completed exactly once in the log"
    assert {e.meta["worker_id"] for e in loop if e.event_type == "iteration_completed"} == {
        "doomed",
        "rescuer",
    }
    assert [e.event_type for e in loop][-3:] == ["iterator_completed", "action_completed", "step_completed"]
    summary = next(e for e in loop if e.event_type == "iterator_completed").meta
    assert (summary["succeeded"], summary["failed"]) == (1000, 0)


SLOTS = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: slots}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    mode: async
    concurrency: 3
    collection: "{{ range(60) | list }}"
    element: i
    task:
      type: python
      data: {i: "{{ i }}"}
      code: |
        import time
        def main(i):
            time.sleep(0.03)
            return i * 2
    next: [{step: end}]
  - step: end
"""


def _most_in_flight(events: list[Event]) -> int:
    """The most items running at once, from their iteration_started / iteration_completed times."""
    edges = []
    for e in events:
        if e.event_type == "iteration_started":
            edges.append((e.created_at, 1))
        elif e.event_type == "iteration_completed":
            edges.append((e.created_at, -1))
    running = most = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += step
        most = max(most, running)
    return most


def test_an_async_iterator_fans_out_more_chunks_than_slots_and_no_job_waits(
    pg_store: PostgresStore, pg_dsn: str, workers: Workers
) -> None:
    """Issue 8, divergence 6: the fanning-out job used to poll for its chunks while holding its lease, and
    made exactly `concurrency` chunks, so nothing rebalanced. Now the step's job ends once the chunks are
    queued, there are more chunks than slots, never more than `concurrency` of them run at once, and a
    join job finishes the step."""
    pg_store.register("slots", "slots", SLOTS)
    workers.start("w1", concurrency=4)
    execution_id = start_execution(pg_store, "slots")
    assert wait_finished(pg_store, execution_id) == "COMPLETED"
    with psycopg.connect(pg_dsn) as conn:
        jobs = conn.execute(
            "SELECT kind, status, created_at, updated_at FROM noetl_jobs WHERE step = 'loop' ORDER BY job_id"
        ).fetchall()
    kinds = [kind for kind, *_ in jobs]
    assert kinds[0] == "step" and kinds[-1] == "join" and kinds.count("join") == 1
    chunks = [job for job in jobs if job[0] == "chunk"]
    assert len(chunks) > 3, f"{len(chunks)} chunks for 3 slots: nothing could rebalance"
    assert all(status == "done" for _, status, *_ in jobs)
    step_job_done = jobs[0][3]
    assert step_job_done < max(updated for *_, updated in chunks), "the step's job waited for its chunks"
    events = pg_store.read(execution_id)
    loop = [e for e in events if e.node_name == "loop"]
    assert _most_in_flight(loop) <= 3, "more items ran at once than the iterator's concurrency"
    result = next(e for e in loop if e.event_type == "step_completed").result
    assert result == [i * 2 for i in range(60)]
    assert [e.event_type for e in loop][-3:] == ["iterator_completed", "action_completed", "step_completed"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


STOPS_EARLY = """
apiVersion: noetl.io/v1
kind: Playbook
metadata: {name: stops_early}
workflow:
  - step: start
    next: [{step: loop}]
  - step: loop
    type: iterator
    mode: async
    concurrency: 2
    on_error: fail
    collection: "{{ range(40) | list }}"
    element: i
    task:
      type: python
      data: {i: "{{ i }}"}
      code: |
        import time
        def main(i):
            if i == 0:
                raise ValueError("item 0 is bad")
            time.sleep(0.05)
            return i
    next: [{step: end}]
  - step: end
"""


def test_the_join_accounts_for_the_items_no_chunk_ran(pg_store: PostgresStore, workers: Workers) -> None:
    """With `on_error: fail`, the chunks not started when item 0 fails are held back and never run:
    the join reads their items back from the queue and ends each with `iteration_failed` SKIPPED, so
    every item of the attempt has exactly one end, as in a run in one process."""
    pg_store.register("stops_early", "stops_early", STOPS_EARLY)
    workers.start("w1", concurrency=2)
    execution_id = start_execution(pg_store, "stops_early")
    assert wait_finished(pg_store, execution_id) == "FAILED"
    loop = [e for e in pg_store.read(execution_id) if e.node_name == "loop"]
    ends = [e for e in loop if e.event_type in ("iteration_completed", "iteration_failed")]
    assert sorted(e.current_index for e in ends) == list(range(40)), "one end per item, none missing"
    skipped = [e for e in ends if e.status == "SKIPPED"]
    assert skipped, "some chunks were held back, so some items never ran"
    assert all("the iterator stopped" in (e.error or "") for e in skipped)
    assert not [
        e
        for e in loop
        if e.event_type == "iteration_started" and e.current_index in {s.current_index for s in skipped}
    ]
    summary = next(e for e in loop if e.event_type == "iterator_failed").meta
    assert summary["skipped"] == len(skipped) and summary["failed"] >= 1
