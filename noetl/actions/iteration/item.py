"""Run one item: iteration_started, the nested task, its save, then iteration_completed or _failed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from noetl.actions.base import ActionContext
from noetl.actions.iteration.collection import WorkItem
from noetl.actions.iteration.summary import Tally
from noetl.actions.retrying import Attempts, call_with_retry
from noetl.actions.tracebacks import user_traceback
from noetl.dsl.models import IteratorSpec
from noetl.dsl.render import StepView, unwrap
from noetl.engine.events import EventType as T
from noetl.engine.values import recorded
from noetl.errors import NoetlError, SaveError, SaveFailed

_ITEM_PREVIEW_CHARS = 2000


def preview(value: Any) -> Any:
    """Large items are truncated in events; the full value is in the collection the step rendered."""
    if isinstance(value, str | int | float | bool) or value is None:
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
class ItemRunner:
    ctx: ActionContext
    spec: IteratorSpec
    count: int
    iterator_event_id: int
    tally: Tally
    _own_view: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        # What every item's scope shares, worked out once per iterator rather than per item.
        own = self.ctx.scope.get(self.ctx.step)
        own_value = unwrap(own) if isinstance(own, StepView) else None
        object.__setattr__(self, "_own_view", dict(own_value) if isinstance(own_value, dict) else {})

    def scope(self, item: WorkItem) -> dict[str, Any]:
        index = item.index
        scope = {
            **self.ctx.scope,
            self.spec.element: item.value,
            "_loop": {
                "index": index,
                "count": self.count,
                "first": index == 0,
                "last": index == self.count - 1,
            },
            self.ctx.step: StepView({**self._own_view, "result_index": index}),
        }
        if self.spec.chunk:
            scope["batch"] = item.value
        return scope

    def run(self, item: WorkItem) -> tuple[bool, Any]:
        """(succeeded, result). Never raises for the item's own failure: that is an event and a tally."""
        ctx, sink = self.ctx, self.ctx.sink
        node_id = f"{ctx.step}:iter_{item.index}"
        base = {
            "node_name": ctx.step,
            "node_id": node_id,
            "node_type": "iteration",
            "current_index": item.index,
            "attempt": ctx.attempt,
        }
        started = sink.new(
            T.ITERATION_STARTED,
            current_item=preview(item.value),
            parent_event_id=self.iterator_event_id,
            **base,
        )
        t0 = time.monotonic()
        scope = self.scope(item)
        nested = ctx.evolve(index=item.index, node_id=node_id, parent_event_id=started.event_id, scope=scope)
        stage = "task"
        attempts = Attempts()
        task = self.spec.task
        try:
            if task.retry is None:  # the common case: no retry wrapper around the call
                attempts.count = 1
                result = ctx.services.run_action(task, scope, nested)
            else:
                result = call_with_retry(
                    task.retry, lambda: ctx.services.run_action(task, scope, nested), attempts
                )
            result = recorded(result, f"item {item.index} result")
            rows = 0
            save = self.spec.task.result_save
            if save is not None:
                stage = "save"
                rows = ctx.services.run_save(
                    save,
                    nested,
                    result,
                    index=item.index,
                    item=preview(item.value),
                    parent_event_id=started.event_id,
                )
        except Exception as exc:
            duration = time.monotonic() - t0
            explained = isinstance(exc, NoetlError)
            error = (
                f"item {item.index}: {stage} failed: {exc if explained else f'{type(exc).__name__}: {exc}'}"
            )
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
            sink.new(
                T.ITERATION_FAILED,
                duration=round(duration, 6),
                error=error,
                # the task's result when its save failed: what the target refused, for the item's page
                result=result if stage == "save" else None,
                parent_event_id=self.iterator_event_id,
                meta=meta,
                **base,
            )
            self.tally.fail(item.index, duration, error)
            return False, None
        duration = time.monotonic() - t0
        sink.new(
            T.ITERATION_COMPLETED,
            duration=round(duration, 6),
            result=result,
            parent_event_id=self.iterator_event_id,
            meta={**({"rows": rows} if save is not None else {}), **attempts.meta()},
            **base,
        )
        self.tally.ok(duration, rows)
        return True, result

    def close(self) -> None:
        """Called once every item has run: finish what items left pending. Nothing is pending yet; a
        batched save (issue 10) writes its last rows here, before the iterator's end is written."""

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
