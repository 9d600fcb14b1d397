"""`noetl retry`: which iterator step of a finished execution runs again, and which of its items. Pure.

The retried step runs as a new run inside the same execution, with the inputs of its last run. Its items
that succeeded are kept (engine.items: a run a retry asked for keeps what the run before it had) and the
others run again, with the items the user named even if they had succeeded; then the workflow goes on
from the step as it would have, unless asked to stop after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from noetl.dsl.models import Playbook
from noetl.engine.events import Event
from noetl.engine.events import EventType as T
from noetl.engine.items import items_done, run_events
from noetl.engine.state import fold
from noetl.errors import InputError

ITEMS_LISTED = 1000  # indexes written into the execution_retry event; the count is always there


@dataclass(frozen=True)
class RetryRequest:
    step: str | None = None  # None: the one iterator step whose latest run has failed items
    items: tuple[int, ...] = ()  # items to run again although they succeeded (failed items always run)
    proceed: bool = True  # go on with the steps after it (`--no-continue`: False)
    requested_by: str = "cli"


@dataclass(frozen=True)
class RetryTarget:
    step: str
    run: list[int]  # the items the new run will run, in index order
    kept: int  # the items it keeps from before
    total: int
    previous_status: str

    def meta(self, request: RetryRequest) -> dict[str, Any]:
        """What the execution_retry event says: who asked, which step and items, and what happens next."""
        return {
            "step": self.step,
            "items": self.run[:ITEMS_LISTED],
            "items_count": len(self.run),
            "rerun": sorted(set(request.items)),
            "kept": self.kept,
            "total": self.total,
            "continue": request.proceed,
            "requested_by": request.requested_by,
            "previous_status": self.previous_status,
        }


def retry_target(events: Sequence[Event], playbook: Playbook, request: RetryRequest) -> RetryTarget:
    """The step and items a retry runs, or InputError saying why this execution cannot be retried so."""
    if not events:
        raise InputError("the execution has no events; check its id")
    state = fold(events)
    execution_id = events[0].execution_id
    if not state.finished:
        raise InputError(
            f"execution {execution_id} is still running ({state.status.upper()}); retry it once it has "
            "ended, or cancel it first"
        )
    step = request.step or _step_with_failures(events, playbook, execution_id, bool(request.items))
    if step not in playbook.steps:
        raise InputError(
            f"execution {execution_id} has no step {step!r}; its steps are {', '.join(playbook.steps)}"
        )
    spec = playbook.steps[step].task
    if spec.iterator is None:
        raise InputError(
            f"step {step!r} is not an iterator (type: {spec.type or 'none'}); only an iterator's items "
            "can be retried: run the playbook again instead"
        )
    if state.step(step).runs == 0:
        raise InputError(f"step {step!r} never ran in execution {execution_id}: there is nothing to retry")
    total = _total(events, step)
    outside = sorted(i for i in set(request.items) if not 0 <= i < total)
    if outside:
        last = f"0-{total - 1}" if total else "none"
        raise InputError(
            f"item {outside[0]} of step {step!r} does not exist: its latest run had {total} items "
            f"(indexes {last})"
        )
    done = items_done(events, step)
    kept = {i for i in done if i not in set(request.items)}
    run = [i for i in range(total) if i not in kept]
    if not run:
        raise InputError(
            f"step {step!r} has no failed items in execution {execution_id}; name the items to run "
            "again with --items (e.g. --items 2,17,40-45)"
        )
    return RetryTarget(step, run, len(kept), total, state.status.upper())


def parse_items(text: str | None) -> tuple[int, ...]:
    """'2,17,40-45' -> (2, 17, 40, 41, 42, 43, 44, 45); InputError naming the part it cannot read."""
    if not text:
        return ()
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise InputError(
                f"--items: {part!r} is not an index or a range; write them like 2,17,40-45"
            ) from None
        if first < 0 or last < first:
            raise InputError(f"--items: {part!r} is not a range of indexes (from 0, low-high)")
        if last - first > 10_000_000:
            raise InputError(f"--items: {part!r} names more than 10,000,000 items")
        out.extend(range(first, last + 1))
    return tuple(sorted(set(out)))


def _step_with_failures(events: Sequence[Event], playbook: Playbook, execution_id: str, named: bool) -> str:
    iterators = [n for n, s in playbook.steps.items() if s.task.iterator is not None]
    failing = [n for n in iterators if len(items_done(events, n)) < _total(events, n)]
    if len(failing) == 1:
        return failing[0]
    ran = [n for n in iterators if _total(events, n)]
    if named and not failing and len(ran) == 1:  # items named, and only one iterator they can be of
        return ran[0]
    if not failing:
        raise InputError(
            f"execution {execution_id} has no iterator step with failed items; name one with --step "
            "and its items with --items to run them again"
        )
    raise InputError(f"steps {', '.join(failing)} have failed items; choose one with --step")


def _total(events: Sequence[Event], step: str) -> int:
    """How many items the latest run of `step` had: its last iterator_started says, or, for a streaming
    collection (whose count is known only at its end), the iterator's end event."""
    run = run_events(events, step)
    starts = [e for e in run if e.event_type == T.ITERATOR_STARTED]
    if not starts:
        return 0
    meta = starts[-1].meta or {}
    if meta.get("streaming") or meta.get("total", meta.get("count")) is None:
        ends = [e for e in run if e.event_type in (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED)]
        meta = (ends[-1].meta or {}) if ends else {}
    return int(meta.get("total", meta.get("count", 0)) or 0)
