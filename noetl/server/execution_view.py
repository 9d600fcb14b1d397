"""One execution as the UI shows it: header, timeline lanes, and each iterator summed up in numbers.

Folded incrementally from two reads of the log (noetl.server.view_cache): the lane events (execution,
steps, attempts, iterators) in full, and the items' events as light rows. An iterator of 100,000 items is
held as a few arrays of numbers and leaves as counts, percentiles, a histogram, a density strip, its
failed items and its slowest items: the page never receives one element per item.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import operator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from noetl.engine.events import Event
from noetl.engine.events import EventType as T

FAILED_SHOWN = 100  # failed items listed in the view; the rest page through the events API
SLOWEST_SHOWN = 10
HISTOGRAM_BINS = 24
DENSITY_BINS = 60
FAILED = "FAILED"
_STEP = operator.itemgetter(1)  # the step of an item row
_PAYLOAD_CHARS = 20_000  # a larger payload or result is cut in the view (the event API has it whole)


def epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


@dataclass
class Attempt:
    attempt: int
    started: float
    finished: float | None = None
    status: str = "RUNNING"
    error: str | None = None
    retry_at: float | None = None  # when a failed attempt is followed by a wait

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "started": self.started,
            "finished": self.finished,
            "status": self.status,
            "error": self.error,
            "retry_at": self.retry_at,
        }


@dataclass
class StepRun:
    run: int
    started: float
    finished: float | None = None
    status: str = "RUNNING"
    error: str | None = None
    attempts: list[Attempt] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "started": self.started,
            "finished": self.finished,
            "status": self.status,
            "error": self.error,
            "attempts": [a.to_dict() for a in self.attempts],
        }


@dataclass
class Lane:
    step: str
    node_type: str | None = None
    runs: list[StepRun] = field(default_factory=list)
    iterator: bool = False


class IteratorFold:
    """The items of one run of an iterator step: a few arrays, whatever the number of items."""

    def __init__(self, step: str, event: Event) -> None:
        self.step = step
        self.started = epoch(event.created_at) or 0.0
        self.count: int | None = event.meta.get("count")  # the items this run runs
        self.total: int | None = event.meta.get("total", self.count)  # the step's items
        self.kept: int = int(event.meta.get("resumed") or 0)  # done before (a retry, a resume): not run
        self.mode = event.meta.get("mode")
        self.concurrency = event.meta.get("concurrency")
        self.status = "RUNNING"
        self.finished: float | None = None
        self.figures: dict[str, Any] = {}
        self.started_items = 0
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self.durations: list[float] = []  # of completed items
        self.failed_durations: list[float] = []
        self.ends: list[float] = []  # when each item ended, for the density strip
        self.failures: list[dict[str, Any]] = []
        self.slowest: list[tuple[float, int]] = []  # a min-heap of the slowest completed items

    def items(self, rows: list[tuple[Any, ...]]) -> None:
        """Fold a batch of this step's ended items (views_sql.OUTCOME_COLUMNS rows), in commit order.

        Whole batches, not one call per row: a view of 100,000 items is folded in a few list passes.
        """
        self.ends.extend(r[5] for r in rows)
        completed = [r for r in rows if r[2] == T.ITERATION_COMPLETED]
        self.done += len(completed)
        timed = [(r[6], r[3]) for r in completed if r[6] is not None]
        self.durations.extend(d for d, _ in timed)
        if timed:
            self.slowest = heapq.nlargest(SLOWEST_SHOWN, [*self.slowest, *timed])
        if len(completed) == len(rows):
            return
        for _, _, kind, index, status, _, duration, attempt, error, label in rows:
            if kind == T.ITERATION_COMPLETED:
                continue
            if status == "SKIPPED":  # never started: the failure policy had already stopped the iterator
                self.skipped += 1
                continue
            self.failed += 1
            if duration is not None:
                self.failed_durations.append(duration)
            if len(self.failures) < FAILED_SHOWN:
                self.failures.append({"index": index, "item": label, "error": error, "attempt": attempt})

    def end(self, event: Event) -> None:
        self.status = event.status or FAILED
        self.finished = epoch(event.created_at)
        self.figures = {k: event.meta[k] for k in ("rows_saved", "failed_indexes") if k in event.meta}

    def to_dict(self, now: float) -> dict[str, Any]:
        ended = self.done + self.failed + self.skipped
        until = self.finished or now
        elapsed = max(until - self.started, 1e-9)
        rate = ended / elapsed if ended else 0.0
        running = 0 if self.finished else max(self.started_items - self.done - self.failed, 0)
        queued = max(self.count - ended - running, 0) if self.count is not None else None
        remaining = (self.count - ended) if self.count is not None else None
        eta = remaining / rate if (self.finished is None and rate and remaining is not None) else None
        ordered = sorted(self.durations)
        return {
            "step": self.step,
            "status": self.status,
            "count": self.count,
            "total": self.total,
            "kept": self.kept,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "running": running,
            "queued": queued,
            "started": self.started,
            "finished": self.finished,
            "elapsed": until - self.started,
            "items_per_second": rate,
            "eta": eta,
            "p50": _quantile(ordered, 0.50),
            "p95": _quantile(ordered, 0.95),
            "max": ordered[-1] if ordered else None,
            "histogram": _histogram(ordered, sorted(self.failed_durations)),
            "density": _density(self.ends, self.started, until),
            "failures": self.failures,
            "failures_total": self.failed,
            "slowest": [{"index": i, "duration": d} for d, i in self.slowest],
            **self.figures,
        }


class ExecutionView:
    """Fed the lane events and the item rows as they are read (in commit order); to_dict() any time."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.start: Event | None = None
        self.end: Event | None = None
        self.lanes: dict[str, Lane] = {}
        self.iterators: dict[str, IteratorFold] = {}
        self.iterator_runs: dict[str, int] = {}
        self.last_seq = 0

    def add(
        self,
        lanes: list[Event],
        rows: list[tuple[Any, ...]],
        starts: list[tuple[int, dict[str, int]]],
        upto: int,
    ) -> None:
        """Fold what was committed with seq in (last_seq, upto], in commit order.

        `lanes`: lane events; `rows`: items that ended; `starts`: (end of a window, items started per step
        in it), windows cut at each iterator_started (starts_windows), so that items started before an
        iterator ran again count for the run they belong to. Reads may have gone past `upto` (events
        committed meanwhile): those are left for the next call.
        """
        rows = [r for r in rows if self.last_seq < r[0] <= upto]
        marks = sorted(
            [(seq, 0, counts) for seq, counts in starts]
            + [(e.seq or 0, 1, e) for e in lanes if self.last_seq < (e.seq or 0) <= upto],
            key=lambda mark: (mark[0], mark[1]),
        )
        done = 0  # rows[:done] are folded
        for seq, _, entry in marks:
            cut = bisect.bisect_right(rows, seq, lo=done, key=lambda r: r[0])
            self._items(rows[done:cut])
            done = cut
            if isinstance(entry, dict):  # started items of a window
                for step, n in entry.items():
                    if step in self.iterators:
                        self.iterators[step].started_items += n
            elif entry.current_index is None:  # an item's own attempts are counted, not drawn on the lane
                self._lane_event(entry)
        self._items(rows[done:])
        self.last_seq = max(self.last_seq, upto)

    def _items(self, rows: list[tuple[Any, ...]]) -> None:
        # runs of one step's rows (parallel iterators interleave; one iterator is one run)
        for step, batch in itertools.groupby(rows, key=_STEP):
            if (it := self.iterators.get(step)) is not None:
                it.items(list(batch))

    def starts_windows(self, lanes: list[Event], upto: int) -> list[tuple[int, int]]:
        """The (after, upto] windows to count started items in: cut at each iterator_started."""
        cuts = sorted(
            e.seq or 0
            for e in lanes
            if e.event_type == T.ITERATOR_STARTED and self.last_seq < (e.seq or 0) <= upto
        )
        bounds = [self.last_seq, *cuts, upto]
        return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    @property
    def finished(self) -> bool:
        return self.end is not None

    def _lane_event(self, e: Event) -> None:
        t = e.event_type
        at = epoch(e.created_at) or 0.0
        if t == T.EXECUTION_START:
            self.start = e
            return
        if t in (T.EXECUTION_COMPLETE, T.EXECUTION_FAILED):
            self.end = e
            return
        if t == T.EXECUTION_RETRY:  # running again: the retried step's new run follows
            self.end = None
            return
        lane = self.lanes.setdefault(e.node_name or "", Lane(e.node_name or ""))
        if t == T.STEP_STARTED:
            lane.node_type = e.node_type
            lane.runs.append(StepRun(run=len(lane.runs) + 1, started=at))
            return
        run = lane.runs[-1] if lane.runs else None
        if run is None:
            return
        if t in (T.STEP_COMPLETED, T.STEP_FAILED):
            run.finished, run.status, run.error = at, e.status or FAILED, e.error
            for attempt in run.attempts:
                if attempt.finished is None:
                    attempt.finished, attempt.status = at, e.status or FAILED
        elif t == T.ACTION_STARTED:
            run.attempts.append(Attempt(attempt=e.attempt or len(run.attempts) + 1, started=at))
        elif t in (T.ACTION_COMPLETED, T.ACTION_ERROR) and run.attempts:
            run.attempts[-1].finished, run.attempts[-1].status = at, e.status or FAILED
            run.attempts[-1].error = e.error
        elif t == T.ACTION_RETRY and run.attempts:
            run.attempts[-1].status = "FAILED"
            run.attempts[-1].retry_at = e.meta.get("retry_at")
        elif t == T.ITERATOR_STARTED:
            lane.iterator = True
            self.iterator_runs[lane.step] = self.iterator_runs.get(lane.step, 0) + 1
            self.iterators[lane.step] = IteratorFold(lane.step, e)
        elif t in (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED) and lane.step in self.iterators:
            self.iterators[lane.step].end(e)

    def to_dict(self, now: float) -> dict[str, Any]:
        start, end = self.start, self.end
        started = epoch(start.created_at) if start else None
        finished = epoch(end.created_at) if end else None
        status = "UNKNOWN" if start is None else ((end.status or FAILED) if end else "RUNNING")
        context = (start.context or {}) if start else {}
        iterators = {name: it.to_dict(now) for name, it in self.iterators.items()}
        return {
            "execution_id": self.execution_id,
            "playbook": start.node_name if start else None,
            "path": context.get("path"),
            "version": context.get("version"),
            "source": context.get("source"),
            "parent_execution_id": start.parent_execution_id if start else None,
            "status": status,
            "started": started,
            "finished": finished,
            "duration": (finished or now) - started if started else None,
            "payload": _cut(context.get("workload")),
            "result": _cut(end.result) if end else None,
            "error": end.error if end else None,
            "headline": self._headline(status, iterators),
            "last_seq": self.last_seq,
            "lanes": [
                {
                    "step": lane.step,
                    "type": lane.node_type,
                    "iterator": lane.iterator,
                    "iterator_runs": self.iterator_runs.get(lane.step, 0),
                    "runs": [r.to_dict() for r in lane.runs],
                }
                for lane in self.lanes.values()
            ],
            "iterators": iterators,
        }

    def _headline(self, status: str, iterators: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """What the page says on top: the failing step and item, or the items that failed quietly."""
        failed_items = {name: it["failed"] for name, it in iterators.items() if it["failed"]}
        if status == "FAILED":
            step = next(
                (lane.step for lane in self.lanes.values() for r in lane.runs if r.status == "FAILED"), None
            )
            item = None
            if step and step in self.iterators and self.iterators[step].failures:
                item = self.iterators[step].failures[0]
            return {
                "kind": "failed",
                "step": step,
                "item": item,
                "error": self.end.error if self.end else None,
            }
        if failed_items:
            total = sum(failed_items.values())
            return {"kind": "failed_items", "failed": total, "steps": failed_items}
        return None


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _histogram(done: list[float], failed: list[float]) -> dict[str, Any] | None:
    """Item durations (sorted lists) on a log scale, since they often span µs to minutes."""
    positive_done = done[bisect.bisect_right(done, 0.0) :]
    positive_failed = failed[bisect.bisect_right(failed, 0.0) :]
    lows = [v[0] for v in (positive_done, positive_failed) if v]
    if not lows:
        return None
    low, high = min(lows), max(v[-1] for v in (positive_done, positive_failed) if v)
    if high <= low * 1.0001:
        edges = [low, high]
    else:
        ratio = (high / low) ** (1 / HISTOGRAM_BINS)
        edges = [low * ratio**i for i in range(HISTOGRAM_BINS)] + [high]

    def counts(values: list[float]) -> list[int]:
        # bin i holds edges[i] <= v < edges[i+1]; the last bin also holds `high`
        cuts = [bisect.bisect_left(values, e) for e in edges[1:-1]]
        bounds = [0, *cuts, len(values)]
        return [b - a for a, b in itertools.pairwise(bounds)]

    return {"edges": edges, "done": counts(positive_done), "failed": counts(positive_failed)}


def _density(ends: list[float], started: float, until: float) -> dict[str, Any] | None:
    """How many items ended in each of DENSITY_BINS slices of the iterator's time."""
    if not ends:
        return None
    span = max(until - started, 1e-6)
    width = span / DENSITY_BINS
    ordered = sorted(ends)  # nearly sorted already (commit order): cheap
    cuts = [bisect.bisect_left(ordered, started + width * i) for i in range(1, DENSITY_BINS)]
    bounds = [0, *cuts, len(ordered)]
    return {"start": started, "width": width, "counts": [b - a for a, b in itertools.pairwise(bounds)]}


def _cut(value: Any) -> Any:
    """A value as it is, or a note that it is too large to show here (the events API has it whole)."""
    import json

    text = json.dumps(value, default=str)
    if len(text) <= _PAYLOAD_CHARS:
        return value
    return {"truncated": True, "chars": len(text), "preview": text[:_PAYLOAD_CHARS]}
