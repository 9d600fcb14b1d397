"""The store's ports: a few methods each, so that every backend (and every fake) is small."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from noetl.engine.events import Event
from noetl.store.views_sql import EventFilter, ExecutionFilter


@dataclass(frozen=True)
class ExecutionRecord:
    execution_id: str
    playbook_path: str
    status: str
    created_at: str
    finished_at: str | None = None
    parent_execution_id: str | None = None
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class CredentialRecord:
    name: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class CatalogEntry:
    path: str
    version: int
    name: str
    content: str
    created_at: str


class EventStore(Protocol):
    def append(self, events: Sequence[Event]) -> None:
        """Queue events for writing; they are durable once `flush` returns."""

    def flush(self) -> None:
        """Block until every appended event is committed; raise StoreError if any write failed."""

    def read(self, execution_id: str, after: int = 0) -> list[Event]:
        """The execution's stored events with `seq` above `after`, in commit order (see Event.seq)."""
        ...

    def read_workflow(self, execution_id: str, after: int = 0) -> list[Event]:
        """`read` restricted to the types fold() uses (engine.state.WORKFLOW_TYPES): the state of a large
        iterator's execution without reading its items' events."""
        ...

    def closed(self, execution_id: str) -> bool:
        """True once this store refused events of the execution because its terminal event was stored
        (a cancelled execution): the work still running for it must stop (noetl.store.sequencing)."""
        ...

    def last_event_id(self, execution_id: str) -> int: ...

    def allocate_event_id(self, execution_id: str) -> int:
        """One new event id of the execution: `reserve_event_ids(execution_id, 1)`."""
        ...

    def reserve_event_ids(self, execution_id: str, n: int) -> int:
        """Reserve `n` new event ids of the execution, unique across every process sharing the store;
        returns the last of them (the block is last - n + 1 .. last).

        Ids above every event already written (flushed), and never handed out twice. Writers that share an
        execution (broker, workers, control plane) must take their ids from here; only a sole local writer
        may number its own events, and must flush them before anyone reserves ids for that execution. Ids
        of different writers interleave: the order of the log is `seq`, given at commit.
        """

    def executions(self, limit: int = 50) -> list[ExecutionRecord]: ...

    def execution(self, execution_id: str) -> ExecutionRecord | None: ...

    def event_stats(self) -> list[tuple[Any, ...]]:
        """Every stored event counted by (event_type, status), with a duration histogram: the rollup the
        store keeps (noetl.store.event_stats), read by /metrics without scanning the log."""
        ...

    def fold_event_stats(self) -> None:
        """Bring the rollup up to date with the committed events, where the store keeps it after commit
        (PostgreSQL); the server calls it every few seconds so that a scrape has little left to fold."""
        ...


class LogViews(Protocol):
    """The reads behind the UI: pages and light rows, so that a large execution is never read whole."""

    def query_events(
        self, execution_id: str, f: EventFilter, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """Up to `limit` events matching `f` with seq > `after`, in commit order."""
        ...

    def last_seq(self, execution_id: str) -> int:
        """The seq of the last committed event: every smaller seq is committed (0: no events)."""
        ...

    def lane_events(self, execution_id: str, after: int = 0) -> list[Event]:
        """The events of views_sql.LANE_TYPES with seq > `after`, in commit order; step results left out."""
        ...

    def item_outcomes(self, execution_id: str, after: int = 0) -> list[tuple[Any, ...]]:
        """The items that ended, as rows of views_sql.OUTCOME_COLUMNS, in commit order."""
        ...

    def item_starts(self, execution_id: str, after: int, upto: int) -> dict[str, int]:
        """How many items of each step started with seq in (after, upto]."""
        ...

    def find_executions(self, f: ExecutionFilter, limit: int = 50, offset: int = 0) -> list[ExecutionRecord]:
        """Newest first, without their results."""
        ...

    def count_executions(self, f: ExecutionFilter) -> int: ...

    def execution_facts(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: {"children": count, "version": catalog version or None}}."""
        ...


class Credentials(Protocol):
    def put_credential(self, name: str, type_: str, data: dict[str, Any]) -> None: ...

    def get_credential(self, name: str) -> CredentialRecord | None: ...

    def seal(self, execution_id: str, name: str, value: Any) -> None:
        """Keep a value the log shows masked, encrypted, beside the log (never in events)."""
        ...

    def unseal(self, execution_id: str, name: str) -> Any:
        """A sealed value, or None."""
        ...

    def delete_credential(self, name: str) -> bool:
        """Remove a credential; False when there was none of that name."""
        ...

    def list_credentials(self) -> list[tuple[str, str]]:
        """(name, type) pairs; values are never listed."""


class Catalog(Protocol):
    def register(self, path: str, name: str, content: str) -> int: ...

    def register_if_changed(self, path: str, name: str, content: str) -> tuple[int, bool]:
        """(the latest version, True) when it holds this content (nothing written), else (a new
        version, False)."""
        ...

    def get_playbook(self, path: str, version: int | None = None) -> CatalogEntry | None: ...

    def list_playbooks(self) -> list[CatalogEntry]: ...


class Store(EventStore, LogViews, Credentials, Catalog, Protocol):
    url: str

    def close(self) -> None: ...


# ---- the job queue ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    job_id: int
    execution_id: str
    step: str
    run: int
    attempt: int
    chunk: int
    kind: str  # step | chunk | join
    payload: dict[str, Any]
    tries: int
    max_tries: int

    @property
    def group(self) -> dict[str, Any]:
        """The fan-out a chunk or join job belongs to: one attempt of one run of one step."""
        return _group(self)


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

    @property
    def group(self) -> dict[str, Any]:
        return _group(self)


def _group(job: Job | Reaped) -> dict[str, Any]:
    return {"execution_id": job.execution_id, "step": job.step, "run": job.run, "attempt": job.attempt}


Decision = TypeVar("Decision")  # a queue's decision handle: opaque to the runtime, which passes it back


class JobQueue(Protocol[Decision]):
    """The jobs workers lease (noetl.store.pg_queue on PostgreSQL, noetl.store.memory_queue in one
    process; noetl.store.queues.queue_for picks one). A job is leased by exactly one worker at a time;
    a lease ends when its worker completes or fails the job, or when it is not extended by a heartbeat
    and the reaper takes it back. Jobs are unique by (execution, step, run, attempt, chunk).

    The methods taking a `decision` run inside one: the handle `decision(execution_id)` yields, which
    holds the execution's lock for the with-block (every decision for an execution takes turns)."""

    def decision(self, execution_id: str) -> AbstractContextManager[Decision]:
        """Hold the execution's lock (and, where the queue has them, one transaction) for the block."""
        ...

    def enqueue(
        self,
        decision: Decision,
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
        """The new job's id; None when that job exists already. `not_before`: epoch seconds;
        `worker_id`: the job is leased to that worker at once."""
        ...

    def complete_in(self, decision: Decision, job: Job, worker_id: str) -> bool:
        """`complete` of a step or join job inside a decision; False when the worker no longer held it."""
        ...

    def enqueue_chunks(
        self, decision: Decision, group: dict[str, Any], payloads: Sequence[dict[str, Any]], window: int
    ) -> None:
        """A fan-out's chunks: the first `window` queued, the rest held until settled in."""

    def cancel_fan_out(self, decision: Decision, group: dict[str, Any]) -> int:
        """End an attempt's open chunks and join; how many."""
        ...

    def dead_job(
        self, decision: Decision, execution_id: str, step: str, run: int, attempt: int
    ) -> tuple[int, str] | None:
        """(tries, last error) when that step's (or join's) job was given up on, else None."""
        ...

    def open_jobs(self, decision: Decision, execution_id: str) -> int:
        """The execution's jobs held, queued or leased."""
        ...

    def cancel(self, decision: Decision, execution_id: str) -> int:
        """End the execution's open jobs; how many."""
        ...

    def drop_delayed(self, decision: Decision, execution_id: str) -> int:
        """Cancel the execution's step and deadline jobs queued for later (a retry's delay, an attempt's
        deadline): it ends without them."""
        ...

    def join_started(self, decision: Decision, group: dict[str, Any]) -> bool:
        """Whether the attempt's join job is running or done (its chunks or its child ended)."""
        ...

    def requeue(self, decision: Decision, job_id: int) -> None:
        """Queue a job again for any worker (its step never started)."""

    def running_children(self, decision: Decision, execution_id: str) -> list[str]:
        """The running executions whose parent is this one."""
        ...

    def lease(self, worker_id: str, n: int) -> list[Job]:
        """Up to n ready jobs (queued, available now) for this worker, oldest first."""
        ...

    def heartbeat(self, worker_id: str, job_ids: list[int]) -> set[int]:
        """Extend this worker's leases of these jobs; the ids it still holds."""
        ...

    def complete(self, job: Job, worker_id: str) -> bool:
        """Done; a chunk's end settles its fan-out. False when the worker no longer held it."""
        ...

    def fail(self, job: Job, worker_id: str, error: str, delay: float = 1.0) -> str | None:
        """Queued again after `delay`, or dead after its last try: the new status (None: not held)."""
        ...

    def settle(self, group: dict[str, Any]) -> None:
        """Promote held chunks into free slots; queue the join once every chunk has ended."""

    def hold_back(self, group: dict[str, Any]) -> int:
        """Cancel a fan-out's chunks not started yet (held or queued); how many."""
        ...

    def chunk_items(self, group: dict[str, Any]) -> list[tuple[int, Any, str]]:
        """(index, value, status of its chunk) of every item the fan-out sent, by index."""
        ...

    def reap_expired(self) -> list[Reaped]:
        """Leases past their deadline: chunks queued again (or dead after their last try), step and
        join jobs `expired`."""
        ...

    def idle_executions(self) -> list[str]:
        """Running executions with no job held, queued or leased."""
        ...

    def notify(self, reason: str) -> None:
        """Wake every `wait_for_work`."""

    def listening(self) -> AbstractContextManager[Any]:
        """A listener for queued jobs, to pass to `wait_for_work`."""
        ...

    def wait_for_work(self, listener: Any, timeout: float) -> None:
        """Return when a job was queued (or `notify` called) since the last wait, or after `timeout`."""

    def live_workers(self) -> int | None:
        """Workers listening now; None when that cannot be told."""
        ...

    def busy_workers(self) -> dict[str, int]:
        """worker id -> jobs it holds under a lease that has not expired."""
        ...

    def open_depth(self) -> dict[str, int]:
        """Jobs queued, held and leased (0 when none)."""
        ...

    def depth(self) -> dict[str, int]:
        """Jobs by status (only the statuses that have jobs)."""
        ...

    def counters(self) -> dict[str, int]:
        """Counters of the queue (lease_expiries)."""
        ...
