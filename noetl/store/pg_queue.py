"""The job queue on PostgreSQL: enqueue, lease with SKIP LOCKED, heartbeat, complete, fail, reap.

Jobs are of three kinds: `step` (one attempt of a step), `chunk` (a slice of an async iterator's items)
and `join` (finishes an iterator step once its chunks have ended). A fan-out's chunks are `held` beyond
the step's `concurrency` and promoted one by one as others end (settle_chunks), so that there can be
many more chunks than worker slots, and work rebalances, without ever running more than `concurrency`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection
from psycopg.types.json import Jsonb

from noetl.store.ports import Job, Reaped
from noetl.store.sqlfiles import named_queries

CHANNEL = "noetl_jobs"
__all__ = ["CHANNEL", "Job", "PostgresQueue", "Reaped"]  # Job and Reaped live in ports


def _q(name: str) -> str:
    return named_queries("postgres", "queue.sql")[name]


class PostgresQueue:
    """A job is leased by exactly one worker at a time; a worker that stops heartbeating loses it."""

    def __init__(self, store: Any, lease_seconds: float = 30.0) -> None:
        self.store = store
        self.lease_seconds = lease_seconds

    def enqueue(
        self,
        conn: Connection[Any],
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
        """In the caller's transaction; None when that job exists already (a decision made twice).
        With `worker_id`, the job is leased to that worker at once (it runs it next)."""
        row = conn.execute(
            _q("enqueue"),
            {
                "execution_id": execution_id,
                "step": step,
                "run": run,
                "attempt": attempt,
                "chunk": chunk,
                "kind": kind,
                "payload": Jsonb(payload or {}),
                "not_before": not_before,
                "max_tries": max_tries,
                "worker": worker_id,
                "lease": self.lease_seconds,
            },
        ).fetchone()
        return int(row[0]) if row else None

    def complete_in(self, conn: Connection[Any], job: Job, worker_id: str) -> bool:
        """`complete` for a step or join job, in the caller's transaction (the broker's decision)."""
        return (
            conn.execute(_q("complete"), {"job_id": job.job_id, "worker": worker_id}).fetchone() is not None
        )

    def enqueue_chunks(
        self, conn: Connection[Any], group: dict[str, Any], payloads: Sequence[dict[str, Any]], window: int
    ) -> None:
        """In the caller's transaction: a fan-out's chunks, the first `window` ready, the rest held. One
        executemany (psycopg pipelines it): a fan-out of 32 chunks was 32 round trips under the
        execution's decision lock, before any chunk could start."""
        with conn.cursor() as cur:
            cur.executemany(
                _q("enqueue_chunk"),
                [
                    {
                        **group,
                        "chunk": number,
                        "payload": Jsonb({**payload, "window": window}),
                        "status": "queued" if number < window else "held",
                    }
                    for number, payload in enumerate(payloads)
                ],
            )

    def lease(self, worker_id: str, n: int) -> list[Job]:
        """Up to n ready jobs for this worker, oldest first."""
        if n <= 0:
            return []
        params = {"worker": worker_id, "lease": self.lease_seconds, "n": n}
        with self.store.connection() as conn:
            rows = conn.execute(_q("lease"), params).fetchall()
        return [Job(*r) for r in rows]

    def heartbeat(self, worker_id: str, job_ids: list[int]) -> set[int]:
        """Extend the leases; returns the jobs still held (a job missing here was lost to the reaper)."""
        if not job_ids:
            return set()
        with self.store.connection() as conn:
            rows = conn.execute(
                _q("heartbeat"), {"ids": job_ids, "worker": worker_id, "lease": self.lease_seconds}
            ).fetchall()
        return {int(r[0]) for r in rows}

    def complete(self, job: Job, worker_id: str) -> bool:
        """Done; a chunk's end also settles its fan-out (the next held chunk, or the join)."""
        with self.store.connection() as conn:
            if job.kind != "chunk":  # one statement: no transaction round trips on the step-to-step path
                return (
                    conn.execute(_q("complete"), {"job_id": job.job_id, "worker": worker_id}).fetchone()
                    is not None
                )
            with conn.transaction():
                conn.execute(_q("lock_chunks"), job.group)
                done = conn.execute(_q("complete"), {"job_id": job.job_id, "worker": worker_id}).fetchone()
                conn.execute(_q("settle_chunks"), job.group)
        return done is not None

    def fail(self, job: Job, worker_id: str, error: str, delay: float = 1.0) -> str | None:
        """Back to the queue after `delay`, or dead after its last try; the new status."""
        with self.store.connection() as conn, conn.transaction():
            if job.kind == "chunk":
                conn.execute(_q("lock_chunks"), job.group)
            row = conn.execute(
                _q("fail"),
                {"job_id": job.job_id, "worker": worker_id, "error": error[:2000], "delay": delay},
            ).fetchone()
            if job.kind == "chunk" and row is not None and row[1] == "dead":
                conn.execute(_q("settle_chunks"), job.group)
        return str(row[1]) if row else None

    def settle(self, group: dict[str, Any]) -> None:
        """Settle a fan-out whose chunk ended outside a worker (the reaper gave up on it)."""
        with self.store.connection() as conn, conn.transaction():
            conn.execute(_q("lock_chunks"), group)
            conn.execute(_q("settle_chunks"), group)

    def hold_back(self, group: dict[str, Any]) -> int:
        """The failure policy stopped the iterator: its chunks not yet started will not run."""
        with self.store.connection() as conn, conn.transaction():
            conn.execute(_q("lock_chunks"), group)
            return len(conn.execute(_q("hold_back_chunks"), group).fetchall())

    def cancel_fan_out(self, conn: Connection[Any], group: dict[str, Any]) -> int:
        """An abandoned attempt's chunks and join, in the caller's transaction."""
        return len(conn.execute(_q("cancel_fan_out"), group).fetchall())

    def chunk_items(self, group: dict[str, Any]) -> list[tuple[int, Any, str]]:
        """(index, value, status of its chunk) of every item a fan-out sent out, by index."""
        with self.store.connection() as conn:
            rows = conn.execute(_q("chunk_items"), group).fetchall()
        return [(int(r[0]), r[1], str(r[2])) for r in rows]

    def release(self, worker_id: str, job_ids: list[int]) -> int:
        """Give back jobs this worker leased but did not start (a clean shutdown)."""
        if not job_ids:
            return 0
        with self.store.connection() as conn:
            return len(conn.execute(_q("release"), {"ids": job_ids, "worker": worker_id}).fetchall())

    def reap_expired(self) -> list[Reaped]:
        """Leases past their deadline: chunks go back to the queue; whole steps end `expired`, and the
        broker records the abandoned attempt in the log and schedules the next one (see broker.abandon)."""
        with self.store.connection() as conn, conn.transaction():
            rows = conn.execute(_q("reap")).fetchall()
            if rows:
                conn.execute(_q("count_expiry"), {"n": len(rows)})
        return [Reaped(*r) for r in rows]

    def dead_job(
        self, conn: Connection[Any], execution_id: str, step: str, run: int, attempt: int
    ) -> tuple[int, str] | None:
        """(tries, last error) when that step's job was given up on, else None."""
        row = conn.execute(
            _q("dead_job"), {"execution_id": execution_id, "step": step, "run": run, "attempt": attempt}
        ).fetchone()
        return (int(row[0]), str(row[1] or "")) if row else None

    def open_jobs(self, conn: Connection[Any], execution_id: str) -> int:
        return int(conn.execute(_q("open_jobs"), {"execution_id": execution_id}).fetchone()[0])  # type: ignore[index]

    def cancel(self, conn: Connection[Any], execution_id: str) -> int:
        return len(conn.execute(_q("cancel"), {"execution_id": execution_id}).fetchall())

    def join_started(self, conn: Connection[Any], group: dict[str, Any]) -> bool:
        return bool(conn.execute(_q("join_started"), group).fetchone()[0])  # type: ignore[index]

    def drop_delayed(self, conn: Connection[Any], execution_id: str) -> int:
        return len(conn.execute(_q("drop_delayed"), {"execution_id": execution_id}).fetchall())

    @contextmanager
    def decision(self, execution_id: str) -> Iterator[Connection[Any]]:
        """A transaction holding the execution's lock: every decision for it (schedule, abandon, cancel)
        is taken inside one, so that two brokers deciding at once take turns."""
        with self.store.connection() as conn, conn.transaction():
            conn.execute(_q("lock_execution"), {"execution_id": execution_id})
            yield conn

    def requeue(self, conn: Connection[Any], job_id: int) -> None:
        """Hand a job whose step never started to another worker (in the caller's transaction)."""
        conn.execute(_q("requeue"), {"job_id": job_id})

    def running_children(self, conn: Connection[Any], execution_id: str) -> list[str]:
        return [
            str(r[0]) for r in conn.execute(_q("running_children"), {"execution_id": execution_id}).fetchall()
        ]

    def idle_executions(self) -> list[str]:
        """Running executions with no job held, queued or leased: nothing would wake them."""
        with self.store.connection() as conn:
            return [str(r[0]) for r in conn.execute(_q("idle_executions")).fetchall()]

    def notify(self, reason: str) -> None:
        """Wake the workers waiting in `wait_for_work` (a freed slot, a stop)."""
        with self.store.connection() as conn:
            conn.execute(_q("notify"), {"reason": reason})

    @contextmanager
    def listening(self) -> Iterator[Any]:
        """A connection LISTENing for queued jobs; pass it to `wait_for_work`."""
        with psycopg.connect(self.store.url, autocommit=True) as listener:
            listener.execute(f"LISTEN {CHANNEL}")
            yield listener

    @staticmethod
    def wait_for_work(listener: Any, timeout: float) -> None:
        """Sleep until a job is queued (NOTIFY) or `timeout` passes (a safety net)."""
        for _ in listener.notifies(timeout=timeout, stop_after=1):
            pass

    def live_workers(self) -> int | None:
        """Worker processes connected to this database now (their LISTEN sessions); None when sessions of
        other database roles are hidden from this one and none is seen (the count cannot be told)."""
        with self.store.connection() as conn:
            row = conn.execute(_q("listening_workers")).fetchone()
        listening, hidden = (int(row[0]), int(row[1])) if row else (0, 0)
        return None if hidden and not listening else listening

    def busy_workers(self) -> dict[str, int]:
        """worker id -> how many jobs it holds under a lease that has not expired."""
        with self.store.connection() as conn:
            return {str(w): int(n) for w, n in conn.execute(_q("busy_workers")).fetchall()}

    def open_depth(self) -> dict[str, int]:
        """Jobs not yet ended by state (queued, held, leased; 0 when none), without scanning ended ones."""
        with self.store.connection() as conn:
            found = {str(s): int(n) for s, n in conn.execute(_q("open_depth")).fetchall()}
        return {state: found.get(state, 0) for state in ("queued", "held", "leased")}

    def depth(self) -> dict[str, int]:
        with self.store.connection() as conn:
            return {str(s): int(n) for s, n in conn.execute(_q("depth")).fetchall()}

    def counters(self) -> dict[str, int]:
        with self.store.connection() as conn:
            return {str(k): int(v) for k, v in conn.execute(_q("counters")).fetchall()}
