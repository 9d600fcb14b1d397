"""The broker: after events land, the same planner as `noetl run` decides what comes next.

Every decision for an execution is taken under the queue's lock on that execution (`queue.decision`),
and jobs are unique by (execution, step, run, attempt, chunk): two brokers deciding at once cannot
schedule a step twice, because the second one waits for the lock, then reads the first one's jobs and
events. The queue is the store's (noetl.store.queues.queue_for: its SQL is in noetl.store.pg_queue);
this module only decides.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from noetl.dsl.models import Playbook
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.orchestration import stopped_event
from noetl.engine.planner import Planner, RunStep
from noetl.engine.recovery import PlannedEvent, started_node_type
from noetl.engine.retry import RetryRequest, retry_target
from noetl.engine.state import PENDING, RUNNING, ExecutionState, fold
from noetl.errors import InputError
from noetl.runtime import orchestrator
from noetl.runtime.control import load_catalog_playbook, queue_drives, sealed_playbook
from noetl.runtime.sink import control_sink
from noetl.runtime.step_runner import seconds_since
from noetl.runtime.workflow_log import workflow_log
from noetl.store.ports import Job, JobQueue, Reaped
from noetl.store.queues import queue_for
from noetl.store.views_sql import ExecutionFilter

log = logging.getLogger("noetl.broker")
_MAX_ABANDONED_ATTEMPTS = 3  # a step whose worker dies this often fails instead of killing more workers
_MAX_CACHED = 512  # playbooks kept parsed; past this, file children's are dropped (_forget_sealed)
_playbooks: dict[tuple[str, int], Playbook] = {}
_planners: dict[int, Planner] = {}  # by id() of a cached playbook: both live as long as the process
_playbooks_lock = threading.Lock()


def playbook_of(store: Any, state: ExecutionState, events: list[Event]) -> Playbook:
    """The catalog playbook an execution was started with (cached: versions never change)."""
    context = events[0].context or {}
    sealed = bool(context.get("playbook_sealed"))  # a file child: its own text, per execution
    if sealed:
        key = (f"sealed:{events[0].execution_id}", 0)
    else:
        key = (str(context.get("path")), int(context.get("version") or 0))
    with _playbooks_lock:
        found = _playbooks.get(key)
    if found is None:
        if sealed:
            found = sealed_playbook(store, events[0].execution_id, context)
        else:
            found, _ = load_catalog_playbook(store, key[0], key[1] or None)
        with _playbooks_lock:
            if sealed and len(_playbooks) >= _MAX_CACHED:
                _forget_sealed()
            _playbooks[key] = found
    return found


def _forget_sealed() -> None:
    """File children are one playbook per execution: a long-lived process forgets theirs, and keeps
    the catalog's versions (a few per path, which every decision needs)."""
    for key in [k for k in _playbooks if k[0].startswith("sealed:")]:
        _planners.pop(id(_playbooks.pop(key)), None)


def planner_of(playbook: Playbook) -> Planner:
    """The planner of a cached playbook: its reachability tables are built once, not per decision."""
    with _playbooks_lock:
        found = _planners.get(id(playbook))
        # An id is only unique among live objects: a forgotten playbook's id may be a new one's now.
        if found is None or found.playbook is not playbook:
            found = _planners[id(playbook)] = Planner(playbook)
    return found


def _emit(store: Any, execution_id: str, parent: str | None, event_type: str, **fields: Any) -> None:
    control_sink(store, execution_id, parent).new(event_type, **fields)


def schedule(
    store: Any,
    execution_id: str,
    *,
    done: Job | None = None,
    worker_id: str | None = None,
    take: bool = True,
    lease: float = 30.0,
) -> Job | None:
    """Enqueue the execution's next steps, or end it, exactly once whoever calls.

    A worker whose job `done` just ended passes it and its `worker_id`: the job is completed in this
    same transaction, and (unless `take` is false: a stopping worker) the first step that may run now is
    leased to that worker and returned, so it runs on the slot the job frees; the others are queued for
    any worker."""
    queue = queue_for(store, lease)
    with queue.decision(execution_id) as conn:
        if done is not None and worker_id is not None:
            queue.complete_in(conn, done, worker_id)
        events = workflow_log.read(store, execution_id)
        if not events:
            return None
        state = fold(events)
        if state.finished or state.status == PENDING:
            return None
        if not queue_drives(events[0].context or {}):
            # Not the queue's: a child that a worker runs inside a job (an iterator item's sub-playbook)
            # is driven by that job's own runner; scheduling it here would run its steps twice.
            return None
        jobs = _Jobs(store, queue, conn, events[0], worker_id if take else None)
        finish = orchestrator.advance(
            store, execution_id, planner_of(playbook_of(store, state, events)), state, jobs
        )
        if finish is not None:
            return None
        running = [(name, s.runs, s.attempt) for name, s in state.steps.items() if s.status == RUNNING]
        failed = _fail_dead_jobs(store, queue, conn, state, jobs.waiting + running)
    if failed:
        schedule(store, execution_id)  # the step failure ends the execution now
    return jobs.taken


class _Jobs:
    """The queue's dispatcher, inside one decision (the execution's lock, `conn`): each command is a job,
    unique by (execution, step, run, attempt, chunk), so one already queued is not queued again. The
    first command that may run now is born leased to `worker_id` (the worker whose job just ended)."""

    def __init__(
        self, store: Any, queue: JobQueue[Any], conn: Any, start: Event, worker_id: str | None
    ) -> None:
        self.store = store
        self.queue = queue
        self.conn = conn
        self.start = start
        self.worker_id = worker_id
        self.taken: Job | None = None
        self.waiting: list[tuple[str, int, int]] = []  # commands whose job exists already

    def open_work(self) -> bool:
        return _still_running(self.queue, self.conn, self.start.execution_id)

    def dispatch(self, cmd: RunStep) -> None:
        to = self.worker_id if self.taken is None and cmd.not_before is None else None
        execution_id = self.start.execution_id
        job_id = self.queue.enqueue(
            self.conn, execution_id, cmd.step, cmd.run, cmd.attempt, not_before=cmd.not_before, worker_id=to
        )
        if job_id is None:
            self.waiting.append((cmd.step, cmd.run, cmd.attempt))
        elif to is not None:
            self.taken = Job(job_id, execution_id, cmd.step, cmd.run, cmd.attempt, -1, "step", {}, 1, 5)

    def write(self, planned: PlannedEvent) -> None:
        _emit(
            self.store,
            self.start.execution_id,
            self.start.parent_execution_id,
            planned.event_type,
            **planned.fields,
        )

    def ended(self) -> None:
        _wake_parent(self.store, self.queue, self.conn, self.start)


def _still_running(queue: JobQueue[Any], conn: Any, execution_id: str) -> bool:
    """The execution ends unless a job of it still runs (leased) or is part of a running step (a
    fan-out's held chunks, a join): those call schedule again when they end. A step job that waits for
    its delay (a retry) is dropped, as a local run drops the attempt it waits to start."""
    queue.drop_delayed(conn, execution_id)
    return queue.open_jobs(conn, execution_id) > 0


def _wake_parent(store: Any, queue: JobQueue[Any], conn: Any, start: Event) -> None:
    """A sub-playbook started by a step on a worker has ended: queue that step's join, which returns
    the child's result (or fails the step). Only while the parent step waits in the same run; a parent
    step waiting to retry finds the ended child itself when its next attempt starts."""
    waiting = (start.context or {}).get("parent_step")
    parent = start.parent_execution_id
    if not waiting or not parent:
        return
    state = fold(workflow_log.read(store, parent))
    step = state.steps.get(str(waiting.get("step")))
    if state.finished or step is None or step.runs != int(waiting.get("run", 0)) or step.status != RUNNING:
        return
    queue.enqueue(
        conn,
        parent,
        step.name,
        step.runs,
        step.attempt,
        kind="join",
        chunk=-2,
        payload={"child": start.execution_id},
    )


def _fail_dead_jobs(
    store: Any, queue: JobQueue[Any], conn: Any, state: ExecutionState, steps: list[tuple[str, int, int]]
) -> bool:
    """A step whose job was given up on (dead after its last try) fails, instead of hanging for ever."""
    failed = False
    for step, run, attempt in steps:
        dead = queue.dead_job(conn, state.execution_id, step, run, attempt)
        if dead is None:
            continue
        _emit(
            store,
            state.execution_id,
            state.parent_execution_id,
            T.STEP_FAILED,
            node_name=step,
            node_id=step,
            node_type="step",
            attempt=attempt,
            duration=0.0,
            meta={"reason": "job_dead"},
            error=f"the job of step '{step}' failed {dead[0]} times on workers and was given up: {dead[1]}",
        )
        failed = True
    if failed:
        store.flush()
    return failed


def abandon(store: Any, job: Reaped) -> None:
    """A worker lost the lease of a step's job (or of the join that finishes a fanned-out step): record
    the abandoned attempt, then schedule the next."""
    queue = queue_for(store)
    with queue.decision(job.execution_id) as conn:
        events = workflow_log.read(store, job.execution_id)
        state = fold(events)
        step = state.steps.get(job.step)
        started = step is not None and step.runs == job.run and step.status == RUNNING
        if state.finished or not started or step is None or step.attempt != job.attempt:
            # It never started (or already moved on): hand the same job to another worker.
            queue.requeue(conn, job.job_id)
            return
        # The attempt's chunks (if it fanned out) must not run beside the next attempt's.
        queue.cancel_fan_out(conn, job.group)
        lost = f"worker {job.worker_id} running it stopped answering (its lease expired)"
        message = (
            f"worker {job.worker_id} stopped answering (its lease expired) during attempt "
            f"{job.attempt}; the attempt was abandoned"
        )
        meta = {"reason": "lease_expired", "worker_id": job.worker_id}
        orchestrator.abandon(
            store,
            _Jobs(store, queue, conn, events[0], None),
            job.step,
            started_node_type(events, job.step),
            job.attempt,
            message,
            meta,
            give_up_after=_MAX_ABANDONED_ATTEMPTS,
        )
    close_abandoned_children(store, job.execution_id, lost, job.job_id)
    schedule(store, job.execution_id)


def cancel(store: Any, execution_id: str, reason: str) -> bool:
    queue = queue_for(store)
    with queue.decision(execution_id) as conn:
        events = workflow_log.read(store, execution_id)
        if not events or fold(events).finished:
            return False
        queue.cancel(conn, execution_id)
        start = events[0]
        jobs = _Jobs(store, queue, conn, start, None)
        orchestrator.cancel(store, jobs, start.node_name, start.node_id, start.created_at, reason)
        children = queue.running_children(conn, execution_id)
    for child in children:  # a cancelled parent's sub-playbooks are cancelled with it
        cancel(store, child, f"its parent execution {execution_id} was cancelled")
    return True


def close_abandoned_children(store: Any, parent: str, why: str, job_id: int | None = None) -> list[str]:
    """Sub-playbooks that ran inside a process that is gone (a local run's children; on a worker, an
    item's or a workbook entry's child run inside its job), closed with `execution_failed` (`meta.reason:
    abandoned`) when the work that ran them is taken up again: nothing else would ever end them. The
    work runs its child again as a new execution. `job_id`: only the children that job ran (other jobs
    of the parent may be running theirs). A child the queue drives (it has a catalog version) runs on
    without its parent's process and is left alone. Their own in-process children are closed with them."""
    closed: list[str] = []
    queue = queue_for(store)
    running = store.find_executions(ExecutionFilter(status="RUNNING", parent=parent), limit=10_000)
    for record in running:
        child = record.execution_id
        with queue.decision(child):
            events = workflow_log.read(store, child)
            if not events or fold(events).finished:
                continue
            context = events[0].context or {}
            called_by = context.get("called_by") or {}
            if queue_drives(context) or (job_id is not None and called_by.get("job") != job_id):
                continue
            end = stopped_event(
                events[0].node_name, events[0].node_id, "abandoned", why, seconds_since(events[0].created_at)
            )
            _emit(store, child, parent, end.event_type, **end.fields)
            store.flush()
        closed.append(child)
        closed += close_abandoned_children(store, child, f"its parent execution {parent} was abandoned")
    return closed


def reopen(store: Any, execution_id: str, request: RetryRequest) -> dict[str, Any]:
    """`noetl retry` on workers: under the execution's lock (two retries at once take turns, and the
    second finds it running), check the request against the whole log, append `execution_retry`, and
    schedule the step it runs again."""
    from noetl.runtime.control import playbook_of

    queue = queue_for(store)
    with queue.decision(execution_id):
        events = store.read(execution_id)
        if not events:
            raise InputError(f"execution {execution_id} not found; list executions with `noetl executions`")
        if not queue_drives(events[0].context or {}):
            raise InputError(
                f"execution {execution_id} ran from a file, not the catalog, so workers cannot run it; "
                "retry it with `noetl retry ID --db ...` where the playbook file is"
            )
        target = retry_target(events, playbook_of(store, events), request)
        meta = target.meta(request)
        _emit(
            store,
            execution_id,
            events[0].parent_execution_id,
            T.EXECUTION_RETRY,
            node_name=target.step,
            node_id=target.step,
            node_type="iterator",
            meta=meta,
        )
        store.flush()
    schedule(store, execution_id)
    return meta


def reap_once(store: Any) -> int:
    """Return expired leases to the queue (chunks) or record them as abandoned attempts (steps, joins)."""
    queue = queue_for(store)
    reaped = queue.reap_expired()
    for job in reaped:
        log.warning(
            "lease of worker %s on job %s (%s/%s) expired",
            job.worker_id,
            job.job_id,
            job.execution_id,
            job.step,
        )
        if job.kind in ("step", "join"):
            abandon(store, job)
            continue
        # A chunk (or a deadline) goes back to the queue; the children a chunk's items ran inside it
        # have no process now.
        lost = f"worker {job.worker_id} running it stopped answering (its lease expired)"
        close_abandoned_children(store, job.execution_id, lost, job.job_id)
        if job.kind == "chunk" and job.status == "dead":  # given up on: its fan-out may now be complete
            queue.settle(job.group)
    return len(reaped)


def sweep(store: Any) -> None:
    """Schedule running executions with no open job: a worker may have died between its events and
    its call to `schedule`, and nothing else would wake the execution."""
    for execution_id in queue_for(store).idle_executions():
        try:
            schedule(store, execution_id)
        except Exception:  # one execution's trouble must not end the pass for the others
            log.exception("sweeping execution %s failed", execution_id)


def run_broker_loop(store: Any, stop: threading.Event, interval: float = 1.0) -> None:
    """The server's background duty: reap expired leases every second; every five, sweep idle executions
    and fold the events committed since the last time into the /metrics rollup."""
    ticks = 0
    while not stop.wait(interval):
        try:
            reap_once(store)
            ticks += 1
            if ticks % 5 == 0:
                sweep(store)
                store.fold_event_stats()  # the /metrics rollup, off the writers' commit path
        except Exception:  # the loop must outlive a database restart; the next tick tries again
            log.exception("broker tick failed")


def queue_depth(store: Any) -> dict[str, int]:
    return queue_for(store).depth()


def lease_expiries(store: Any) -> int:
    return queue_for(store).counters().get("lease_expiries", 0)
