"""Running one job of an execution on a worker: a step, or a chunk of an async iterator's items."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noetl.actions import iterator_action
from noetl.actions.base import ActionContext, Awaiting
from noetl.actions.deadlines import StepTimeout, timeout_message
from noetl.actions.iteration.collection import WorkItem
from noetl.actions.iteration.fanout import FannedOut, FanOut
from noetl.actions.iteration.item import ItemRunner
from noetl.actions.iteration.summary import Tally, breach_of
from noetl.dsl.models import IteratorSpec, Playbook
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.items import ITEM_LOG_TYPES, items_done, run_events
from noetl.engine.planner import RunStep
from noetl.engine.state import COMPLETED, FAILED, RUNNING, ExecutionState
from noetl.errors import ActionError, CredentialError
from noetl.runtime import broker, control
from noetl.runtime.credentials import CredentialResolver
from noetl.runtime.redact import Redactor
from noetl.runtime.scope import build_scope
from noetl.runtime.services import RunServices
from noetl.runtime.sink import EventSink, IdBlocks
from noetl.runtime.step_runner import StepRunner, StepSnapshot, seconds_since, take_snapshot
from noetl.runtime.subplaybooks import catalog_path_of, child_result
from noetl.runtime.workload import protect, real_workload
from noetl.store.ports import Job
from noetl.store.views_sql import EventFilter

# How many chunks a fan-out makes per slot of its `concurrency`: more chunks than slots, so that a
# worker that finishes early takes the next one (rebalancing), few enough that per-job costs stay small.
CHUNKS_PER_SLOT = 4
# How often a chunk asks how many items failed on other workers (the failure policy is shared): often
# enough that `on_error: fail` stops the other chunks within a fraction of a second, rare enough that it
# is not a query per item.
POLICY_CHECK_SECONDS = 0.2
# The `chunk` of an attempt's deadline job (jobs are unique by execution, step, run, attempt, chunk;
# -1 is the step's job, -2 a child's join, 0 and up the chunks).
DEADLINE_CHUNK = -3
_ALL = 2**62  # no page limit: every matching event


class WorkerServices(RunServices):
    """RunServices whose finished items come from the log, and whose async iterators fan out as jobs."""

    def __init__(self, *args: Any, worker: Any, job: Job, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker = worker
        self.job = job
        self.distribute = self._distribute
        self._logs: dict[str, list[Event]] = {}

    def item_log(self, step: str) -> list[Event]:
        """The events of `step` that say which of its items ended (engine.items.ITEM_LOG_TYPES), read
        once and only by a job that needs them (a retry, a redelivered chunk, the join); the job's state
        comes from the workflow events alone (see Worker.run_leased). Not the whole log: the join of a
        20,000-item iterator spent 0.8 s decoding it, the item starts included, while every chunk waited."""
        if step not in self._logs:
            which = EventFilter(types=ITEM_LOG_TYPES, node_name=step)
            self._logs[step] = self.worker.store.query_events(self.job.execution_id, which, limit=_ALL)
        return self._logs[step]

    def completed_items(self, step: str, attempt: int = 1) -> dict[int, Any]:
        """Items of this run of `step` that some attempt already finished: a retry or a redelivered job
        skips them (the rule is the engine's, shared with local runs)."""
        return items_done(self.item_log(step), step, self.job.run)

    def attempt_items(self, step: str, iterator_event_id: int) -> list[Event]:
        """The item end events of one iterator attempt (its `iterator_started` id), in log order."""
        ends = (T.ITERATION_COMPLETED, T.ITERATION_FAILED)
        return [
            e
            for e in run_events(self.item_log(step), step, self.job.run)
            if e.parent_event_id == iterator_event_id and e.event_type in ends
        ]

    def run_playbook(self, path: str, data: Any, return_step: str | None, ctx: ActionContext) -> Any:
        """A sub-playbook runs as an execution of its own, through the queue like any other. A step's:
        this job ends (Awaiting) and frees its slot; when the child ends, the broker queues the join of
        this step, which returns the child's result. An iterator item's or a workbook entry's: this job
        waits for it parked (Worker.waiting), its slot free for other jobs, the child's included.

        A child found as a file (an absolute `path`) is read here, the only host sure to have it, and its
        text is sealed beside the child's log for the workers that run its steps (control.start_execution).
        It runs inside this job instead only when the store has no key to seal with (NOETL_SECRET_KEY),
        and an item's child does when this worker parks as many jobs as it may (Worker.can_park)."""
        runner = self.worker.child_runner
        depth = self.depth + 1
        runner.check_depth(path, depth)
        child = runner.find_playbook(path, self)
        origin = _origin(child)
        step = self.playbook.steps.get(ctx.step)
        try:
            if ctx.index is not None or step is None or ctx.task is not step.task:
                if not self.worker.can_park():
                    return super().run_playbook(path, data, return_step, ctx)
                return self._wait_for_child(path, origin, data, return_step, ctx, depth)
            return self._start_child(path, origin, data, return_step, ctx, depth)
        except CredentialError:
            if "file" not in origin:
                raise
            # No key to seal the file's text with (NOETL_SECRET_KEY): only this job can read the file.
            return super().run_playbook(path, data, return_step, ctx)

    def _start_child(
        self,
        path: str,
        origin: dict[str, Any],
        data: Any,
        return_step: str | None,
        ctx: ActionContext,
        depth: int,
    ) -> Any:
        """A step's child: started (or an earlier attempt's adopted), then this job ends (Awaiting)."""
        store = self.worker.store
        # This attempt's action_started is durable before the child can end: the broker, waking the
        # parent when the child ends, must see this step running.
        store.flush()
        run, attempt = self.job.run, ctx.attempt
        adopted = _child_to_adopt(store, ctx.execution_id, ctx.step, run, attempt)
        if adopted is None:
            adopted = self._start_execution(
                ctx,
                data,
                depth,
                origin,
                execution_id=child_execution_id(ctx.execution_id, ctx.step, run, attempt),
                parent_step={"step": ctx.step, "run": run},
            )
        record = store.execution(adopted)
        if record is not None and record.status in ("COMPLETED", "FAILED"):
            return child_result(store, path, adopted, record.status, record.error, record.result, return_step)
        raise Awaiting()

    def _wait_for_child(
        self,
        path: str,
        origin: dict[str, Any],
        data: Any,
        return_step: str | None,
        ctx: ActionContext,
        depth: int,
    ) -> Any:
        """An item's (or an entry's) child, started through the queue and waited for parked. A job run
        again (its worker died) finds the child an earlier holder started and waits for it, or takes its
        result if it completed meanwhile, so the child's work is not done twice. A child this holder
        started itself (a `retry` of the item's task) is not reused: the item runs it again, as a local
        run does; nor is a child that failed."""
        store = self.worker.store
        caller = f"{ctx.step}/{self.job.run}/" + (
            f"item {ctx.index}" if ctx.index is not None else ctx.node_id
        )
        called_by = self.called_by(ctx)
        child_id, adopted = _item_child(store, ctx.execution_id, caller, called_by)
        if not adopted:
            self._start_execution(ctx, data, depth, origin, execution_id=child_id, called_by=called_by)
        # A timed attempt that runs out cancels the child, as a local run does (LocalRunner.run_child).
        interrupts = ctx.interrupts
        reason = f"its parent step '{ctx.step}' timed out"

        def cancel_child() -> None:
            broker.cancel(store, child_id, reason)

        hook = interrupts.add(cancel_child) if interrupts is not None else None
        try:
            with self.worker.waiting(self.job):
                record = _ended(store, child_id)
        finally:
            if interrupts is not None and hook is not None:
                interrupts.remove(hook)
        return child_result(store, path, child_id, record.status, record.error, record.result, return_step)

    def _start_execution(
        self, ctx: ActionContext, data: Any, depth: int, origin: dict[str, Any], **link: Any
    ) -> str:
        """A child execution of this job's, through the queue; `link` says which step or item it is."""
        return control.start_execution(
            self.worker.store,
            parameters=data if isinstance(data, dict) else {},
            merge=True,
            parent_execution_id=ctx.execution_id,
            redactor=self.sink.redactor,
            depth=depth,
            **origin,
            **link,
        )

    def keep_deadline(self, step: str, run: int, attempt: int, at: float, seconds: float) -> None:
        """Queue the attempt's deadline job, run at `at`: if the attempt still waits for its chunks or its
        child then, it fails with reason timeout (run_deadline_job)."""
        queue = self.worker.queue
        with queue.decision(self.job.execution_id) as decision:
            queue.enqueue(
                decision,
                self.job.execution_id,
                step,
                run,
                attempt,
                kind="deadline",
                chunk=DEADLINE_CHUNK,
                not_before=at,
                payload={"timeout": seconds},
            )

    def called_by(self, ctx: ActionContext) -> dict[str, Any]:
        """A child names the job (and which try of it) that started it: if the job's lease expires, the
        broker closes the children it ran inside itself (broker.close_abandoned_children), and the
        next holder of the job tells its own children from an earlier holder's (_item_child)."""
        return {**super().called_by(ctx), "job": self.job.job_id, "try": self.job.tries}

    def _distribute(self, runner: ItemRunner, spec: IteratorSpec, todo: list[WorkItem], fan: FanOut) -> None:
        """Send the items out as chunk jobs that any worker may lease, then end this job: the step's
        slot is free while they run, and the last chunk to end enqueues the join (the queue's settle)."""
        per_chunk = max(1, -(-len(todo) // (spec.concurrency * CHUNKS_PER_SLOT)))
        payloads = [
            {**fan.payload(), "items": [[w.index, w.value] for w in todo[i : i + per_chunk]]}
            for i in range(0, len(todo), per_chunk)
        ]
        store = self.worker.store
        # iterator_started is committed before any chunk can be leased: in commit order (seq) the
        # items' events come after it, whichever worker writes them.
        store.flush()
        group = {"execution_id": runner.ctx.execution_id, "step": runner.ctx.step, "run": self.job.run}
        with self.worker.queue.decision(runner.ctx.execution_id) as decision:
            self.worker.queue.enqueue_chunks(
                decision, {**group, "attempt": fan.attempt}, payloads, spec.concurrency
            )
        raise FannedOut()


def build_services(
    worker: Any, playbook: Playbook, state: ExecutionState, job: Job, ids: int = 8
) -> WorkerServices:
    """`ids`: the first block of event ids to reserve (a chunk knows roughly how many it will write)."""
    store = worker.store
    redactor = Redactor()
    workload = real_workload(state, store)  # read once per job: the sealed form is a store read
    protect(redactor, workload, shown=state.workload)
    sink = EventSink(
        store,
        job.execution_id,
        parent_execution_id=state.parent_execution_id,
        redactor=redactor,
        allocate=IdBlocks(store, job.execution_id, first=ids),
        meta_defaults={"worker_id": worker.worker_id},
    )
    services = WorkerServices(
        worker.child_runner,
        playbook,
        sink,
        CredentialResolver(store, redactor),
        worker.actions,
        worker.storages,
        worker.breakers,
        worker=worker,
        job=job,
    )
    services.workload = workload
    return services


def child_execution_id(parent: str, step: str, run: int, attempt: int) -> str:
    """The id of the child a step's attempt starts: derived, so that a retry of an abandoned attempt
    finds the child it started instead of starting another."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"noetl:{parent}/{step}/{run}/{attempt}"))


def _child_to_adopt(store: Any, parent: str, step: str, run: int, attempt: int) -> str | None:
    """The child this attempt should wait for: its own, or an earlier attempt's that did not fail (the
    attempt was abandoned by a dead worker while its child ran on). A failed child is not adopted: a
    retry runs the child again."""
    for earlier in range(attempt, 0, -1):
        record = store.execution(child_execution_id(parent, step, run, earlier))
        if record is not None:
            return None if record.status == "FAILED" and earlier < attempt else record.execution_id
    return None


def _item_child(store: Any, parent: str, caller: str, called_by: dict[str, Any]) -> tuple[str, bool]:
    """The child `caller` (step, run and item or entry) waits for now, and whether it exists already:
    one an earlier holder of the job started, running or completed (its holder died before the item
    ended). Otherwise the id of a new child. The n-th child of a caller has a derived id, so a job run
    again finds the children of the holders before it."""
    for n in itertools.count(1):
        child_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"noetl:{parent}/{caller}/{n}"))
        record = store.execution(child_id)
        if record is None:
            return child_id, False
        if record.status == "RUNNING":
            return child_id, True
        if record.status == "COMPLETED":
            start = store.read_workflow(child_id)[:1]
            theirs = (start[0].context or {}).get("called_by") if start else None
            if isinstance(theirs, dict) and (theirs.get("job"), theirs.get("try")) != (
                called_by.get("job"),
                called_by.get("try"),
            ):
                return child_id, True  # completed for an earlier holder: its result is the item's
    raise AssertionError("unreachable")


# How often a parked job reads whether the child it waits for has ended, at most: an item learns of its
# child's end at most this late (a primary-key read each time, a few per parked job and second).
CHILD_POLL_SECONDS = 0.1


def _ended(store: Any, execution_id: str) -> Any:
    """The record of an execution once it has ended, read every 10 ms at first (most children of an
    item are short), then every CHILD_POLL_SECONDS."""
    pause = 0.01
    while True:
        record = store.execution(execution_id)
        if record is not None and record.status in ("COMPLETED", "FAILED"):
            return record
        time.sleep(pause)
        pause = min(pause * 1.5, CHILD_POLL_SECONDS)


def _origin(child: Playbook) -> dict[str, Any]:
    """Where the child's workers read it (control.start_execution's keywords): its catalog path and
    version, or, for a file, its text to seal beside its log."""
    catalog_path = catalog_path_of(child.source)
    if catalog_path is not None:
        _, _, version = child.source.rpartition("@")
        return {"path": catalog_path, "version": int(version) if version.isdigit() else None}
    return {"path": child.path, "file": (child.source, Path(child.source).read_text())}


def _snapshot(state: ExecutionState, events: list[Event], job: Job, services: RunServices) -> StepSnapshot:
    started = next(
        (e for e in reversed(run_events(events, job.step, job.run)) if e.event_type == T.STEP_STARTED), None
    )
    return take_snapshot(
        state,
        RunStep(job.step, job.attempt, job.run),
        (started.created_at, started.event_id) if started else ("", None),
        services,
        services.workload,
    )


def run_step_job(
    worker: Any, job: Job, playbook: Playbook, state: ExecutionState, events: list[Event]
) -> None:
    step = state.step(job.step)
    if step.runs > job.run or (
        step.runs == job.run and (step.status in (COMPLETED, FAILED) or step.attempt > job.attempt)
    ):
        return  # this decision was already carried out (a redelivered job): nothing to do twice
    services = build_services(worker, playbook, state, job)
    services.depth = int((events[0].context or {}).get("depth", 0))
    snap = _snapshot(state, events, job, services)
    StepRunner(playbook, services, worker.actions).run(RunStep(job.step, job.attempt, job.run), snap)
    worker.store.flush()


def run_join_job(
    worker: Any, job: Job, playbook: Playbook, state: ExecutionState, events: list[Event]
) -> None:
    """The attempt's other jobs have ended (every chunk of a fanned-out iterator, or the sub-playbook's
    execution): finish the action, then the step, with the events a run in one process writes."""
    step = state.step(job.step)
    if step.runs != job.run or step.status != RUNNING or step.attempt != job.attempt:
        return  # the attempt was abandoned, or this join already ran (a redelivered job)
    action_started = _action_started(events, job)
    if action_started is None:
        return  # nothing of this attempt was started: nothing to finish
    finish: Callable[[ActionContext], Any]
    if "child" in job.payload:
        child = str(job.payload["child"])
        record = worker.store.execution(child)
        task = playbook.steps[job.step].task

        def finish(ctx: ActionContext) -> Any:
            if record is None:
                raise ActionError(
                    f"the sub-playbook's execution {child} is not in the store", non_retryable=True
                )
            path = str(ctx.config.get("path", task.config.get("path")))
            return child_result(
                worker.store,
                path,
                child,
                record.status,
                record.error,
                record.result,
                ctx.config.get("return_step"),
            )
    else:
        fan = FanOut.of(job.payload)
        group = job.group

        def finish(ctx: ActionContext) -> Any:
            return iterator_action.finish(ctx, fan, lambda: worker.queue.chunk_items(group))

    _finish_attempt(worker, job, playbook, state, events, action_started, finish)


def _finish_attempt(
    worker: Any,
    job: Job,
    playbook: Playbook,
    state: ExecutionState,
    events: list[Event],
    action_started: Event,
    finish: Callable[[ActionContext], Any],
) -> None:
    """End an attempt whose action went on in other jobs: `finish` gives its result (or raises its
    failure), then the step runner writes what follows, as after an action in one process."""
    services = build_services(worker, playbook, state, job)
    services.depth = int((events[0].context or {}).get("depth", 0))
    StepRunner(playbook, services, worker.actions).join(
        RunStep(job.step, job.attempt, job.run),
        _snapshot(state, events, job, services),
        action_started.event_id,
        action_started.created_at,
        finish,
    )
    worker.store.flush()


def _action_started(events: list[Event], job: Job) -> Event | None:
    """The `action_started` of the job's attempt, in its run of the step."""
    return next(
        (
            e
            for e in reversed(run_events(events, job.step, job.run))
            if e.event_type == T.ACTION_STARTED and e.attempt == job.attempt
        ),
        None,
    )


def run_deadline_job(
    worker: Any, job: Job, playbook: Playbook, state: ExecutionState, events: list[Event]
) -> None:
    """An attempt with a `timeout` that went on in other jobs (its chunks, its child execution) and is
    still running at its deadline fails as a timed attempt in one process does: `action_error` with
    reason timeout and the same message, then its retry policy. Its chunks not done are cancelled (one
    that is running stops before its next item), and its child execution is cancelled."""
    step = state.step(job.step)
    if step.runs != job.run or step.status != RUNNING or step.attempt != job.attempt:
        return  # the attempt ended in time, or was abandoned: nothing to do
    action_started = _action_started(events, job)
    if action_started is None:
        return
    queue = worker.queue
    with queue.decision(job.execution_id) as decision:
        if queue.join_started(decision, job.group):
            return  # its work ended in time and its join is finishing the step now
        queue.cancel_fan_out(decision, job.group)
    seconds = float(job.payload["timeout"])
    child = _child_to_adopt(worker.store, job.execution_id, job.step, job.run, job.attempt)
    if child is not None:
        broker.cancel(worker.store, child, f"its parent step '{job.step}' timed out ({seconds:g} s)")
    elapsed = seconds_since(action_started.created_at) or seconds
    message = timeout_message(f"step '{job.step}'", seconds, elapsed)

    def finish(ctx: ActionContext) -> Any:
        raise StepTimeout(message)

    _finish_attempt(worker, job, playbook, state, events, action_started, finish)


def run_chunk_job(
    worker: Any, job: Job, playbook: Playbook, state: ExecutionState, events: list[Event]
) -> None:
    """Run a slice of an iterator's items sequentially, with the same item code as a local run."""
    step = playbook.steps[job.step]
    spec = step.task.iterator
    if spec is None:
        return
    services = build_services(worker, playbook, state, job, ids=min(1024, 4 * len(job.payload["items"]) + 2))
    services.depth = int((events[0].context or {}).get("depth", 0))
    fan = FanOut.of(job.payload)
    ctx = ActionContext(
        execution_id=job.execution_id,
        step=job.step,
        task=step.task,
        config={},
        inputs=None,
        scope=build_scope(state, services.workload, services.unseal, services.reveal),
        services=services,
        attempt=fan.attempt,
        parent_event_id=fan.action_event_id,
        node_id=job.step,
    )
    # A chunk's first try has nothing done (the fan-out sent only items not done before); a redelivered
    # chunk skips what its last holder finished, which only the items' events say.
    done = services.completed_items(job.step, fan.attempt) if job.tries > 1 else {}
    mine = Tally(0)
    runner = ItemRunner(ctx, spec, fan.total, fan.iterator_event_id, mine)
    policy = _SharedPolicy(worker.store, job.execution_id, spec, fan)
    lease = _Lease(worker, job)
    items = [WorkItem(index, value) for index, value in job.payload["items"] if index not in done]
    for position, item in enumerate(items):
        if lease.lost():
            # The chunk was cancelled (its attempt timed out) or handed to another worker: this attempt
            # writes nothing more here, as an abandoned attempt in one process does.
            return
        reason = policy.breach(mine.failed)
        if reason:
            for rest in items[position:]:
                runner.skip(rest, f"the iterator stopped ({reason})")
            worker.queue.hold_back(job.group)
            break
        runner.run(item)
    runner.close()
    worker.store.flush()


class _Lease:
    """Whether this worker still holds the chunk's job, asked at most every POLICY_CHECK_SECONDS (the
    heartbeat query, which also extends the lease)."""

    def __init__(self, worker: Any, job: Job) -> None:
        self.worker, self.job = worker, job
        self.checked = time.monotonic()

    def lost(self) -> bool:
        now = time.monotonic()
        if now - self.checked < POLICY_CHECK_SECONDS:
            return False
        self.checked = now
        return self.job.job_id not in self.worker.queue.heartbeat(self.worker.worker_id, [self.job.job_id])


class _SharedPolicy:
    """The iterator's failure policy (summary.breach) over the failures of every chunk of the attempt:
    the other workers' count is read at most every POLICY_CHECK_SECONDS, this chunk's own at once."""

    def __init__(self, store: Any, execution_id: str, spec: IteratorSpec, fan: FanOut) -> None:
        self.store, self.execution_id, self.spec, self.fan = store, execution_id, spec, fan
        # With `on_error: continue` and no threshold, failures never stop the iterator: nothing to ask.
        self.shared = (
            spec.on_error == "fail" or spec.max_failures is not None or spec.max_failure_ratio is not None
        )
        self.elsewhere = 0
        self.checked = 0.0

    def breach(self, failed_here: int) -> str | None:
        now = time.monotonic()
        if self.shared and (now - self.checked >= POLICY_CHECK_SECONDS or failed_here):
            self.checked = now
            # Committed failures of every chunk (this one's too, once written: hence max, not a sum).
            self.elsewhere = self.store.failed_items(self.execution_id, self.fan.iterator_event_id)
        return breach_of(self.spec, max(self.elsewhere, failed_here), self.fan.todo)
