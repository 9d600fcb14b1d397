"""The job queue on PostgreSQL: enqueue, lease with SKIP LOCKED, heartbeat, complete, fail, reap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from noetl.store.sqlfiles import named_queries

CHANNEL = "noetl_jobs"


def _q(name: str) -> str:
    return named_queries("postgres", "queue.sql")[name]


@dataclass(frozen=True)
class Job:
    job_id: int
    execution_id: str
    step: str
    run: int
    attempt: int
    chunk: int
    kind: str  # step | chunk
    payload: dict[str, Any]
    tries: int
    max_tries: int


@dataclass(frozen=True)
class Reaped:
    job_id: int
    execution_id: str
    step: str
    run: int
    attempt: int
    chunk: int
    kind: str
    worker_id: str | None
    status: str  # queued again, or dead


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
    ) -> int | None:
        """In the caller's transaction; None when that job exists already (a decision made twice)."""
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
            },
        ).fetchone()
        return int(row[0]) if row else None

    def lease(
        self, worker_id: str, n: int, *, execution_id: str | None = None, step: str | None = None
    ) -> list[Job]:
        """Up to n ready jobs (or only chunks of one iterator step) for this worker."""
        if n <= 0:
            return []
        params = {
            "worker": worker_id,
            "lease": self.lease_seconds,
            "n": n,
            "execution_id": execution_id,
            "step": step,
        }
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

    def complete(self, job_id: int, worker_id: str) -> bool:
        with self.store.connection() as conn:
            return (
                conn.execute(_q("complete"), {"job_id": job_id, "worker": worker_id}).fetchone() is not None
            )

    def fail(self, job_id: int, worker_id: str, error: str, delay: float = 1.0) -> str | None:
        """Back to the queue after `delay`, or dead after its last try; the new status."""
        with self.store.connection() as conn:
            row = conn.execute(
                _q("fail"), {"job_id": job_id, "worker": worker_id, "error": error[:2000], "delay": delay}
            ).fetchone()
        return str(row[1]) if row else None

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

    def chunk_status(self, execution_id: str, step: str, run: int, attempt: int) -> tuple[int, int, int]:
        """(done, dead, total) chunk jobs of one attempt of an iterator step."""
        with self.store.connection() as conn:
            row = conn.execute(
                _q("chunk_status"),
                {"execution_id": execution_id, "step": step, "run": run, "attempt": attempt},
            ).fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    def cancel(self, conn: Connection[Any], execution_id: str) -> int:
        return len(conn.execute(_q("cancel"), {"execution_id": execution_id}).fetchall())

    def depth(self) -> dict[str, int]:
        with self.store.connection() as conn:
            return {str(s): int(n) for s, n in conn.execute(_q("depth")).fetchall()}

    def counters(self) -> dict[str, int]:
        with self.store.connection() as conn:
            return {str(k): int(v) for k, v in conn.execute(_q("counters")).fetchall()}
