"""Group commit: events are queued and written in batches by one thread; `flush` makes them durable."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence

from noetl.engine.events import Event, EventType
from noetl.errors import StoreError


class BatchWriter:
    """Collects appends and hands them to `write_batch` in one transaction at a time.

    Writes happen on a background thread so an item's work never waits for a commit; a failed write is
    remembered and raised on the next append or flush, so it fails the execution instead of vanishing.
    `write_batch` returns the executions whose events it refused because they had ended (see
    noetl.store.sequencing); `closed` answers for them, so that the work still running for one stops.
    """

    def __init__(
        self, write_batch: Callable[[Sequence[Event]], Collection[str]], max_delay: float = 0.05
    ) -> None:
        self._write_batch = write_batch
        self._ended: set[str] = set()
        self._max_delay = max_delay
        self._pending: list[Event] = []
        self._cond = threading.Condition()
        self._written = 0
        self._queued = 0
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="noetl-event-writer", daemon=True)
        self._thread.start()

    def append(self, events: Sequence[Event]) -> None:
        with self._cond:
            self._raise_if_failed()
            if self._closed:
                raise StoreError("the event store is closed")
            self._pending.extend(events)
            self._queued += len(events)
            if len(self._pending) >= 512:
                self._cond.notify_all()

    def flush(self) -> None:
        with self._cond:
            target = self._queued
            self._cond.notify_all()
            while self._written < target and self._error is None:
                self._cond.wait()
            self._raise_if_failed()

    def closed(self, execution_id: str) -> bool:
        """True once a batch had events of this execution refused: it ended while work for it ran."""
        return execution_id in self._ended

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise StoreError(f"writing events to the store failed: {self._error}") from self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closed:
                    self._cond.wait(timeout=self._max_delay)
                if self._closed and not self._pending:
                    return
                batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                refused = self._write_batch(batch)
            except BaseException as exc:  # remembered and raised to the caller; never swallowed
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            # An execution_retry that was kept opened its execution again (noetl.store.sequencing).
            reopened = {e.execution_id for e in batch if e.event_type == EventType.EXECUTION_RETRY} - set(
                refused
            )
            with self._cond:
                self._ended.difference_update(reopened)
                self._ended.update(refused)
                self._written += len(batch)
                self._cond.notify_all()
