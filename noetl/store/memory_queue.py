"""The job queue in one process: the semantics of noetl.store.pg_queue (queue.sql), without a database.

For tests and embedded use: the broker, workers and the orchestrator run on it with any store (an
SQLite file will do), in one process. Every job lives in a dict under one lock; a `threading.Condition`
on that lock stands in for LISTEN/NOTIFY. A decision holds the execution's own re-entrant lock for its
with-block, and what it changed is undone if the block raises (as a transaction rolls back).

Times are epoch seconds (`time.time()`), as `not_before` is.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from noetl.store.ports import Job, Reaped
from noetl.store.views_sql import ExecutionFilter

OPEN = ("held", "queued", "leased")
_PAGE = 1000


@dataclass
class _Row:
    job_id: int
    execution_id: str
    step: str
    run: int
    attempt: int
    chunk: int
    kind: str
    payload: dict[str, Any]
    status: str = "queued"
    worker_id: str | None = None
    lease_until: float | None = None
    available_at: float = 0.0
    tries: int = 0
    max_tries: int = 5
    last_error: str | None = None

    @property
    def key(self) -> tuple[str, str, int, int, int]:
        return (self.execution_id, self.step, self.run, self.attempt, self.chunk)

    def job(self) -> Job:
        return Job(
            self.job_id,
            self.execution_id,
            self.step,
            self.run,
            self.attempt,
            self.chunk,
            self.kind,
            _json(self.payload),
            self.tries,
            self.max_tries,
        )

    def in_group(self, group: dict[str, Any]) -> bool:
        return (
            self.execution_id == group["execution_id"]
            and self.step == group["step"]
            and self.run == int(group["run"])
            and self.attempt == int(group["attempt"])
        )


class MemoryDecision:
    """The handle of one decision: which execution, and how to undo what it changed."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.undo: list[Callable[[], None]] = []


@dataclass
class _State:
    """What every MemoryQueue view of one queue shares."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: dict[int, _Row] = field(default_factory=dict)
    keys: dict[tuple[str, str, int, int, int], int] = field(default_factory=dict)
    open: set[int] = field(default_factory=set)  # ids of the held, queued and leased jobs
    next_id: int = 1
    counters: dict[str, int] = field(default_factory=dict)
    signals: int = 0  # how many times a job was queued (or notify called): LISTEN's notifications
    listeners: int = 0
    decisions: dict[str, threading.RLock] = field(default_factory=dict)
    wake: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.wake = threading.Condition(self.lock)


class _Listener:
    def __init__(self, seen: int) -> None:
        self.seen = seen


def _json(value: Any) -> Any:
    """A copy as JSONB would give it back (and a value JSON cannot hold fails here, as it would there)."""
    return json.loads(json.dumps(value))


class MemoryQueue:
    """A job is leased by exactly one worker at a time; a worker that stops heartbeating loses it.

    `store` is needed only by `running_children` and `idle_executions` (its public reads)."""

    def __init__(
        self, store: Any = None, lease_seconds: float = 30.0, *, _state: _State | None = None
    ) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self._s = _state or _State()

    def with_lease(self, lease_seconds: float) -> MemoryQueue:
        """The same queue, leasing for `lease_seconds`."""
        return MemoryQueue(self.store, lease_seconds, _state=self._s)

    # ---- rows (under the lock) -------------------------------------------------------------------

    def _put(self, row: _Row) -> None:
        """Store a row's new state; a row that becomes `queued` wakes the listeners (the trigger)."""
        s = self._s
        before = s.rows.get(row.job_id)
        s.rows[row.job_id] = row
        s.keys[row.key] = row.job_id
        if row.status in OPEN:
            s.open.add(row.job_id)
        else:
            s.open.discard(row.job_id)
        if row.status == "queued" and (before is None or before.status != "queued"):
            s.signals += 1
            s.wake.notify_all()

    def _change(self, decision: MemoryDecision | None, row: _Row, **changes: Any) -> None:
        old = replace(row)
        self._put(replace(row, **changes))
        if decision is not None:
            decision.undo.append(lambda: self._put(old))

    def _insert(self, decision: MemoryDecision | None, **fields: Any) -> int | None:
        s = self._s
        key = (fields["execution_id"], fields["step"], fields["run"], fields["attempt"], fields["chunk"])
        if key in s.keys:
            return None
        job_id = s.next_id
        s.next_id += 1
        fields.setdefault("available_at", time.time())
        self._put(_Row(job_id=job_id, **fields))
        if decision is not None:
            decision.undo.append(lambda: self._delete(job_id))
        return job_id

    def _delete(self, job_id: int) -> None:
        s = self._s
        row = s.rows.pop(job_id, None)
        if row is not None:
            s.keys.pop(row.key, None)
            s.open.discard(job_id)

    def _open_rows(self) -> list[_Row]:
        return [self._s.rows[i] for i in sorted(self._s.open)]

    def _chunks(self, group: dict[str, Any]) -> list[_Row]:
        return sorted(
            (r for r in self._s.rows.values() if r.kind == "chunk" and r.in_group(group)),
            key=lambda r: r.chunk,
        )

    def _settle(self, group: dict[str, Any]) -> None:
        """settle_chunks: promote held chunks into the free slots; the join once no chunk is left."""
        chunks = self._chunks(group)
        if not chunks:
            return
        running = sum(1 for r in chunks if r.status in ("queued", "leased"))
        held = [r for r in chunks if r.status == "held"]
        slots = max(int(r.payload.get("window", 1)) for r in chunks)
        for row in held[: max(slots - running, 0)]:
            self._change(None, row, status="queued")
        if running + len(held) == 0:
            payload = {k: v for k, v in chunks[0].payload.items() if k != "items"}
            self._insert(
                None,
                execution_id=group["execution_id"],
                step=group["step"],
                run=int(group["run"]),
                attempt=int(group["attempt"]),
                chunk=-2,
                kind="join",
                payload=payload,
            )

    def _held_by(self, job_id: int, worker_id: str) -> _Row | None:
        row = self._s.rows.get(job_id)
        return row if row is not None and row.worker_id == worker_id and row.status == "leased" else None

    # ---- in a decision ---------------------------------------------------------------------------

    @contextmanager
    def decision(self, execution_id: str) -> Iterator[MemoryDecision]:
        """Hold the execution's lock for the block (re-entrant in one thread); undo on an exception."""
        with self._s.lock:
            lock = self._s.decisions.setdefault(execution_id, threading.RLock())
        with lock:
            handle = MemoryDecision(execution_id)
            try:
                yield handle
            except BaseException:
                with self._s.lock:
                    for undo in reversed(handle.undo):
                        undo()
                raise

    def enqueue(
        self,
        decision: MemoryDecision,
        execution_id: str,
        step: str,
        run: int,
        attempt: int,
        *,
        kind: str = "step",
        chunk: int = -1,
        payload: dict[str, Any] | None = None,
        not_before: float | None = None,
        max_tries: int = 5,
        worker_id: str | None = None,
    ) -> int | None:
        now = time.time()
        with self._s.lock:
            return self._insert(
                decision,
                execution_id=execution_id,
                step=step,
                run=run,
                attempt=attempt,
                chunk=chunk,
                kind=kind,
                payload=_json(payload or {}),
                available_at=now if not_before is None else not_before,
                max_tries=max_tries,
                status="queued" if worker_id is None else "leased",
                worker_id=worker_id,
                lease_until=None if worker_id is None else now + self.lease_seconds,
                tries=0 if worker_id is None else 1,
            )

    def complete_in(self, decision: MemoryDecision, job: Job, worker_id: str) -> bool:
        with self._s.lock:
            row = self._held_by(job.job_id, worker_id)
            if row is not None:
                self._change(decision, row, status="done", lease_until=None)
            return row is not None

    def enqueue_chunks(
        self, decision: MemoryDecision, group: dict[str, Any], payloads: Sequence[dict[str, Any]], window: int
    ) -> None:
        with self._s.lock:
            for number, payload in enumerate(payloads):
                self._insert(
                    decision,
                    execution_id=group["execution_id"],
                    step=group["step"],
                    run=int(group["run"]),
                    attempt=int(group["attempt"]),
                    chunk=number,
                    kind="chunk",
                    payload=_json({**payload, "window": window}),
                    status="queued" if number < window else "held",
                )

    def cancel_fan_out(self, decision: MemoryDecision, group: dict[str, Any]) -> int:
        with self._s.lock:
            rows = [r for r in self._open_rows() if r.kind in ("chunk", "join") and r.in_group(group)]
            for row in rows:
                self._change(decision, row, status="cancelled")
            return len(rows)

    def dead_job(
        self, decision: MemoryDecision, execution_id: str, step: str, run: int, attempt: int
    ) -> tuple[int, str] | None:
        group = {"execution_id": execution_id, "step": step, "run": run, "attempt": attempt}
        with self._s.lock:
            for row in self._s.rows.values():
                if row.kind in ("step", "join") and row.status == "dead" and row.in_group(group):
                    return row.tries, row.last_error or ""
        return None

    def open_jobs(self, decision: MemoryDecision, execution_id: str) -> int:
        with self._s.lock:
            return sum(1 for r in self._open_rows() if r.execution_id == execution_id)

    def cancel(self, decision: MemoryDecision, execution_id: str) -> int:
        with self._s.lock:
            rows = [r for r in self._open_rows() if r.execution_id == execution_id]
            for row in rows:
                self._change(decision, row, status="cancelled")
            return len(rows)

    def drop_delayed(self, decision: MemoryDecision, execution_id: str) -> int:
        now = time.time()
        with self._s.lock:
            rows = [
                r
                for r in self._open_rows()
                if r.execution_id == execution_id
                and r.kind in ("step", "deadline")
                and r.status == "queued"
                and r.available_at > now
            ]
            for row in rows:
                self._change(decision, row, status="cancelled")
            return len(rows)

    def join_started(self, decision: MemoryDecision, group: dict[str, Any]) -> bool:
        with self._s.lock:
            return any(
                r.kind == "join" and r.status in ("leased", "done") and r.in_group(group)
                for r in self._s.rows.values()
            )

    def requeue(self, decision: MemoryDecision, job_id: int) -> None:
        with self._s.lock:
            row = self._s.rows.get(job_id)
            if row is not None:
                self._change(decision, row, status="queued", worker_id=None)

    def running_children(self, decision: MemoryDecision, execution_id: str) -> list[str]:
        return [
            r.execution_id for r in self._executions(ExecutionFilter(status="RUNNING", parent=execution_id))
        ]

    # ---- workers ---------------------------------------------------------------------------------

    def lease(self, worker_id: str, n: int) -> list[Job]:
        if n <= 0:
            return []
        now = time.time()
        leased: list[Job] = []
        with self._s.lock:
            for row in self._open_rows():
                if len(leased) >= n:
                    break
                if row.status == "queued" and row.available_at <= now:
                    self._change(
                        None,
                        row,
                        status="leased",
                        worker_id=worker_id,
                        tries=row.tries + 1,
                        lease_until=now + self.lease_seconds,
                    )
                    leased.append(self._s.rows[row.job_id].job())
        return leased

    def heartbeat(self, worker_id: str, job_ids: list[int]) -> set[int]:
        until = time.time() + self.lease_seconds
        held: set[int] = set()
        with self._s.lock:
            for job_id in job_ids:
                row = self._held_by(job_id, worker_id)
                if row is not None:
                    row.lease_until = until
                    held.add(job_id)
        return held

    def complete(self, job: Job, worker_id: str) -> bool:
        with self._s.lock:
            row = self._held_by(job.job_id, worker_id)
            if row is not None:
                self._change(None, row, status="done", lease_until=None)
            if job.kind == "chunk":
                self._settle(job.group)
            return row is not None

    def fail(self, job: Job, worker_id: str, error: str, delay: float = 1.0) -> str | None:
        with self._s.lock:
            row = self._held_by(job.job_id, worker_id)
            if row is None:
                return None
            status = "dead" if row.tries >= row.max_tries else "queued"
            self._change(
                None,
                row,
                status=status,
                available_at=time.time() + delay,
                last_error=error[:2000],
                worker_id=None,
                lease_until=None,
            )
            if job.kind == "chunk" and status == "dead":
                self._settle(job.group)
            return status

    def settle(self, group: dict[str, Any]) -> None:
        with self._s.lock:
            self._settle(group)

    def hold_back(self, group: dict[str, Any]) -> int:
        with self._s.lock:
            rows = [r for r in self._chunks(group) if r.status in ("held", "queued")]
            for row in rows:
                self._change(None, row, status="cancelled")
            return len(rows)

    def chunk_items(self, group: dict[str, Any]) -> list[tuple[int, Any, str]]:
        with self._s.lock:
            found = [
                (int(item[0]), _json(item[1]), row.status)
                for row in self._chunks(group)
                for item in row.payload.get("items", [])
            ]
        return sorted(found, key=lambda t: t[0])

    def release(self, worker_id: str, job_ids: list[int]) -> int:
        """Give back jobs this worker leased but did not start (a clean shutdown)."""
        with self._s.lock:
            rows = [r for r in (self._held_by(i, worker_id) for i in job_ids) if r is not None]
            for row in rows:
                self._change(
                    None, row, status="queued", tries=max(row.tries - 1, 0), worker_id=None, lease_until=None
                )
            return len(rows)

    def reap_expired(self) -> list[Reaped]:
        now = time.time()
        reaped: list[Reaped] = []
        with self._s.lock:
            for row in self._open_rows():
                if row.status != "leased" or row.lease_until is None or row.lease_until >= now:
                    continue
                if row.kind in ("step", "join"):
                    status = "expired"
                else:
                    status = "dead" if row.tries >= row.max_tries else "queued"
                self._change(
                    None,
                    row,
                    status=status,
                    last_error=f"lease of worker {row.worker_id or '?'} expired",
                    lease_until=None,
                )
                reaped.append(
                    Reaped(
                        row.job_id,
                        row.execution_id,
                        row.step,
                        row.run,
                        row.attempt,
                        row.chunk,
                        row.kind,
                        row.worker_id,
                        status,
                    )
                )
            if reaped:
                counters = self._s.counters
                counters["lease_expiries"] = counters.get("lease_expiries", 0) + len(reaped)
        return reaped

    def idle_executions(self) -> list[str]:
        running = [r.execution_id for r in self._executions(ExecutionFilter(status="RUNNING"))]
        with self._s.lock:
            busy = {r.execution_id for r in self._open_rows()}
        return [e for e in running if e not in busy]

    def _executions(self, f: ExecutionFilter) -> list[Any]:
        if self.store is None:
            return []
        found: list[Any] = []
        while True:
            page = self.store.find_executions(f, limit=_PAGE, offset=len(found))
            found += page
            if len(page) < _PAGE:
                return found

    # ---- waking workers --------------------------------------------------------------------------

    def notify(self, reason: str) -> None:
        with self._s.lock:
            self._s.signals += 1
            self._s.wake.notify_all()

    @contextmanager
    def listening(self) -> Iterator[_Listener]:
        with self._s.lock:
            self._s.listeners += 1
            listener = _Listener(self._s.signals)
        try:
            yield listener
        finally:
            with self._s.lock:
                self._s.listeners -= 1

    def wait_for_work(self, listener: Any, timeout: float) -> None:
        """Return at once when a job was queued since the listener's last wait, else wait for one."""
        s = self._s
        with s.lock:
            s.wake.wait_for(lambda: s.signals > listener.seen, timeout)
            listener.seen = s.signals

    # ---- figures ---------------------------------------------------------------------------------

    def live_workers(self) -> int | None:
        with self._s.lock:
            return self._s.listeners

    def busy_workers(self) -> dict[str, int]:
        now = time.time()
        busy: dict[str, int] = {}
        with self._s.lock:
            for row in self._open_rows():
                if row.status == "leased" and row.worker_id is not None and (row.lease_until or 0) > now:
                    busy[row.worker_id] = busy.get(row.worker_id, 0) + 1
        return dict(sorted(busy.items()))

    def open_depth(self) -> dict[str, int]:
        with self._s.lock:
            rows = self._open_rows()
        return {state: sum(1 for r in rows if r.status == state) for state in ("queued", "held", "leased")}

    def depth(self) -> dict[str, int]:
        found: dict[str, int] = {}
        with self._s.lock:
            for row in self._s.rows.values():
                found[row.status] = found.get(row.status, 0) + 1
        return found

    def counters(self) -> dict[str, int]:
        with self._s.lock:
            return dict(self._s.counters)


_queues: weakref.WeakKeyDictionary[Any, MemoryQueue] = weakref.WeakKeyDictionary()
_queues_lock = threading.Lock()


def memory_queue_of(store: Any) -> MemoryQueue:
    """The one in-process queue of a store that has no queue of its own (made on first use)."""
    with _queues_lock:
        found = _queues.get(store)
        if found is None:  # a proxy: the queue must not keep its store (its key here) alive
            found = _queues[store] = MemoryQueue(weakref.proxy(store))
        return found
