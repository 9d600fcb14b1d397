"""One contract for every job queue: each test runs on PostgresQueue (a fresh PostgreSQL database) and
on MemoryQueue (in process, beside an SQLite store). The queue comes from `queue_for`, as the runtime's."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.store import open_store
from noetl.store.crypto import KEY_ENV
from noetl.store.memory_queue import MemoryQueue
from noetl.store.ports import Job
from noetl.store.queues import queue_for
from tests.contract.threads import in_threads


class Queues:
    """A store and its queue; `queue(lease)` is the same queue, leasing for `lease` seconds."""

    def __init__(self, kind: str, store: Any) -> None:
        self.kind = kind
        self.store = store

    def queue(self, lease: float = 30.0) -> Any:
        return queue_for(self.store, lease)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def queues(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Queues]:
    if request.param == "postgres":
        monkeypatch.setenv(KEY_ENV, "queue-contract-passphrase")
        store = open_store(request.getfixturevalue("pg_dsn"))
    else:
        store = open_store(str(tmp_path / "noetl.db"))
    yield Queues(request.param, store)
    store.close()


def new_id() -> str:
    return str(uuid.uuid4())


def enqueue(queue: Any, execution_id: str, step: str, **options: Any) -> int | None:
    with queue.decision(execution_id) as decision:
        job_id: int | None = queue.enqueue(decision, execution_id, step, 0, 1, **options)
    return job_id


def fan_out(queue: Any, execution_id: str, chunks: int, window: int, step: str = "loop") -> dict[str, Any]:
    """A fan-out of `chunks` chunks of two items each; the group."""
    group = {"execution_id": execution_id, "step": step, "run": 0, "attempt": 1}
    payloads = [
        {"items": [[2 * n, f"v{2 * n}"], [2 * n + 1, {"n": 2 * n + 1}]], "total": 2 * chunks}
        for n in range(chunks)
    ]
    with queue.decision(execution_id) as decision:
        queue.enqueue_chunks(decision, group, payloads, window)
    return group


def test_queue_for_gives_the_store_its_own_queue(queues: Queues) -> None:
    from noetl.store.pg_queue import PostgresQueue

    expected = PostgresQueue if queues.kind == "postgres" else MemoryQueue
    assert isinstance(queues.queue(), expected)
    x = new_id()
    job_id = enqueue(queues.queue(5.0), x, "a")
    # Every queue_for of one store is the same queue: another view leases what the first enqueued.
    assert [j.job_id for j in queues.queue(7.0).lease("w", 5)] == [job_id]


def test_a_job_is_leased_by_exactly_one_worker_under_eight_threads(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    with queue.decision(x) as decision:
        ids = [queue.enqueue(decision, x, f"s{i}", 0, 1) for i in range(240)]
    assert None not in ids
    handed = threading.Lock()
    count = [0]

    def work(i: int) -> list[int]:
        mine: list[int] = []
        while True:
            jobs = queue.lease(f"w{i}", 3)
            mine += [j.job_id for j in jobs]
            with handed:
                count[0] += len(jobs)
                if count[0] >= len(ids):
                    return mine
            if not jobs:
                time.sleep(0.001)  # the others hold the rows this lease skipped; they hand them out

    got = in_threads(8, work)
    every = [job_id for mine in got for job_id in mine]
    assert len(every) == len(set(every)), "a job was handed out twice"
    assert sorted(every) == sorted(ids)
    assert queue.lease("late", 10) == []
    # Each worker holds exactly the jobs it leased: another worker's heartbeat does not extend them.
    assert queue.heartbeat("w0", got[1]) == set()
    assert queue.heartbeat("w1", got[1]) == set(got[1])
    assert sum(queue.busy_workers().values()) == len(ids)


def test_jobs_are_leased_oldest_first_and_at_most_n(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    ids = [enqueue(queue, x, f"s{i}") for i in range(5)]
    first = sorted(queue.lease("w", 2), key=lambda j: j.job_id)  # the oldest two (returned in any order)
    assert [j.job_id for j in first] == ids[:2]
    assert [(j.step, j.kind, j.chunk, j.tries, j.max_tries) for j in first] == [
        ("s0", "step", -1, 1, 5),
        ("s1", "step", -1, 1, 5),
    ]
    assert queue.lease("w", 0) == []
    assert sorted(j.job_id for j in queue.lease("w", 10)) == ids[2:]
    assert queue.open_depth() == {"queued": 0, "held": 0, "leased": 5}


def test_an_enqueue_made_twice_gives_none_the_second_time(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    first = enqueue(queue, x, "a", payload={"k": [1, 2]})
    assert isinstance(first, int)
    assert enqueue(queue, x, "a") is None
    assert enqueue(queue, x, "a", kind="join", chunk=-2) is not None  # another chunk: another job
    with queue.decision(x) as decision:
        assert queue.enqueue(decision, x, "a", 1, 1) is not None  # another run
        assert queue.enqueue(decision, x, "a", 0, 2) is not None  # another attempt
        assert queue.enqueue(decision, x, "a", 0, 1) is None
    jobs = queue.lease("w", 10)
    assert len(jobs) == 4
    assert jobs[0].payload == {"k": [1, 2]}


def test_an_enqueue_for_a_worker_is_leased_to_it_at_once(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    job_id = enqueue(queue, x, "a", worker_id="w1")
    assert queue.lease("w2", 5) == []
    assert queue.heartbeat("w1", [job_id]) == {job_id}
    assert queue.busy_workers() == {"w1": 1}
    assert job_id is not None
    job = Job(job_id, x, "a", 0, 1, -1, "step", {}, 1, 5)
    with queue.decision(x) as decision:
        assert queue.complete_in(decision, job, "w2") is False
        assert queue.complete_in(decision, job, "w1") is True
        assert queue.open_jobs(decision, x) == 0


def test_a_lease_past_its_deadline_is_reaped_and_can_be_leased_again(queues: Queues) -> None:
    queue = queues.queue(0.3)
    x = new_id()
    step_id = enqueue(queue, x, "a")
    group = fan_out(queue, x, chunks=1, window=1)
    leased = {j.kind: j for j in queue.lease("w1", 5)}
    assert set(leased) == {"step", "chunk"}
    assert queue.reap_expired() == []  # not yet
    time.sleep(0.6)
    reaped = {r.kind: r for r in queue.reap_expired()}
    assert {k: (r.status, r.worker_id, r.job_id) for k, r in reaped.items()} == {
        "step": ("expired", "w1", step_id),
        "chunk": ("queued", "w1", leased["chunk"].job_id),
    }
    assert reaped["chunk"].group == group
    assert queue.counters().get("lease_expiries") == 2
    assert queue.reap_expired() == []
    # The late worker no longer holds either job.
    assert queue.complete(leased["chunk"], "w1") is False
    assert queue.heartbeat("w1", [j.job_id for j in leased.values()]) == set()
    # The chunk is queued again for any worker; the step job ended `expired` until the broker requeues it.
    again = queue.lease("w2", 5)
    assert [(j.kind, j.tries) for j in again] == [("chunk", 2)]
    with queue.decision(x) as decision:
        queue.requeue(decision, step_id)
    assert [(j.job_id, j.kind) for j in queue.lease("w3", 5)] == [(step_id, "step")]


def test_heartbeats_extend_a_lease_so_that_it_is_not_reaped(queues: Queues) -> None:
    queue = queues.queue(1.0)
    x = new_id()
    job_id = enqueue(queue, x, "a")
    [job] = queue.lease("w1", 1)
    for _ in range(4):  # 1.6 s in all: beyond the lease, which each heartbeat renews
        time.sleep(0.4)
        assert queue.heartbeat("w1", [job_id, 999_999]) == {job_id}
        assert queue.reap_expired() == []
    assert queue.busy_workers() == {"w1": 1}
    time.sleep(1.3)  # no more heartbeats: the lease runs out
    assert [r.job_id for r in queue.reap_expired()] == [job.job_id]


def test_fail_with_a_delay_then_dead_after_max_tries(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    job_id = enqueue(queue, x, "a", max_tries=2)
    [job] = queue.lease("w1", 1)
    assert queue.fail(job, "w2", "not mine") is None
    assert queue.fail(job, "w1", "boom 1", delay=0.6) == "queued"
    assert queue.lease("w1", 1) == []  # not before the delay
    assert queue.fail(job, "w1", "again") is None  # no longer held
    time.sleep(0.8)
    [again] = queue.lease("w2", 1)
    assert (again.job_id, again.tries) == (job_id, 2)
    with queue.decision(x) as decision:
        assert queue.dead_job(decision, x, "a", 0, 1) is None
    assert queue.fail(again, "w2", "boom 2" + "x" * 3000, delay=0.0) == "dead"
    assert queue.lease("w3", 1) == []
    with queue.decision(x) as decision:
        dead = queue.dead_job(decision, x, "a", 0, 1)
        assert queue.dead_job(decision, x, "a", 0, 2) is None
        assert queue.open_jobs(decision, x) == 0
    assert dead is not None
    assert dead[0] == 2 and dead[1].startswith("boom 2x") and len(dead[1]) == 2000
    assert queue.depth().get("dead") == 1


def test_chunks_beyond_the_window_are_held_and_the_join_comes_last(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    group = fan_out(queue, x, chunks=5, window=2)
    assert queue.open_depth() == {"queued": 2, "held": 3, "leased": 0}
    first = sorted(queue.lease("w", 10), key=lambda j: j.chunk)
    assert [(j.kind, j.chunk) for j in first] == [("chunk", 0), ("chunk", 1)]
    assert first[0].payload["items"] == [[0, "v0"], [1, {"n": 1}]]
    assert first[0].payload["window"] == 2
    running, join, done = list(first), None, 0
    while running:
        chunk = running.pop(0)
        assert chunk.kind == "chunk"
        assert queue.complete(chunk, "w") is True
        done += 1
        for job in queue.lease("w", 10):
            if job.kind == "join":
                assert done == 5, "the join came before the last chunk ended"
                join = job
            else:
                running.append(job)
        assert len(running) <= 2, "more chunks open than the window"
    assert join is not None, "the join must be queued once the last chunk ended"
    assert (join.kind, join.chunk, join.group) == ("join", -2, group)
    assert "items" not in join.payload and join.payload["total"] == 10
    items = queue.chunk_items(group)
    assert [(i, s) for i, _, s in items] == [(i, "done") for i in range(10)]
    assert items[1][1] == {"n": 1}
    queue.settle(group)  # settling again adds nothing: the join is unique
    assert queue.lease("w", 10) == []


def test_a_chunk_dead_after_its_last_try_settles_its_fan_out(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    group = fan_out(queue, x, chunks=2, window=1)
    for attempt in range(5):
        [chunk] = queue.lease("w", 1)
        assert chunk.chunk == 0
        status = queue.fail(chunk, "w", f"boom {attempt}", delay=0.0)
    assert status == "dead"
    [second] = queue.lease("w", 5)  # promoted by the dead one's end
    assert second.chunk == 1
    queue.complete(second, "w")
    assert [(j.kind, j.group) for j in queue.lease("w", 5)] == [("join", group)]


def test_hold_back_stops_the_chunks_not_started(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    group = fan_out(queue, x, chunks=4, window=2)
    running = queue.lease("w", 1)
    assert [j.chunk for j in running] == [0]
    assert queue.hold_back(group) == 3  # chunk 1 (queued) and chunks 2, 3 (held)
    assert queue.open_depth() == {"queued": 0, "held": 0, "leased": 1}
    assert queue.lease("w", 10) == []
    queue.complete(running[0], "w")
    assert [j.kind for j in queue.lease("w", 10)] == ["join"]
    statuses = {i: s for i, _, s in queue.chunk_items(group)}
    assert statuses == {0: "done", 1: "done", **{i: "cancelled" for i in range(2, 8)}}


def test_cancel_ends_the_open_jobs_of_one_execution(queues: Queues) -> None:
    queue = queues.queue()
    x, other = new_id(), new_id()
    enqueue(queue, x, "a")
    enqueue(queue, x, "b")
    [leased] = queue.lease("w", 1)
    fan_out(queue, x, chunks=3, window=1)
    other_id = enqueue(queue, other, "a")
    with queue.decision(x) as decision:
        assert queue.open_jobs(decision, x) == 5
        assert queue.cancel(decision, x) == 5
        assert queue.open_jobs(decision, x) == 0
        assert queue.cancel(decision, x) == 0
    assert queue.complete(leased, "w") is False
    assert queue.heartbeat("w", [leased.job_id]) == set()
    assert [j.job_id for j in queue.lease("w", 10)] == [other_id]
    assert queue.depth().get("cancelled") == 5


def test_drop_delayed_cancels_only_the_step_jobs_queued_for_later(queues: Queues) -> None:
    queue = queues.queue()
    x, other = new_id(), new_id()
    enqueue(queue, x, "now")
    enqueue(queue, x, "later", not_before=time.time() + 60)
    enqueue(queue, x, "leased")
    fan_out(queue, x, chunks=2, window=1)
    enqueue(queue, other, "later", not_before=time.time() + 60)
    leased = [j for j in queue.lease("w", 10) if j.step == "now"]
    assert len(leased) == 1
    with queue.decision(x) as decision:
        before = queue.open_jobs(decision, x)
        assert queue.drop_delayed(decision, x) == 1
        assert queue.open_jobs(decision, x) == before - 1
        assert queue.drop_delayed(decision, x) == 0
    with queue.decision(other) as decision:
        assert queue.open_jobs(decision, other) == 1, "another execution's delayed job stays"


def test_drop_delayed_cancels_a_deadline_and_join_started_sees_a_running_join(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    group = fan_out(queue, x, chunks=1, window=1)
    with queue.decision(x) as decision:
        queue.enqueue(
            decision, x, "loop", 0, 1, kind="deadline", chunk=-3, not_before=time.time() + 60, payload={}
        )
        assert queue.join_started(decision, group) is False
    [chunk] = queue.lease("w", 10)
    queue.complete(chunk, "w")  # the last chunk: its fan-out's join is queued
    with queue.decision(x) as decision:
        assert queue.join_started(decision, group) is False, "queued is not started"
    [join] = queue.lease("w", 10)
    assert join.kind == "join"
    with queue.decision(x) as decision:
        assert queue.join_started(decision, group) is True
        assert queue.join_started(decision, {**group, "attempt": 2}) is False
        assert queue.drop_delayed(decision, x) == 1, "the deadline waiting for its time"
        assert queue.open_jobs(decision, x) == 1, "the leased join stays"


def test_cancel_fan_out_ends_an_attempts_chunks_and_join_only(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    step_id = enqueue(queue, x, "loop")
    group = fan_out(queue, x, chunks=3, window=1)
    later = {**group, "attempt": 2}
    with queue.decision(x) as decision:
        queue.enqueue_chunks(decision, later, [{"items": [[0, 0]]}], 1)
        assert queue.cancel_fan_out(decision, group) == 3
        assert queue.open_jobs(decision, x) == 2
    assert sorted((j.job_id == step_id, j.kind, j.attempt) for j in queue.lease("w", 10)) == [
        (False, "chunk", 2),
        (True, "step", 1),
    ]


def test_release_gives_back_leased_jobs(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    job_id = enqueue(queue, x, "a")
    queue.lease("w1", 1)
    assert queue.release("w2", [job_id]) == 0
    assert queue.release("w1", [job_id]) == 1
    [again] = queue.lease("w2", 1)
    assert (again.job_id, again.tries) == (job_id, 1)


def test_decision_serializes_two_threads_on_one_execution(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    trace: list[tuple[str, int]] = []

    def decide(i: int) -> int | None:
        with queue.decision(x) as decision:
            trace.append(("in", i))
            n = queue.open_jobs(decision, x)  # read, think, write: a race unless the two take turns
            time.sleep(0.3)
            job_id: int | None = queue.enqueue(decision, x, f"s{n}", 0, 1)
            trace.append(("out", i))
        return job_id

    ids = in_threads(2, decide)
    assert [kind for kind, _ in trace] == ["in", "out", "in", "out"]
    assert trace[0][1] == trace[1][1]
    assert None not in ids
    assert sorted(j.step for j in queue.lease("w", 5)) == ["s0", "s1"]


def test_decisions_on_two_executions_do_not_wait_for_each_other(queues: Queues) -> None:
    queue = queues.queue()
    x, y = new_id(), new_id()
    inside = threading.Barrier(2, timeout=5)

    def decide(i: int) -> None:
        with queue.decision((x, y)[i]):
            inside.wait()  # both inside at once, or a BrokenBarrierError

    in_threads(2, decide)


def test_a_decision_that_raises_leaves_nothing_behind(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    kept = enqueue(queue, x, "kept")
    with pytest.raises(RuntimeError), queue.decision(x) as decision:
        queue.enqueue(decision, x, "a", 0, 1)
        queue.cancel(decision, x)
        raise RuntimeError("the broker failed half way")
    assert [j.job_id for j in queue.lease("w", 5)] == [kept]
    assert enqueue(queue, x, "a") is not None


def test_wait_for_work_wakes_when_a_job_is_queued(queues: Queues) -> None:
    queue = queues.queue()
    x = new_id()
    with queue.listening() as listener:
        if queues.kind == "memory":
            assert queue.live_workers() == 1
        started = time.monotonic()
        queue.wait_for_work(listener, 0.3)
        assert time.monotonic() - started >= 0.25  # nothing queued: the timeout
        timer = threading.Timer(0.2, lambda: enqueue(queue, x, "a"))
        timer.start()
        started = time.monotonic()
        queue.wait_for_work(listener, 10.0)
        assert time.monotonic() - started < 5.0
        timer.join()
        queue.lease("w", 5)
        threading.Timer(0.2, lambda: queue.notify("stop")).start()
        started = time.monotonic()
        queue.wait_for_work(listener, 10.0)
        assert time.monotonic() - started < 5.0


def test_idle_executions_and_running_children(queues: Queues) -> None:
    store, queue = queues.store, queues.queue()
    parent, child = new_id(), new_id()
    for execution_id, up in ((parent, None), (child, parent)):
        store.append(
            [
                Event(
                    execution_id=execution_id,
                    event_type=T.EXECUTION_START,
                    event_id=store.allocate_event_id(execution_id),
                    created_at=datetime.now(UTC).isoformat(),
                    node_name="pb",
                    node_type="playbook",
                    parent_execution_id=up,
                )
            ]
        )
    store.flush()
    assert {parent, child} <= set(queue.idle_executions())
    enqueue(queue, child, "a")
    idle = set(queue.idle_executions())
    assert parent in idle and child not in idle
    with queue.decision(parent) as decision:
        assert queue.running_children(decision, parent) == [child]
        assert queue.running_children(decision, child) == []
