"""Running one job of an execution on a worker: a step, or a chunk of an async iterator's items."""

from __future__ import annotations

import time
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.iteration.collection import WorkItem
from noetl.actions.iteration.item import ItemRunner
from noetl.actions.iteration.summary import Tally
from noetl.actions.registry import Registry
from noetl.actions.save.breaker import Breakers
from noetl.dsl.models import IteratorSpec, Playbook
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.items import items_done, run_events
from noetl.engine.planner import RunStep
from noetl.engine.state import COMPLETED, FAILED, ExecutionState
from noetl.runtime.credentials import CredentialResolver
from noetl.runtime.redact import Redactor
from noetl.runtime.scope import build_scope
from noetl.runtime.services import RunServices
from noetl.runtime.sink import EventSink, IdBlocks
from noetl.runtime.step_runner import StepRunner, StepSnapshot
from noetl.runtime.workload import protect, real_workload
from noetl.store.pg_queue import Job, PostgresQueue


class WorkerServices(RunServices):
    """RunServices whose finished items come from the log, and whose async iterators fan out as jobs."""

    def __init__(self, *args: Any, events: list[Event], worker: Any, job: Job, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events = events
        self.worker = worker
        self.job = job
        self.distribute = self._distribute

    def completed_items(self, step: str, attempt: int = 1) -> dict[int, Any]:
        """Items of this run of `step` that some attempt already finished: a retry or a redelivered job
        skips them (the rule is the engine's, shared with local runs)."""
        return items_done(self.events, step, self.job.run)

    def _distribute(
        self,
        runner: ItemRunner,
        spec: IteratorSpec,
        todo: list[WorkItem],
        tally: Tally,
        results: dict[int, Any],
    ) -> None:
        """Split the items into `concurrency` chunk jobs that any worker may lease; help run them here,
        wait for all, then rebuild the tally and results from the log (the chunks ran elsewhere)."""
        ctx = runner.ctx
        size = max(1, -(-len(todo) // spec.concurrency))
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        queue = PostgresQueue(self.worker.store)
        with self.worker.store.connection() as conn, conn.transaction():
            for number, chunk in enumerate(chunks):
                payload = {
                    "items": [[w.index, w.value] for w in chunk],
                    "iterator_event_id": runner.iterator_event_id,
                    "action_event_id": ctx.parent_event_id,
                    "count": runner.count,
                    "attempt": ctx.attempt,
                }
                queue.enqueue(
                    conn,
                    ctx.execution_id,
                    ctx.step,
                    self.job.run,
                    ctx.attempt,
                    kind="chunk",
                    chunk=number,
                    payload=payload,
                )
        self.sink.store.flush()
        while True:
            done, dead, total = queue.chunk_status(ctx.execution_id, ctx.step, self.job.run, ctx.attempt)
            if done + dead >= total:
                break
            stolen = queue.lease(self.worker.worker_id, 1, execution_id=ctx.execution_id, step=ctx.step)
            if stolen:
                self.worker.run_leased(stolen[0])
            else:
                time.sleep(0.05)
        _rebuild(self.worker.store.read(ctx.execution_id), runner, todo, tally, results)


def _rebuild(
    events: list[Event], runner: ItemRunner, todo: list[WorkItem], tally: Tally, results: dict[int, Any]
) -> None:
    wanted = {w.index for w in todo}
    seen: set[int] = set()
    for e in events:
        if e.parent_event_id != runner.iterator_event_id or e.current_index not in wanted:
            continue
        index = e.current_index
        if e.event_type == T.ITERATION_COMPLETED and index not in seen:
            seen.add(index)
            results[index] = e.result
            tally.ok(e.duration or 0.0, int((e.meta or {}).get("rows", 0)))
        elif e.event_type == T.ITERATION_FAILED and index not in seen:
            seen.add(index)
            if e.status == "SKIPPED":
                tally.skip()
            else:
                tally.fail(index, e.duration or 0.0, e.error or "")
    for item in todo:  # items of a chunk that died for good never got an end event: say so now
        if item.index not in seen:
            runner.lost(item, "its chunk job was abandoned after its last try")


def build_services(
    worker: Any,
    playbook: Playbook,
    state: ExecutionState,
    events: list[Event],
    job: Job,
    actions: Registry,
    storages: Registry,
    breakers: Breakers,
) -> WorkerServices:
    store = worker.store
    redactor = Redactor()
    workload = real_workload(state, store)  # read once per job: the sealed form is a store read
    protect(redactor, workload, shown=state.workload)
    sink = EventSink(
        store,
        job.execution_id,
        parent_execution_id=state.parent_execution_id,
        redactor=redactor,
        allocate=IdBlocks(store, job.execution_id),
        meta_defaults={"worker_id": worker.worker_id},
    )
    services = WorkerServices(
        worker.child_runner,
        playbook,
        sink,
        CredentialResolver(store, redactor),
        actions,
        storages,
        breakers,
        events=events,
        worker=worker,
        job=job,
    )
    services.workload = workload
    return services


def run_step_job(
    worker: Any, job: Job, playbook: Playbook, state: ExecutionState, events: list[Event]
) -> None:
    step = state.step(job.step)
    if step.runs > job.run or (
        step.runs == job.run and (step.status in (COMPLETED, FAILED) or step.attempt > job.attempt)
    ):
        return  # this decision was already carried out (a redelivered job): nothing to do twice
    services = build_services(
        worker, playbook, state, events, job, worker.actions, worker.storages, worker.breakers
    )
    first = job.attempt == 1 and step.runs < job.run
    edge_data = list(state.triggers.get(job.step, [])) if first else list(step.edge_data)
    started = next(
        (e for e in reversed(run_events(events, job.step, job.run)) if e.event_type == T.STEP_STARTED), None
    )
    snap = StepSnapshot(
        build_scope(state, services.workload, services.unseal),
        edge_data,
        started.created_at if started else "",
        started.event_id if started else None,
    )
    StepRunner(playbook, services, worker.actions).run(RunStep(job.step, job.attempt, job.run), snap)
    worker.store.flush()


def run_chunk_job(
    worker: Any, job: Job, playbook: Playbook, state: ExecutionState, events: list[Event]
) -> None:
    """Run a slice of an iterator's items sequentially, with the same item code as a local run."""
    step = playbook.steps[job.step]
    spec = step.task.iterator
    if spec is None:
        return
    services = build_services(
        worker, playbook, state, events, job, worker.actions, worker.storages, worker.breakers
    )
    payload = job.payload
    ctx = ActionContext(
        execution_id=job.execution_id,
        step=job.step,
        task=step.task,
        config={},
        inputs=None,
        scope=build_scope(state, services.workload, services.unseal),
        services=services,
        attempt=int(payload["attempt"]),
        parent_event_id=payload["action_event_id"],
        node_id=job.step,
    )
    done = services.completed_items(job.step, int(payload["attempt"]))
    runner = ItemRunner(ctx, spec, int(payload["count"]), int(payload["iterator_event_id"]), Tally(0))
    for index, value in payload["items"]:
        if index in done:
            continue
        if spec.on_error == "fail" and _failed_already(worker.store, job, int(payload["iterator_event_id"])):
            runner.skip(WorkItem(index, value), "an item failed and on_error is fail")
            continue
        runner.run(WorkItem(index, value))
    worker.store.flush()


def _failed_already(store: Any, job: Job, iterator_event_id: int) -> bool:
    with store.connection() as conn:
        row = conn.execute(
            "SELECT 1 FROM noetl_events WHERE execution_id = %s AND parent_event_id = %s AND event_type = %s "
            "AND status = 'FAILED' LIMIT 1",
            (job.execution_id, iterator_event_id, T.ITERATION_FAILED),
        ).fetchone()
    return row is not None
