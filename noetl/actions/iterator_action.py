"""The iterator action: run the nested task (and its save) for every item, sequentially or concurrently.

Failure policy (PLAYBOOK.md): with `on_error: fail` the first failed item fails the step; items already
running finish and are recorded, no new ones start, and each item not run gets an `iteration_failed`
event with status SKIPPED, so completed + failed always equals `iterator_started.meta.count`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.iteration import collection
from noetl.actions.iteration.fanout import FanOut
from noetl.actions.iteration.item import ItemRunner
from noetl.actions.iteration.summary import Tally, breach
from noetl.dsl.models import IteratorSpec
from noetl.engine.events import EventType as T
from noetl.errors import ActionError


def run(ctx: ActionContext) -> Any:
    spec = ctx.task.iterator
    if spec is None:
        raise ActionError(f"step '{ctx.step}' is an iterator without a task", non_retryable=True)
    work = collection.resolve(spec, ctx.config.get("collection"), ctx.scope, ctx.step)
    # Items an earlier attempt, a resumed run or another worker finished stay finished.
    done_before = ctx.services.completed_items(ctx.step, ctx.attempt)
    todo = [w for w in work if w.index not in done_before]
    base = {"node_name": ctx.step, "node_id": ctx.step, "node_type": "iterator", "attempt": ctx.attempt}
    started = ctx.sink.new(
        T.ITERATOR_STARTED,
        parent_event_id=ctx.parent_event_id,
        context={"element": spec.element},
        meta={
            "count": len(todo),
            "total": len(work),
            "resumed": len(work) - len(todo),
            "mode": spec.mode,
            "concurrency": spec.concurrency if spec.mode == "async" else 1,
            "chunk": spec.chunk,
            "on_error": spec.on_error,
        },
        **base,
    )
    tally = Tally(count=len(todo))
    runner = ItemRunner(ctx, spec, len(work), started.event_id, tally)
    t0 = time.monotonic()
    results: dict[int, Any] = dict(done_before)
    distribute = getattr(ctx.services, "distribute", None)  # workers fan async items out as chunk jobs
    if spec.mode == "async" and len(todo) > 1 and distribute is not None:
        fan = FanOut(
            started.event_id, ctx.parent_event_id or 0, len(work), len(todo), ctx.attempt, started.created_at
        )
        distribute(runner, spec, todo, fan)  # raises FannedOut: a join job calls finish() later
    elif spec.mode == "async" and len(todo) > 1:
        _run_async(runner, spec, todo, tally, results)
    else:
        _run_sequential(runner, spec, todo, tally, results)
    return _end(ctx, spec, tally, time.monotonic() - t0, results, len(work))


def finish(ctx: ActionContext, fan: FanOut, sent: Iterable[tuple[int, Any, str]]) -> Any:
    """The join of a fanned-out attempt: account for every item sent out (`sent`: index, value and the
    status of its chunk), from the log, then end the iterator as a run in one process would."""
    spec = ctx.task.iterator
    if spec is None:
        raise ActionError(f"step '{ctx.step}' is an iterator without a task", non_retryable=True)
    tally = Tally(count=fan.todo)
    runner = ItemRunner(ctx, spec, fan.total, fan.iterator_event_id, tally)
    ended: set[int] = set()
    for e in ctx.services.attempt_items(ctx.step, fan.iterator_event_id):
        if e.current_index in ended:
            continue
        ended.add(e.current_index)
        if e.event_type == T.ITERATION_COMPLETED:
            tally.ok(e.duration or 0.0, int((e.meta or {}).get("rows", 0)))
        elif e.status == "SKIPPED":
            tally.skip()
        else:
            tally.fail(e.current_index, e.duration or 0.0, e.error or "")
    for index, value, chunk_status in sent:
        if index in ended:
            continue
        item = collection.WorkItem(index, value)
        if chunk_status == "cancelled":  # held back when the failure policy stopped the iterator
            runner.skip(item, f"the iterator stopped ({breach(spec, tally) or 'an item failed'})")
        else:  # its chunk was given up on, or its worker died for good
            runner.lost(item, "its chunk job was abandoned after its last try")
    results = ctx.services.completed_items(ctx.step, ctx.attempt)
    return _end(ctx, spec, tally, _seconds_since(fan.started_at), results, fan.total)


def _seconds_since(iso: str) -> float:
    if not iso:
        return 0.0
    start = datetime.fromisoformat(iso)
    return max(0.0, (datetime.now(start.tzinfo) - start).total_seconds())


def _end(
    ctx: ActionContext, spec: IteratorSpec, tally: Tally, elapsed: float, results: dict[int, Any], total: int
) -> Any:
    """iterator_completed or iterator_failed, by the failure policy; the result, one entry per item."""
    base = {"node_name": ctx.step, "node_id": ctx.step, "node_type": "iterator", "attempt": ctx.attempt}
    meta = tally.meta(spec, elapsed)
    # All items of the step, not only this run's: those kept from an earlier attempt, a resumed or a
    # retried run (`kept`) count with the ones that succeeded now (`succeeded_total`).
    meta.update(total=total, kept=len(results) - tally.succeeded, succeeded_total=len(results))
    reason = breach(spec, tally)
    end_type = T.ITERATOR_FAILED if reason else T.ITERATOR_COMPLETED
    error = _error(ctx.step, tally, reason) if reason else None
    ctx.sink.new(
        end_type,
        duration=meta["duration"],
        error=error,
        parent_event_id=ctx.parent_event_id,
        meta={**meta, "reason": reason} if reason else meta,
        **base,
    )
    if reason:
        raise ActionError(error or "", non_retryable=False)
    return [results[i] if i in results else _failed_marker(i, tally) for i in range(total)]


def _run_sequential(
    runner: ItemRunner,
    spec: IteratorSpec,
    todo: list[collection.WorkItem],
    tally: Tally,
    results: dict[int, Any],
) -> None:
    for position, item in enumerate(todo):
        reason = breach(spec, tally)
        if reason:
            for rest in todo[position:]:
                runner.skip(rest, f"the iterator stopped ({reason})")
            return
        ok, result = runner.run(item)
        if ok:
            results[item.index] = result


def _run_async(
    runner: ItemRunner,
    spec: IteratorSpec,
    todo: list[collection.WorkItem],
    tally: Tally,
    results: dict[int, Any],
) -> None:
    """At most `concurrency` items in flight; no item starts once the failure policy has failed."""
    slots = threading.Semaphore(spec.concurrency)
    lock = threading.Lock()

    def one(item: collection.WorkItem) -> None:
        try:
            ok, result = runner.run(item)
            if ok:
                with lock:
                    results[item.index] = result
        finally:
            slots.release()

    futures = []
    with ThreadPoolExecutor(spec.concurrency, thread_name_prefix=f"noetl-{runner.ctx.step}") as pool:
        for position, item in enumerate(todo):
            slots.acquire()
            reason = breach(spec, tally)
            if reason:
                slots.release()
                for rest in todo[position:]:
                    runner.skip(rest, f"the iterator stopped ({reason})")
                break
            futures.append(pool.submit(one, item))
    for future in futures:
        future.result()  # an item never raises for its own failure; this surfaces store errors


def _failed_marker(index: int, tally: Tally) -> dict[str, Any]:
    """Failed or skipped items keep their place in the result, marked, so positions still match."""
    error = tally.errors.get(index)
    return {"failed": True, "index": index, "error": error or "not run"}


def _error(step: str, tally: Tally, reason: str) -> str:
    first = f"; first failure: {tally.first_error[1]}" if tally.first_error else ""
    return (
        f"iterator '{step}' failed ({reason}): {tally.failed} of {tally.count} items failed, "
        f"indexes {sorted(tally.failed_indexes)}{first}"
    )
