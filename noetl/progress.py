"""Live progress for iterators on a terminal, drawn by rich.progress: one line per running iterator (two
iterators of parallel branches each get their own) with a bar, items done / failed, the rate, the time
elapsed and the time left, fitted to the terminal's width."""

from __future__ import annotations

import threading
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
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


class ProgressObserver:
    """An event observer; it only draws, and the sink swallows anything it raises.

    An iterator's line appears with its `iterator_started` and stays, final, when it ends; the display
    stops (the cursor below the last line) once no iterator is running, and starts again for the next.
    """

    def __init__(self, stream: IO[str], min_interval: float = 0.1) -> None:
        line = Column(no_wrap=True)  # each field stays on the line; the bar takes what width is left
        self._progress = Progress(
            TextColumn("{task.description}", markup=False, table_column=Column(no_wrap=True, max_width=30)),
            BarColumn(bar_width=None),
            MofNCompleteColumn(table_column=line),
            TextColumn("done={task.fields[done]} failed={task.fields[failed]}", table_column=line),
            RateColumn(table_column=line),
            TimeElapsedColumn(table_column=line),
            TextColumn("ETA", table_column=line),
            TimeRemainingColumn(compact=True, table_column=line),
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

    def __call__(self, event: Event) -> None:
        kind = event.event_type
        key = (event.execution_id, event.node_name or "")
        with self._lock:
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

    def close(self) -> None:
        with self._lock:
            self._running.clear()
            self._finish()

    def _finish(self) -> None:
        """Draw the lines a last time and leave them; the next iterator starts a new display."""
        self._progress.stop()
        for task in list(self._tasks.values()):
            self._progress.remove_task(task)
        self._tasks.clear()
        self._counts.clear()
