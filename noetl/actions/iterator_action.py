"""The iterator action: run the nested task (and its save) for every item, sequentially or concurrently.

Failure policy (PLAYBOOK.md): with `on_error: fail` the first failed item fails the step; items already
running finish and are recorded, no new ones start, and each item not run gets an `iteration_failed`
event with status SKIPPED, so completed + failed always equals `iterator_started.meta.count`.

A streaming collection (a query or a file) is read as its items run: its count is known only at the
end, so `iterator_started.meta.count` is null and the guarantee holds for `iterator_completed`'s (or
`iterator_failed`'s) count; once the policy fails, no further row is read (nothing to skip).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.iteration import collection, streams
from noetl.actions.iteration.fanout import FanOut
from noetl.actions.iteration.item import ItemRunner
from noetl.actions.iteration.summary import Tally, breach
from noetl.dsl.models import IteratorSpec
from noetl.engine.events import EventType as T
from noetl.engine.values import RecordedList
from noetl.errors import ActionError


def run(ctx: ActionContext) -> Any:
    spec = ctx.task.iterator
    if spec is None:
        raise ActionError(f"step '{ctx.step}' is an iterator without a task", non_retryable=True)
    work = collection.open_work(ctx, spec)
    try:
        if isinstance(work, collection.Stream):
            return _run_stream(ctx, spec, work)
        return _run_work(ctx, spec, work)
    finally:
        work.close()  # a stream's cursor, connection or file, whether it was read to the end or not


def _started_meta(spec: IteratorSpec, count: int | None, total: int | None, kept: int) -> dict[str, Any]:
    return {
        "count": count,
        "total": total,
        "resumed": kept,
        "mode": spec.mode,
        "concurrency": spec.concurrency if spec.mode == "async" else 1,
        "chunk": spec.chunk,
        "on_error": spec.on_error,
        "collect": spec.collect,
    }


def _run_work(ctx: ActionContext, spec: IteratorSpec, work: collection.Work) -> Any:
    """A collection whose items are all known before the first runs: a list, or a stream read in full."""
    # Items an earlier attempt, a resumed run or another worker finished stay finished.
    done_before = ctx.services.completed_items(ctx.step, ctx.attempt)
    kept = sum(1 for index in done_before if 0 <= index < len(work))
    count = len(work) - kept
    base = {"node_name": ctx.step, "node_id": ctx.step, "node_type": "iterator", "attempt": ctx.attempt}
    meta = _started_meta(spec, count, len(work), kept)
    if work.materialized:  # a streaming collection with order_by: read into memory to be sorted
        meta.update(streaming=False, materialized=True)
    started = ctx.sink.new(
        T.ITERATOR_STARTED,
        parent_event_id=ctx.parent_event_id,
        context={"element": spec.element},
        meta=meta,
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
        _run_async(runner, spec, todo, tally, results, min(spec.concurrency, count))
        runner.close()
    else:
        _run_sequential(runner, spec, todo, tally, results)
        runner.close()
    return _end(ctx, spec, tally, time.monotonic() - t0, results, kept, len(work))


class _StreamItemRunner(ItemRunner):
    """A stream's items: how many there are is not known while they run, so `_loop.count` is null;
    `_loop.last` is known (the reader runs one row ahead)."""

    def scope(self, item: collection.WorkItem) -> dict[str, Any]:
        scope = super().scope(item)
        scope["_loop"] = {
            "index": item.index,
            "count": None,
            "first": item.index == 0,
            "last": bool(item.last),
        }
        return scope


def _run_stream(ctx: ActionContext, spec: IteratorSpec, work: collection.Stream) -> Any:
    """A streaming collection: items run as its rows are read, so their count is known at the end.

    It is never fanned out to other workers (chunk jobs carry lists of items): on a worker, its items
    run in this job, sequentially or on `concurrency` threads. The failure policy's `max_failure_ratio`
    is judged at the end, on the final count; `on_error: fail` and `max_failures` stop reading rows.
    """
    done_before = ctx.services.completed_items(ctx.step, ctx.attempt)
    base = {"node_name": ctx.step, "node_id": ctx.step, "node_type": "iterator", "attempt": ctx.attempt}
    meta = {**_started_meta(spec, None, None, len(done_before)), "streaming": True}
    started = ctx.sink.new(
        T.ITERATOR_STARTED,
        parent_event_id=ctx.parent_event_id,
        context={"element": spec.element},
        meta=meta,
        **base,
    )
    tally = Tally(count=0)  # 0 while running: the ratio is not judged before the count is known
    runner = _StreamItemRunner(ctx, spec, 0, started.event_id, tally)
    t0 = time.monotonic()
    results: list[Any] | None = [] if spec.collect else None
    todo = work.items(skip=done_before)
    if results is not None:
        todo = _growing(todo, results, done_before)
    read_error: streams.CollectionReadError | None = None
    try:
        if spec.mode == "async":
            _run_async(runner, spec, todo, tally, results, spec.concurrency, stream=True)
        else:
            _run_sequential(runner, spec, todo, tally, results, stream=True)
    except streams.CollectionReadError as exc:
        read_error = exc
    runner.close()
    total = work.total
    tally.count = tally.succeeded + tally.failed + tally.skipped
    kept = sum(1 for index in done_before if 0 <= index < total)
    if results is not None:  # the items done before that the last one run left behind, then no more
        results.extend(done_before.get(i, _NOT_DONE) for i in range(len(results), total))
        del results[total:]
    extra = {"streaming": True, "exhausted": work.exhausted}
    return _end(ctx, spec, tally, time.monotonic() - t0, results, kept, total, extra, read_error)


def _growing(
    todo: Iterator[collection.WorkItem], results: list[Any], done: dict[int, Any]
) -> Iterator[collection.WorkItem]:
    """A stream's result slots grow as its items are made (under the async lock, since it is the
    lock that takes the next item), the results of items done before filled in on the way."""
    for item in todo:
        if item.index >= len(results):
            results.extend(done.get(i, _NOT_DONE) for i in range(len(results), item.index + 1))
        yield item


def finish(ctx: ActionContext, fan: FanOut, sent: Callable[[], Iterable[tuple[int, Any, str]]]) -> Any:
    """The join of a fanned-out attempt: account for every item sent out, from the log, then end the
    iterator as a run in one process would. `sent()` reads the items back from the chunks (index, value
    and the status of its chunk), only when the log has not accounted for all of them: those that no
    chunk ran (held back, or their chunk was given up on)."""
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
    for index, value, chunk_status in sent() if len(ended) < fan.todo else ():
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
    extra: dict[str, Any] | None = None,
    read_error: streams.CollectionReadError | None = None,
) -> Any:
    """iterator_completed or iterator_failed, by the failure policy (or because the collection could not
    be read to its end). The result: one entry per item, in order (failed ones marked), or with
    `collect: false` the summary itself."""
    base = {"node_name": ctx.step, "node_id": ctx.step, "node_type": "iterator", "attempt": ctx.attempt}
    meta = tally.meta(spec, elapsed)
    # All items of the step, not only this run's: those kept from an earlier attempt, a resumed or a
    # retried run (`kept`) count with the ones that succeeded now (`succeeded_total`).
    meta.update(total=total, kept=kept, succeeded_total=kept + tally.succeeded, **(extra or {}))
    if read_error is not None:
        reason: str | None = "the collection could not be read"
        error: str | None = f"iterator '{ctx.step}' failed after {tally.count} items: {read_error}"
    else:
        reason = breach(spec, tally)
        error = _error(ctx.step, tally, reason) if reason else None
    end_type = T.ITERATOR_FAILED if reason else T.ITERATOR_COMPLETED
    ctx.sink.new(
        end_type,
        duration=meta["duration"],
        error=error,
        parent_event_id=ctx.parent_event_id,
        meta={**meta, "reason": reason} if reason else meta,
        **base,
    )
    if read_error is not None:
        raise ActionError(
            error or "", non_retryable=read_error.non_retryable, error_type=read_error.error_type
        )
    if reason:
        raise ActionError(error or "", non_retryable=False)
    if results is None:
        return meta
    # An item of a batched save (`save: {batch: N}`) reported success when it joined its batch; if the
    # batch then failed it, its slot holds the task's result: it gets the failure marker like the others.
    for index in tally.failed_indexes:
        if 0 <= index < len(results):
            results[index] = _NOT_DONE
    for index, value in enumerate(results):  # in place: the slots become the result
        if value is _NOT_DONE:
            results[index] = _failed_marker(index, tally)
    return RecordedList(results)  # (each element recorded already: not walked again)


def _run_sequential(
    runner: ItemRunner,
    spec: IteratorSpec,
    todo: Iterator[collection.WorkItem],
    tally: Tally,
    results: list[Any] | None,
    *,
    stream: bool = False,
) -> None:
    """`stream`: once the failure policy fails, no further row is read (none is skipped: a stream's
    items are those it made)."""
    for item in todo:
        reason = breach(spec, tally) if tally.failed else None  # (no failure, no breach: per item)
        if reason:
            _skip_rest(runner, item, iter(()) if stream else todo, reason)
            return
        ok, result = runner.run(item)
        if ok and results is not None:
            results[item.index] = result
        if stream and breach(spec, tally):  # (after any item: a batched save reports items late)
            return


def _run_async(
    runner: ItemRunner,
    spec: IteratorSpec,
    todo: Iterator[collection.WorkItem],
    tally: Tally,
    results: list[Any] | None,
    threads: int,
    *,
    stream: bool = False,
) -> None:
    """`threads` long-lived threads take the next item from one iterator, so nothing is kept per
    item while it waits (no future, no queued task). No item starts once the failure policy has failed:
    the thread that sees the breach skips every item not started, and the others then find none. From
    a `stream`, no further row is read once it has failed (nothing to skip)."""
    lock = threading.Lock()
    errors: list[BaseException] = []

    def next_item() -> collection.WorkItem | None:
        with lock:
            if errors or (stream and breach(spec, tally)):
                return None
            item = next(todo, None)
            if item is None:
                return None
            reason = breach(spec, tally)
            if reason:  # (a stream's: only this one item, read as another thread's item failed)
                _skip_rest(runner, item, iter(()) if stream else todo, reason)
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

    pool = [
        threading.Thread(target=work, name=f"noetl-{runner.ctx.step}-{n}", daemon=True)
        for n in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
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
