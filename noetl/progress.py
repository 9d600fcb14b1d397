"""A live progress line for iterators on a terminal: items done / failed / rate / ETA."""

from __future__ import annotations

import threading
import time
from typing import IO

from noetl.engine.events import Event
from noetl.engine.events import EventType as T


class ProgressObserver:
    """An event observer; it only prints, and the sink swallows anything it raises."""

    def __init__(self, stream: IO[str], min_interval: float = 0.1) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._step = ""
        self._count = 0
        self._done = 0
        self._failed = 0
        self._started = 0.0
        self._last_draw = 0.0

    def __call__(self, event: Event) -> None:
        kind = event.event_type
        if kind == T.ITERATOR_STARTED:
            with self._lock:
                self._step, self._count = event.node_name or "", int(event.meta.get("count") or 0)
                self._done = self._failed = 0
                self._started = time.monotonic()
            self._draw(force=True)
        elif kind in (T.ITERATION_COMPLETED, T.ITERATION_FAILED):
            with self._lock:
                if kind == T.ITERATION_COMPLETED:
                    self._done += 1
                else:
                    self._failed += 1
            self._draw()
        elif kind in (T.ITERATOR_COMPLETED, T.ITERATOR_FAILED):
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            with self._lock:
                self._step = ""

    def line(self) -> str:
        finished = self._done + self._failed
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = finished / elapsed
        eta = (self._count - finished) / rate if rate > 0 else 0.0
        width = 24
        filled = int(width * finished / self._count) if self._count else width
        bar = "#" * filled + "-" * (width - filled)
        return (
            f"{self._step} [{bar}] {finished}/{self._count} done={self._done} failed={self._failed} "
            f"{rate:.1f} items/s ETA {eta:.1f}s"
        )

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._step or (not force and now - self._last_draw < self.min_interval):
                return
            self._last_draw = now
            text = self.line()
        self.stream.write("\r" + text)
        self.stream.flush()

    def close(self) -> None:
        pass
