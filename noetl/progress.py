"""Live progress on a terminal, drawn by rich.progress: one line per running iterator (two iterators of
parallel branches each get their own) with a bar, items done / failed, the rate, the time elapsed and the
time left, fitted to the terminal's width; and a spinner line with the step's name and its time for any
other step that runs longer than a second (it goes when the step ends)."""

from __future__ import annotations

import threading
from typing import IO

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from noetl.engine.events import Event
from noetl.engine.events import EventType as T


class RateColumn(ProgressColumn):
    """Items finished per second since the iterator started (rich's own speed is a recent window)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed  # frozen when the iterator ends (stop_task)
        rate = task.completed / elapsed if elapsed else 0.0
        return Text(f"{rate:.1f} items/s", style="progress.data.speed")


LONG_STEP_SECONDS = 1.0  # a step that runs longer than this gets its spinner line
_NO_LINE = frozenset({"iterator", "step"})  # an iterator has its own line; a router runs nothing


class _Only(ProgressColumn):
    """A column drawn for one kind of line only (iterator lines or step lines), blank on the others."""

    def __init__(self, inner: ProgressColumn, kind: str) -> None:
        super().__init__(table_column=inner.get_table_column())
        self._inner = inner
        self._kind = kind

    def render(self, task: Task) -> RenderableType:
        if task.fields.get("kind", "iterator") != self._kind:
            return Text("")
        return self._inner.render(task)


class ProgressObserver:
    """An event observer; it only draws, and the sink swallows anything it raises.

    An iterator's line appears with its `iterator_started` and stays, final, when it ends; the display
    stops (the cursor below the last line) once no iterator is running, and starts again for the next.
    """

    def __init__(self, stream: IO[str], min_interval: float = 0.1) -> None:
        line = Column(no_wrap=True)  # each field stays on the line; the bar takes what width is left
        iterators = "iterator"
        self._progress = Progress(
            _Only(SpinnerColumn(table_column=Column(no_wrap=True)), "step"),
            TextColumn("{task.description}", markup=False, table_column=Column(no_wrap=True, max_width=30)),
            BarColumn(bar_width=None),
            _Only(MofNCompleteColumn(table_column=line), iterators),
            _Only(
                TextColumn("done={task.fields[done]} failed={task.fields[failed]}", table_column=line),
                iterators,
            ),
            _Only(RateColumn(table_column=line), iterators),
            TimeElapsedColumn(table_column=line),
            _Only(TextColumn("ETA", table_column=line), iterators),
            _Only(TimeRemainingColumn(compact=True, table_column=line), iterators),
            console=Console(file=stream),
            expand=True,
            refresh_per_second=1 / min_interval,
            # What steps print goes where it goes without the bar (rich would move stdout to the console).
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._lock = threading.Lock()
        self._tasks: dict[tuple[str, str], TaskID] = {}  # (execution, step) -> its line
        self._running: set[TaskID] = set()
        self._counts: dict[TaskID, list[int]] = {}  # done, failed
        self._steps: dict[tuple[str, str], threading.Timer | TaskID] = {}  # long steps: timer, then line

    def __call__(self, event: Event) -> None:
        kind = event.event_type
        key = (event.execution_id, event.node_name or "")
        with self._lock:
            if kind == T.STEP_STARTED and (event.node_type or "step") not in _NO_LINE:
                timer = threading.Timer(LONG_STEP_SECONDS, self._show_step, (key,))
                timer.daemon = True
                self._steps[key] = timer
                timer.start()
                return
            if kind in (T.STEP_COMPLETED, T.STEP_FAILED) and key in self._steps:
                self._end_step(key)
                return
            if kind == T.ITERATOR_STARTED:
                if not self._running:
                    self._progress.start()
                count = event.meta.get("count")  # None for a streaming collection: its end is not known
                task = self._progress.add_task(
                    key[1], total=None if count is None else int(count), done=0, failed=0
                )
                self._tasks[key], self._counts[task] = task, [0, 0]
                self._running.add(task)
                return
            task_or_none = self._tasks.get(key)
            if task_or_none is None or task_or_none not in self._running:
                return
            task = task_or_none
            if kind in (T.ITERATION_COMPLETED, T.ITERATION_FAILED):
                counts = self._counts[task]
                counts[0 if kind == T.ITERATION_COMPLETED else 1] += 1
                self._progress.update(task, advance=1, done=counts[0], failed=counts[1])
            elif kind in (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED):
                self._progress.stop_task(task)
                self._running.discard(task)
                if not self._running:
                    self._finish()

    def _show_step(self, key: tuple[str, str]) -> None:
        """The step still runs after LONG_STEP_SECONDS: its spinner line, with the time since it began."""
        with self._lock:
            if not isinstance(self._steps.get(key), threading.Timer):
                return  # it ended meanwhile
            if not self._running:
                self._progress.start()
            task = self._progress.add_task(key[1], total=None, kind="step", done=0, failed=0)
            # rich counts elapsed time from add_task; the step began LONG_STEP_SECONDS before
            shown = next(t for t in self._progress.tasks if t.id == task)
            shown.start_time = (shown.start_time or 0.0) - LONG_STEP_SECONDS
            self._steps[key] = task
            self._running.add(task)

    def _end_step(self, key: tuple[str, str]) -> None:
        found = self._steps.pop(key)
        if isinstance(found, threading.Timer):
            found.cancel()
            return
        self._running.discard(found)
        self._progress.remove_task(found)
        if not self._running:
            self._finish()

    def close(self) -> None:
        with self._lock:
            for found in self._steps.values():
                if isinstance(found, threading.Timer):
                    found.cancel()
            self._steps.clear()
            self._running.clear()
            self._finish()

    def _finish(self) -> None:
        """Draw the lines a last time and leave them; the next iterator starts a new display."""
        self._progress.stop()
        for task in list(self._tasks.values()):
            self._progress.remove_task(task)
        self._tasks.clear()
        self._counts.clear()
