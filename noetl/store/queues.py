"""Which job queue a store has: the runtime asks here and never names an implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noetl.store.ports import JobQueue

if TYPE_CHECKING:  # mypy checks that both queues are JobQueues, with their own decision handles
    from psycopg import Connection

    from noetl.store.memory_queue import MemoryDecision, MemoryQueue
    from noetl.store.pg_queue import PostgresQueue

    def _both_are_queues(
        pg: PostgresQueue, memory: MemoryQueue
    ) -> tuple[JobQueue[Connection[Any]], JobQueue[MemoryDecision]]:
        return pg, memory


def queue_for(store: Any, lease_seconds: float = 30.0) -> JobQueue[Any]:
    """The store's own queue (`store.job_queue(lease_seconds)`: PostgreSQL's, shared by every process
    on that database), else the one in-process MemoryQueue of this store object (workers and brokers of
    this process only: tests and embedded use)."""
    make = getattr(store, "job_queue", None)
    if make is not None:
        queue: JobQueue[Any] = make(lease_seconds)
        return queue
    from noetl.store.memory_queue import memory_queue_of

    return memory_queue_of(store).with_lease(lease_seconds)


__all__ = ["JobQueue", "queue_for"]
