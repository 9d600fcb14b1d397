"""Run one item: iteration_started, the nested task, its save, then iteration_completed or _failed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from noetl.actions.base import ActionContext, Sink
from noetl.actions.iteration.collection import WorkItem
from noetl.actions.iteration.save_batch import Joined, SaveBatches
from noetl.actions.iteration.summary import Tally
from noetl.actions.registry import Registry
from noetl.actions.retrying import Attempts, call_with_retry
from noetl.actions.save.breaker import Breakers
from noetl.actions.save.executor import BATCH_STORAGES, StartedSave, start_save, write_batch
from noetl.actions.tracebacks import user_traceback
from noetl.dsl.models import IteratorSpec
from noetl.dsl.render import StepView, unwrap
from noetl.engine.events import EventType as T
from noetl.engine.frozen import FrozenDict
from noetl.engine.values import NUMBERS_AND_NONE, recorded
from noetl.errors import NoetlError, SaveError, SaveFailed

_ITEM_PREVIEW_CHARS = 2000
_ONE_ATTEMPT = Attempts(count=1)  # what an item without retry reports: read, never changed


# {"rows": n} of an item's iteration_completed after its save, for the commonest counts: shared, and
# so encoded once by the store (engine.frozen), not once per item
_ROWS_METAS = tuple(FrozenDict(rows=n) for n in range(64))


def _rows_meta(rows: int) -> dict[str, Any]:
    return _ROWS_METAS[rows] if 0 <= rows < len(_ROWS_METAS) else {"rows": rows}


def preview(value: Any) -> Any:
    """Large items are truncated in events; the full value is in the collection the step rendered."""
    if type(value) in NUMBERS_AND_NONE:  # the commonest items, by exact type first (once per item)
        return value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return (
            value
            if not isinstance(value, str) or len(value) <= _ITEM_PREVIEW_CHARS
            else value[:_ITEM_PREVIEW_CHARS]
        )
    text = json.dumps(value, default=str)
    if len(text) <= _ITEM_PREVIEW_CHARS:
        return value
    return {"truncated": True, "preview": text[:_ITEM_PREVIEW_CHARS], "chars": len(text)}


@dataclass(frozen=True)
class _Batched:
    """A per-item save with `batch: N`: the batches waiting, and the runtime's writers and breakers."""

    batches: SaveBatches
    storages: Registry
    breakers: Breakers


def _batched(ctx: ActionContext, spec: IteratorSpec) -> _Batched | None:
    save = spec.task.result_save
    size = save.options.get("batch") if save is not None else None
    if save is None or not isinstance(size, int) or save.storage not in BATCH_STORAGES:
        return None
    # The services of a real run hold the storages and breakers its saves use; a stand-in without
    # them (a test's) saves item by item, through run_save.
    storages, breakers = getattr(ctx.services, "storages", None), getattr(ctx.services, "breakers", None)
    if not isinstance(storages, Registry) or not isinstance(breakers, Breakers):
        return None
    return _Batched(SaveBatches(size), storages, breakers)


@dataclass(frozen=True)
class ItemRunner:
    ctx: ActionContext
    spec: IteratorSpec
    count: int
    iterator_event_id: int
    tally: Tally
    _own_view: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _batched: _Batched | None = field(default=None, init=False, repr=False)
    _sink: Sink = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sink", self.ctx.sink)  # two events per item
        # What every item's scope shares, worked out once per iterator rather than per item.
        own = self.ctx.scope.get(self.ctx.step)
        own_value = unwrap(own) if isinstance(own, StepView) else None
        object.__setattr__(self, "_own_view", dict(own_value) if isinstance(own_value, dict) else {})
        object.__setattr__(self, "_batched", _batched(self.ctx, self.spec))

    def scope(self, item: WorkItem) -> dict[str, Any]:
        index, count, spec = item.index, self.count, self.spec
        scope = {
            **self.ctx.scope,
            spec.element: item.value,
            "_loop": {"index": index, "count": count, "first": index == 0, "last": index == count - 1},
            self.ctx.step: StepView(
                {**self._own_view, "result_index": index} if self._own_view else {"result_index": index}
            ),
        }
        if spec.chunk:
            scope["batch"] = item.value
        return scope

    def run(self, item: WorkItem) -> tuple[bool, Any]:
        """(succeeded, result). Never raises for the item's own failure: that is an event and a tally.

        With a batched save (`save: {batch: N}`) an item whose task succeeded joins its batch and is
        reported later, once its rows are committed (or refused): it returns (True, result) then,
        and its iteration_completed or iteration_failed is written by whichever run writes the batch,
        or by close()."""
        ctx, sink = self.ctx, self._sink
        node_id = f"{ctx.step}:iter_{item.index}"
        started = sink.node_event(
            T.ITERATION_STARTED,
            ctx.step,
            node_id,
            item.index,
            ctx.attempt,
            self.iterator_event_id,
            value if type(value := item.value) in NUMBERS_AND_NONE else preview(value),
            None,
            None,
            None,
            None,
        )
        t0 = time.monotonic()
        scope = self.scope(item)
        nested = ctx.for_item(item.index, node_id, started.event_id, scope)
        stage = "task"
        task = self.spec.task
        # The common case, no retry: no wrapper around the call, and the one record of a single attempt
        attempts = _ONE_ATTEMPT if task.retry is None else Attempts()
        joined: Joined | None = None
        try:
            if task.retry is None:
                result = ctx.services.run_action(task, scope, nested)
            else:
                result = call_with_retry(
                    task.retry, lambda: ctx.services.run_action(task, scope, nested), attempts
                )
            result = recorded(result, "item {} result", item.index)
            rows = 0
            save = task.result_save
            if save is not None:
                stage = "save"
                if self._batched is not None:
                    begun = start_save(
                        save,
                        nested,
                        result,
                        self._batched.storages,
                        index=item.index,
                        parent_event_id=started.event_id,
                    )
                    joined = Joined(item, begun, result, t0, node_id, attempts)
                else:
                    rows = ctx.services.run_save(
                        save,
                        nested,
                        result,
                        index=item.index,
                        item=preview(item.value),
                        parent_event_id=started.event_id,
                    )
        except Exception as exc:
            self._failed(item.index, node_id, t0, exc, stage, attempts, result if stage == "save" else None)
            return False, None
        if joined is not None and self._batched is not None:
            full = self._batched.batches.add(joined)
            if full is not None:
                self._write(full)
            return True, result
        self._completed(item.index, node_id, t0, result, rows if save is not None else None, attempts)
        return True, result

    def _completed(
        self,
        index: int,
        node_id: str,
        t0: float,
        result: Any,
        rows: int | None,
        attempts: Attempts,
    ) -> None:
        duration = time.monotonic() - t0
        if attempts is _ONE_ATTEMPT:  # (no retry: the common case)
            meta: dict[str, Any] = {} if rows is None else _rows_meta(rows)
        else:
            meta = attempts.meta() if rows is None else {"rows": rows, **attempts.meta()}
        ctx = self.ctx
        self._sink.node_event(  # (what _end writes, spelled out: once per item)
            T.ITERATION_COMPLETED,
            ctx.step,
            node_id,
            index,
            ctx.attempt,
            self.iterator_event_id,
            None,
            # round(duration, 6) for a positive float, without its decimal conversion (0.2 us of 0.3)
            int(duration * 1e6 + 0.5) / 1e6,
            result,
            None,
            meta,
        )
        self.tally.ok(duration, rows or 0)

    def _failed(
        self,
        index: int,
        node_id: str,
        t0: float,
        exc: Exception,
        stage: str,
        attempts: Attempts,
        result: Any,
    ) -> None:
        duration = time.monotonic() - t0
        explained = isinstance(exc, NoetlError)
        error = f"item {index}: {stage} failed: {exc if explained else f'{type(exc).__name__}: {exc}'}"
        meta = {
            "failed_in": stage,
            "error_type": getattr(exc, "error_type", type(exc).__name__),
            **attempts.meta(),
        }
        if not explained:  # not a failure we explained: keep the traceback for the user
            meta["traceback"] = user_traceback(exc)
        if isinstance(exc, SaveFailed):
            meta["reason"] = exc.reason
        elif isinstance(exc, SaveError):
            meta["reason"] = "save_error"
        # `result`: the task's result when its save failed, what the target refused, for the item's page
        self._end(T.ITERATION_FAILED, index, node_id, duration, result, error, meta)
        self.tally.fail(index, duration, error)

    def _end(
        self,
        event_type: str,
        index: int,
        node_id: str,
        duration: float,
        result: Any,
        error: str | None,
        meta: dict[str, Any],
    ) -> None:
        ctx = self.ctx
        self._sink.node_event(
            event_type,
            ctx.step,
            node_id,
            index,
            ctx.attempt,
            self.iterator_event_id,
            None,
            round(duration, 6),
            result,
            error,
            meta,
        )

    def _write(self, batch: list[Joined]) -> None:
        """Write a batch of items' saves; each item is reported as its save ends (after the commit)."""
        batched = self._batched
        assert batched is not None
        by_save = {id(joined.save): joined for joined in batch}

        def done(save: StartedSave, rows: int, error: NoetlError | None) -> None:
            j = by_save[id(save)]
            if error is None:
                self._completed(j.item.index, j.node_id, j.t0, j.result, rows, j.attempts)
            else:
                self._failed(j.item.index, j.node_id, j.t0, error, "save", j.attempts, j.result)

        write_batch([joined.save for joined in batch], self.ctx, batched.storages, batched.breakers, done)

    def close(self) -> None:
        """Called once every item has run: finish what items left pending, that is write the last
        (partial) batches of a batched save, before the iterator's end is written."""
        if self._batched is None:
            return
        for batch in self._batched.batches.drain():
            self._write(batch)

    def lost(self, item: WorkItem, reason: str) -> None:
        """An item whose run was lost (its chunk job died for good): a failure, and its own event."""
        error = f"item {item.index} failed: {reason}"
        self.ctx.sink.new(
            T.ITERATION_FAILED,
            node_name=self.ctx.step,
            node_id=f"{self.ctx.step}:iter_{item.index}",
            node_type="iteration",
            current_index=item.index,
            attempt=self.ctx.attempt,
            duration=0.0,
            error=error,
            parent_event_id=self.iterator_event_id,
            meta={"reason": "chunk_lost", "failed_in": "task"},
        )
        self.tally.fail(item.index, 0.0, error)

    def skip(self, item: WorkItem, reason: str) -> None:
        """An item that will not run is still accounted for: its own event says why."""
        self.ctx.sink.new(
            T.ITERATION_FAILED,
            status="SKIPPED",
            node_name=self.ctx.step,
            node_id=f"{self.ctx.step}:iter_{item.index}",
            node_type="iteration",
            current_index=item.index,
            attempt=self.ctx.attempt,
            duration=0.0,
            error=f"item {item.index} not run: {reason}",
            parent_event_id=self.iterator_event_id,
            meta={"reason": "skipped"},
        )
        self.tally.skip()
