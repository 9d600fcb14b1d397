"""The iterator action: run the nested task (and its save) for every item, sequentially or concurrently.

Failure policy (PLAYBOOK.md): with `on_error: fail` the first failed item fails the step; items already
running finish and are recorded, no new ones start, and each item not run gets an `iteration_failed`
event with status SKIPPED, so completed + failed always equals `iterator_started.meta.count`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
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
    kept = sum(1 for index in done_before if 0 <= index < len(work))
    count = len(work) - kept
    base = {"node_name": ctx.step, "node_id": ctx.step, "node_type": "iterator", "attempt": ctx.attempt}
    started = ctx.sink.new(
        T.ITERATOR_STARTED,
        parent_event_id=ctx.parent_event_id,
        context={"element": spec.element},
        meta={
            "count": count,
            "total": len(work),
            "resumed": kept,
            "mode": spec.mode,
            "concurrency": spec.concurrency if spec.mode == "async" else 1,
            "chunk": spec.chunk,
            "on_error": spec.on_error,
            "collect": spec.collect,
        },
        **base,
    )
    tally = Tally(count=count)
    runner = ItemRunner(ctx, spec, len(work), started.event_id, tally)
    t0 = time.monotonic()
    # One slot per item, filled by index (any thread, any order); None when results are not collected,
    # so that a big loop keeps nothing per item.
    results: list[Any] | None = None
    if spec.collect:
        results = [_NOT_DONE] * len(work)
        for index, value in done_before.items():
            if 0 <= index < len(work):
                results[index] = value
    todo = work.items(skip=done_before)
    distribute = getattr(ctx.services, "distribute", None)  # workers fan async items out as chunk jobs
    if spec.mode == "async" and count > 1 and distribute is not None:
        fan = FanOut(
            started.event_id, ctx.parent_event_id or 0, len(work), count, ctx.attempt, started.created_at
        )
        distribute(runner, spec, list(todo), fan)  # raises FannedOut: a join job calls finish() later
    elif spec.mode == "async" and count > 1:
        _run_async(runner, spec, todo, tally, results)
        runner.close()
    else:
        _run_sequential(runner, spec, todo, tally, results)
        runner.close()
    return _end(ctx, spec, tally, time.monotonic() - t0, results, kept, len(work))


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
    done = ctx.services.completed_items(ctx.step, ctx.attempt)
    kept = len(done) - tally.succeeded
    results: list[Any] | None = None
    if spec.collect:
        results = [done.get(index, _NOT_DONE) for index in range(fan.total)]
    return _end(ctx, spec, tally, _seconds_since(fan.started_at), results, kept, fan.total)


def _seconds_since(iso: str) -> float:
    if not iso:
        return 0.0
    start = datetime.fromisoformat(iso)
    return max(0.0, (datetime.now(start.tzinfo) - start).total_seconds())


def _end(
    ctx: ActionContext,
    spec: IteratorSpec,
    tally: Tally,
    elapsed: float,
    results: list[Any] | None,
    kept: int,
    total: int,
) -> Any:
    """iterator_completed or iterator_failed, by the failure policy. The result: one entry per item,
    in order (failed ones marked), or with `collect: false` the summary itself."""
    base = {"node_name": ctx.step, "node_id": ctx.step, "node_type": "iterator", "attempt": ctx.attempt}
    meta = tally.meta(spec, elapsed)
    # All items of the step, not only this run's: those kept from an earlier attempt, a resumed or a
    # retried run (`kept`) count with the ones that succeeded now (`succeeded_total`).
    meta.update(total=total, kept=kept, succeeded_total=kept + tally.succeeded)
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
    if results is None:
        return meta
    for index, value in enumerate(results):  # in place: the slots become the result
        if value is _NOT_DONE:
            results[index] = _failed_marker(index, tally)
    return results


def _run_sequential(
    runner: ItemRunner,
    spec: IteratorSpec,
    todo: Iterator[collection.WorkItem],
    tally: Tally,
    results: list[Any] | None,
) -> None:
    for item in todo:
        reason = breach(spec, tally)
        if reason:
            _skip_rest(runner, item, todo, reason)
            return
        ok, result = runner.run(item)
        if ok and results is not None:
            results[item.index] = result


def _run_async(
    runner: ItemRunner,
    spec: IteratorSpec,
    todo: Iterator[collection.WorkItem],
    tally: Tally,
    results: list[Any] | None,
) -> None:
    """`concurrency` long-lived threads take the next item from one iterator, so nothing is kept per
    item while it waits (no future, no queued task). No item starts once the failure policy has failed:
    the thread that sees the breach skips every item not started, and the others then find none."""
    lock = threading.Lock()
    errors: list[BaseException] = []

    def next_item() -> collection.WorkItem | None:
        with lock:
            if errors:
                return None
            item = next(todo, None)
            if item is None:
                return None
            reason = breach(spec, tally)
            if reason:
                _skip_rest(runner, item, todo, reason)
                return None
            return item

    def work() -> None:
        try:
            while (item := next_item()) is not None:
                ok, result = runner.run(item)
                if ok and results is not None:
                    results[item.index] = result
        except BaseException as exc:  # an item never raises for its own failure: this is a store error
            with lock:
                errors.append(exc)

    threads = [
        threading.Thread(target=work, name=f"noetl-{runner.ctx.step}-{n}", daemon=True)
        for n in range(min(spec.concurrency, tally.count))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _skip_rest(
    runner: ItemRunner, first: collection.WorkItem, rest: Iterator[collection.WorkItem], reason: str
) -> None:
    for item in itertools.chain((first,), rest):
        runner.skip(item, f"the iterator stopped ({reason})")


_NOT_DONE: Any = object()  # the slot of an item that has no result (failed, skipped, not run)


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
